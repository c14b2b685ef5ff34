"""Units of work for the extract job: planning, the per-unit journal, the commit marker and
the clips table built from the markers.

No Ray, so the rules that make a run resumable are testable in one process. Every path goes
through `space_data.storage`, so the features folder may be local or on object storage
(`s3://...`); the protocol needs no rename, only whole-object writes.

Layout under the features folder (`data/features/` or a URL)::

    units/<unit_id>/<clip_id>.npz   one `ClipFeatures` per clip (errors included), written whole
    units/<unit_id>/_JOURNAL        events of the unit's attempts (`Journal`): `open` (a worker
                                    took the unit), `start` (a clip is in flight: PID, node),
                                    `done` (record written), and from the driver `died` (the
                                    attempt's worker died: the cause) and `interrupted` (the job
                                    stopped it). On local disk a JSON-lines file; on object
                                    storage a folder with one small object per event, named by
                                    the unit's own sequence (no append there)
    commits/<unit_id>.<params_hash>.<members_hash>.json
                                    the commit marker: clip ids and one row per clip. Written
                                    last, and the only thing readers trust: a unit counts as
                                    committed when its marker's NAME carries the current params
                                    hash and member hash, so the resume scan is one listing of
                                    `commits/` (one request per 1000 units on object storage)
    clips.parquet                   one row per clip of every committed unit (`write_clips_table`)

Objects of a unit without a current marker are ignored; its rerun deletes those it cannot
reuse, and the resume scan deletes stale markers and units the plan no longer has. The journal
also carries the unit's worker deaths across runs (`deaths`): the extract job isolates a clip
that killed `max_clip_deaths` workers, whichever run or node they died in.

Planning (`plan_units`): clips are grouped per (dataset, speaker), sorted by clip id, and cut
into units at content-defined boundaries: a clip closes its unit when a hash of its id is 0
modulo `clips_per_unit` (rsync-style chunking). A unit is named after the boundary clip that
precedes it (the first unit of a group is `head`). Adding a clip therefore changes only the
unit its sort position falls into; when the new clip is itself a boundary it also starts a new
unit holding the rest of that unit. Units of other speakers, and the rest of the same speaker,
keep their names and members; clips appended at the end of a speaker join its last unit.
The price: unit sizes vary (geometric, mean `clips_per_unit`; the largest of U units is about
`clips_per_unit` × ln U), and there is no size cap, since a cap would shift later cuts. A unit
whose members changed is recommitted, but clips its journal shows done with the same params
and the same key (`space_data.clip.clip_key`: the manifest fields extraction reads) are
reused, so only the new clips (and, after a split, the part that moved to the new unit) are
computed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from os import PathLike

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from space_data import storage
from space_data.clip import Clip, clip_key
from space_data.record import ClipFeatures, ClipStats

JOURNAL = "_JOURNAL"
UNITS = "units"
COMMITS = "commits"
CLIPS_TABLE = "clips.parquet"
SUMMARY = "extract_summary.json"
"""The last extract run's `JobSummary` (JSON), beside `CLIPS_TABLE`; `space report` reads it."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Unit:
    """A group of clips processed by one worker and committed together."""

    unit_id: str
    clips: tuple[Clip, ...]

    @cached_property
    def members_hash(self) -> str:
        """Hash of the member clips' ids and keys (`clip_key`: the fields extraction reads), in
        order."""
        return _sha("\n".join(f"{c.clip_id} {clip_key(c)}" for c in self.clips))[:16]

    def record_path(self, clip_id: str) -> str:
        """Path of a clip's npz relative to the features folder."""
        return f"{UNITS}/{self.unit_id}/{clip_id}.npz"

    def marker_name(self, params_hash: str) -> str:
        """File name of this unit's commit marker under `commits/` for these params."""
        return f"{self.unit_id}.{params_hash}.{self.members_hash}.json"


