"""`space extract`: the manifest → per-clip feature records, on Ray.

Long-lived actors each hold one `ClipExtractor` (its models load once per actor, lazily) and
process whole units of clips (`pipelines.units`). A unit commits as a whole: each record is
written whole, its commit marker last; a rerun skips units whose marker has the current
extraction params hash and member rows (found by listing the markers), so an interrupted run
resumes, and adding clips computes only the new ones. The features folder may be local or on
object storage (`s3://...`): the protocol needs no rename.

Faults: before each clip the actor journals "in flight: clip X (pid P)". When an actor process
dies (segfault, OOM kill, SIGKILL) the driver gets a `RayActorError`, records the clip in
flight as failed with reason `worker_died`, starts a fresh actor and retries the unit; the
clips done before the death are reused. A death with no clip in flight is retried up to
`max_retries` times. MediaPipe leaks memory in long-lived processes, so an actor is replaced
once it has processed `recycle_after_clips` clips (checked between units).

Ray runs locally with this machine's cores by default, or joins the cluster at
`RayConfig.address` / `RAY_ADDRESS`. The library (`space_data`) never imports Ray.
"""

from __future__ import annotations

import os
import resource
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import click
import ray
from ray.exceptions import OutOfMemoryError, RayActorError
from tqdm import tqdm

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
from space_data.config import config_hash
from space_data.errors import SetupError
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.params import load_section, manifest_option, params_option
from space_data.record import ClipFeatures, ClipMeta

WORKER_DIED = "worker_died"


class ExtractJobError(RuntimeError):
    """An infrastructure problem that stops the job (never a bad clip); the message says what."""


@dataclass
class RayConfig:
    """How the extract job uses Ray (none of it changes a record, so none is in the params hash)."""

    num_actors: int | None = None
    """Extraction actors; None = as many as the cluster's CPUs hold at `cpus_per_actor` each."""
    cpus_per_actor: float = 1.0
    """CPUs reserved per actor; fractions allowed (e.g. 0.5 packs two actors per core)."""
    gpus_per_actor: float = 0.0
    """GPUs reserved per actor (face-alignment / keypoint nets); fractions allowed."""
    clips_per_unit: int = 16
    """Mean clips per unit of work (commit granularity); changing it re-plans every unit."""
    recycle_after_clips: int = 200
    """Replace an actor after it processed this many clips (MediaPipe leaks memory)."""
    max_retries: int = 3
    """Retries of a unit whose actor died while no clip was in flight."""
    address: str | None = None
    """Ray cluster address; None = the RAY_ADDRESS environment variable, else a local Ray."""

    def __post_init__(self) -> None:
        if self.num_actors is not None and self.num_actors < 1:
            raise ValueError(f"num_actors must be >= 1 or null, not {self.num_actors}")
        if self.cpus_per_actor <= 0:
            raise ValueError(f"cpus_per_actor must be > 0, not {self.cpus_per_actor}")
        if self.gpus_per_actor < 0:
            raise ValueError(f"gpus_per_actor must be >= 0, not {self.gpus_per_actor}")
        for name in ("clips_per_unit", "recycle_after_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries}")


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
    worker_deaths: int = 0
    worker_died_clips: list[str] = field(default_factory=list)
    """Clips recorded `worker_died` by this run."""
    peak_rss: list[int] = field(default_factory=list)
    """Peak RSS of each actor that ended normally (recycled or at the end), bytes."""
    seconds: float = 0.0


