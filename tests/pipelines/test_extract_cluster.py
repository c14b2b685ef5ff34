"""The extract job beside and on a real 2-node Ray cluster that the tests start on this machine:
two `ray start` processes (1 CPU each) with a private, short RAY_TMPDIR.

- With the cluster running and no address configured, `space extract` runs its own private
  local Ray; SIGINT / SIGTERM stop it within seconds (exit 130 / 143, one line on how to
  resume), cancel its tasks, keep its committed units and leave none of its Ray processes.
- Joined to the cluster, both nodes run units; the worker node's raylet is SIGKILLed mid-run
  and the job completes on the head node, every clip `ok`, the records array for array those of
  a single-node run.

Clean-up is by PID (processes that name the private RAY_TMPDIR, and their children), never
`ray stop`, which would end every Ray process on the machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipelines.extract import CRASHED, NODE_LOST, SUMMARY
from pipelines.units import COMMITS, UNITS, Journal
from space_data.clip import Clip, make_clip_id
from space_data.datasets import write_manifest
from space_data.record import ClipFeatures

pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# one clip per unit, so a kill lands mid-run
PARAMS = "extract:\n  crop_size: 256\nray:\n  clips_per_unit: 1\n"
RAY_BIN = Path(sys.executable).with_name("ray")
SPACE_BIN = Path(sys.executable).with_name("space")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: tells a live process from a later one reusing its PID."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _descendants(roots: set[int]) -> set[int]:
    """`roots` and every process below them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


@dataclass
class Cluster:
    tmpdir: Path
    address: str
    env: dict[str, str]
    """Environment of a process on this machine: RAY_TMPDIR and RAY_AUTH_MODE, no RAY_ADDRESS."""
    head: str = ""
    worker: str = ""
    """Ray node ids of the head and of the worker node."""

    @property
    def nodes(self) -> set[str]:
        return {self.head, self.worker}

    def processes(self) -> set[int]:
        """PIDs of the cluster's processes (they name the private RAY_TMPDIR) and their
        children (workers rename themselves `ray::…`)."""
        named = {
            int(p.name)
            for p in Path("/proc").glob("[0-9]*")
            if str(self.tmpdir) in _cmdline(int(p.name))
        }
        return _descendants(named)

    def raylet(self, node_id: str) -> int:
        [pid] = [
            p
            for p in self.processes()
            if f"--node_id={node_id}" in _cmdline(p) and "/raylet " in _cmdline(p)
        ]
        return pid

    def running_nodes(self) -> set[str]:
        """Node ids of the raylets running now."""
        return {m for p in self.processes() for m in re.findall(r"--node_id=(\w+)", _cmdline(p))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """A head and a worker node, 1 CPU each (~20 s to start)."""
    tmpdir = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # Ray's socket paths: < 107 chars
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=str(tmpdir), RAY_AUTH_MODE="disabled")
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    log = tmpdir / "start.log"
    cluster = Cluster(tmpdir, "", env)
    try:
        with open(log, "ab") as out:
            head = [RAY_BIN, "start", "--head", f"--port={_free_port()}", *common]
            head.append("--include-dashboard=false")
            subprocess.run(head, env=env, stdout=out, stderr=out, check=True, timeout=180)
            cluster.address = (tmpdir / "ray" / "ray_current_cluster").read_text().strip()
            [cluster.head] = cluster.running_nodes()
            worker = [RAY_BIN, "start", f"--address={cluster.address}", *common]
            subprocess.run(worker, env=env, stdout=out, stderr=out, check=True, timeout=180)
            [cluster.worker] = cluster.running_nodes() - {cluster.head}
        yield cluster
    finally:
        for pid in cluster.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)


def _markers(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in out.glob(f"{COMMITS}/*.json")}


def _opened_on(out: Path) -> dict[int, str]:
    """PID → Ray node id of every worker that opened a unit."""
    events = [e for j in out.glob(f"{UNITS}/*") for e in Journal(j).read()]
    return {e["pid"]: e["node"] for e in events if e["event"] == "open"}