def plan_units(clips: Iterable[Clip], clips_per_unit: int) -> list[Unit]:
    """Usable clips → units, deterministically (see the module docstring for the scheme)."""
    if clips_per_unit < 1:
        raise ValueError(f"clips_per_unit must be >= 1, not {clips_per_unit}")
    usable = sorted((c for c in clips if c.usable), key=lambda c: (c.dataset, c.speaker, c.clip_id))
    units: list[Unit] = []
    for (dataset, speaker), group in itertools.groupby(usable, key=_group):
        prefix = f"{dataset}-{_UNSAFE.sub('_', speaker)}"
        name, current = "head", []
        for clip in group:
            current.append(clip)
            if int(_sha(clip.clip_id)[:8], 16) % clips_per_unit == 0:
                units.append(Unit(f"{prefix}-{name}", tuple(current)))
                name, current = _sha(clip.clip_id)[:8], []
        if current:
            units.append(Unit(f"{prefix}-{name}", tuple(current)))
    ids = [u.unit_id for u in units]
    if len(set(ids)) != len(ids):
        raise ValueError("two (dataset, speaker) groups map to the same unit id prefix")
    seen: set[str] = set()
    for clip in usable:
        if clip.clip_id in seen:
            raise ValueError(f"clip id {clip.clip_id} appears twice in the manifest")
        seen.add(clip.clip_id)
    return units


def unit_dir(features_dir: str | PathLike, unit_id: str) -> str:
    """The folder (or URL prefix) holding a unit's records and journal."""
    return storage.join(str(features_dir), UNITS, unit_id)


def _features_of(unit_dir: str | PathLike) -> str:
    return storage.parent(storage.parent(str(unit_dir)))


def _marker_path(unit_dir: str | PathLike, unit: Unit, params_hash: str) -> str:
    return storage.join(_features_of(unit_dir), COMMITS, unit.marker_name(params_hash))


# --- commit marker and resume scan -----------------------------------------------------------


def committed_markers(features_dir: str | PathLike) -> dict[str, str]:
    """Unit id → marker file name, from one listing of `commits/`."""
    markers = {}
    for name in storage.listdir(storage.join(str(features_dir), COMMITS)):
        if name.endswith(".json") and name.count(".") == 3:
            markers[name.split(".", 1)[0]] = name
    return markers


def is_committed(unit_dir: str | PathLike, unit: Unit, params_hash: str) -> bool:
    """True when a marker with the same extraction params and member rows exists (one check;
    to scan many units use `resume_scan`)."""
    return storage.exists(_marker_path(unit_dir, unit, params_hash))


@dataclass
class Scan:
    """What `resume_scan` found."""

    pending: list[Unit]
    """Units without a current marker, in plan order."""
    stale: list[str]
    """Units the plan no longer has, deleted (their records and markers)."""
    listings: int
    """Folder listings made (each one request per page of 1000 names on object storage)."""


def resume_scan(features_dir: str | PathLike, units: list[Unit], params_hash: str) -> Scan:
    """Which units still have to run, from two listings (`commits/` and `units/`).

    Markers that no longer match (other params, other members, unit left the plan, unit folder
    gone) are deleted first, so a reader never trusts a marker whose unit is about to be
    rewritten; unit folders the plan no longer has are deleted too.
    """
    features_dir = str(features_dir)
    markers = committed_markers(features_dir)
    wanted = {u.unit_id: u.marker_name(params_hash) for u in units}
    stale_markers = [name for uid, name in markers.items() if wanted.get(uid) != name]
    storage.remove(storage.join(features_dir, COMMITS, n) for n in stale_markers)
    folders = set(storage.listdir(storage.join(features_dir, UNITS)))
    stale = sorted(folders - set(wanted))
    for uid in stale:
        storage.remove_tree(unit_dir(features_dir, uid))
    # a marker without its unit folder (records deleted by hand) commits nothing
    orphans = [n for uid, n in markers.items() if uid not in folders and wanted.get(uid) == n]
    storage.remove(storage.join(features_dir, COMMITS, n) for n in orphans)
    pending = [
        u for u in units if u.unit_id not in folders or markers.get(u.unit_id) != wanted[u.unit_id]
    ]
    return Scan(pending=pending, stale=stale, listings=2)


