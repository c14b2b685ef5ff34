"""`space extract`: the manifest → per-clip feature records, on Ray.

Each unit of clips (`pipelines.units`) is one Ray task, `extract_unit`. Ray places the tasks on
whatever nodes are alive and reuses a task's worker process for the next unit, so the models a
worker created (once, at its first clip) serve every unit it runs, until `recycle_after_units`
(Ray's `max_calls`) ends the process: MediaPipe leaks memory in long-lived processes. A unit
commits as a whole: each record is written whole, its commit marker last; a rerun skips units
whose marker has the current extraction params hash and member keys (found by listing the
markers), so an interrupted run resumes, and adding clips computes only the new ones. The
features folder may be local or on object storage (`s3://...`): the protocol needs no rename.

Faults are counted where they happen, in the unit's journal. A task journals each clip before
it starts it (clip, PID, node). When its worker dies (a crash, SIGKILL, Ray's memory monitor,
its node lost) the driver journals the cause (`died`) and submits the unit again; the new
attempt reuses the clips done before the death and reads the unit's earlier deaths from the
journal, whichever run or node they happened in: a clip that was in flight in
`max_clip_deaths` dead workers is recorded failed (`worker_died`, with the causes) instead of
being run again (poison-clip isolation, as Spark retries tasks). A worker that dies with no
clip in flight (while starting) is retried up to `max_retries` times per unit. SIGINT / SIGTERM
stop the job within seconds: its tasks are cancelled and journaled `interrupted` (no clip's
fault), committed units stay, a rerun resumes (`ExtractInterrupted`). When no task has been
running for `placement_timeout_s` while work waits, the job stops with the resources asked for
and those available.

Ray's own task retries are off (`max_retries=0`): a retry inside Ray hides each death's cause
from the driver, which must journal it before the next attempt reads it. Ray Data was
considered for the whole job and is not the fit: it has no resume across runs, no per-clip
isolation (a block that kills its worker is retried whole or fails the dataset), and blocks a
failing worker held can be dropped without a record.

Ray is a private local Ray of this process's cores unless `RayConfig.address` / `RAY_ADDRESS`
names a cluster to join. The library (`space_data`) never imports Ray.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import ray
from ray.exceptions import NodeDiedError, OutOfMemoryError, RayError, RayTaskError
from tqdm import tqdm

from pipelines.ray_cluster import (
    Interrupt,
    JobInterrupted,
    asked,
    capacity,
    describe_resources,
    interruptible,
    ray_init,
)
from pipelines.units import (
    CLIPS_TABLE,
    SUMMARY,
    Death,
    Journal,
    Unit,
    commit_unit,
    committed_markers,
    deaths,
    open_unit,
    plan_units,
    resume_scan,
    save_record,
    unit_dir,
    write_clips_table,
)
from space_data import storage
from space_data.clip import Clip, clip_key
from space_data.config import require_at_least_one
from space_data.errors import SetupError
from space_data.extract import ClipExtractor, ExtractConfig, extraction_hash
from space_data.params import load_section, manifest_option, params_option
from space_data.record import ClipFeatures, ClipMeta

WORKER_DIED = "worker_died"
"""The last run's `JobSummary` in the features folder (deaths by cause, retries, clips)."""
MEMORY_MONITOR = "killed by the memory monitor"
NODE_LOST = "node lost"
CRASHED = "worker process died (a signal or a crash)"
_POLL_S = 0.25  # longest wait on Ray before the driver looks at signals and the timeout
_QUEUED = 256  # units handed to Ray at once when ray.num_workers is null (bounds the driver)


class ExtractJobError(RuntimeError):
    """An infrastructure problem that stops the job (never a bad clip); the message says what."""