def _interrupt(cluster: Cluster, command: list, out: Path, log: Path, sig: int) -> tuple:
    """Run `space extract` until it commits one more unit than `out` holds, send `sig` (SIGINT
    to its whole process group, as Ctrl-C does; SIGTERM to its PID, as a supervisor does).
    (exit status, seconds from the signal to the exit, stderr, its child processes then:
    PID → (start time, command line))."""
    before = len(_markers(out))
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=cluster.env, stderr=stderr, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while len(_markers(out)) <= before:
            assert proc.poll() is None, f"driver ended early: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no unit committed within 180 s"
            time.sleep(0.05)
        own = {p: (_start_time(p), _cmdline(p)) for p in _descendants({proc.pid}) - {proc.pid}}
        sent = time.monotonic()
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        status = proc.wait(timeout=120)
        return status, time.monotonic() - sent, log.read_text(), own
    finally:
        proc.kill()
        proc.wait()


def _left_behind(own: dict[int, tuple]) -> list[str]:
    """Command lines of the processes in `own` still alive after a few seconds' grace (a
    worker notices its raylet is gone within a second or so)."""
    deadline = time.monotonic() + 10
    while True:
        left = [cmd for pid, (start, cmd) in own.items() if _start_time(pid) == start]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def test_a_local_run_beside_a_cluster_is_private_and_stops_on_signals(
    cluster, short_clips, tmp_path
):
    """18 one-clip units: after each signal's first new commit a dozen or more are still to
    run, so the signal always lands mid-run (with 6, the last two could commit together
    before it arrived)."""
    clips = _copies(short_clips, tmp_path / "copies", 2)
    out, manifest, params = tmp_path / "features", tmp_path / "m.parquet", tmp_path / "p.yaml"
    write_manifest(clips, str(manifest))
    params.write_text(PARAMS)
    command = [SPACE_BIN, "extract", "--manifest", manifest, "--out", out, "--params", params]
    message = re.compile(
        r"extract: stopped by (SIG\w+); (\d+) of 18 units are committed and kept; "
        r"run the same command again to resume\n$"
    )

    status, seconds, log, own = _interrupt(cluster, command, out, tmp_path / "1.log", signal.SIGINT)
    assert status == 130, log[-3000:]
    assert message.search(log).groups() == ("SIGINT", str(len(_markers(out)))), log[-3000:]
    assert seconds < 30, f"took {seconds:.1f} s to stop"
    # its own Ray: a raylet and a GCS below the driver, none of them left now
    assert any("/raylet " in cmd for _, cmd in own.values())
    assert any("/gcs_server " in cmd for _, cmd in own.values())
    assert not _left_behind(own)
    assert not set(_opened_on(out).values()) & cluster.nodes  # never ran on the cluster
    first = _markers(out)

    status, seconds, log, own = _interrupt(
        cluster, command, out, tmp_path / "2.log", signal.SIGTERM
    )
    assert status == 143, log[-3000:]
    assert f"18 clips in 18 units; {len(first)} committed, {18 - len(first)} to run" in log
    assert message.search(log).groups() == ("SIGTERM", str(len(_markers(out)))), log[-3000:]
    assert seconds < 30, f"took {seconds:.1f} s to stop"
    assert not _left_behind(own)
    assert all(_markers(out)[p] == data for p, data in first.items())  # committed units kept
    assert cluster.running_nodes() == cluster.nodes  # the cluster beside it is untouched