def commit_unit(unit_dir: str | PathLike, unit: Unit, params_hash: str, rows: list[dict]) -> None:
    """Drop files of clips that left the unit, then write the marker (whole, last).

    `rows` are the `done` journal entries of the members, in member order.
    """
    if [r["clip_id"] for r in rows] != [c.clip_id for c in unit.clips]:
        raise RuntimeError(f"unit {unit.unit_id}: rows do not match its members")
    unit_dir = str(unit_dir)
    members = {_npz(c) for c in unit.clips}
    storage.remove(
        storage.join(unit_dir, n)
        for n in storage.listdir(unit_dir)
        if n not in members and n != JOURNAL
    )
    marker = {
        "unit": unit.unit_id,
        "params_hash": params_hash,
        "members_hash": unit.members_hash,
        "clips": [c.clip_id for c in unit.clips],
        "rows": rows,
    }
    storage.write_text(
        _marker_path(unit_dir, unit, params_hash), json.dumps(marker, sort_keys=True)
    )


# --- journal -----------------------------------------------------------------------------------


class Journal:
    """Append-only events beside a unit's records, each tagged with the `attempt` that wrote it.

    An attempt is one run of the unit by one worker: a random token its `open` entry
    introduces; the worker's `start` / `done` entries and the driver's `died` / `interrupted`
    entries about it carry the same token. Deaths are read per attempt (`deaths`), so neither a
    PID the OS reused nor the order in which two writers' entries landed can blame a clip.

    Local disk: JSON lines, each entry one `write` on an O_APPEND descriptor, so an entry is
    wholly on disk or absent when the writer is killed (SIGKILL, OOM); the reader skips a torn
    line. Object storage (no append): one object per entry under `_JOURNAL/`, named by the
    unit's own sequence (one more than the highest number the writer has seen; the writer's
    tag breaks a tie), never by a clock, so names sort in the unit's order on any node.
    """

    def __init__(self, unit_dir: str | PathLike, attempt: str | None = None) -> None:
        self.unit_dir = str(unit_dir)
        self.path = storage.join(self.unit_dir, JOURNAL)
        self.remote = storage.is_remote(self.path)
        self.attempt = attempt
        self._next: int | None = None  # the next sequence number (object storage)

    def append(self, event: str, **fields: object) -> None:
        entry = {"event": event, **fields}
        if self.attempt is not None:
            entry["attempt"] = self.attempt
        line = json.dumps(entry, sort_keys=True)
        if self.remote:
            if self._next is None:
                self.read()
            tag = self.attempt or f"p{os.getpid()}"
            storage.write_text(storage.join(self.path, f"{self._next:020d}-{tag}.json"), line)
            self._next += 1
            return
        # leading newline: an entry torn by a killed writer never swallows the next one
        storage.append_local(self.path, ("\n" + line).encode())

    def read(self) -> list[dict]:
        """The entries in the unit's order (torn ones skipped)."""
        if self.remote:
            names = storage.listdir(self.path)
            self._next = max((int(n.split("-", 1)[0]) for n in names), default=-1) + 1
            got = storage.read_many([storage.join(self.path, n) for n in names])
            lines = [(got[storage.join(self.path, n)] or b"").decode() for n in names]
        else:
            try:
                with open(self.path) as f:
                    lines = f.read().splitlines()
            except FileNotFoundError:
                return []
        events = []
        for line in filter(None, lines):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


UNRECORDED = "not recorded (the job stopped with the worker)"
"""The cause of a death no driver saw: the attempt has neither `died` nor `interrupted`."""


@dataclass(frozen=True)
class Death:
    """An attempt of a unit that ended with a clip in flight and was not stopped by the job."""

    attempt: str
    clip_id: str
    key: str
    """`clip_key` of the clip when it was started (a changed row is a new clip)."""
    pid: int
    node: str | None
    cause: str
    """From the driver's `died` entry ("killed by the memory monitor", "node lost", ...), else
    `UNRECORDED`."""


def deaths(events: list[dict]) -> list[Death]:
    """The deaths among the attempts in `events`, in the order their attempts opened.

    An attempt died when it has a `start` without a `done` for that clip and no `interrupted`
    entry (a Ctrl-C or a job that stopped is no clip's fault). Entries without an attempt
    (journals of earlier versions) count for nothing.
    """
    by_attempt: dict[str, list[dict]] = {}
    for e in events:
        if "attempt" in e:
            by_attempt.setdefault(e["attempt"], []).append(e)
    found = []
    for attempt, entries in by_attempt.items():
        kinds = {e["event"] for e in entries}
        if "interrupted" in kinds:
            continue
        done = {e["clip_id"] for e in entries if e["event"] == "done"}
        started = [e for e in entries if e["event"] == "start" and e["clip_id"] not in done]
        if not started:
            continue
        cause = next((e["cause"] for e in entries if e["event"] == "died"), UNRECORDED)
        s = started[-1]
        found.append(Death(attempt, s["clip_id"], s["key"], s["pid"], s.get("node"), cause))
    return found


