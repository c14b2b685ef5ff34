"""The figures of `space report` (matplotlib, Agg backend): one function per PNG, each
returning its file name and caption."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # files only; no display on build machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipelines.report_data import (  # noqa: E402
    PAPER_ROTATION_SHARES,
    ROTATION_BUCKETS,
    ReportConfig,
    corpora_in,
    evenly_spaced,
    rotation_shares,
)
from pipelines.report_signals import (  # noqa: E402
    emotion_figures,
    speech_offset_figure,
    sync_curves_figure,
)
from space_data.clip import EMOTIONS, SPLITS  # noqa: E402
from space_data.filters import FilterConfig  # noqa: E402
from space_data.record import ClipFeatures  # noqa: E402

Figure = tuple[str, str]  # (PNG file name, caption)


def draw_all(
    table: pd.DataFrame,
    records: list[ClipFeatures],
    config: ReportConfig,
    filters: FilterConfig,
    out: Path,
) -> list[Figure]:
    figures = [
        counts_figure(table, out),
        reasons_figure(table, out),
        pose_figure(records, table, config, out),
        rotation_figure(table, out),
        durations_figure(table, out),
        *emotion_figures(records, out, _save),
        speech_offset_figure(table, filters, out, _save),
        sync_curves_figure(table, out, _save),
    ]
    if config.n_examples:
        figures.append(examples_figure(records, config.n_examples, out))
    return figures


def _save(fig: plt.Figure, out: Path, name: str) -> None:
    fig.tight_layout()
    # fixed metadata: the same data gives the same PNG bytes
    fig.savefig(out / name, dpi=90, metadata={"Software": None})
    plt.close(fig)


def counts_figure(table: pd.DataFrame, out: Path) -> Figure:
    datasets = corpora_in(table)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    kept = table[table["keep"]]
    status = (
        pd.DataFrame(
            {
                "kept": kept["dataset"].value_counts(),
                "dropped": table.loc[~table["keep"], "dataset"].value_counts(),
            }
        )
        .reindex(datasets)
        .fillna(0)
    )
    status.plot.bar(stacked=True, ax=axes[0], color=["tab:green", "tab:gray"], rot=0)
    axes[0].set_title("clips per corpus")
    splits = (
        pd.crosstab(kept["dataset"], kept["split"])
        .reindex(index=datasets, columns=list(SPLITS))
        .fillna(0)
    )
    splits.plot.bar(ax=axes[1], rot=0)
    axes[1].set_title("kept clips per corpus and split")
    order = [e for e in (*EMOTIONS, "unlabelled") if e in set(kept["emotion"])]
    emotions = (
        pd.crosstab(kept["emotion"], kept["dataset"])
        .reindex(index=order, columns=datasets)
        .fillna(0)
    )
    emotions.plot.bar(stacked=True, ax=axes[2], rot=45)
    axes[2].set_title("kept clips per emotion")
    for ax in axes:
        ax.set_xlabel("")
        ax.set_ylabel("clips")
    _save(fig, out, "counts.png")
    return (
        "counts.png",
        "Clips per corpus (kept / dropped), kept clips per split and per emotion label.",
    )


def reasons_figure(table: pd.DataFrame, out: Path) -> Figure:
    dropped = table[~table["keep"]]
    fig, ax = plt.subplots(figsize=(9, 0.4 * max(4, dropped["reason"].nunique()) + 1.5))
    if dropped.empty:
        ax.text(0.5, 0.5, "no clip dropped", ha="center", va="center")
        ax.set_axis_off()
    else:
        counts = pd.crosstab(dropped["reason"], dropped["dataset"]).reindex(
            columns=corpora_in(dropped)
        )
        counts.plot.barh(stacked=True, ax=ax)
        ax.set_xlabel("clips")
        ax.set_ylabel("")
    ax.set_title("drop reasons per corpus (first failing rule)")
    _save(fig, out, "reasons.png")
    return "reasons.png", (
        "Dropped clips by first reason: index:* rejected by the indexer, error:* failed "
        "extraction, the rest by the SPACE filters."
    )


def pose_figure(
    records: list[ClipFeatures], table: pd.DataFrame, config: ReportConfig, out: Path
) -> Figure:
    """Yaw / pitch / roll histograms of every frame of `records`, one outline per corpus."""
    dataset_of = dict(zip(table["clip_id"], table["dataset"], strict=True))
    angles: dict[str, list[np.ndarray]] = {}
    for r in records:
        if "pose" in r.arrays:
            pose = r.arrays["pose"][:, :3]
            angles.setdefault(dataset_of[r.clip_id], []).append(pose[np.isfinite(pose).all(1)])
    bins = np.linspace(-90, 90, config.pose_bins + 1)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5), sharey=True)
    for ax, column, name in zip(axes, range(3), ("yaw", "pitch", "roll"), strict=True):
        for dataset in [d for d in corpora_in(table) if d in angles]:
            frames = np.concatenate(angles[dataset])
            ax.hist(frames[:, column], bins=bins, histtype="step", lw=1.5, label=dataset)
        ax.set_xlabel(f"{name} (degrees)")
    axes[0].set_ylabel("frames")
    if angles:
        axes[0].legend(fontsize=8)
    _save(fig, out, "pose.png")
    n = sum(len(v) for v in angles.values())
    return "pose.png", (
        f"Head yaw / pitch / roll of every frame of {n} kept clips per corpus (30 fps timeline)."
    )


def rotation_figure(table: pd.DataFrame, out: Path) -> Figure:
    test = table[table["keep"] & (table["split"] == "test")]
    ours = rotation_shares(test)
    labels = [label for label, _, _ in ROTATION_BUCKETS]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(x - 0.2, PAPER_ROTATION_SHARES, width=0.4, label="SPACE paper", color="tab:gray")
    ax.bar(x + 0.2, ours, width=0.4, label=f"ours ({len(test)} test clips)", color="tab:orange")
    ax.set_xticks(x, labels)
    ax.set_ylabel("% of test clips")
    ax.set_title("largest head rotation per test clip")
    ax.legend()
    _save(fig, out, "rotation.png")
    return "rotation.png", (
        "Test split: share of kept clips by largest |yaw|, |pitch| or |roll|, beside the SPACE "
        "paper's test set (about 45 / 35 / 20 %)."
    )


def durations_figure(table: pd.DataFrame, out: Path) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    # failed extractions carry empty statistics: their container header says how long they are
    durations = table["duration"].where(table["status"] == "ok", table["header_duration"])
    bins = np.histogram_bin_edges(durations.dropna(), bins=20) if durations.notna().any() else 20
    for name, mask in (("kept", table["keep"]), ("dropped", ~table["keep"])):
        values = durations[mask].dropna()
        if len(values):
            ax.hist(values, bins=bins, alpha=0.6, label=f"{name} ({len(values)})")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("clips")
    ax.legend()
    _save(fig, out, "durations.png")
    return (
        "durations.png",
        "Clip durations (decoded video; container header where extraction failed).",
    )


def examples_figure(records: list[ClipFeatures], n: int, out: Path) -> Figure:
    shown = evenly_spaced([r for r in records if r.frame0 is not None and "lm3d" in r.arrays], n)
    cols = max(1, min(3, len(shown)))
    rows = max(1, -(-len(shown) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, record in zip(axes.flat, shown, strict=False):
        image = cv2.imdecode(np.frombuffer(record.frame0, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        points = record.arrays["lm3d"][0, :, :2]  # crop pixels = frame0 pixels (same crop)
        ax.imshow(image)
        ax.scatter(points[:, 0], points[:, 1], s=6, c="lime")
        ax.set_title(record.clip_id, fontsize=7)
    _save(fig, out, "examples.png")
    return (
        "examples.png",
        "First crop (frame0.jpg) of sample kept clips with the first frame's 68 landmarks.",
    )
