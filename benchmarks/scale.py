"""Driver-side cost of a million-clip run, without any video: the steps the `space extract`
driver, `space filter` and `space pack` do besides extracting.

A synthetic VoxCeleb2-like manifest (`--clips`, default 1,000,000; about `--speakers` 6,000
speakers with VoxCeleb2-style ids `id00012`, YouTube-like video ids, `NNNNN.mp4` utterances)
is written with every unit already committed (a unit folder with a journal, and its marker
with one row of plausible statistics per clip), in a separate process. Then, in this process,
each step is timed with the process's peak RSS after it:

- read manifest: `read_manifest` → 1M `Clip` objects
- plan: `plan_units`
- resume scan: `resume_scan` with every unit committed (must find nothing pending)
- clips.parquet (markers): `write_clips_table` reading every marker (a first run's end)
- clips.parquet (reuse): the same again, reusing the previous table's rows (a resumed run's end)
- filter: read the two tables, `filter_clips`
- pack planning: `kept_records` (the sorted record paths `space pack` would load)

With `--s3-clips N` (default 100,000; 0 skips it) the scan and clips.parquet steps run again
against a moto S3 server (its own process on 127.0.0.1), counting its requests by kind: list
requests (one per page of 1000 names), object GETs, PUTs and DELETEs.

Targets at 1M clips on local disk: all driver steps together < 60 s and < 2 GiB peak RSS;
the scan on object storage ≈ units/1000 list requests.

Run: .venv/bin/python benchmarks/scale.py [--clips 1000000] [--speakers 6000]
     [--s3-clips 100000] [--workdir DIR]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import resource
import string
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import click

from pipelines.filter import decide
from pipelines.pack import plan_records
from pipelines.units import (
    CLIPS_TABLE,
    COMMITS,
    JOURNAL,
    UNITS,
    Unit,
    plan_units,
    resume_scan,
    write_clips_table,
)
from space_data import storage
from space_data.av_offset import LAGS
from space_data.clip import Clip, clip_key, make_clip_id
from space_data.datasets import IndexConfig, assign_splits, read_manifest, write_manifest
from space_data.filters import FilterConfig
from space_data.record import ClipStats

PARAMS_HASH = "0123456789abcdef"
CLIPS_PER_UNIT = 16
GIB = 2**30
_YOUTUBE = string.ascii_letters + string.digits + "-_"


def synthetic_manifest(n_clips: int, n_speakers: int, seed: int = 0) -> list[Clip]:
    """VoxCeleb2-like clips: speakers `idNNNNN`, ~8 clips per YouTube video, splits assigned
    as `space index` does (dev → train/val by speaker hash, ~2 % of speakers in test)."""
    rng = random.Random(seed)
    speakers = sorted(rng.sample(range(10, 99_999), n_speakers))
    clips, videos = [], {}
    for k in range(n_clips):
        speaker = f"id{speakers[k % n_speakers]:05d}"
        partition = "test" if speakers[k % n_speakers] % 50 == 0 else "dev"
        per_speaker = k // n_speakers
        if per_speaker % 8 == 0:
            videos[speaker] = "".join(rng.choice(_YOUTUBE) for _ in range(11))
        video = videos[speaker]
        rel = f"{partition}/mp4/{speaker}/{video}/{per_speaker + 1:05d}.mp4"
        clips.append(
            Clip(
                make_clip_id("voxceleb2", rel),
                "voxceleb2",
                speaker,
                f"s3://corpora/voxceleb2/{rel}",
                split="train" if partition == "dev" else "test",
                fps=25.0,
                duration=round(rng.uniform(4.0, 20.0), 2),
            )
        )
    return assign_splits(clips, IndexConfig())


def _stats(clip: Clip, rng: random.Random) -> dict:
    """Plausible statistics of a good talking-head clip (some turned or zooming past the rules)."""
    seconds = clip.duration or 8.0
    plausible = {
        "n_frames": round(seconds * 30),
        "duration": seconds,
        "native_fps": 25.0,
        "decoded_frames": round(seconds * 25),
        "max_abs_yaw": round(rng.uniform(0.0, 60.0), 2),
        "max_abs_pitch": round(rng.uniform(0.0, 25.0), 2),
        "max_abs_roll": round(rng.uniform(0.0, 15.0), 2),
        "scale_min": 0.9,
        "scale_max": round(rng.uniform(1.0, 1.5), 3),
        "scale_median": 1.0,
        "max_landmark_jump": round(rng.uniform(0.0, 0.25), 3),
        "has_audio": True,
        "audio_duration": seconds,
        "speech_fraction": round(rng.uniform(0.3, 1.0), 3),
        "av_offset_frames": round(rng.uniform(-3.0, 3.0), 1),
        "av_offset_confidence": round(rng.uniform(0.5, 1.0), 2),
        "av_sync_backend": "offline",
        "av_sync_curve": [round(rng.uniform(-0.1, 0.4), 3) for _ in LAGS],
    }
    stats = ClipStats().to_dict()  # every field, whatever the extractor adds later
    return {**stats, **{k: v for k, v in plausible.items() if k in stats}}


def _marker(unit: Unit, rng: random.Random) -> dict:
    rows = [
        {
            "clip_id": clip.clip_id,
            "key": clip_key(clip),
            "status": "ok",
            "reason": None,
            "record": unit.record_path(clip.clip_id),
            "stats": _stats(clip, rng),
        }
        for clip in unit.clips
    ]
    return {
        "unit": unit.unit_id,
        "params_hash": PARAMS_HASH,
        "members_hash": unit.members_hash,
        "clips": [c.clip_id for c in unit.clips],
        "rows": rows,
    }


def prepare(manifest: str, features: str, n_clips: int, n_speakers: int) -> None:
    """Write the manifest and commit every unit (markers + unit folders) under `features`."""
    clips = synthetic_manifest(n_clips, n_speakers)
    write_manifest(clips, manifest)
    units = plan_units(clips, CLIPS_PER_UNIT)
    rng = random.Random(1)
    files: dict[str, bytes] = {}
    for unit in units:
        folder = storage.join(features, UNITS, unit.unit_id)
        files[storage.join(folder, JOURNAL)] = b'{"event": "open"}\n'
        name = unit.marker_name(PARAMS_HASH)
        marker = json.dumps(_marker(unit, rng), sort_keys=True).encode()
        files[storage.join(features, COMMITS, name)] = marker
        if len(files) >= 4096:
            _write_all(files)
    _write_all(files)


def _write_all(files: dict[str, bytes]) -> None:
    if files and storage.is_remote(next(iter(files))):
        import fsspec

        fs = fsspec.filesystem("s3")
        fs.pipe({p.removeprefix("s3://"): data for p, data in files.items()})
    else:
        for path, data in files.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Path(path).write_bytes(data)
    files.clear()


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Steps:
    """Times steps and prints one row each: wall and CPU seconds (CPU time is the fair number
    on a shared machine), peak RSS after, extra columns."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.peak = 0

    def run(self, name: str, fn, *args, note=None):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn(*args)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        self.seconds[name], self.cpu[name] = seconds, cpu
        self.peak = peak_rss()
        extra = f"  {note(result)}" if note else ""
        print(
            f"    {name:<28} {seconds:7.2f} s wall {cpu:7.2f} s CPU   "
            f"peak RSS {peak_rss() / GIB:5.2f} GiB{extra}",
            flush=True,
        )
        return result