class ExtractInterrupted(RuntimeError):
    """SIGINT / SIGTERM stopped the job; committed units are kept (`signum`, the message)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


@dataclass
class RayConfig:
    """How the extract job uses Ray (none of it changes a record, so none is in the params hash)."""

    num_workers: int | None = None
    """Units running at once; None = as many as the live nodes hold at `cpus_per_worker` each."""
    cpus_per_worker: float = 1.0
    """CPUs a unit's task reserves; fractions allowed (e.g. 0.5 packs two tasks per core)."""
    gpus_per_worker: float = 0.0
    """GPUs a unit's task reserves (face-alignment / keypoint nets); fractions allowed."""
    clips_per_unit: int = 16
    """Mean clips per unit of work (commit granularity); changing it re-plans every unit."""
    recycle_after_units: int = 12
    """A worker process exits after this many units (Ray's `max_calls`; MediaPipe leaks)."""
    max_clip_deaths: int = 2
    """A clip whose extraction this many workers died in is recorded `worker_died`; before
    that a death (node lost, OOM kill) retries it, in this run or the next."""
    max_retries: int = 3
    """Retries of a unit whose worker died while no clip was in flight (e.g. while starting)."""
    placement_timeout_s: float = 300.0
    """Stop the job when work waits and no unit has been running for this long, seconds."""
    address: str | None = None
    """Ray cluster to join; None = the RAY_ADDRESS environment variable, else a private local
    Ray of this process's cores (never a `ray start` cluster that merely runs on the machine)."""

    def __post_init__(self) -> None:
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1 or null, not {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"cpus_per_worker must be > 0, not {self.cpus_per_worker}")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker must be >= 0, not {self.gpus_per_worker}")
        require_at_least_one(self, ("clips_per_unit", "recycle_after_units", "max_clip_deaths"))
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries}")
        if self.placement_timeout_s <= 0:
            raise ValueError(f"placement_timeout_s must be > 0, not {self.placement_timeout_s}")


@dataclass
class JobSummary:
    """What one run did (for the log line, `SUMMARY`, the tests and the benchmark)."""

    units: int = 0
    units_skipped: int = 0
    units_run: list[str] = field(default_factory=list)
    clips_run: int = 0
    """Clips extracted by this run."""
    clips_reused: int = 0
    """Clips of re-run units whose records an earlier attempt left (journal `done`)."""
    frames: int = 0
    """Native video frames decoded for the clips extracted by this run."""
    deaths: dict[str, str] = field(default_factory=dict)
    """Worker deaths of the units this run worked on, earlier runs' included: attempt → cause."""
    retries: int = 0
    """Units submitted again after their worker died (with a clip in flight or while starting)."""
    worker_died_clips: list[str] = field(default_factory=list)
    """Clips recorded `worker_died` by this run."""
    peak_rss: dict[int, int] = field(default_factory=dict)
    """Worker PID → its peak RSS, bytes (each process that ran a unit)."""
    busy_seconds: float = 0.0
    """Seconds workers spent in units (model creation included), summed over units."""
    storage_retries: int = 0
    """Object-storage requests retried (`space_data.storage.retries`): by the driver, and by
    the workers in the units they finished."""
    seconds: float = 0.0

    @property
    def deaths_by_cause(self) -> dict[str, int]:
        return dict(Counter(self.deaths.values()).most_common())

    def to_json(self) -> str:
        """`SUMMARY`'s text: the fields and `deaths_by_cause`."""
        return json.dumps({**asdict(self), "deaths_by_cause": self.deaths_by_cause}, indent=1)

    def line(self, out: str) -> str:
        """The one-line summary `space extract` ends with."""
        causes = ", ".join(f"{c}: {n}" for c, n in self.deaths_by_cause.items())
        return (
            f"extract: ran {len(self.units_run)} units ({self.clips_run} clips computed, "
            f"{self.clips_reused} reused, "
            f"{len(self.worker_died_clips)} {WORKER_DIED}), skipped {self.units_skipped}; "
            f"{len(self.deaths)} worker deaths{f' ({causes})' if causes else ''}, "
            f"{self.retries} retries; {self.storage_retries} storage retries; "
            f"{self.seconds:.1f} s → {storage.join(out, CLIPS_TABLE)}"
        )


