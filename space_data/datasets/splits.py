"""Speaker-disjoint train/val/test splits that never move when a corpus grows.

A speaker's split depends on that speaker alone: sha256 of `seed/dataset/speaker` read as a
number u in [0, 1) falls into one of the cumulative fractions train | val | test. Adding,
removing or renaming other speakers therefore never moves a speaker, on any machine, and a
speaker's clips never straddle splits. VoxCeleb2 keeps its own partition unless
`IndexConfig.voxceleb2_own_splits` is false: its test speakers are the test split and its dev
speakers fall into train / val in the ratio train : val. Rejected clips get no split.

The cost: fractions hold in expectation, not exactly. With n speakers a split of fraction f is
empty with probability (1 − f)^n, so a corpus of 5 speakers at 0.8 / 0.1 / 0.1 has no
validation speaker 59 % of the time. A guaranteed speaker per split cannot be had without
moving speakers as the corpus grows (the speaker that filled an empty split moves back once
a new speaker lands there), so the index warns instead (`empty_splits`), and exact fractions
come from a pinned table.

A pinned table (`IndexConfig.splits_file`, CSV `dataset,speaker,split`) wins over the hash
and the corpus partition for the speakers it lists; speakers it does not list are hashed.
`balanced_table` makes one with exact fractions (largest remainders of n × fraction, at least
one speaker per split of non-zero fraction when there are enough speakers; rows already pinned
stay as they are), which `space index --write-splits` writes for the user to commit.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from space_data import storage
from space_data.clip import SPLITS, Clip

if TYPE_CHECKING:
    from space_data.datasets import IndexConfig

SpeakerKey = tuple[str, str]
"""(dataset, speaker)."""
SplitTable = dict[SpeakerKey, str]
"""(dataset, speaker) → split: a pinned table, or the splits a manifest ends up with."""
TABLE_COLUMNS = ("dataset", "speaker", "split")


def speaker_position(dataset: str, speaker: str, seed: int) -> float:
    """u in [0, 1) from sha256 of `seed/dataset/speaker` (stable across runs and machines)."""
    digest = hashlib.sha256(f"{seed}/{dataset}/{speaker}".encode()).hexdigest()
    return int(digest[:13], 16) / 16**13  # 52 bits: exact in a float, never 1.0


def hashed_split(u: float, names: tuple[str, ...], fractions: tuple[float, ...]) -> str:
    """The split whose cumulative-fraction interval holds u (the last non-empty one for a u
    that rounding leaves above the sum)."""
    edge = 0.0
    for name, fraction in zip(names, fractions, strict=True):
        edge += fraction
        if fraction > 0 and u < edge:
            return name
    return [n for n, f in zip(names, fractions, strict=True) if f > 0][-1]


def split_counts(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Speakers per split for exact fractions: largest remainders of n × fraction, at least 1
    per non-zero fraction when n allows it (taken from the largest split)."""
    raw = [n * f for f in fractions]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: (counts[i] - raw[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                counts[max(range(len(counts)), key=lambda j: counts[j])] -= 1
                counts[i] = 1
    return counts


def _groups(clips: list[Clip], config: IndexConfig) -> dict[tuple[str, str | None], set[str]]:
    """(dataset, corpus partition) → its usable speakers."""
    groups: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    for clip in clips:
        if clip.usable:
            groups[_group(clip, config)].add(clip.speaker)
    return groups


def _choices(partition: str | None, config: IndexConfig) -> tuple[tuple[str, ...], tuple]:
    """The splits a speaker of `partition` may get, and their fractions."""
    if partition == "test":
        return ("test",), (1.0,)
    if partition == "train":
        dev = config.train + config.val
        return ("train", "val"), (config.train / dev, config.val / dev)
    return SPLITS, (config.train, config.val, config.test)


def speaker_splits(
    clips: list[Clip], config: IndexConfig, pinned: Mapping[SpeakerKey, str] | None = None
) -> SplitTable:
    """(dataset, speaker) → split for every usable speaker: pinned, else hashed."""
    pinned = pinned or {}
    out: SplitTable = {}
    for (dataset, partition), speakers in _groups(clips, config).items():
        names, fractions = _choices(partition, config)
        for speaker in speakers:
            key = (dataset, speaker)
            u = speaker_position(dataset, speaker, config.seed)
            out[key] = pinned.get(key) or hashed_split(u, names, fractions)
    return out


def balanced_table(
    clips: list[Clip], config: IndexConfig, pinned: Mapping[SpeakerKey, str] | None = None
) -> SplitTable:
    """A table with exact fractions per (dataset, partition): the pinned rows (all of them,
    also those of speakers absent from `clips`), and the unpinned speakers, in hash order,
    filling each split up to its `split_counts` share of the group."""
    table: SplitTable = dict(pinned or {})
    for (dataset, partition), speakers in _groups(clips, config).items():
        names, fractions = _choices(partition, config)
        targets = dict(zip(names, split_counts(len(speakers), fractions), strict=True))
        for speaker in speakers:
            split = table.get((dataset, speaker))
            if split in targets:
                targets[split] -= 1
        free = sorted(
            (s for s in speakers if (dataset, s) not in table),
            key=lambda s: speaker_position(dataset, s, config.seed),
        )
        slots = [name for name in names for _ in range(max(0, targets[name]))]
        slots += [names[0]] * (len(free) - len(slots))  # pinned rows overfilled other splits
        table.update(((dataset, s), split) for s, split in zip(free, slots, strict=False))
    return table


def assign_splits(
    clips: list[Clip], config: IndexConfig, table: Mapping[SpeakerKey, str] | None = None
) -> list[Clip]:
    """Clips with `split` set for usable clips and None for rejected ones (new objects);
    `table` (a pinned table) wins for the speakers it lists."""
    split_of = speaker_splits(clips, config, table)
    return [
        dataclasses.replace(
            clip, split=split_of[(clip.dataset, clip.speaker)] if clip.usable else None
        )
        for clip in clips
    ]


def empty_splits(clips: list[Clip], config: IndexConfig) -> dict[str, list[str]]:
    """Dataset → the splits of non-zero fraction its usable clips (splits assigned) leave
    empty; datasets that miss none are left out. VoxCeleb2's dev speakers can only fill train
    and val, its test speakers only test: a partition that has no speakers is not counted."""
    have: dict[str, set[str]] = defaultdict(set)
    could: dict[str, set[str]] = defaultdict(set)
    for dataset, partition in _groups(clips, config):
        names, fractions = _choices(partition, config)
        could[dataset].update(n for n, f in zip(names, fractions, strict=True) if f > 0)
    for clip in clips:
        if clip.usable and clip.split:
            have[clip.dataset].add(clip.split)
    missing = {d: [s for s in SPLITS if s in could[d] and s not in have[d]] for d in could}
    return {d: m for d, m in missing.items() if m}


def read_split_table(path: str) -> SplitTable:
    """A pinned table (CSV with the header `dataset,speaker,split`; a path or a URL).
    A malformed table raises ValueError naming the file and the line."""
    rows = csv.reader(io.StringIO(storage.read_text(path)))
    header = next(rows, None)
    if header is None or tuple(h.strip() for h in header) != TABLE_COLUMNS:
        raise ValueError(f"splits file {path}: the first line must be {','.join(TABLE_COLUMNS)}")
    table: SplitTable = {}
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != 3 or row[2].strip() not in SPLITS or not row[0].strip() or not row[1]:
            raise ValueError(
                f"splits file {path} line {line}: expected dataset,speaker,split with split one "
                f"of {', '.join(SPLITS)}, got {','.join(row)!r}"
            )
        key = (row[0].strip(), row[1].strip())
        if key in table and table[key] != row[2].strip():
            raise ValueError(f"splits file {path} line {line}: {key[0]}/{key[1]} pinned twice")
        table[key] = row[2].strip()
    return table


def write_split_table(table: Mapping[SpeakerKey, str], path: str) -> None:
    """Write a pinned table, sorted by dataset and speaker (a stable file to commit)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    writer.writerows((d, s, split) for (d, s), split in sorted(table.items()))
    storage.write_text(path, buffer.getvalue())


def _group(clip: Clip, config: IndexConfig) -> tuple[str, str | None]:
    """(dataset, corpus partition): VoxCeleb2's scanner marks dev as `train` and test as `test`
    (`val` too once assigned, so assigning twice gives the same result); others have none."""
    if clip.dataset != "voxceleb2" or not config.voxceleb2_own_splits or clip.split is None:
        return clip.dataset, None
    return clip.dataset, "test" if clip.split == "test" else "train"