def extract_driver(manifest: str, features: str) -> Steps:
    """The `space extract` driver's own work on a fully committed run (one process)."""
    steps = Steps()
    clips = steps.run("read manifest", read_manifest, manifest)
    units = steps.run("plan", plan_units, clips, CLIPS_PER_UNIT, note=lambda u: f"{len(u):,} units")
    scan = steps.run(
        "resume scan (all committed)",
        resume_scan,
        features,
        units,
        PARAMS_HASH,
        note=lambda s: f"{len(s.pending)} pending",
    )
    assert not scan.pending, "every unit was committed"
    steps.run("clips.parquet (markers)", write_clips_table, features, units, PARAMS_HASH)
    steps.run("clips.parquet (reuse)", write_clips_table, features, units, PARAMS_HASH)
    return steps


def filter_command(manifest: str, features: str, keep: str) -> Steps:
    """`space filter`: both tables in, keep.parquet out (one process)."""

    def run() -> int:
        decisions = decide(manifest, storage.join(features, CLIPS_TABLE), FilterConfig())
        storage.write_parquet(decisions, keep)
        return int(decisions["keep"].sum())

    steps = Steps()
    steps.run("filter", run, note=lambda n: f"{n:,} kept")
    return steps


def pack_planning(features: str, keep: str) -> Steps:
    """`space pack` up to the first record load: the sorted record paths (one process)."""
    steps = Steps()
    steps.run(
        "pack planning", lambda: len(plan_records(keep, features)), note=lambda n: f"{n:,} records"
    )
    return steps