# --- one unit: a Ray task -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """What every unit's task needs besides its unit."""

    features_dir: str
    config: ExtractConfig
    params_hash: str
    max_clip_deaths: int


@dataclass
class _Run:
    """The driver's view of one submitted task: its unit, the attempt token the task journals
    under, and its node once it has opened the unit (its first message)."""

    unit: Unit
    attempt: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    node: str | None = None


@dataclass(frozen=True)
class _Finished:
    """A task's last message: the unit's rows in member order and what it cost."""

    rows: list[dict]
    computed: int
    frames: int
    settled: list[str]
    deaths: list[Death]
    pid: int
    peak_rss: int
    seconds: float
    storage_retries: int


_EXTRACTORS: dict[str, ClipExtractor] = {}  # per worker process: its models serve every unit


def extract_unit(job: _Job, unit: Unit, attempt: str):
    """Run one unit in a worker process as `attempt`; yields its node id, then `_Finished`."""
    t0, retried = time.perf_counter(), storage.retries()
    if job.params_hash not in _EXTRACTORS:
        _EXTRACTORS.clear()
        _EXTRACTORS[job.params_hash] = ClipExtractor(job.config)
    extractor = _EXTRACTORS[job.params_hash]
    node, pid = ray.get_runtime_context().get_node_id(), os.getpid()
    journal = Journal(unit_dir(job.features_dir, unit.unit_id), attempt)
    opened = open_unit(journal, unit, job.params_hash)
    journal.append("open", params_hash=job.params_hash, pid=pid, node=node)
    yield node
    died: dict[str, list[Death]] = {}
    for death in opened.deaths:
        died.setdefault(death.clip_id, []).append(death)
    rows, computed, frames, settled = [], 0, 0, []
    for clip in unit.clips:
        earlier = [d for d in died.get(clip.clip_id, []) if d.key == clip_key(clip)]
        if clip.clip_id in opened.reusable:
            rows.append(opened.reusable[clip.clip_id])
        elif len(earlier) >= job.max_clip_deaths:
            rows.append(save_record(journal, unit, clip, _worker_died(clip, earlier, job)))
            settled.append(clip.clip_id)
        else:
            journal.append("start", clip_id=clip.clip_id, key=clip_key(clip), pid=pid, node=node)
            features = extractor(clip)
            rows.append(save_record(journal, unit, clip, features))
            computed, frames = computed + 1, frames + features.stats.decoded_frames
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    seconds = time.perf_counter() - t0
    yield _Finished(rows, computed, frames, settled, opened.deaths, pid, rss, seconds,
                    storage.retries() - retried)  # fmt: skip


def _worker_died(clip: Clip, earlier: list[Death], job: _Job) -> ClipFeatures:
    how = "; ".join(f"PID {d.pid} on node {(d.node or '?')[:8]}: {d.cause}" for d in earlier)
    reason = f"{WORKER_DIED}: {len(earlier)} workers died while extracting this clip ({how})"
    return ClipFeatures.failed(ClipMeta.of(clip, job.params_hash), reason)


# --- the driver ---------------------------------------------------------------------------------


