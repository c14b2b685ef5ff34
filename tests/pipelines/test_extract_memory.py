"""The extract job under memory pressure, on a real local Ray whose memory monitor is set just
above what the machine uses now: a memory hog (a plain process holding `HOG` bytes) pushes
the node over the monitor's threshold, and Ray kills the running task's worker
(`ray.exceptions.OutOfMemoryError`). Nothing is mocked: the kills are the monitor's own.

- A hog that appears whenever an attempt of the victim's unit opens (the victim is its first
  clip, in flight for seconds while the fresh worker creates its models) costs two workers:
  the victim is recorded `worker_died` "killed by the memory monitor", the other clip of the unit is
  extracted, and the job ends with its summary.
- A hog present from the start kills every worker while it starts: the job stops with one
  line naming memory and the settings to change.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.extract import (
    MEMORY_MONITOR,
    SUMMARY,
    WORKER_DIED,
    ExtractJobError,
    RayConfig,
    run_extract,
)
from pipelines.units import UNITS, Journal, plan_units
from space_data.clip import make_clip_id
from space_data.extract import ExtractConfig
from tests.pipelines.clips import source_videos

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HOG = 11 << 29  # 5.5 GiB
MARGIN = 3 << 30
"""The monitor's threshold lies this far above the memory in use when the test's Ray starts:
room for its own workers (under 1 GiB each) and other processes' growth; the hog takes the
node 2.5 GiB past it."""
CONFIG = ExtractConfig(crop_size=256)
# one unit at a time, each attempt in a fresh worker process (its models are created in it)
RAY = RayConfig(clips_per_unit=100, num_workers=1, recycle_after_units=1, max_retries=1)


def _used_and_total() -> tuple[int, int]:
    """Bytes in use and in total as Ray's memory monitor reads them (/proc/meminfo)."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, value = line.split(":")
        info[name] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"], info["MemTotal"]


@pytest.fixture(scope="module")
def monitored_ray(short_clips):
    """A local Ray whose memory monitor fires `MARGIN` above the memory in use now (the clips
    are cut first: their decoding is not counted)."""
    used, total = _used_and_total()
    if total - used < HOG + (4 << 30):
        pytest.skip(f"the hog needs {(HOG >> 30) + 4} GiB free, there are {(total - used) >> 30}")
    threshold = (used + MARGIN) / total
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _system_config={"memory_usage_threshold": threshold, "memory_monitor_refresh_ms": 100},
    )
    yield threshold
    ray.shutdown()


class Hog:
    """A process holding `HOG` bytes of touched memory while it runs."""

    def __init__(self) -> None:
        code = (
            f"import sys, numpy; a = numpy.ones({HOG}, numpy.uint8); print('held', flush=True); "
            "sys.stdin.read()"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_workers_the_memory_monitor_kills_mid_clip_are_retried_then_the_clip_is_isolated(
    monitored_ray, sample_corpus, short_clips, tmp_path
):
    # the victim is a whole 3-s sample video (with model creation, seconds in flight: longer
    # than the hog takes to fill), the survivor a one-second clip; one speaker, one unit
    clips = [
        dataclasses.replace(clip, clip_id=make_clip_id("mead", f"mem/{name}"), speaker="mem")
        for name, clip in (("a_victim", short_clips[0]), ("b_survivor", short_clips[1]))
    ]
    clips[0] = dataclasses.replace(clips[0], path=str(source_videos(sample_corpus)[0]))
    [unit] = plan_units(clips, RAY.clips_per_unit)
    victim, survivor = (c.clip_id for c in unit.clips)
    journal = Journal(tmp_path / "features" / UNITS / unit.unit_id)
    hogged: list[str] = []  # attempts the hog ran during
    stop = threading.Event()

    def hog_while_the_victim_runs() -> None:
        """Hog memory from an attempt's `open` until the driver journals its death, for the
        first two attempts."""
        hog = None
        while not stop.wait(0.01):
            events = journal.read()
            opened = [e["attempt"] for e in events if e["event"] == "open"]
            died = {e["attempt"] for e in events if e["event"] == "died"}
            if hog is None and len(hogged) < 2 and set(opened) - set(hogged):
                hogged.append(next(a for a in opened if a not in hogged))
                hog = Hog()
            elif hog is not None and hogged[-1] in died:
                hog.stop()
                hog = None
        if hog is not None:
            hog.stop()

    watcher = threading.Thread(target=hog_while_the_victim_runs, daemon=True)
    watcher.start()
    try:
        summary = run_extract(clips, tmp_path / "features", CONFIG, RAY, progress=False)
    finally:
        stop.set()
        watcher.join()
    rows = {r["clip_id"]: r for r in _table(tmp_path / "features")}
    assert rows[survivor]["status"] == "ok" and rows[survivor]["n_frames"] == 30
    reason = rows[victim]["reason"]
    assert reason.startswith(f"{WORKER_DIED}: 2 workers died while extracting this clip ("), reason
    assert reason.count(MEMORY_MONITOR) == 2, reason
    assert summary.worker_died_clips == [victim]
    assert summary.deaths_by_cause.get(MEMORY_MONITOR, 0) >= 2, summary.deaths
    saved = (tmp_path / "features" / SUMMARY).read_text()
    assert f'"{MEMORY_MONITOR}": {summary.deaths_by_cause[MEMORY_MONITOR]}' in saved


def test_when_the_memory_monitor_kills_every_start_the_job_stops_with_one_line(
    monitored_ray, short_clips, tmp_path
):
    [unit] = plan_units(short_clips[2:4], RAY.clips_per_unit)
    hog = Hog()
    try:
        assert hog.proc.stdout.readline() == b"held\n"
        with pytest.raises(ExtractJobError) as stopped:
            run_extract(short_clips[2:4], tmp_path / "features", CONFIG, RAY, progress=False)
    finally:
        hog.stop()
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith(
        f"workers died 2 times before any clip of unit {unit.unit_id} (last: {MEMORY_MONITOR}); "
        "the nodes are short of memory: run fewer units at once (ray.num_workers)"
    ), message
    assert "RAY_memory_usage_threshold" in message


def _table(out: Path) -> list[dict]:
    return pq.read_table(out / "clips.parquet").to_pylist()
