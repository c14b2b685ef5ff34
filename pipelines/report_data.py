"""What the dataset report reads and how it counts and buckets clips: the `report:` section and
the helpers that both the report's tables (report.py) and its figures (report_plots.py) use.

Every count adds up: `clip_counts` gives each clip once under kept or its first reason (they
sum to the total) and under every rule it fails; every histogram has bins for values below and
above its range and for unmeasured values, so each clip (or frame) a caption counts is drawn.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from space_data.clip import SPLITS
from space_data.datasets import DATASETS
from space_data.filters import RULE_REASONS

# SPACE paper, test set: share of clips whose largest head rotation lies in each bucket (%).
ROTATION_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<15°", 0.0, 15.0),
    ("15–30°", 15.0, 30.0),
    ("30–45°", 30.0, 45.0),
    (">45°", 45.0, float("inf")),
)
PAPER_ROTATION_SHARES = (45.0, 35.0, 20.0, 0.0)


@dataclass
class ReportConfig:
    """What the dataset report reads and draws."""

    max_pose_clips: int = 500
    """Kept clips whose pose tracks feed the yaw/pitch/roll histograms (evenly spaced by id)."""
    n_examples: int = 6
    """Sample frames (first crop + first-frame landmarks) shown."""
    pose_bins: int = 36
    """Histogram bins over −90…90 degrees."""

    def __post_init__(self) -> None:
        if self.max_pose_clips < 1 or self.n_examples < 0 or self.pose_bins < 2:
            raise ValueError("max_pose_clips >= 1, n_examples >= 0 and pose_bins >= 2 required")


def rotation_shares(clips: pd.DataFrame) -> list[float]:
    """% of `clips` (ClipStats columns) per ROTATION_BUCKETS bucket of the largest |angle|, then
    the % whose rotation is unmeasured (NaN: no pose anywhere); the shares sum to 100."""
    if clips.empty:
        return [0.0] * (len(ROTATION_BUCKETS) + 1)
    angles = clips[["max_abs_yaw", "max_abs_pitch", "max_abs_roll"]].to_numpy(dtype=float)
    largest = np.full(len(angles), np.nan)
    measured = np.isfinite(angles).any(axis=1)
    largest[measured] = np.nanmax(angles[measured], axis=1)
    shares = [
        float(100.0 * np.mean((largest >= lo) & (largest < hi))) for _, lo, hi in ROTATION_BUCKETS
    ]
    return [*shares, float(100.0 * np.mean(~measured))]


def metric_key(prefix: str, reason: str) -> str:
    """`dropped_index_song` for ("dropped", "index:song"): metric names without colons."""
    return f"{prefix}_{reason.replace(':', '_')}"


def clip_counts(table: pd.DataFrame) -> dict[str, float]:
    """Counts of a report table (one row per manifest clip: keep, reason, reasons, split,
    duration): `clips_total`; `clips_kept` and `dropped_<first reason>` (each clip once, so they
    sum to clips_total; every filter rule present, 0 included); `fails_<rule>` (a clip counts
    under every rule it fails); `kept_<split>` and `kept_hours`."""
    kept = table[table["keep"]]
    counts: dict[str, float] = {
        "clips_total": len(table),
        "clips_kept": len(kept),
        "kept_hours": round(float(kept["duration"].fillna(0).sum()) / 3600, 4),
    }
    for split in SPLITS:
        counts[f"kept_{split}"] = int((kept["split"] == split).sum())
    first = Counter(table.loc[~table["keep"], "reason"])
    for reason in [*RULE_REASONS, *sorted(set(first) - set(RULE_REASONS))]:
        counts[metric_key("dropped", reason)] = first[reason]
    hits = Counter(r for reasons in table["reasons"] for r in reasons)
    for rule in RULE_REASONS:
        counts[metric_key("fails", rule)] = hits[rule]
    return counts


def empty_note(table: pd.DataFrame) -> str | None:
    """What an empty dataset lacks, in one sentence (None when some clip is kept)."""
    if table.empty:
        return "No clips: the manifest holds no file (see the `space index` summary)."
    if table["keep"].any():
        return None
    if table["reason"].str.startswith("index:").all():
        return f"No usable clip: the indexer rejected all {len(table)} files (reasons below)."
    return f"No clip kept: all {len(table)} clips were dropped (first reasons below)."


def binned(values: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """(bins + 3,) counts of `values`: below `lo`, `bins` equal bins over [lo, hi], above `hi`,
    and unmeasured (NaN); each value counted once."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    inner, _ = np.histogram(finite, bins=np.linspace(lo, hi, bins + 1))
    return np.array(
        [(finite < lo).sum(), *inner, (finite > hi).sum(), (~np.isfinite(values)).sum()]
    )


def corpora_in(table: pd.DataFrame) -> list[str]:
    """The registered corpora that have rows in `table`, in `CORPORA` order; a row of an
    unregistered corpus is an error rather than a silent gap in the tables."""
    present = set(table["dataset"])
    unknown = sorted(present - set(DATASETS))
    if unknown:
        raise ValueError(f"rows of unregistered corpora {unknown}; registered: {DATASETS}")
    return [d for d in DATASETS if d in present]


def evenly_spaced(items: list, n: int) -> list:
    """At most n items spread over the whole (sorted) list, deterministically."""
    if len(items) <= n:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]