class ExtractWorker:
    """One actor: a `ClipExtractor` kept alive across units (wrapped by `ray.remote` below)."""

    def __init__(self, config: ExtractConfig, features_dir: str, params_hash: str) -> None:
        self.extractor = ClipExtractor(config)
        self.features_dir = features_dir
        self.params_hash = params_hash

    def run_unit(self, unit: Unit) -> tuple[list[dict], int, int]:
        """Process a unit; (its rows in member order, clips computed, frames computed)."""
        folder = unit_dir(self.features_dir, unit.unit_id)
        reusable = open_unit(folder, unit, self.params_hash)
        journal = Journal(folder)
        journal.append("open", params_hash=self.params_hash, pid=os.getpid())
        rows, computed, frames = [], 0, 0
        for clip in unit.clips:
            if clip.clip_id in reusable:
                rows.append(reusable[clip.clip_id])
                continue
            journal.append("start", clip_id=clip.clip_id, key=clip_key(clip), pid=os.getpid())
            features = self.extractor(clip)
            rows.append(save_record(folder, unit, clip, features))
            computed += 1
            frames += features.stats.decoded_frames
        return rows, computed, frames

    def peak_rss(self) -> int:
        """Max resident set size of this actor process so far, bytes (Linux reports KiB)."""
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def close(self) -> None:
        self.extractor.close()


def ray_init(config: RayConfig) -> bool:
    """Start or join Ray unless this process already did; True when this call started it."""
    if ray.is_initialized():
        return False
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (cgroups, taskset)
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    return True


def run_extract(
    clips: list[Clip],
    features_dir: str | Path,
    extract_config: ExtractConfig,
    ray_config: RayConfig,
    progress: bool = True,
) -> JobSummary:
    """Extract every usable clip not yet committed, then write `clips.parquet`.

    Raises ExtractJobError when the cluster cannot host an actor, or (after committing every
    unit it could) when a unit's actors kept dying with no clip in flight.
    """
    t0 = time.perf_counter()
    features_dir = str(features_dir)  # a local path or a URL, never turned into the other
    params_hash = config_hash(extract_config)
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
        started = ray_init(ray_config)
        try:
            failed_units = _run_units(
                pending, features_dir, extract_config, params_hash, ray_config, summary, progress
            )
        finally:
            if started:
                ray.shutdown()
    if failed_units:
        raise ExtractJobError(
            f"{len(failed_units)} units failed {ray_config.max_retries + 1} times with no clip "
            f"in flight (actors could not start or died between clips): {failed_units}"
        )
    write_clips_table(features_dir, units, params_hash, committed_markers(features_dir))
    summary.seconds = time.perf_counter() - t0
    return summary


@dataclass
class _Slot:
    actor: ray.actor.ActorHandle
    clips: int = 0


