"""Per-clip extraction speed on the sample corpus: frames per second per core, time per stage.

Three measurements, one process, models warm (each measured pass follows a warm-up clip):
1. end to end: `ClipExtractor` with params.yaml's `extract` section (no keypoint checkpoint,
   as in the default pipeline) over every usable sample-corpus clip; the share of time in each
   stage comes from the extractor's own stage timers;
2. face mesh alone: the same clips' crops decoded beforehand, only MediaPipe FaceMesh timed
   (`MeshLandmarker.meshes`, the 478-point mesh; our mapping to the record's 68 + 52 points
   counts as extraction, not as face mesh); the target is end to end ≥ 70 % of this speed
   per core. 1 and 2 alternate clip by clip
   (`--repeats` times over the corpus), so both see the same load of a shared machine and
   their ratio is measured under the same conditions;
   then (`--hands`) each hand-detection variant of HAND_VARIANTS over the same crops: its CPU
   cost and how it flags the designed hand clips and the hand-free ones (truth.json);
3. `--hd`: the extractor on a 1920×1080 clip (MEAD's frame size) made from realdata's 512²
   frontal talking clip (scaled up to 1080², bicubic, in the middle of a black frame), time
   per stage: what the small sample corpus cannot show (decoding and crop sizes of HD video);
4. `--memory CASE` (or `all`): only the peak resident memory of one clip's extraction, each
   input of MEMORY_CASES in its own process (a 10-minute 1080p talking clip, an 8K frame, a
   2-hour audio track under 2 s of video, ...), beside `clip_memory.estimate` for it;
5. keypoints: the extractor again on a few clips with a face-vid2vid checkpoint saved from
   space_data.keypoints' own freshly initialised modules — RANDOM WEIGHTS, a timing of the
   network cost only, never features.

"Per core": frames divided by the process CPU seconds (all threads), besides wall-clock fps.
Run: .venv/bin/python benchmarks/extract.py [--corpus sample] [--keypoint-clips 2] [--repeats 1]
[--no-hands] [--no-hd]
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import av
import click
import cv2
import numpy as np
import torch

from space_data import clip_memory
from space_data.clip import Clip
from space_data.clip_memory import ClipSize
from space_data.datasets import sample_clips, whole_frames
from space_data.extract import ClipExtractor, ExtractConfig, _audio_seconds
from space_data.face import crop_and_resize
from space_data.hands import HandDetector, HandSampler
from space_data.keypoints import KeypointsConfig
from space_data.landmarks import make_landmarker
from space_data.media import MediaFile, decode_audio, decode_video, probe, write_audio, write_video
from space_data.params import load_section
from space_data.testing.faces import realdata_root
from space_data.testing.keypoints import random_checkpoint
from space_data.timeline import resample_flags, timeline_length

STAGES = (
    "decode",
    "face_detection",
    "crop",
    "face_mesh",
    "hands",
    "pose",
    "resample",
    "mfcc",
    "emotion",
    "speech",
    "av_offset",
    "keypoints",
)
SIGNALS = ("emotion", "speech", "av_offset")
"""Stages of issue 11 with their budget: emotion ≤ 10 % of extraction time."""
HAND_VARIANTS = {  # name → (model_complexity, min_confidence, every, idle_every)
    "full, every 10th frame (before)": (1, 0.5, 10, 10),
    "full, idle every 30th": (1, 0.5, 10, 30),
    "full, idle every 60th (chosen)": (1, 0.5, 10, 60),
    "full, idle every 90th": (1, 0.5, 10, 90),
    "lite, every 10th": (0, 0.5, 10, 10),
    "lite score 0.7, idle every 30th": (0, 0.7, 10, 30),
}


def corpus_clips(root: Path) -> list:
    clips = sample_clips(str(root))
    if not clips:
        raise click.ClickException(f"no usable clips under {root} (run `space synth` first)")
    return clips


def run_extractor(config: ExtractConfig, clips: list) -> dict:
    """Wall, CPU seconds, native frames and stage timings of one pass after a warm-up clip."""
    extractor = ClipExtractor(config)
    extractor(clips[0])  # warm-up: model creation is not per-frame cost
    extractor.timings.clear()
    frames, audio_s, failed = 0, 0.0, []
    wall, cpu = time.perf_counter(), time.process_time()
    for clip in clips:
        record = extractor(clip)
        frames += record.stats.decoded_frames
        audio_s += record.stats.audio_duration
        if not record.ok:
            failed.append(f"{clip.clip_id}: {record.reason}")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    extractor.close()
    return {
        "wall": wall,
        "cpu": cpu,
        "frames": frames,
        "audio_s": audio_s,
        "timings": dict(extractor.timings),
        "failed": failed,
    }


def end_to_end_and_mesh(config: ExtractConfig, clips: list, crops_of, repeats: int) -> tuple:
    """(end to end, face mesh alone): each a `run_extractor`-like dict (the mesh's without
    stage timings), measured alternately clip by clip, `repeats` passes over the clips."""
    if config.landmarks.backend != "mediapipe":
        raise click.UsageError("the face-mesh-alone ratio is defined for the mediapipe backend")
    extractor, landmarker = ClipExtractor(config), make_landmarker(config.landmarks)
    extractor(clips[0])  # warm-up: model creation is not per-frame cost
    landmarker.meshes(crops_of(clips[0])[:1])
    extractor.timings.clear()
    e2e = {"wall": 0.0, "cpu": 0.0, "frames": 0, "audio_s": 0.0, "failed": []}
    mesh = {"wall": 0.0, "cpu": 0.0, "frames": 0}
    for _ in range(repeats):
        for clip in clips:
            crops = crops_of(clip)  # decoded and cropped outside the timed regions
            wall, cpu = time.perf_counter(), time.process_time()
            record = extractor(clip)
            e2e["wall"] += time.perf_counter() - wall
            e2e["cpu"] += time.process_time() - cpu
            e2e["frames"] += record.stats.decoded_frames
            e2e["audio_s"] += record.stats.audio_duration
            if not record.ok:
                e2e["failed"].append(f"{clip.clip_id}: {record.reason}")
            landmarker.reset()
            wall, cpu = time.perf_counter(), time.process_time()
            landmarker.meshes(crops)
            mesh["wall"] += time.perf_counter() - wall
            mesh["cpu"] += time.process_time() - cpu
            mesh["frames"] += len(crops)
    extractor.close()
    landmarker.close()
    e2e["timings"] = dict(extractor.timings)
    return e2e, mesh


def crop_maker(config: ExtractConfig):
    """clip → (N, S, S, 3) crops exactly as the extractor makes them (its own crop box, at
    the crop's native resolution)."""
    helper = ClipExtractor(config)

    def crops_of(clip) -> np.ndarray:
        frames, _, _ = decode_video(clip.path)
        if whole_frames(clip.dataset):
            return frames
        box = helper.crop_box(clip.path)
        return np.stack([crop_and_resize(f, box, None) for f in frames])

    return crops_of


def hand_variants(clips: list, crops_of, hand_clips: set[str]) -> list[str]:
    """Each HAND_VARIANTS sampler over the same crops: CPU ms per native frame of the hand
    stage, the share of timeline frames flagged on the designed hand clips (lowest) and on
    the others (highest), as the `hands` filter reads it."""
    samplers = {
        name: HandSampler(HandDetector(conf, model_complexity=mc), every, idle)
        for name, (mc, conf, every, idle) in HAND_VARIANTS.items()
    }
    cpu = dict.fromkeys(samplers, 0.0)
    shares: dict[str, dict[str, float]] = {name: {} for name in samplers}
    frames = 0
    for clip in clips:
        crops = crops_of(clip)
        fps = probe(clip.path).fps
        times = np.arange(len(crops)) / fps
        n = timeline_length(len(crops) / fps)
        frames += len(crops)
        for name, sampler in samplers.items():
            sampler.start()
            start = time.process_time()
            sampler.run(range(len(crops)), times, crops)
            cpu[name] += time.process_time() - start
            flags = resample_flags(np.asarray(sampler.times), np.asarray(sampler.flags), n)
            shares[name][clip.clip_id] = float(flags.mean())
    lines = [f"hands alone, {frames} native frames ({len(hand_clips)} designed hand clips):"]
    for name, sampler in samplers.items():
        sampler.detector.close()
        with_hand = [v for k, v in shares[name].items() if k in hand_clips]
        without = [v for k, v in shares[name].items() if k not in hand_clips]
        lines.append(
            f"  {name:34s} {1000 * cpu[name] / frames:5.2f} ms CPU/frame; hand clips flagged "
            f"≥ {100 * min(with_hand, default=float('nan')):.0f} %, hand-free clips "
            f"≤ {100 * max(without, default=float('nan')):.0f} %"
        )
    return lines


def designed_hand_clips(corpus: Path, clips: list) -> set[str]:
    """Ids of the sample corpus's designed `hands` clips (from its truth.json; empty without)."""
    truth_file = corpus / "truth.json"
    if not truth_file.is_file():
        return set()
    designs = {d["path"]: d["design"] for d in json.loads(truth_file.read_text()).values()}
    return {
        c.clip_id
        for c in clips
        if designs.get(str(Path(c.path).resolve().relative_to(corpus.resolve()))) == "hands"
    }


HD_SOURCE = "video/frontal_talking_may_25fps.mp4"
"""The realdata clip the `--hd` clip is made from."""


def hd_clip(folder: Path) -> Clip | None:
    """A 1920×1080 MEAD-style clip written into `folder` from realdata's HD_SOURCE (scaled up
    to 1080², bicubic, centred on black; its own audio), or None without realdata."""
    source = realdata_root() / HD_SOURCE
    if not source.is_file():
        return None
    frames, _, _ = decode_video(str(source))

    def framed(rgb: np.ndarray) -> np.ndarray:
        canvas = np.zeros((1080, 1920, 3), np.uint8)
        canvas[:, 420:1500] = cv2.resize(rgb, (1080, 1080), interpolation=cv2.INTER_CUBIC)
        return canvas

    path = folder / "hd_1080p.mp4"
    write_video(str(path), (framed(f) for f in frames), probe(str(source)).fps,
                decode_audio(str(source)))  # fmt: skip
    return Clip(clip_id="hd-1080p", dataset="mead", speaker="hd", path=str(path))


def table(label: str, run: dict) -> list[str]:
    """Stage timings are CPU seconds (the extractor's timers), shares of the run's CPU time."""
    lines = [
        f"{label}: {run['frames']} native frames, {run['wall']:.1f} s wall, "
        f"{run['cpu']:.1f} s CPU → {run['frames'] / run['wall']:.1f} fps wall, "
        f"{run['frames'] / run['cpu']:.1f} fps per core",
        f"  {'stage':16s} {'CPU s':>8s} {'share':>7s} {'ms/frame':>9s}",
    ]
    for stage in STAGES:
        sec = run["timings"].get(stage, 0.0)
        if sec:
            lines.append(
                f"  {stage:16s} {sec:8.2f} {100 * sec / run['cpu']:6.1f}% "
                f"{1000 * sec / run['frames']:9.2f}"
            )
    other = run["cpu"] - sum(run["timings"].values())
    lines.append(f"  {'(other)':16s} {other:8.2f} {100 * other / run['cpu']:6.1f}%")
    return lines


# --- memory per clip (--memory) -----------------------------------------------------------------

MEMORY_CASES = {  # name → (width, height, video seconds, audio seconds)
    "sample 512x512, 10 s": (512, 512, 10.0, 10.0),
    "talking 1920x1080, 1 min": (1920, 1080, 60.0, 60.0),
    "talking 1920x1080, 10 min": (1920, 1080, 600.0, 600.0),
    "8K frame 7680x4320, 1 s": (7680, 4320, 1.0, 1.0),
    "2-hour audio, 2 s of 512x512 video": (512, 512, 2.0, 7200.0),
}
"""Inputs of the memory table, made from realdata's HD_SOURCE (a face centred on black)."""
SEGMENT_S = 10.0
"""Long inputs repeat an encoded segment this long (packets copied, time stamps shifted)."""


def memory_input(folder: Path, width: int, height: int, video_s: float, audio_s: float) -> Clip:
    """A MEAD-style clip: HD_SOURCE's face scaled to the frame's height, centred, its audio;
    `video_s` / `audio_s` seconds made by repeating one encoded segment (fast at any length)."""
    source = realdata_root() / HD_SOURCE
    frames, _, _ = decode_video(str(source))
    fps = probe(str(source)).fps
    audio = decode_audio(str(source))
    side = min(height, width)

    def framed(rgb: np.ndarray) -> np.ndarray:
        canvas = np.zeros((height, width, 3), np.uint8)
        x0 = (width - side) // 2
        canvas[(height - side) // 2 :][:side, x0 : x0 + side] = cv2.resize(
            rgb, (side, side), interpolation=cv2.INTER_CUBIC
        )
        return canvas

    seg_s = min(SEGMENT_S, video_s)
    n = round(seg_s * fps)
    segment = folder / f"segment-{width}x{height}.mp4"
    write_video(str(segment), (framed(frames[i % len(frames)]) for i in range(n)), fps,
                np.resize(audio, round(seg_s * 16000)))  # fmt: skip
    sound = folder / "sound.m4a"
    write_audio(str(sound), np.resize(audio, round(SEGMENT_S * 16000)))
    path = folder / f"memory-{width}x{height}-{video_s:g}s-{audio_s:g}s.mp4"
    audio_source, audio_seg = (segment, seg_s) if audio_s <= video_s else (sound, SEGMENT_S)
    with (
        av.open(str(path), "w") as out,
        av.open(str(segment)) as video_in,
        av.open(str(audio_source)) as audio_in,
    ):
        parts = [
            (video_in, video_in.streams.video[0], round(video_s / seg_s)),
            (audio_in, audio_in.streams.audio[0], round(audio_s / audio_seg)),
        ]
        targets = [out.add_stream_from_template(stream) for _, stream, _ in parts]
        for (source, stream, times), target in zip(parts, targets, strict=True):
            _repeat(out, source, stream, target, times)
    return Clip(clip_id=path.stem, dataset="mead", speaker="memory", path=str(path))


def _repeat(out, source, stream, target, times: int) -> None:
    """Mux `times` copies of `stream`'s packets into `out` as `target`, end to end."""
    packets = [p for p in source.demux(stream) if p.dts is not None]
    first = min(p.pts for p in packets)
    span = max(p.pts + p.duration for p in packets) - first
    for k in range(times):
        for p in packets:
            if k:
                p.pts, p.dts = p.pts + span, p.dts + span
            p.stream = target
            out.mux(p)


def peak_of_one(config: ExtractConfig, clip: Clip, warm: Clip) -> dict:
    """In this process: the extractor warmed on `warm`, then `clip`; resident memory (MiB)."""
    import resource

    extractor = ClipExtractor(config)
    extractor(warm)
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * 4096
    warm_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    record = extractor(clip)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "warm_mib": rss / 2**20,
        "warm_peak_mib": warm_peak / 2**20,
        "peak_mib": peak / 2**20,
        "growth_mib": (peak - rss) / 2**20,
        "seconds": time.perf_counter() - t0,
        "status": record.reason or "ok",
    }