@dataclass
class Opened:
    """What `open_unit` found in a unit's folder."""

    reusable: dict[str, dict]
    """Clip id → its `done` row, for members whose record can be reused."""
    deaths: list[Death]
    """The deaths of earlier attempts (`deaths`) under the current params."""


def open_unit(journal: Journal, unit: Unit, params_hash: str) -> Opened:
    """Prepare a unit for (re)processing: its reusable rows and its earlier deaths.

    A journal written under other params means every file is stale: the unit is emptied.
    Otherwise a clip is reused when its last `done` entry has the clip's current key and its
    record exists; other records (partial runs, clips that left) are deleted.
    """
    folder = journal.unit_dir
    storage.makedirs(folder)
    events = journal.read()
    if any(e["event"] == "open" and e.get("params_hash") != params_hash for e in events):
        storage.remove_tree(folder)
        storage.makedirs(folder)
        journal.read()  # restarts the sequence
        return Opened({}, [])
    present = set(storage.listdir(folder))
    done = {e["clip_id"]: e for e in events if e["event"] == "done"}
    reusable = {}
    for clip in unit.clips:
        row = done.get(clip.clip_id)
        if row is not None and row["key"] == clip_key(clip) and _npz(clip) in present:
            reusable[clip.clip_id] = {k: v for k, v in row.items() if k in _ROW}
    keep = {_npz(c) for c in unit.clips if c.clip_id in reusable} | {JOURNAL}
    storage.remove(storage.join(folder, n) for n in present - keep)
    return Opened(reusable, deaths(events))


_ROW = ("clip_id", "key", "status", "reason", "record", "stats")
"""The fields of a `done` entry that make the marker's row (not the event or the attempt)."""


def save_record(journal: Journal, unit: Unit, clip: Clip, features: ClipFeatures) -> dict:
    """Write one record whole, journal it `done`; the row for the marker."""
    with storage.writing(storage.join(journal.unit_dir, _npz(clip))) as tmp:
        features.save_npz(tmp)
    row = {
        "clip_id": clip.clip_id,
        "key": clip_key(clip),
        "status": features.status,
        "reason": features.reason,
        "record": unit.record_path(clip.clip_id),
        "stats": features.stats.to_dict(),
    }
    journal.append("done", **row)
    return row


def _group(clip: Clip) -> tuple[str, str]:
    return clip.dataset, clip.speaker


def _npz(clip: Clip) -> str:
    return f"{clip.clip_id}.npz"


# --- clips.parquet ------------------------------------------------------------------------------

_CLIP_COLUMNS = [
    ("clip_id", pa.string()),
    ("dataset", pa.string()),
    ("speaker", pa.string()),
    ("split", pa.string()),
    ("emotion", pa.string()),
    ("intensity", pa.float64()),
    ("view", pa.string()),
    ("path", pa.string()),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("unit", pa.string()),
    ("record", pa.string()),
    ("params_hash", pa.string()),
    ("members_hash", pa.string()),
]
# by the type of each ClipStats default; a list is a curve of floats (av_sync_curve)
_STAT_TYPES = {
    int: pa.int64(),
    float: pa.float64(),
    bool: pa.bool_(),
    str: pa.string(),
    list: pa.list_(pa.float64()),
}
_BATCH_ROWS = 16_384


def clips_schema() -> pa.Schema:
    """Columns of clips.parquet: manifest fields, outcome, location (with the unit's commit:
    params and member hashes), then every ClipStats field."""
    defaults = ClipStats().to_dict()
    stats = [(name, _STAT_TYPES[type(value)]) for name, value in defaults.items()]
    return pa.schema(_CLIP_COLUMNS + stats)


