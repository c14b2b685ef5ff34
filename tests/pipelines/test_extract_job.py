"""The Ray extract job on a real local Ray (2 CPUs) over short clips cut from the sample corpus:
commit and skip, resume after the driver is killed, workers SIGKILLed mid-clip (retry, then
poison-clip isolation, counted across reruns and Ctrl-C), adding clips, tasks the cluster
cannot place."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.extract import (
    CRASHED,
    SUMMARY,
    WORKER_DIED,
    ExtractInterrupted,
    ExtractJobError,
    RayConfig,
    run_extract,
)
from pipelines.units import COMMITS, UNITS, Journal, plan_units
from space_data.clip import Clip
from space_data.datasets import read_manifest, write_manifest
from space_data.extract import ExtractConfig
from space_data.keypoints import KeypointsConfig
from tests.pipelines.driver import kill_after_first_commit

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ExtractConfig(crop_size=256)
RAY = RayConfig(clips_per_unit=2, cpus_per_worker=1.0)


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray for the module (ray.init costs seconds and ~1.6 GiB)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(short_clips) -> list[Clip]:
    """The first four are the base corpus, the last two (one speaker) are added later."""
    return short_clips


@pytest.fixture(scope="module")
def reference(ray_address, clips, tmp_path_factory) -> Path:
    """An uninterrupted run over the base corpus (3 units on 2 CPUs), each worker process
    ending after one unit (`recycle_after_units: 1`, Ray's max_calls)."""
    out = tmp_path_factory.mktemp("reference")
    recycling = dataclasses.replace(RAY, recycle_after_units=1)
    summary = run_extract(clips[:4], out, CONFIG, recycling, progress=False)
    assert summary.clips_run == 4 and summary.deaths == {}
    n_units = len(plan_units(clips[:4], RAY.clips_per_unit))
    assert summary.units == n_units == 3
    journals = [Journal(p).read() for p in out.glob(f"{UNITS}/*")]
    pids = {e["pid"] for events in journals for e in events if e["event"] == "open"}
    assert len(pids) == n_units  # every unit ran in its own worker process
    assert sorted(summary.peak_rss) == sorted(pids)
    assert all(r > 100e6 for r in summary.peak_rss.values())  # models loaded: 100s of MiB
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
    saved = json.loads((reference / SUMMARY).read_text())
    assert saved["clips_run"] == 4 and saved["deaths_by_cause"] == {}
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
    params.write_text("extract:\n  crop_size: 256\nray:\n  clips_per_unit: 2\n  num_workers: 1\n")
    space = Path(sys.executable).with_name("space")
    command = [space, "extract", "--manifest", manifest, "--out", out, "--params", params]
    env = dict(os.environ, RAY_ADDRESS=ray_address)
    kill_after_first_commit(command, str(out), env, ROOT, tmp_path / "driver.log", timeout=120)
    n_units = len(plan_units(clips[:4], RAY.clips_per_unit))
    committed = len(list(out.glob(f"{COMMITS}/*.json")))
    assert 1 <= committed < n_units, "the kill must land mid-run"
    assert not (out / "clips.parquet").exists()

    summary = run_extract(read_manifest(str(manifest)), out, CONFIG, RAY, progress=False)
    assert summary.units_skipped == committed
    assert _records(out) == _records(reference)
    # as JSON: unmeasured statistics are NaN, and NaN == NaN is False in a row dict
    assert json.dumps(_table(out)) == json.dumps(_table(reference))


def test_added_clips_run_alone_and_a_clip_that_kills_two_workers_is_isolated_across_reruns(
    reference, clips, tmp_path
):
    """Adding a speaker's clips runs only its new unit (committed units stay as they are).
    The first run's worker is SIGKILLed with the victim clip in flight (PID from the journal);
    the retry starts the victim again, its worker is paused and the run is stopped by SIGINT
    (journaled `interrupted`: no death). The second run kills the victim's worker once more:
    that is its second death, counted from the journal across the two runs, so the next
    attempt records it `worker_died` with both workers and causes, and the rest of its unit
    completes."""
    out = tmp_path / "features"
    shutil.copytree(reference, out)
    markers = {p: p.read_bytes() for p in out.glob(f"{COMMITS}/*.json")}
    new = [u for u in plan_units(clips, RAY.clips_per_unit) if u.clips[0] in clips[4:]]
    assert [c for u in new for c in u.clips] == clips[4:] and len(new) == 1
    victim, survivor = (c.clip_id for c in clips[4:])
    journal = Journal(out / UNITS / new[0].unit_id)
    killed: list[int] = []
    interrupted: list[str] = []
    seen: set[str] = set()  # attempts acted on (a dead PID may belong to another process now)

    def act(stop: threading.Event, interrupt_retry: bool) -> None:
        """SIGKILL the worker of the first new attempt that starts the victim; with
        `interrupt_retry`, SIGSTOP the next attempt's worker once it has started the victim
        again and SIGINT this process (the job cancels the stopped worker)."""
        while not stop.wait(0.01):
            for e in journal.read():
                if e["event"] != "start" or e["clip_id"] != victim or e["attempt"] in seen:
                    continue
                seen.add(e["attempt"])
                if interrupt_retry and killed:  # paused: it cannot finish the clip first
                    os.kill(e["pid"], signal.SIGSTOP)
                    interrupted.append(e["attempt"])
                    os.kill(os.getpid(), signal.SIGINT)
                else:
                    os.kill(e["pid"], signal.SIGKILL)
                    killed.append(e["pid"])

    for first_run in (True, False):
        stop = threading.Event()
        killer = threading.Thread(target=act, args=(stop, first_run), daemon=True)
        killer.start()
        try:
            if first_run:
                with pytest.raises(ExtractInterrupted, match="stopped by SIGINT"):
                    run_extract(clips, out, CONFIG, RAY, progress=False)
            else:
                summary = run_extract(clips, out, CONFIG, RAY, progress=False)
        finally:
            stop.set()
            killer.join()
        assert len(killed) == (1 if first_run else 2), killed
    events = journal.read()
    assert [e["attempt"] for e in events if e["event"] == "interrupted"] == interrupted
    assert summary.units_run == [new[0].unit_id] and summary.units_skipped == summary.units - 1
    # both deaths, the first one journaled by the first run's driver
    assert summary.deaths_by_cause == {CRASHED: 2}
    assert summary.retries == 1 and summary.worker_died_clips == [victim]
    assert summary.clips_run == 1 and summary.clips_reused == 0  # the victim is settled, not run
    assert all(p.read_bytes() == data for p, data in markers.items())
    rows = {r["clip_id"]: r for r in _table(out)}
    assert sorted(rows) == sorted(c.clip_id for c in clips)
    assert rows[victim]["status"] == "error"
    died = [e for e in events if e["event"] == "start" and e["pid"] in killed]
    assert rows[victim]["reason"] == (
        f"{WORKER_DIED}: 2 workers died while extracting this clip ("
        + "; ".join(f"PID {e['pid']} on node {e['node'][:8]}: {CRASHED}" for e in died)
        + ")"
    )
    assert rows[survivor]["status"] == "ok" and rows[survivor]["n_frames"] == 30
    # the settled clip is not retried by the next run
    assert run_extract(clips, out, CONFIG, RAY, progress=False).units_run == []


def test_tasks_no_node_can_host_stop_the_job_at_once(ray_address, clips, tmp_path):
    with pytest.raises(
        ExtractJobError,
        match=r"no node of the cluster can host a unit's task: each asks for CPU 1, GPU 1 "
        r"\(ray.cpus_per_worker, ray.gpus_per_worker\); the cluster has CPU 2 \(\d+ available\), "
        r"GPU 0 \(0 available\) on 1 live node; set ray.gpus_per_worker: 0",
    ):
        run_extract(clips[:1], tmp_path, CONFIG, RayConfig(gpus_per_worker=1.0), progress=False)


@ray.remote(num_cpus=2)
class _Squatter:
    """Holds both CPUs of the local Ray, as another job on a shared cluster would."""

    def ready(self) -> bool:
        return True


def test_a_cluster_too_busy_to_place_a_task_stops_the_job_and_keeps_what_committed(
    reference, clips, tmp_path
):
    out = tmp_path / "features"
    shutil.copytree(reference, out)
    markers = {p: p.read_bytes() for p in out.glob(f"{COMMITS}/*.json")}
    squatter = _Squatter.remote()
    ray.get(squatter.ready.remote())
    config = dataclasses.replace(RAY, placement_timeout_s=2.0)
    try:
        with pytest.raises(
            ExtractJobError,
            match=r"^no unit's task could be placed for 2 s: each asks for CPU 1; "
            r"the cluster has CPU 2 \(0 available\) on 1 live node$",
        ):
            run_extract(clips, out, CONFIG, config, progress=False)
    finally:
        ray.kill(squatter)
    assert {p: p.read_bytes() for p in out.glob(f"{COMMITS}/*.json")} == markers


def test_a_setup_error_in_a_worker_stops_the_job_with_its_message(ray_address, clips, tmp_path):
    broken = tmp_path / "vox-256.pth.tar"
    broken.write_text("not a torch file\n")
    config = dataclasses.replace(CONFIG, keypoints=KeypointsConfig(checkpoint=str(broken)))
    with pytest.raises(ExtractJobError, match=r"^\S*vox-256.pth.tar is not a readable torch"):
        run_extract(clips[:1], tmp_path / "features", config, RAY, progress=False)
    assert not list((tmp_path / "features").glob(f"{COMMITS}/*.json"))  # nothing committed
