"""The Ray extract job on a real local Ray (2 CPUs) over short clips cut from real videos:
commit and skip, resume after the driver is killed, a worker SIGKILLed mid-clip, adding clips."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.extract import WORKER_DIED, ExtractJobError, RayConfig, run_extract
from pipelines.units import COMMITS, UNITS, Journal, plan_units
from space_data.clip import Clip, make_clip_id
from space_data.datasets import read_manifest, write_manifest
from space_data.extract import ExtractConfig
from space_data.keypoints import KeypointsConfig
from space_data.media import decode_audio, decode_video, write_video

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.realdata]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ExtractConfig(crop_size=256)
RAY = RayConfig(clips_per_unit=2, cpus_per_actor=1.0)
SOURCES = ("frontal_talking_may_25fps", "news_talking_25fps", "interview_talking_25fps")


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (ray.init costs seconds and ~1.6 GiB)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(realdata, tmp_path_factory) -> list[Clip]:
    """Two one-second clips (25 fps, 256 px, with audio) from each of three real videos; each
    video is one speaker. The first four are the base corpus, the last two are added later."""
    root = tmp_path_factory.mktemp("corpus")
    out = []
    for name in SOURCES:
        path = str(realdata / "video" / f"{name}.mp4")
        frames, _, _ = decode_video(path, max_side=256)
        frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 4:2:0
        audio = decode_audio(path)
        for k in range(2):
            rel = f"{name}/{k:02d}.mp4"
            (root / name).mkdir(exist_ok=True)
            write_video(
                str(root / rel),
                frames[25 * k : 25 * (k + 1)],
                25.0,
                audio=audio[16000 * k : 16000 * (k + 1)],
            )
            out.append(
                Clip(
                    make_clip_id("mead", rel),
                    "mead",
                    name.split("_")[0],
                    str(root / rel),
                    split="train",
                    fps=25.0,
                    duration=1.0,
                )
            )
    return out


@pytest.fixture(scope="module")
def reference(ray_address, clips, tmp_path_factory) -> Path:
    """An uninterrupted run over the base corpus (3 units on 2 actors), each actor recycled
    after one unit."""
    out = tmp_path_factory.mktemp("reference")
    recycling = dataclasses.replace(RAY, recycle_after_clips=1)
    summary = run_extract(clips[:4], out, CONFIG, recycling, progress=False)
    assert summary.clips_run == 4 and summary.worker_deaths == 0
    n_units = len(plan_units(clips[:4], RAY.clips_per_unit))
    assert summary.units == n_units == 3 and summary.actors_started == n_units
    assert len(summary.peak_rss) == n_units and all(r > 100e6 for r in summary.peak_rss)
    journals = [Journal(p).read() for p in out.glob(f"{UNITS}/*")]
    pids = {e["pid"] for events in journals for e in events if e["event"] == "open"}
    assert len(pids) == n_units  # every unit ran in its own actor process
    return out


def _records(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.glob(f"{UNITS}/*/*.npz")}


def _table(out: Path) -> list[dict]:
    return pq.read_table(out / "clips.parquet").to_pylist()


def test_run_commits_every_clip_and_a_rerun_skips_them(reference, clips):
    rows = _table(reference)
    assert [r["clip_id"] for r in rows] == sorted(c.clip_id for c in clips[:4])
    assert all(r["status"] == "ok" and r["reason"] is None for r in rows), rows
    assert all((reference / r["record"]).is_file() and r["n_frames"] == 30 for r in rows)
    assert len(_records(reference)) == 4
    summary = run_extract(clips[:4], reference, CONFIG, RAY, progress=False)
    assert summary.units_run == [] and summary.units_skipped == summary.units


def test_killed_driver_resumes_to_the_same_records(reference, clips, ray_address, tmp_path):
    """`space extract` joins the running Ray (RAY_ADDRESS) and is SIGKILLed once a unit has
    committed; the rerun finishes the rest and the records are byte-identical to the
    uninterrupted run, none missing, none twice."""
    out = tmp_path / "features"
    manifest = tmp_path / "manifest.parquet"
    write_manifest(clips[:4], str(manifest))
    params = tmp_path / "params.yaml"
    params.write_text("extract:\n  crop_size: 256\nray:\n  clips_per_unit: 2\n  num_actors: 1\n")
    space = Path(sys.executable).with_name("space")
    command = [space, "extract", "--manifest", manifest, "--out", out, "--params", params]
    env = dict(os.environ, RAY_ADDRESS=ray_address)
    log = tmp_path / "driver.log"
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=stderr)
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(f"{COMMITS}/*.json")):
            assert proc.poll() is None, f"driver ended early: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "no unit committed within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    n_units = len(plan_units(clips[:4], RAY.clips_per_unit))
    committed = len(list(out.glob(f"{COMMITS}/*.json")))
    assert 1 <= committed < n_units, "the kill must land mid-run"
    assert not (out / "clips.parquet").exists()

    summary = run_extract(read_manifest(str(manifest)), out, CONFIG, RAY, progress=False)
    assert summary.units_skipped == committed
    assert _records(out) == _records(reference)
    assert _table(out) == _table(reference)


def test_added_clips_run_alone_and_a_worker_killed_mid_clip_loses_only_that_clip(
    reference, clips, tmp_path
):
    """Adding a speaker's clips runs only its new unit (committed units stay as they are); the
    actor is SIGKILLed (PID from the journal) while it extracts the first new clip: that clip
    is recorded `worker_died`, the rest of its unit completes on a fresh actor."""
    out = tmp_path / "features"
    shutil.copytree(reference, out)
    markers = {p: p.read_bytes() for p in out.glob(f"{COMMITS}/*.json")}
    new = [u for u in plan_units(clips, RAY.clips_per_unit) if u.clips[0] in clips[4:]]
    assert [c for u in new for c in u.clips] == clips[4:] and len(new) == 1
    victim, survivor = (c.clip_id for c in clips[4:])
    journal = Journal(out / UNITS / new[0].unit_id)
    killed: list[int] = []

    def kill_when_in_flight() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for e in journal.read():
                if e["event"] == "start" and e["clip_id"] == victim:
                    os.kill(e["pid"], signal.SIGKILL)
                    killed.append(e["pid"])
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_in_flight, daemon=True)
    killer.start()
    summary = run_extract(clips, out, CONFIG, RAY, progress=False)
    killer.join()
    assert killed, "the victim clip never started"
    assert summary.units_run == [new[0].unit_id] and summary.units_skipped == summary.units - 1
    assert summary.worker_deaths == 1 and summary.worker_died_clips == [victim]
    assert summary.clips_run == 1 and summary.clips_reused == 0  # the victim is settled, not run
    assert all(p.read_bytes() == data for p, data in markers.items())
    rows = {r["clip_id"]: r for r in _table(out)}
    assert sorted(rows) == sorted(c.clip_id for c in clips)
    assert rows[victim]["status"] == "error"
    assert rows[victim]["reason"].startswith(f"{WORKER_DIED}: worker process {killed[0]} died")
    assert rows[survivor]["status"] == "ok" and rows[survivor]["n_frames"] == 30
    # the settled clip is not retried by the next run
    assert run_extract(clips, out, CONFIG, RAY, progress=False).units_run == []


def test_actors_the_cluster_cannot_host_stop_the_job_with_the_reason(ray_address, clips, tmp_path):
    with pytest.raises(ExtractJobError, match="gpus_per_actor=1.0 but the cluster has 0 GPUs"):
        run_extract(clips[:1], tmp_path, CONFIG, RayConfig(gpus_per_actor=1.0), progress=False)


def test_a_setup_error_in_an_actor_stops_the_job_with_its_message(ray_address, clips, tmp_path):
    broken = tmp_path / "vox-256.pth.tar"
    broken.write_text("not a torch file\n")
    config = dataclasses.replace(CONFIG, keypoints=KeypointsConfig(checkpoint=str(broken)))
    with pytest.raises(ExtractJobError, match=r"^\S*vox-256.pth.tar is not a readable torch"):
        run_extract(clips[:1], tmp_path / "features", config, RAY, progress=False)
    assert not list((tmp_path / "features").glob(f"{COMMITS}/*.json"))  # nothing committed