def write_clips_table(
    features_dir: str | PathLike,
    units: list[Unit],
    params_hash: str,
    markers: dict[str, str] | None = None,
) -> str:
    """`clips.parquet` from the markers of all committed units, sorted by clip id (whole).

    `markers` is `committed_markers(features_dir)` when the caller has it (else one listing).
    Rows of units whose commit (params and members hash) is unchanged since the previous
    clips.parquet are taken from it, so only markers of newly committed units are read.
    Returns the table's path.
    """
    features_dir = str(features_dir)
    if markers is None:
        markers = committed_markers(features_dir)
    committed = {
        u.unit_id: u for u in units if markers.get(u.unit_id) == u.marker_name(params_hash)
    }
    schema = clips_schema()
    path = storage.join(features_dir, CLIPS_TABLE)
    parts, covered = _reusable_rows(path, committed, params_hash, schema)
    todo = [u for uid, u in committed.items() if uid not in covered]
    marker_paths = [storage.join(features_dir, COMMITS, markers[u.unit_id]) for u in todo]
    builder = _RowBatches(schema)
    for start in range(0, len(todo), 1024):  # markers fetched concurrently, 1024 at a time
        chunk = marker_paths[start : start + 1024]
        got = storage.read_many(chunk)
        for unit, marker_path in zip(todo[start : start + 1024], chunk, strict=True):
            if got[marker_path] is None:
                raise RuntimeError(f"commit marker {marker_path} vanished while being read")
            by_id = {r["clip_id"]: r for r in json.loads(got[marker_path])["rows"]}
            for clip in unit.clips:
                builder.add(clip, unit, by_id[clip.clip_id], params_hash)
    tables = [*parts, *builder.tables()]
    del parts, builder
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    del tables
    with storage.writing(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        if not todo:  # only rows of the previous table, which keep its (sorted) order
            writer.write_table(table, row_group_size=_BATCH_ROWS)
            return path
        table = table.combine_chunks()  # one contiguous copy: cheap slices below
        order = pc.sort_indices(table, [("clip_id", "ascending")])
        for start in range(0, len(order), _BATCH_ROWS):  # sorted slice by slice: no full copy
            writer.write_table(table.take(order[start : start + _BATCH_ROWS]))
    return path


def _reusable_rows(
    path: str, committed: dict[str, Unit], params_hash: str, schema: pa.Schema
) -> tuple[list[pa.Table], set[str]]:
    """Rows of the previous clips.parquet whose unit commit is still current; (tables, unit ids)."""
    try:
        with storage.local_path(path) as local:  # local: the file itself; remote: one download
            old = pq.read_table(local)
    except (OSError, ValueError, pa.ArrowException):
        return [], set()
    if old.schema != schema or old.num_rows == 0:
        return [], set()
    current = [f"{uid}.{params_hash}.{u.members_hash}" for uid, u in committed.items()]
    commit = pc.binary_join_element_wise(old["unit"], old["params_hash"], old["members_hash"], ".")
    mask = pc.is_in(commit, value_set=pa.array(current, pa.string()))
    reused = old if pc.all(mask).as_py() else old.filter(mask)  # all current: no copy
    return [reused], set(pc.unique(reused["unit"]).to_pylist())


class _RowBatches:
    """clips.parquet rows turned into Arrow batches every `_BATCH_ROWS` rows, so a million
    rows never exist as Python dicts at once."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.batches: list[pa.RecordBatch] = []
        self.rows: list[dict] = []

    def add(self, clip: Clip, unit: Unit, row: dict, params_hash: str) -> None:
        self.rows.append(
            {
                "clip_id": clip.clip_id,
                "dataset": clip.dataset,
                "speaker": clip.speaker,
                "split": clip.split,
                "emotion": clip.emotion,
                "intensity": clip.intensity,
                "view": clip.view,
                "path": clip.path,
                "status": row["status"],
                "reason": row["reason"],
                "unit": unit.unit_id,
                "record": row["record"],
                "params_hash": params_hash,
                "members_hash": unit.members_hash,
                **row["stats"],
            }
        )
        if len(self.rows) >= _BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.rows:
            self.batches.append(pa.RecordBatch.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def tables(self) -> list[pa.Table]:
        self._flush()
        return [pa.Table.from_batches(self.batches, schema=self.schema)] if self.batches else []
