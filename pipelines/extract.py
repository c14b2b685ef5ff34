"""`space extract`: the manifest → per-clip feature records, on Ray.

Long-lived actors each hold one `ClipExtractor` (its models load once per actor, lazily) and
process whole units of clips (`pipelines.units`). A unit commits as a whole: each record is
written whole, its commit marker last; a rerun skips units whose marker has the current
extraction params hash and member rows (found by listing the markers), so an interrupted run
resumes, and adding clips computes only the new ones. The features folder may be local or on
object storage (`s3://...`): the protocol needs no rename.

Faults: before each clip the actor journals "in flight: clip X (pid P)". When an actor process
dies (segfault, OOM kill, SIGKILL, its node lost) the driver gets a `RayActorError`, ends the
actor and hands the unit to another one; the clips done before the death are reused. A lost
worker is infrastructure's fault, so the clip in flight is retried; only a clip that killed
`max_clip_deaths` workers is recorded failed with reason `worker_died` (poison-clip isolation,
as Spark retries tasks). A death with no clip in flight is retried up to `max_retries` times.
MediaPipe leaks memory in long-lived processes, so an actor is replaced once it has processed
`recycle_after_clips` clips (checked between units).

The actor pool follows the live cluster: its size is re-read from the alive nodes after every
death (and every few seconds), units go only to actors that have started, idle actors are
reused before new ones are created, and actors the cluster cannot place are dropped when the
work no longer needs them. When no actor at all is placed for `placement_timeout_s`, the job
stops with the resources asked for and those available. SIGINT / SIGTERM stop the job within
seconds: actors are killed, committed units stay, a rerun resumes (`JobInterrupted`).

Ray is a private local Ray of this process's cores unless `RayConfig.address` / `RAY_ADDRESS`
names a cluster to join. The library (`space_data`) never imports Ray.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import ray
from ray.exceptions import GetTimeoutError, OutOfMemoryError, RayActorError
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
    Journal,
    Unit,
    clip_key,
    commit_unit,
    committed_markers,
    in_flight,
    open_unit,
    plan_units,
    resume_scan,
    save_record,
    unit_dir,
    write_clips_table,
)
from space_data import storage
from space_data.clip import Clip
from space_data.config import require_at_least_one
from space_data.errors import SetupError
from space_data.extract import ClipExtractor, ExtractConfig, extraction_hash
from space_data.params import load_section, manifest_option, params_option
from space_data.record import ClipFeatures, ClipMeta

WORKER_DIED = "worker_died"
_POLL_S = 1.0  # longest wait on Ray before the driver looks at signals, the cluster and timeouts
_RESCAN_S = 5.0  # re-read the live nodes at least this often (nodes join and leave)


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

    num_actors: int | None = None
    """Extraction actors; None = as many as the live nodes hold at `cpus_per_actor` each."""
    cpus_per_actor: float = 1.0
    """CPUs reserved per actor; fractions allowed (e.g. 0.5 packs two actors per core)."""
    gpus_per_actor: float = 0.0
    """GPUs reserved per actor (face-alignment / keypoint nets); fractions allowed."""
    clips_per_unit: int = 16
    """Mean clips per unit of work (commit granularity); changing it re-plans every unit."""
    recycle_after_clips: int = 200
    """Replace an actor after it processed this many clips (MediaPipe leaks memory)."""
    max_clip_deaths: int = 2
    """A clip whose extraction this many workers died in is recorded `worker_died`; before
    that a death (node lost, OOM kill) retries it on another actor."""
    max_retries: int = 3
    """Retries of a unit whose actor died while no clip was in flight."""
    placement_timeout_s: float = 300.0
    """Stop the job when work waits and no actor could be placed for this long, seconds."""
    address: str | None = None
    """Ray cluster to join; None = the RAY_ADDRESS environment variable, else a private local
    Ray of this process's cores (never a `ray start` cluster that merely runs on the machine)."""

    def __post_init__(self) -> None:
        if self.num_actors is not None and self.num_actors < 1:
            raise ValueError(f"num_actors must be >= 1 or null, not {self.num_actors}")
        if self.cpus_per_actor <= 0:
            raise ValueError(f"cpus_per_actor must be > 0, not {self.cpus_per_actor}")
        if self.gpus_per_actor < 0:
            raise ValueError(f"gpus_per_actor must be >= 0, not {self.gpus_per_actor}")
        require_at_least_one(self, ("clips_per_unit", "recycle_after_clips", "max_clip_deaths"))
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries}")
        if self.placement_timeout_s <= 0:
            raise ValueError(f"placement_timeout_s must be > 0, not {self.placement_timeout_s}")


