"""Throughput of the Ray extract job against a plain sequential loop over the same clips, the
Ray efficiency, and what model creation costs against a unit's work (the measurement behind
one Ray task per unit with models kept per worker process, rather than an actor pool).

Both sides use params.yaml's `extract` section and start cold, as a real run does:
- sequential: one `ClipExtractor` in this process, models created at the first clip; model
  creation ≈ the first clip's time minus the mean of the others (same work, warm models);
- Ray: `run_extract` into a fresh features folder on a private local Ray (`ray.init` timed
  separately and excluded); one task per unit, workers started by Ray, models created at each
  worker's first clip and kept until `ray.recycle_after_units` (Ray's max_calls) ends it.
  Whole run: worker start-up, model loading, journal, commits and clips.parquet included.
  Efficiency: clips ÷ busy seconds (summed over units, from a task's start to its last record,
  model creation included) against the sequential loop's clips/s.
Prints clips/s and native frames/s of each, both ratios, how many cores the sequential loop
already keeps busy (MediaPipe and the decoder run threads, which caps what more processes can
add on few cores), the load average (the machine may be shared), and the peak RSS of every
worker process (its own `getrusage` max RSS) beside this process's.

Run: .venv/bin/python benchmarks/pipeline.py [--corpus sample] [--limit 24] [--repeat 2]
[--workers N] [--clips-per-unit 4]
"""

from __future__ import annotations

import dataclasses
import os
import resource
import tempfile
import time
from pathlib import Path

import click
import ray

from pipelines.extract import RayConfig, run_extract
from pipelines.ray_cluster import ray_init
from space_data.datasets import sample_clips
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.params import load_section

MIB = 2**20


def corpus_clips(root: Path, limit: int | None, repeat: int) -> list:
    """Usable clips of every corpus tree under `root`, sorted by id, at most `limit`, each
    listed `repeat` times under distinct ids (more work to amortize actor start-up)."""
    clips = sample_clips(str(root))
    if not clips:
        raise click.ClickException(f"no usable clips under {root} (run `space synth` first)")
    clips = sorted(clips, key=lambda c: c.clip_id)[:limit]
    return [
        dataclasses.replace(c, clip_id=f"{c.clip_id}-r{k}") if k else c
        for k in range(repeat)
        for c in clips
    ]


def sequential(clips: list, config) -> tuple[float, float, int, list[float]]:
    """Wall seconds, CPU seconds (all threads), native frames and each clip's seconds of one
    extractor over `clips`."""
    extractor = ClipExtractor(config)
    cpu, start = _cpu_seconds(), time.perf_counter()
    frames, each = 0, []
    for clip in clips:
        t = time.perf_counter()
        frames += extractor(clip).stats.decoded_frames
        each.append(time.perf_counter() - t)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    extractor.close()
    return seconds, cpu, frames, each


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@click.command()
@click.option("--corpus", default="sample", show_default=True, type=click.Path(file_okay=False))
@click.option("--limit", default=24, show_default=True, help="Clips to extract (sorted by id).")
@click.option("--repeat", default=2, show_default=True, help="Extract each clip this many times.")
@click.option("--workers", type=int, default=None, help="Override ray.num_workers.")
@click.option(
    "--clips-per-unit",
    type=int,
    default=4,
    show_default=True,
    help="Override ray.clips_per_unit (small units keep every actor busy to the end).",
)
@click.option("--params", default="params.yaml", show_default=True)
def main(
    corpus: str, limit: int, repeat: int, workers: int | None, clips_per_unit: int, params: str
) -> None:
    """Ray extract job vs a sequential loop: clips/s, frames/s, ratio, efficiency, peak RSS."""
    extract_config = load_section("extract", ExtractConfig, params)
    ray_config = load_section("ray", RayConfig, params)
    ray_config = dataclasses.replace(ray_config, clips_per_unit=clips_per_unit)
    if workers is not None:
        ray_config = dataclasses.replace(ray_config, num_workers=workers)
    clips = corpus_clips(Path(corpus), limit, repeat)
    click.echo(
        f"{len(clips)} clips from {corpus}; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )

    seq_seconds, seq_cpu, seq_frames, each = sequential(clips, extract_config)
    seq_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    start = time.perf_counter()
    ray_init(ray_config.address)  # a private local Ray of this process's cores, unless set
    init_seconds = time.perf_counter() - start
    try:
        with tempfile.TemporaryDirectory() as out:
            summary = run_extract(clips, out, extract_config, ray_config, progress=False)
    finally:
        ray.shutdown()
    if summary.clips_run != len(clips):
        raise click.ClickException(f"the Ray job extracted {summary.clips_run} of {len(clips)}")

    rows = [
        ("sequential (1 process)", seq_seconds, seq_frames),
        (f"ray ({len(summary.peak_rss)} workers)", summary.seconds, summary.frames),
    ]
    for name, seconds, frames in rows:
        click.echo(
            f"{name:24s} {seconds:7.1f} s  {len(clips) / seconds:6.2f} clips/s  "
            f"{frames / seconds:7.1f} frames/s"
        )
    click.echo(f"the sequential loop kept {seq_cpu / seq_seconds:.2f} cores busy (its threads)")
    click.echo(
        f"ratio ray / sequential: {seq_seconds / summary.seconds:.2f}x "
        f"(ray.init {init_seconds:.1f} s not included)"
    )
    warm = sum(each[1:]) / max(1, len(each) - 1)
    unit = warm * ray_config.clips_per_unit
    load = each[0] - warm
    per_worker = unit * ray_config.recycle_after_units
    click.echo(
        f"model creation ≈ {load:.2f} s (first clip {each[0]:.2f} s, warm {warm:.2f} s); a unit "
        f"of {ray_config.clips_per_unit} clips ≈ {unit:.1f} s: {load / (load + unit):.0%} if "
        f"every unit created its models, {load / (load + per_worker):.1%} with a worker kept "
        f"for {ray_config.recycle_after_units} units"
    )
    seq_rate = len(clips) / seq_seconds
    per_busy = summary.clips_run / summary.busy_seconds
    click.echo(
        f"ray efficiency: {per_busy:.2f} clips per busy second / {seq_rate:.2f} sequential = "
        f"{per_busy / seq_rate:.2f} ({summary.busy_seconds:.1f} busy seconds for "
        f"{summary.clips_run} clips); load average now {os.getloadavg()[0]:.1f}"
    )
    rss = ", ".join(f"{r / MIB:.0f}" for r in summary.peak_rss.values())
    click.echo(f"peak RSS per worker: {rss} MiB; sequential process: {seq_rss / MIB:.0f} MiB")


if __name__ == "__main__":
    main()