def test_losing_a_node_mid_run_finishes_on_the_survivor_with_the_same_records(
    cluster, short_clips, tmp_path
):
    """`RAY_ADDRESS=… space extract` on the cluster: both nodes run units; once a unit has
    committed and a worker on the worker node has a clip in flight, the node is lost: its
    raylet and its worker processes are SIGKILLed (on a quiet machine a one-second clip
    finishes before an orphaned worker notices its raylet is gone). The job completes on the
    head node (the clip in flight is retried, not failed; the death is counted as a node
    lost or a crash), and every record equals that of a run on a private single-node Ray.
    """
    clips = _copies(short_clips, tmp_path / "copies", 2)  # 18 units: work left after the loss
    manifest = tmp_path / "m.parquet"
    write_manifest(clips, str(manifest))
    (tmp_path / "params.yaml").write_text(PARAMS)
    runs = {}
    for name, env in (  # the reference on a private local Ray: one node, not the cluster's
        ("reference", cluster.env),
        ("features", dict(cluster.env, RAY_ADDRESS=cluster.address)),
    ):
        command = [SPACE_BIN, "extract", "--manifest", manifest, "--out", tmp_path / name]
        command += ["--params", tmp_path / "params.yaml"]
        with open(tmp_path / f"{name}.log", "wb") as stderr:
            runs[name] = subprocess.Popen(command, cwd=ROOT, env=env, stderr=stderr)
        if name == "reference":
            assert runs[name].wait(timeout=600) == 0, (tmp_path / "reference.log").read_text()
    out, proc, raylet = tmp_path / "features", runs["features"], cluster.raylet(cluster.worker)
    try:
        deadline = time.monotonic() + 300
        while not _in_flight_on(out, cluster.worker) or not _markers(out):
            assert proc.poll() is None, (tmp_path / "features.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the worker node never had a clip in flight"
            time.sleep(0.02)
        os.kill(raylet, signal.SIGKILL)
        for pid, node in _opened_on(out).items():
            if node == cluster.worker:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=600) == 0, (tmp_path / "features.log").read_text()[-3000:]
    finally:
        proc.kill()
        proc.wait()
    log = (tmp_path / "features.log").read_text()
    [reference_node] = set(_opened_on(tmp_path / "reference").values())  # a single-node run
    assert reference_node not in cluster.nodes
    assert set(_opened_on(out).values()) == cluster.nodes  # both nodes ran units
    deaths = int(re.search(r"; (\d+) worker deaths \(", log).group(1))
    causes = json.loads((out / SUMMARY).read_text())["deaths_by_cause"]
    assert deaths == sum(causes.values()) >= 1, log[-3000:]
    assert set(causes) <= {NODE_LOST, CRASHED}, causes
    rows = pq.read_table(out / "clips.parquet").to_pylist()
    assert [r["status"] for r in rows] == ["ok"] * len(clips), [r["reason"] for r in rows]
    records, expected = load_records(out), load_records(tmp_path / "reference")
    assert sorted(records) == sorted(expected) == sorted(c.clip_id for c in clips)
    for clip_id, record in records.items():
        assert_same_arrays(record, expected[clip_id])


def _copies(clips: list[Clip], root: Path, n: int) -> list[Clip]:
    """`clips` plus `n` copies of each under new ids (the same speaker, so the same units'
    group), as files of their own."""
    out = list(clips)
    for k in range(1, n + 1):
        for clip in clips:
            path = root / f"copy{k}" / Path(clip.path).name
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip.path, path)
            clip_id = make_clip_id("mead", f"copy{k}/{Path(clip.path).parent.name}/{path.name}")
            out.append(dataclasses.replace(clip, clip_id=clip_id, path=str(path)))
    return out


def _in_flight_on(out: Path, node: str) -> bool:
    """Whether a worker on `node` has a clip in flight (its unit's last journal entry)."""
    for unit_dir in out.glob(f"{UNITS}/*"):
        events = Journal(unit_dir).read()
        if events and events[-1]["event"] == "start" and events[-1]["node"] == node:
            return True
    return False


def assert_same_arrays(a: ClipFeatures, b: ClipFeatures) -> None:
    """Two records of one clip hold the same outcome, arrays, statistics and first crop."""
    assert (a.clip_id, a.status, a.reason) == (b.clip_id, b.status, b.reason)
    assert sorted(a.arrays) == sorted(b.arrays), a.clip_id
    for name, array in a.arrays.items():
        np.testing.assert_array_equal(array, b.arrays[name], err_msg=f"{a.clip_id} {name}")
    stats = [json.dumps(r.stats.to_dict(), sort_keys=True) for r in (a, b)]  # NaN == NaN here
    assert stats[0] == stats[1] and a.frame0 == b.frame0, a.clip_id


def load_records(features_dir: Path) -> dict[str, ClipFeatures]:
    """Every record under `features_dir/units`, by clip id."""
    return {p.stem: ClipFeatures.load_npz(p) for p in sorted(features_dir.glob("units/*/*.npz"))}