@dataclass
class JobSummary:
    """What one run did (for the log line, the tests and the benchmark)."""

    units: int = 0
    units_skipped: int = 0
    units_run: list[str] = field(default_factory=list)
    clips_run: int = 0
    """Clips extracted by this run."""
    clips_reused: int = 0
    """Clips of re-run units whose records an earlier run left (journal `done`)."""
    frames: int = 0
    """Native video frames decoded for the clips extracted by this run."""
    actors_started: int = 0
    """Actors created (initial pool, recycling replacements, replacements of dead ones)."""
    actor_startup: list[float] = field(default_factory=list)
    """Seconds from creating each actor to its first answer (process start, imports), in the
    order they answered."""
    actor_seconds: float = 0.0
    """Seconds actors were available for work, summed over actors (first answer to end)."""
    worker_deaths: int = 0
    clips_retried: int = 0
    """Clips in flight in a dead worker that were given to another actor."""
    worker_died_clips: list[str] = field(default_factory=list)
    """Clips recorded `worker_died` by this run."""
    peak_rss: list[int] = field(default_factory=list)
    """Peak RSS of each actor that ended normally (recycled or at the end), bytes."""
    storage_retries: int = 0
    """Object-storage requests retried (`space_data.storage.retries`): by the driver, and by
    the actors for the units they returned."""
    seconds: float = 0.0


class ExtractWorker:
    """One actor: a `ClipExtractor` kept alive across units (wrapped by `ray.remote` below)."""

    def __init__(self, config: ExtractConfig, features_dir: str, params_hash: str) -> None:
        self.extractor = ClipExtractor(config)
        self.features_dir = features_dir
        self.params_hash = params_hash

    def where(self) -> tuple[str, int]:
        """(Ray node id, PID) of this actor: the driver's readiness probe."""
        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run_unit(self, unit: Unit) -> tuple[list[dict], int, int, int]:
        """Process a unit; (its rows in member order, clips computed, frames computed, storage
        requests retried)."""
        retried = storage.retries()
        folder = unit_dir(self.features_dir, unit.unit_id)
        reusable = open_unit(folder, unit, self.params_hash)
        journal = Journal(folder)
        node, pid = self.where()
        journal.append("open", params_hash=self.params_hash, pid=pid, node=node)
        rows, computed, frames = [], 0, 0
        for clip in unit.clips:
            if clip.clip_id in reusable:
                rows.append(reusable[clip.clip_id])
                continue
            journal.append("start", clip_id=clip.clip_id, key=clip_key(clip), pid=pid)
            features = self.extractor(clip)
            rows.append(save_record(folder, unit, clip, features))
            computed += 1
            frames += features.stats.decoded_frames
        return rows, computed, frames, storage.retries() - retried

    def peak_rss(self) -> int:
        """Max resident set size of this actor process so far, bytes (Linux reports KiB)."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def close(self) -> None:
        self.extractor.close()


def run_extract(
    clips: list[Clip],
    features_dir: str | Path,
    extract_config: ExtractConfig,
    ray_config: RayConfig,
    progress: bool = True,
) -> JobSummary:
    """Extract every usable clip not yet committed, then write `clips.parquet`.

    Raises ExtractJobError when the cluster cannot host an actor, or (after committing every
    unit it could) when a unit's actors kept dying with no clip in flight; ExtractInterrupted
    on SIGINT / SIGTERM (in the main thread), after killing the actors and, when this call
    started a local Ray, shutting it down.
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
    failed_units: dict[str, str] = {}
    if pending:
        started = ray_init(ray_config.address)
        try:
            with interruptible() as interrupt:  # after ray.init, which installs its own handlers
                failed_units = _run_units(
                    pending,
                    features_dir,
                    extract_config,
                    params_hash,
                    ray_config,
                    summary,
                    interrupt,
                    progress,
                )
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
    if failed_units:
        raise ExtractJobError(
            f"{len(failed_units)} units failed {ray_config.max_retries + 1} times with no clip "
            f"in flight (actors could not start or died between clips): {failed_units}"
        )
    write_clips_table(features_dir, units, params_hash, committed_markers(features_dir))
    summary.storage_retries += storage.retries() - retried
    summary.seconds = time.perf_counter() - t0
    return summary


@dataclass
class _Slot:
    actor: ray.actor.ActorHandle
    created: float
    ready: float | None = None
    """time.monotonic() of the actor's first answer; None while it waits to be placed."""
    pid: int | None = None
    clips: int = 0