def run_extract(
    clips: list[Clip],
    features_dir: str | Path,
    extract_config: ExtractConfig,
    ray_config: RayConfig,
    progress: bool = True,
) -> JobSummary:
    """Extract every usable clip not yet committed, then write `clips.parquet` and `SUMMARY`.

    Raises ExtractJobError when the cluster cannot host a unit's task or a unit's workers keep
    dying before any clip (committed units stay); ExtractInterrupted on SIGINT / SIGTERM
    (in the main thread), after cancelling the tasks and, when this call started a local Ray,
    shutting it down.
    """
    t0, retried = time.perf_counter(), storage.retries()
    features_dir = str(features_dir)  # a local path or a URL, never turned into the other
    params_hash = extraction_hash(extract_config)
    units = plan_units(clips, ray_config.clips_per_unit)
    scan = resume_scan(features_dir, units, params_hash)
    pending, stale = scan.pending, scan.stale
    summary = JobSummary(units=len(units), units_skipped=len(units) - len(pending))
    n_clips = sum(len(u.clips) for u in units)
    click.echo(
        f"extract: {n_clips} clips in {len(units)} units; {summary.units_skipped} committed, "
        f"{len(pending)} to run" + (f"; removed {len(stale)} stale units" if stale else ""),
        err=True,
    )
    if pending:
        job = _Job(features_dir, extract_config, params_hash, ray_config.max_clip_deaths)
        started = ray_init(ray_config.address)
        try:
            with interruptible() as interrupt:  # after ray.init, which installs its own handlers
                _run_units(pending, job, ray_config, summary, interrupt, progress)
        except JobInterrupted as e:
            committed = summary.units_skipped + len(summary.units_run)
            raise ExtractInterrupted(
                e.signum,
                f"extract: stopped by {e}; {committed} of {len(units)} units are committed and "
                "kept; run the same command again to resume",
            ) from None
        finally:
            if started:
                ray.shutdown()
    write_clips_table(features_dir, units, params_hash, committed_markers(features_dir))
    summary.storage_retries += storage.retries() - retried
    summary.seconds = time.perf_counter() - t0
    storage.write_text(storage.join(features_dir, SUMMARY), summary.to_json())
    return summary


def _run_units(
    pending: list[Unit],
    job: _Job,
    config: RayConfig,
    summary: JobSummary,
    interrupt: Interrupt,
    progress: bool,
) -> None:
    """Run the units as Ray tasks and commit each as it finishes."""
    request = asked(config.cpus_per_worker, config.gpus_per_worker)
    if capacity(request) == 0:
        raise ExtractJobError(
            f"no node of the cluster can host a unit's task: each asks for {_fmt(request)} "
            f"(ray.cpus_per_worker, ray.gpus_per_worker); the cluster has "
            f"{describe_resources(request)}"
            + ("; set ray.gpus_per_worker: 0 on CPU-only machines" if "GPU" in request else "")
        )
    task = ray.remote(
        num_cpus=config.cpus_per_worker,
        num_gpus=config.gpus_per_worker,
        max_calls=config.recycle_after_units,
        max_retries=0,  # the driver retries, after journaling the cause (module docstring)
        num_returns="streaming",
    )(extract_unit)
    queue, running = deque(pending), {}  # generator → _Run
    no_clip: Counter[str] = Counter()  # deaths with no clip in flight, per unit
    busy = time.monotonic()  # the last time a task was running
    bar = tqdm(total=sum(len(u.clips) for u in pending), unit="clip", disable=not progress)
    try:
        while queue or running:
            interrupt.check()
            while queue and len(running) < (config.num_workers or _QUEUED):
                unit = queue.popleft()
                run = _Run(unit)
                running[task.remote(job, unit, run.attempt)] = run
            ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            for gen in ready:
                run = running[gen]
                try:
                    message = ray.get(next(gen))
                except SetupError as e:  # missing weights, bad checkpoint: every clip would fail
                    raise ExtractJobError(str(getattr(e, "cause", e))) from None
                except RayTaskError:
                    raise  # a bug, not a lost worker: its traceback is what helps
                except RayError as e:  # the worker is gone: crash, signal, memory monitor, node
                    del running[gen]
                    _journal_death(job, run, _cause(e, run.node), config, summary, no_clip)
                    queue.appendleft(run.unit)
                    continue
                if isinstance(message, str):  # the node: the task has opened the unit
                    run.node = message
                    continue
                del running[gen]
                _commit(job, run.unit, message, summary)
                bar.update(len(run.unit.clips))
            if any(run.node for run in running.values()):
                busy = time.monotonic()
            elif time.monotonic() - busy > config.placement_timeout_s:
                raise ExtractJobError(
                    f"no unit's task could be placed for {config.placement_timeout_s:g} s: each "
                    f"asks for {_fmt(request)}; the cluster has {describe_resources(request)}"
                )
    finally:
        bar.close()
        opened = set(ray.wait(list(running), num_returns=len(running), timeout=0)[0])
        for gen, run in running.items():
            ray.cancel(gen, force=True)
            if run.node or gen in opened:  # the job stopped it: no death of a clip in flight
                _journal(job, run).append("interrupted")