def _in_fresh_process(fn, *args) -> Steps:
    """Run a command's steps in a new interpreter (spawn), as the real commands run: its peak
    RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
        return pool.submit(fn, *args).result()


def local_run(workdir: Path, n_clips: int, n_speakers: int) -> None:
    manifest, features = str(workdir / "manifest.parquet"), str(workdir / "features")
    keep = str(workdir / "keep.parquet")
    t0 = time.perf_counter()
    _in_fresh_process(prepare, manifest, features, n_clips, n_speakers)
    print(
        f"local disk, {n_clips:,} clips (prepared in {time.perf_counter() - t0:.0f} s):", flush=True
    )
    print("  space extract driver (one process):", flush=True)
    driver = _in_fresh_process(extract_driver, manifest, features)
    print("  space filter, space pack planning (one process each):", flush=True)
    commands = [
        _in_fresh_process(filter_command, manifest, features, keep),
        _in_fresh_process(pack_planning, features, keep),
    ]
    first_run = [(driver, s) for s in driver.seconds if s != "clips.parquet (reuse)"]
    first_run += [(c, s) for c in commands for s in c.seconds]
    total = sum(steps.seconds[s] for steps, s in first_run)
    cpu = sum(steps.cpu[s] for steps, s in first_run)
    peak = max(steps.peak for steps in (driver, *commands))
    print(
        f"  all driver steps (read, plan, scan, clips.parquet from markers, filter, pack "
        f"planning): {total:.1f} s wall, {cpu:.1f} s CPU; largest peak RSS {peak / GIB:.2f} GiB "
        f"(targets < 60 s, < 2 GiB)",
        flush=True,
    )


def s3_run(workdir: Path, n_clips: int, n_speakers: int) -> None:
    from space_data.testing.s3 import S3Server

    server = S3Server(workdir / "moto.log")
    try:
        os.environ.update(server.env)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir("bench")
        base = "s3://bench/run"
        manifest, features = f"{base}/manifest.parquet", f"{base}/features"
        t0 = time.perf_counter()
        prepare(manifest, features, n_clips, n_speakers)
        print(
            f"moto S3 server, {n_clips:,} clips (prepared in {time.perf_counter() - t0:.0f} s):",
            flush=True,
        )
        clips = read_manifest(manifest)
        units = plan_units(clips, CLIPS_PER_UNIT)
        steps = Steps()
        for name, fn in (
            ("resume scan (all committed)", lambda: resume_scan(features, units, PARAMS_HASH)),
            ("clips.parquet (markers)", lambda: write_clips_table(features, units, PARAMS_HASH)),
            ("clips.parquet (reuse)", lambda: write_clips_table(features, units, PARAMS_HASH)),
        ):
            mark = len(server.lines())
            steps.run(name, fn, note=lambda _, mark=mark: _requests(server, mark, len(units)))
    finally:
        server.stop()


def _requests(server, mark: int, n_units: int) -> str:
    gets = server.requests("GET", "/bench", since=mark)
    lists = [g for g in gets if "list-type=2" in g]
    counts = {
        "list": len(lists),
        "GET": len(gets) - len(lists),
        "PUT": len(server.requests("PUT", "/bench", since=mark)),
        "DELETE/bulk": len(server.requests("DELETE", "/bench", since=mark))
        + len(server.requests("POST", "/bench", since=mark)),
    }
    shown = ", ".join(f"{k} {v:,}" for k, v in counts.items())
    return f"requests: {shown} ({n_units:,} units → units/1000 = {n_units / 1000:.1f})"


@click.command()
@click.option("--clips", "n_clips", default=1_000_000, show_default=True)
@click.option("--speakers", "n_speakers", default=6_000, show_default=True)
@click.option("--s3-clips", default=100_000, show_default=True, help="0 skips the S3 run.")
@click.option("--workdir", default=None, help="Scratch folder (default: a temporary one).")
def main(n_clips: int, n_speakers: int, s3_clips: int, workdir: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="space-scale-", dir=workdir) as folder:
        if n_clips:
            local_run(Path(folder) / "local", n_clips, n_speakers)
        if s3_clips:
            (Path(folder) / "s3").mkdir()
            s3_run(Path(folder) / "s3", s3_clips, max(1, n_speakers * s3_clips // n_clips))


if __name__ == "__main__":
    main()