class _Pool:
    """The driver's view of the actors: starting (not yet answered), idle, running a unit."""

    def __init__(self, make_actor: Callable[[], ray.actor.ActorHandle], summary: JobSummary):
        self.make_actor = make_actor
        self.summary = summary
        self.starting: dict[ray.ObjectRef, _Slot] = {}  # readiness probe → actor
        self.idle: list[_Slot] = []
        self.running: dict[ray.ObjectRef, tuple[_Slot, Unit]] = {}

    def __len__(self) -> int:
        return len(self.starting) + len(self.idle) + len(self.running)

    def start(self) -> None:
        self.summary.actors_started += 1
        slot = _Slot(self.make_actor(), created=time.monotonic())
        self.starting[slot.actor.where.remote()] = slot

    def drop_starting(self, count: int) -> None:
        """Kill the `count` most recently created actors that have not answered yet."""
        for ref in list(self.starting)[::-1][:count]:
            ray.kill(self.starting.pop(ref).actor)

    def end(self, slot: _Slot, retire: bool = False) -> None:
        """End an actor: record its peak RSS and close its models when `retire`, then kill it."""
        if retire:
            try:
                self.summary.peak_rss.append(ray.get(slot.actor.peak_rss.remote(), timeout=60))
                ray.get(slot.actor.close.remote(), timeout=60)
            except (RayActorError, GetTimeoutError):
                pass  # gone or unreachable; nothing to record
        if slot.ready is not None:
            self.summary.actor_seconds += time.monotonic() - slot.ready
        ray.kill(slot.actor)

    def end_all(self) -> None:
        for slot in [*self.starting.values(), *self.idle, *(s for s, _ in self.running.values())]:
            self.end(slot)
        self.starting, self.idle, self.running = {}, [], {}