def _cause(error: RayError, node: str | None) -> str:
    """What ended a worker (running on `node`, when known), in words the summary and
    `worker_died` records use."""
    if isinstance(error, OutOfMemoryError):
        return MEMORY_MONITOR
    lost = node is not None and node not in {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    return NODE_LOST if lost or isinstance(error, NodeDiedError) else CRASHED


def _journal(job: _Job, run: _Run) -> Journal:
    return Journal(unit_dir(job.features_dir, run.unit.unit_id), run.attempt)


def _journal_death(
    job: _Job, run: _Run, cause: str, config: RayConfig, summary: JobSummary, no_clip: Counter
) -> None:
    """Journal a dead task's cause (the next attempt counts it against the clip in flight);
    raise when its unit's workers kept dying with no clip in flight (while starting)."""
    summary.deaths[run.attempt] = cause
    journal = _journal(job, run)  # also when no message came: it may have opened the unit
    journal.append("died", cause=cause)
    if not any(d.attempt == run.attempt for d in deaths(journal.read())):
        no_clip[run.unit.unit_id] += 1
        if no_clip[run.unit.unit_id] > config.max_retries:
            raise ExtractJobError(_start_failures(run.unit, cause, config))
    summary.retries += 1


def _commit(job: _Job, unit: Unit, result: _Finished, summary: JobSummary) -> None:
    commit_unit(unit_dir(job.features_dir, unit.unit_id), unit, job.params_hash, result.rows)
    summary.units_run.append(unit.unit_id)
    summary.clips_run += result.computed
    summary.clips_reused += len(unit.clips) - result.computed - len(result.settled)
    summary.frames += result.frames
    summary.worker_died_clips += result.settled
    summary.deaths.update({d.attempt: d.cause for d in result.deaths})
    summary.peak_rss[result.pid] = max(result.peak_rss, summary.peak_rss.get(result.pid, 0))
    summary.busy_seconds += result.seconds
    summary.storage_retries += result.storage_retries


def _start_failures(unit: Unit, cause: str, config: RayConfig) -> str:
    """The one line for a unit whose workers kept dying before any clip."""
    line = (
        f"workers died {config.max_retries + 1} times before any clip of unit {unit.unit_id} "
        f"(last: {cause})"
    )
    if cause == MEMORY_MONITOR:
        line += (
            "; the nodes are short of memory: run fewer units at once (ray.num_workers), "
            "reserve more CPUs per unit (ray.cpus_per_worker), or raise Ray's "
            "RAY_memory_usage_threshold"
        )
    return line


def _fmt(request: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in request.items())


# --- CLI ------------------------------------------------------------------------------------------


@click.command("extract")
@manifest_option
@click.option(
    "--out",
    default="data/features",
    show_default=True,
    help="Features folder (units/, commits/, clips.parquet); a path or a URL (s3://...).",
)
@params_option("extract", "ray")
def cli(manifest: str, out: str, params: str) -> None:
    """Extract per-clip features for every usable manifest clip on Ray (resumable).

    Runs a private local Ray of this process's cores, or joins the cluster at RAY_ADDRESS
    (ray.address). Committed units (same extraction params, same clips) are skipped; a rerun
    after a crash or Ctrl-C resumes.
    """
    from space_data.datasets import read_manifest

    extract_config = load_section("extract", ExtractConfig, params)
    ray_config = load_section("ray", RayConfig, params)
    if not storage.isfile(manifest):
        raise click.ClickException(f"manifest {manifest} not found (run `space index` first)")
    clips = read_manifest(manifest)
    try:
        summary = run_extract(clips, out, extract_config, ray_config)
    except ExtractJobError as e:
        raise click.ClickException(str(e)) from e
    except ExtractInterrupted as e:
        click.echo(str(e), err=True)
        sys.exit(128 + e.signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
    click.echo(summary.line(out), err=True)