def _run_units(
    pending: list[Unit],
    features_dir: str,
    extract_config: ExtractConfig,
    params_hash: str,
    config: RayConfig,
    summary: JobSummary,
    progress: bool,
) -> dict[str, str]:
    """Schedule units on a pool of actors; units that could not be run → why."""
    remote_cls = ray.remote(ExtractWorker).options(
        num_cpus=config.cpus_per_actor, num_gpus=config.gpus_per_actor, max_restarts=0
    )

    def new_slot() -> _Slot:
        summary.actors_started += 1
        return _Slot(remote_cls.remote(extract_config, features_dir, params_hash))

    n_actors = min(_actor_count(config), len(pending))
    queue = deque(pending)
    idle: list[_Slot] = []
    running: dict[ray.ObjectRef, tuple[_Slot, Unit]] = {}
    attempts: dict[str, int] = {}  # deaths with no clip in flight, per unit
    settled: dict[str, int] = {}  # clips recorded `worker_died`, per unit
    failed: dict[str, str] = {}  # unit id → the last death's message
    bar = tqdm(total=sum(len(u.clips) for u in pending), unit="clip", disable=not progress)
    try:
        while queue or running:
            while queue and len(running) < n_actors:
                slot = idle.pop() if idle else new_slot()
                unit = queue.popleft()
                running[slot.actor.run_unit.remote(unit)] = (slot, unit)
            [ref], _ = ray.wait(list(running), num_returns=1)
            slot, unit = running.pop(ref)
            try:
                rows, computed, frames = ray.get(ref)
            except SetupError as e:  # missing weights, bad checkpoint: every clip would fail
                raise ExtractJobError(str(getattr(e, "cause", e))) from None
            except (RayActorError, OutOfMemoryError) as e:
                # the process is gone (segfault, OOM kill, SIGKILL) or unreachable: make sure it
                # writes nothing more, and let a fresh actor take the unit over
                ray.kill(slot.actor)
                summary.worker_deaths += 1
                clip_id = _settle_dead_clip(features_dir, unit, params_hash)
                if clip_id is not None:
                    summary.worker_died_clips.append(clip_id)
                    settled[unit.unit_id] = settled.get(unit.unit_id, 0) + 1
                    queue.appendleft(unit)
                elif attempts.setdefault(unit.unit_id, 0) < config.max_retries:
                    attempts[unit.unit_id] += 1
                    queue.appendleft(unit)
                else:
                    failed[unit.unit_id] = str(e).strip().splitlines()[-1][:300]
                continue
            commit_unit(unit_dir(features_dir, unit.unit_id), unit, params_hash, rows)
            summary.units_run.append(unit.unit_id)
            summary.clips_run += computed
            summary.clips_reused += len(unit.clips) - computed - settled.get(unit.unit_id, 0)
            summary.frames += frames
            bar.update(len(unit.clips))
            slot.clips += len(unit.clips)
            if slot.clips >= config.recycle_after_clips:
                _retire(slot, summary)  # a fresh actor starts if work remains
            else:
                idle.append(slot)
        while idle:
            _retire(idle.pop(), summary)
    finally:
        bar.close()
        for slot in [*idle, *(s for s, _ in running.values())]:
            ray.kill(slot.actor)
    return failed


def _actor_count(config: RayConfig) -> int:
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if config.cpus_per_actor > cpus:
        raise ExtractJobError(
            f"ray.cpus_per_actor={config.cpus_per_actor} but the cluster has {cpus:g} CPUs"
        )
    if config.gpus_per_actor > gpus:
        raise ExtractJobError(
            f"ray.gpus_per_actor={config.gpus_per_actor} but the cluster has "
            f"{gpus:g} GPUs (set ray.gpus_per_actor: 0 on CPU-only machines)"
        )
    if config.num_actors is not None:
        return config.num_actors
    return max(1, int(cpus // config.cpus_per_actor))


def _retire(slot: _Slot, summary: JobSummary) -> None:
    """Record the actor's peak RSS, close its models and end its process."""
    try:
        summary.peak_rss.append(ray.get(slot.actor.peak_rss.remote()))
        ray.get(slot.actor.close.remote())
    except RayActorError:
        pass  # already gone; nothing to record
    ray.kill(slot.actor)


def _settle_dead_clip(features_dir: str, unit: Unit, params_hash: str) -> str | None:
    """Record the clip in flight in a dead actor as failed (`worker_died`); its id, or None."""
    folder = unit_dir(features_dir, unit.unit_id)
    entry = in_flight(folder)
    if entry is None:
        return None
    clip = next(c for c in unit.clips if c.clip_id == entry["clip_id"])
    reason = f"{WORKER_DIED}: worker process {entry['pid']} died while extracting this clip"
    save_record(folder, unit, clip, ClipFeatures.failed(ClipMeta.of(clip, params_hash), reason))
    return clip.clip_id


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

    Runs a local Ray with this machine's cores, or the cluster at RAY_ADDRESS. Committed units
    (same extraction params, same clips) are skipped; a rerun after a crash resumes.
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
    click.echo(
        f"extract: ran {len(summary.units_run)} units ({summary.clips_run} clips computed, "
        f"{summary.clips_reused} reused), skipped {summary.units_skipped}; "
        f"{summary.worker_deaths} worker deaths; {summary.seconds:.1f} s → "
        f"{storage.join(out, CLIPS_TABLE)}",
        err=True,
    )