def memory_table(config: ExtractConfig, params_path: str, cases: list[str]) -> Iterator[str]:
    """Each case in a fresh process (peak RSS only grows): the measured peak, its growth over
    the warm extractor, and `clip_memory.estimate`, which must not be lower."""
    yield f"{'input':36s} {'peak MiB':>9s} {'growth':>7s} {'estimate':>9s} {'s':>6s}  status"
    with tempfile.TemporaryDirectory() as tmp:
        warm = memory_input(Path(tmp), 256, 256, 1.0, 1.0)
        for name in cases:
            width, height, video_s, audio_s = MEMORY_CASES[name]
            clip = memory_input(Path(tmp), width, height, video_s, audio_s)
            with MediaFile(clip.path) as media:
                info = media.info
                size = ClipSize(info.width, info.height, info.n_frames, info.duration,
                                _audio_seconds(media.container))  # fmt: skip
            need = clip_memory.estimate(size, config.batch_size, config.buffer_mb * 2**20, False)
            script = (
                "import json, sys; from benchmarks.extract import *; "
                "from space_data.params import load_section; "
                f"c = load_section('extract', ExtractConfig, {params_path!r}); "
                f"c = dataclasses.replace(c, max_clip_mb=1 << 20); "
                f"print(json.dumps(peak_of_one(c, Clip(**{dataclasses.asdict(clip)!r}), "
                f"Clip(**{dataclasses.asdict(warm)!r}))))"
            )
            done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[1])  # fmt: skip
            if done.returncode != 0:
                yield f"{name:36s} failed: {done.stderr.strip().splitlines()[-1:]}"
                continue
            got = json.loads(done.stdout.strip().splitlines()[-1])
            yield (
                f"{name:36s} {got['peak_mib']:9.0f} {got['growth_mib']:7.0f} "
                f"{need / 2**20:9.0f} {got['seconds']:6.1f}  {got['status']}"
                + ("" if need >= got["growth_mib"] * 2**20 else "  ESTIMATE TOO LOW")
            )
            Path(clip.path).unlink()


