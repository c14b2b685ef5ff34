"""Units of work for the extract job: planning, the per-unit journal, the commit marker and
the clips table built from the markers.

Plain files and no Ray, so the rules that make a run resumable are testable in one process.

Layout under the features directory (`data/features/`)::

    units/<unit_id>/<clip_id>.npz   one `ClipFeatures` per clip (errors included), written to a
                                    temporary name, then renamed
    units/<unit_id>/_JOURNAL        JSON lines: `open` (a worker took the unit), `start` (a clip
                                    is in flight, with the worker's PID), `done` (record on disk)
    units/<unit_id>/_COMMITTED      JSON: params hash, members hash, clip ids, one row per clip;
                                    written last, atomically
    clips.parquet                   one row per clip of every committed unit (`write_clips_table`)

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
and the same manifest row are reused, so only the new clips (and, after a split, the part that
moved to the new unit) are computed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from space_data.clip import Clip
from space_data.record import ClipFeatures, ClipStats

MARKER = "_COMMITTED"
JOURNAL = "_JOURNAL"
UNITS = "units"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def clip_key(clip: Clip) -> str:
    """Hash of the whole manifest row: a record is stale when any field it copies changes."""
    return _sha(json.dumps(clip.to_row(), sort_keys=True, default=str))[:16]


@dataclass(frozen=True)
class Unit:
    """A group of clips processed by one worker and committed together."""

    unit_id: str
    clips: tuple[Clip, ...]

    @cached_property
    def members_hash(self) -> str:
        """Hash of the member clips' ids and manifest rows, in order."""
        return _sha("\n".join(f"{c.clip_id} {clip_key(c)}" for c in self.clips))[:16]

    def record_path(self, clip_id: str) -> str:
        """Path of a clip's npz relative to the features directory."""
        return f"{UNITS}/{self.unit_id}/{clip_id}.npz"


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


# --- commit marker ---------------------------------------------------------------------------


