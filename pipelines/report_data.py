"""What the dataset report reads and how it buckets clips: the `report:` section and the
helpers that both the report's tables (report.py) and its figures (report_plots.py) use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from space_data.datasets import DATASETS

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
    """% of `clips` (ClipStats columns) per ROTATION_BUCKETS bucket of the largest |angle|."""
    if clips.empty:
        return [0.0] * len(ROTATION_BUCKETS)
    largest = clips[["max_abs_yaw", "max_abs_pitch", "max_abs_roll"]].max(axis=1).to_numpy()
    return [
        float(100.0 * np.mean((largest >= lo) & (largest < hi))) for _, lo, hi in ROTATION_BUCKETS
    ]


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