@click.command()
@click.option("--corpus", type=click.Path(file_okay=False, path_type=Path), default=Path("sample"))
@click.option("--params", "params_path", type=click.Path(dir_okay=False), default="params.yaml")
@click.option("--keypoint-clips", type=int, default=2, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Passes over the corpus for the end-to-end / face-mesh ratio.")  # fmt: skip
@click.option("--hands/--no-hands", "compare_hands", default=True, show_default=True,
              help="Also compare the hand-detection variants (HAND_VARIANTS).")  # fmt: skip
@click.option("--hd/--no-hd", default=True, show_default=True,
              help="Also time a 1920×1080 clip made from realdata (skipped without).")  # fmt: skip
@click.option("--memory", "memory_cases", multiple=True,
              type=click.Choice([*MEMORY_CASES, "all"]),
              help="Only the peak-RSS table of these inputs (each its own process).")  # fmt: skip
def main(
    corpus: Path, params_path: str, keypoint_clips: int, repeats: int, compare_hands: bool,
    hd: bool, memory_cases: tuple[str, ...],
) -> None:  # fmt: skip
    """Benchmark per-clip extraction on the sample corpus and print a table."""
    config: ExtractConfig = load_section("extract", ExtractConfig, params_path)
    if memory_cases:
        if not (realdata_root() / HD_SOURCE).is_file():
            raise click.ClickException(f"{realdata_root() / HD_SOURCE} is absent")
        cases = list(MEMORY_CASES) if "all" in memory_cases else list(memory_cases)
        for line in memory_table(config, params_path, cases):
            click.echo(line)
        return
    clips = corpus_clips(corpus)
    torch.set_num_threads(1)
    click.echo(
        f"{len(clips)} clips from {corpus}; torch threads 1; hands every "
        f"{config.hands_every} frames while seen, every {config.hands_idle_every} while not "
        f"(model complexity {config.hands_model_complexity}, score {config.hands_min_confidence})"
    )

    crops_of = crop_maker(config)
    end_to_end, mesh = end_to_end_and_mesh(config, clips, crops_of, repeats)
    for line in table("end to end (no keypoint checkpoint)", end_to_end):
        click.echo(line)
    for failure in end_to_end["failed"]:
        click.echo(f"  error record: {failure}")
    cpu = end_to_end["cpu"]
    shares = ", ".join(
        f"{s} {100 * end_to_end['timings'].get(s, 0.0) / cpu:.1f} %" for s in SIGNALS
    )
    audio_s, speech_s = end_to_end["audio_s"], end_to_end["timings"].get("speech", 0.0)
    click.echo(
        f"share of end-to-end CPU time: {shares} (emotion every "
        f"{config.emotion.every} frames; budget ≤ 10 %); speech detection "
        f"{audio_s / speech_s if speech_s else float('nan'):.0f}× faster than real time"
    )
    mesh_fps = mesh["frames"] / mesh["wall"]
    mesh_core = mesh["frames"] / mesh["cpu"]
    e2e_core = end_to_end["frames"] / end_to_end["cpu"]
    in_run = end_to_end["timings"]["face_mesh"] / end_to_end["cpu"]
    click.echo(
        f"face mesh alone: {mesh_fps:.1f} fps wall, {mesh_core:.1f} fps per core\n"
        f"end to end / face mesh alone: {100 * e2e_core / mesh_core:.0f} % per core (CPU time), "
        f"{100 * in_run:.0f} % by the face-mesh share of the end-to-end CPU time"
    )
    if compare_hands:
        for line in hand_variants(clips, crops_of, designed_hand_clips(corpus, clips)):
            click.echo(line)

    if hd:
        with tempfile.TemporaryDirectory() as tmp:
            clip = hd_clip(Path(tmp))
            if clip is None:
                click.echo(f"no {realdata_root() / HD_SOURCE}: the 1080p timing is skipped")
            else:
                run = run_extractor(config, [clip] * repeats)
                for line in table(f"1920×1080 clip, {repeats} pass(es)", run):
                    click.echo(line)

    if keypoint_clips > 0:
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = random_checkpoint(Path(tmp))
            kp_config = dataclasses.replace(
                config, keypoints=KeypointsConfig(checkpoint=checkpoint, device="cpu")
            )
            kp_run = run_extractor(kp_config, clips[: keypoint_clips + 1])
        for line in table("with keypoints (RANDOM-WEIGHT checkpoint: timing only)", kp_run):
            click.echo(line)


if __name__ == "__main__":
    main()