def read_marker(unit_dir: Path) -> dict | None:
    """The unit's commit marker, or None when absent or unreadable (= not committed)."""
    try:
        return json.loads((unit_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None


def is_committed(unit_dir: Path, unit: Unit, params_hash: str) -> bool:
    """True when the marker says: same extraction params and same member rows."""
    marker = read_marker(unit_dir)
    return (
        marker is not None
        and marker.get("params_hash") == params_hash
        and marker.get("members_hash") == unit.members_hash
    )


def commit_unit(unit_dir: Path, unit: Unit, params_hash: str, rows: list[dict]) -> None:
    """Drop files of clips that left the unit, then write the marker (atomically, last).

    `rows` are the `done` journal entries of the members, in member order.
    """
    if [r["clip_id"] for r in rows] != [c.clip_id for c in unit.clips]:
        raise RuntimeError(f"unit {unit.unit_id}: rows do not match its members")
    members = {f"{c.clip_id}.npz" for c in unit.clips}
    for path in unit_dir.iterdir():
        if path.name not in members and path.name not in (JOURNAL, MARKER):
            path.unlink()
    marker = {
        "unit": unit.unit_id,
        "params_hash": params_hash,
        "members_hash": unit.members_hash,
        "clips": [c.clip_id for c in unit.clips],
        "rows": rows,
    }
    _atomic_write(unit_dir / MARKER, json.dumps(marker, sort_keys=True, indent=1).encode())


def prune_units(features_dir: Path, units: list[Unit]) -> list[str]:
    """Delete unit directories the plan no longer has (clips left the manifest); their names."""
    root = features_dir / UNITS
    if not root.is_dir():
        return []
    keep = {u.unit_id for u in units}
    stale = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in keep)
    for name in stale:
        shutil.rmtree(root / name)
    return stale


# --- journal -----------------------------------------------------------------------------------


class Journal:
    """Append-only JSON lines beside a unit's records.

    Each entry is one `write` on an O_APPEND descriptor, so an entry is either wholly on disk or
    absent when the writing process is killed (SIGKILL, OOM); the reader skips a torn last line.
    """

    def __init__(self, unit_dir: Path) -> None:
        self.path = unit_dir / JOURNAL

    def append(self, event: str, **fields: object) -> None:
        # leading newline: an entry torn by a killed writer never swallows the next one
        line = "\n" + json.dumps({"event": event, **fields}, sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def read(self) -> list[dict]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in filter(None, lines):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events


def open_unit(unit_dir: Path, unit: Unit, params_hash: str) -> dict[str, dict]:
    """Prepare a unit for (re)processing; the members' reusable `done` rows by clip id.

    A journal written under other params means every file is stale: the directory is emptied.
    Otherwise a clip is reused when its last `done` entry has the clip's current row key and
    its record file exists.
    """
    unit_dir.mkdir(parents=True, exist_ok=True)
    (unit_dir / MARKER).unlink(missing_ok=True)
    events = Journal(unit_dir).read()
    if any(e["event"] == "open" and e.get("params_hash") != params_hash for e in events):
        for path in unit_dir.iterdir():
            path.unlink()
        return {}
    done = {e["clip_id"]: e for e in events if e["event"] == "done"}
    reusable = {}
    for clip in unit.clips:
        row = done.get(clip.clip_id)
        if row is not None and row["key"] == clip_key(clip) and (unit_dir / _npz(clip)).exists():
            reusable[clip.clip_id] = row
    return reusable


def in_flight(unit_dir: Path) -> dict | None:
    """The `start` entry of the clip a worker was processing when it stopped, if any.

    Only the entries after the last `open` count: earlier attempts were settled already.
    """
    events = Journal(unit_dir).read()
    opens = [i for i, e in enumerate(events) if e["event"] == "open"]
    current = events[opens[-1] :] if opens else events
    done = {e["clip_id"] for e in current if e["event"] == "done"}
    starts = [e for e in current if e["event"] == "start" and e["clip_id"] not in done]
    return starts[-1] if starts else None


def save_record(unit_dir: Path, unit: Unit, clip: Clip, features: ClipFeatures) -> dict:
    """Write one record atomically, journal it `done`; the row for the marker."""
    tmp = unit_dir / f".{clip.clip_id}.npz.tmp{os.getpid()}"
    features.save_npz(tmp)
    os.replace(tmp, unit_dir / _npz(clip))
    row = {
        "clip_id": clip.clip_id,
        "key": clip_key(clip),
        "status": features.status,
        "reason": features.reason,
        "record": unit.record_path(clip.clip_id),
        "stats": features.stats.to_dict(),
    }
    Journal(unit_dir).append("done", **row)
    return row


def _group(clip: Clip) -> tuple[str, str]:
    return clip.dataset, clip.speaker


def _npz(clip: Clip) -> str:
    return f"{clip.clip_id}.npz"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
]
_STAT_TYPES = {int: pa.int64(), float: pa.float64(), bool: pa.bool_()}


def clips_schema() -> pa.Schema:
    """Columns of clips.parquet: manifest fields, outcome, location, then every ClipStats field."""
    defaults = ClipStats().to_dict()
    stats = [(name, _STAT_TYPES[type(value)]) for name, value in defaults.items()]
    return pa.schema(_CLIP_COLUMNS + stats)


def write_clips_table(features_dir: Path, units: list[Unit], params_hash: str) -> Path:
    """`clips.parquet` from the markers of all committed units, sorted by clip id (atomic)."""
    rows = []
    for unit in units:
        marker = read_marker(features_dir / UNITS / unit.unit_id)
        if marker is None or marker["params_hash"] != params_hash:
            continue
        by_id = {r["clip_id"]: r for r in marker["rows"]}
        for clip in unit.clips:
            r = by_id[clip.clip_id]
            rows.append(
                {
                    "clip_id": clip.clip_id,
                    "dataset": clip.dataset,
                    "speaker": clip.speaker,
                    "split": clip.split,
                    "emotion": clip.emotion,
                    "intensity": clip.intensity,
                    "view": clip.view,
                    "path": clip.path,
                    "status": r["status"],
                    "reason": r["reason"],
                    "unit": unit.unit_id,
                    "record": r["record"],
                    "params_hash": params_hash,
                    **r["stats"],
                }
            )
    rows.sort(key=lambda r: r["clip_id"])
    schema = clips_schema()
    table = pa.Table.from_pylist(rows, schema=schema)
    features_dir.mkdir(parents=True, exist_ok=True)
    path = features_dir / "clips.parquet"
    tmp = features_dir / f".clips.parquet.tmp{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path
