"""Deterministic, speaker-disjoint train/val/test splits.

Within each dataset, speakers are ordered by a seeded hash of their id and cut into train /
val / test by the configured fractions (largest-remainder counts; each split with a non-zero
fraction gets at least one speaker when there are enough speakers). The same speakers and
seed always give the same split, on any machine, and a speaker's clips never straddle splits.
VoxCeleb2 keeps its own partition unless `IndexConfig.voxceleb2_own_splits` is false: its
test speakers are the test split and its dev speakers are divided into train / val in the
ratio train : val. Rejected clips get no split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import defaultdict
from typing import TYPE_CHECKING

from space_data.clip import SPLITS, Clip

if TYPE_CHECKING:
    from space_data.datasets import IndexConfig


def speaker_order(speakers: set[str], dataset: str, seed: int) -> list[str]:
    """Speakers sorted by sha256 of `seed/dataset/speaker` (stable across runs and machines)."""

    def key(speaker: str) -> str:
        return hashlib.sha256(f"{seed}/{dataset}/{speaker}".encode()).hexdigest()

    return sorted(speakers, key=key)


def split_counts(n: int, fractions: tuple[float, ...]) -> list[int]:
    """Speakers per split: largest remainders of n × fraction, at least 1 per non-zero fraction
    when n allows it (taken from the largest split)."""
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


def _assign(speakers: set[str], dataset: str, seed: int, names, fractions) -> dict[str, str]:
    order = speaker_order(speakers, dataset, seed)
    out: dict[str, str] = {}
    start = 0
    for name, count in zip(names, split_counts(len(order), fractions)):
        out.update((s, name) for s in order[start : start + count])
        start += count
    return out


def assign_splits(clips: list[Clip], config: IndexConfig) -> list[Clip]:
    """Clips with `split` set for usable clips and None for rejected ones (new objects)."""
    fractions = (config.train, config.val, config.test)
    dev = config.train + config.val
    dev_fractions = (config.train / dev, config.val / dev)
    groups: dict[tuple[str, str | None], set[str]] = defaultdict(set)
    for clip in clips:
        if clip.usable:
            groups[_group(clip, config)].add(clip.speaker)
    split_of: dict[tuple[str, str | None, str], str] = {}
    for (dataset, partition), speakers in groups.items():
        if partition == "test":
            mapping = dict.fromkeys(speakers, "test")
        elif partition == "train":
            mapping = _assign(speakers, dataset, config.seed, ("train", "val"), dev_fractions)
        else:
            mapping = _assign(speakers, dataset, config.seed, SPLITS, fractions)
        split_of.update(((dataset, partition, s), name) for s, name in mapping.items())
    return [
        dataclasses.replace(
            clip,
            split=split_of[(*_group(clip, config), clip.speaker)] if clip.usable else None,
        )
        for clip in clips
    ]


def _group(clip: Clip, config: IndexConfig) -> tuple[str, str | None]:
    """(dataset, corpus partition): VoxCeleb2's scanner marks dev as `train` and test as `test`
    (`val` too once assigned, so assigning twice gives the same result); others have none."""
    if clip.dataset != "voxceleb2" or not config.voxceleb2_own_splits or clip.split is None:
        return clip.dataset, None
    return clip.dataset, "test" if clip.split == "test" else "train"