def _run_units(
    pending: list[Unit],
    features_dir: str,
    extract_config: ExtractConfig,
    params_hash: str,
    config: RayConfig,
    summary: JobSummary,
    interrupt: Interrupt,
    progress: bool,
) -> dict[str, str]:
    """Schedule units on a pool of actors that follows the live cluster; units that could not
    be run → why."""
    request = asked(config.cpus_per_actor, config.gpus_per_actor)
    remote_cls = ray.remote(ExtractWorker).options(
        num_cpus=config.cpus_per_actor, num_gpus=config.gpus_per_actor, max_restarts=0
    )
    pool = _Pool(lambda: remote_cls.remote(extract_config, features_dir, params_hash), summary)
    hosts = _hosts(config, request)
    if hosts == 0:
        raise ExtractJobError(
            f"no node of the cluster can host an extraction actor: each asks for "
            f"{_fmt(request)} (ray.cpus_per_actor, ray.gpus_per_actor); the cluster has "
            f"{describe_resources(request)}"
            + ("; set ray.gpus_per_actor: 0 on CPU-only machines" if "GPU" in request else "")
        )
    queue = deque(pending)
    attempts: dict[str, int] = {}  # deaths with no clip in flight, per unit
    deaths: dict[str, list[int]] = {}  # clip id → PIDs of the workers that died extracting it
    settled: dict[str, int] = {}  # clips recorded `worker_died`, per unit
    failed: dict[str, str] = {}  # unit id → the last death's message
    start_failures = 0  # actors in a row that died before answering
    scanned, stalled_since = time.monotonic(), None
    bar = tqdm(total=sum(len(u.clips) for u in pending), unit="clip", disable=not progress)
    try:
        while queue or pool.running:
            interrupt.check()
            now = time.monotonic()
            if now - scanned > _RESCAN_S:
                hosts, scanned = _hosts(config, request), now
            while queue and pool.idle:  # reuse idle actors before creating any
                slot, unit = pool.idle.pop(), queue.popleft()
                pool.running[slot.actor.run_unit.remote(unit)] = (slot, unit)
            wanted = min(hosts, len(queue) + len(pool.running))
            while len(pool) < wanted:
                pool.start()
            pool.drop_starting(len(pool) - wanted)  # the cluster shrank or the work ran out
            if queue and not pool.running:  # work waits and no actor is placed
                stalled_since = stalled_since or now
                if now - stalled_since > config.placement_timeout_s:
                    raise ExtractJobError(
                        f"no extraction actor could be placed for {config.placement_timeout_s:g}"
                        f" s: each asks for {_fmt(request)}; the cluster has "
                        f"{describe_resources(request)}"
                    )
            else:
                stalled_since = None
            refs = [*pool.running, *pool.starting]
            if not refs:
                time.sleep(_POLL_S)
                continue
            done, _ = ray.wait(refs, num_returns=1, timeout=_POLL_S)
            if not done:
                continue
            [ref] = done
            if ref in pool.starting:
                slot = pool.starting.pop(ref)
                try:
                    _, slot.pid = ray.get(ref)
                except RayActorError as e:
                    ray.kill(slot.actor)
                    start_failures += 1
                    if start_failures > config.max_retries:
                        raise ExtractJobError(f"actors fail to start: {_last_line(e)}") from None
                    hosts, scanned = _hosts(config, request), time.monotonic()
                    continue
                start_failures = 0
                slot.ready = time.monotonic()
                summary.actor_startup.append(slot.ready - slot.created)
                pool.idle.append(slot)
                continue
            slot, unit = pool.running.pop(ref)
            try:
                rows, computed, frames, retried = ray.get(ref)
            except SetupError as e:  # missing weights, bad checkpoint: every clip would fail
                raise ExtractJobError(str(getattr(e, "cause", e))) from None
            except (RayActorError, OutOfMemoryError) as e:
                # the process is gone (segfault, OOM kill, SIGKILL, node lost) or unreachable:
                # make sure it writes nothing more, and let another actor take the unit over
                pool.end(slot)
                summary.worker_deaths += 1
                hosts, scanned = _hosts(config, request), time.monotonic()
                entry = in_flight(unit_dir(features_dir, unit.unit_id))
                if entry is not None and entry["pid"] == slot.pid:  # not an earlier attempt's
                    pids = deaths.setdefault(entry["clip_id"], [])
                    pids.append(entry["pid"])
                    if len(pids) >= config.max_clip_deaths:
                        _settle_dead_clip(features_dir, unit, entry["clip_id"], pids, params_hash)
                        summary.worker_died_clips.append(entry["clip_id"])
                        settled[unit.unit_id] = settled.get(unit.unit_id, 0) + 1
                    else:
                        summary.clips_retried += 1
                    queue.appendleft(unit)
                elif attempts.setdefault(unit.unit_id, 0) < config.max_retries:
                    attempts[unit.unit_id] += 1
                    queue.appendleft(unit)
                else:
                    failed[unit.unit_id] = _last_line(e)
                continue
            commit_unit(unit_dir(features_dir, unit.unit_id), unit, params_hash, rows)
            summary.units_run.append(unit.unit_id)
            summary.clips_run += computed
            summary.clips_reused += len(unit.clips) - computed - settled.get(unit.unit_id, 0)
            summary.frames += frames
            summary.storage_retries += retried
            bar.update(len(unit.clips))
            slot.clips += len(unit.clips)
            if slot.clips >= config.recycle_after_clips:
                pool.end(slot, retire=True)  # a fresh actor starts if work remains
            else:
                pool.idle.append(slot)
        while pool.idle:
            pool.end(pool.idle.pop(), retire=True)
    finally:
        bar.close()
        pool.end_all()
    return failed


def _hosts(config: RayConfig, request: dict[str, float]) -> int:
    """Actors the job may have now: what the live nodes hold, capped by `num_actors`."""
    hosts = capacity(request)
    return hosts if config.num_actors is None else min(hosts, config.num_actors)


def _fmt(request: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in request.items())


def _last_line(error: Exception) -> str:
    return str(error).strip().splitlines()[-1][:300]


def _settle_dead_clip(
    features_dir: str, unit: Unit, clip_id: str, pids: list[int], params_hash: str
) -> None:
    """Record a clip that killed workers `pids` as failed (`worker_died`)."""
    clip = next(c for c in unit.clips if c.clip_id == clip_id)
    reason = (
        f"{WORKER_DIED}: {len(pids)} worker processes ({', '.join(map(str, pids))}) died "
        "while extracting this clip"
    )
    failed = ClipFeatures.failed(ClipMeta.of(clip, params_hash), reason)
    save_record(unit_dir(features_dir, unit.unit_id), unit, clip, failed)


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
    click.echo(
        f"extract: ran {len(summary.units_run)} units ({summary.clips_run} clips computed, "
        f"{summary.clips_reused} reused), skipped {summary.units_skipped}; "
        f"{summary.worker_deaths} worker deaths; {summary.storage_retries} storage retries; "
        f"{summary.seconds:.1f} s → "
        f"{storage.join(out, CLIPS_TABLE)}",
        err=True,
    )
