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
    binned,
    corpora_in,
    evenly_spaced,
    rotation_shares,
)
from pipelines.report_signals import emotion_figures, speech_offset_figure  # noqa: E402
from space_data.clip import EMOTIONS, SPLITS  # noqa: E402
from space_data.filters import RULE_REASONS, FilterConfig  # noqa: E402
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
    ]
    if config.n_examples:
        figures.append(examples_figure(records, config.n_examples, out))
    return figures


def _save(fig: plt.Figure, out: Path, name: str) -> None:
    fig.tight_layout()
    # fixed metadata: the same data gives the same PNG bytes
    fig.savefig(out / name, dpi=90, metadata={"Software": None})
    plt.close(fig)


def _bars(frame: pd.DataFrame, ax: plt.Axes, title: str, **kwargs) -> None:
    """`frame.plot.bar(**kwargs)` on `ax`, or a line saying there is nothing to draw."""
    if frame.empty or not frame.to_numpy().any():
        ax.text(0.5, 0.5, "no clip", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
    else:
        frame.plot.bar(ax=ax, **kwargs)
    ax.set_title(title)
    ax.set_xlabel("")
    ax.set_ylabel("clips")


def counts_figure(table: pd.DataFrame, out: Path) -> Figure:
    datasets = corpora_in(table)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    kept = table[table["keep"]]
    status = pd.DataFrame(
        {
            "kept": kept["dataset"].value_counts().reindex(datasets, fill_value=0),
            "dropped": table.loc[~table["keep"], "dataset"]
            .value_counts()
            .reindex(datasets, fill_value=0),
        },
        index=datasets,
    )
    _bars(status, axes[0], "clips per corpus", stacked=True, color=["tab:green", "tab:gray"], rot=0)
    splits = (
        pd.crosstab(kept["dataset"], kept["split"])
        .reindex(index=datasets, columns=list(SPLITS))
        .fillna(0)
    )
    _bars(splits, axes[1], "kept clips per corpus and split", rot=0)
    order = [e for e in (*EMOTIONS, "unlabelled") if e in set(kept["emotion"])]
    emotions = (
        pd.crosstab(kept["emotion"], kept["dataset"])
        .reindex(index=order, columns=[d for d in datasets if d in set(kept["dataset"])])
        .fillna(0)
    )
    _bars(emotions, axes[2], "kept clips per emotion", stacked=True, rot=45)
    _save(fig, out, "counts.png")
    return (
        "counts.png",
        f"Clips per corpus ({len(table)} in all: {len(kept)} kept, "
        f"{len(table) - len(kept)} dropped), kept clips per split and per emotion label.",
    )


def reasons_figure(table: pd.DataFrame, out: Path) -> Figure:
    dropped = table[~table["keep"]]
    hits = pd.DataFrame(
        [(d, r) for d, reasons in zip(table["dataset"], table["reasons"], strict=True)
         for r in reasons if r in RULE_REASONS],
        columns=["dataset", "rule"],
    )  # fmt: skip
    rows = max(4, dropped["reason"].nunique(), len(RULE_REASONS))
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.4 * rows + 1.5))
    for ax, frame, column, title in (
        (axes[0], dropped, "reason", "dropped clips by first reason"),
        (axes[1], hits, "rule", "clips failing each rule (every rule a clip fails)"),
    ):
        if frame.empty:
            ax.text(0.5, 0.5, "no clip", ha="center", va="center")
            ax.set_axis_off()
        else:
            counts = pd.crosstab(frame[column], frame["dataset"]).reindex(columns=corpora_in(frame))
            if column == "rule":
                counts = counts.reindex(index=list(RULE_REASONS), fill_value=0)
            counts.plot.barh(stacked=True, ax=ax)
            ax.set_xlabel("clips")
            ax.set_ylabel("")
        ax.set_title(title)
    _save(fig, out, "reasons.png")
    return "reasons.png", (
        f"Left: the {len(dropped)} dropped clips, each under its first reason (index:* rejected "
        "by the indexer, error:* failed extraction, the rest by the filters). Right: every "
        "filter rule's count, a clip under each rule it fails."
    )


POSE_RANGE = 90.0
"""The pose histograms' range (±degrees); angles beyond fall into the outer bins."""


def pose_figure(
    records: list[ClipFeatures], table: pd.DataFrame, config: ReportConfig, out: Path
) -> Figure:
    """Yaw / pitch / roll histograms of every frame of `records`, one outline per corpus, with
    bins for angles below and above ±90° and for frames without a pose."""
    dataset_of = dict(zip(table["clip_id"], table["dataset"], strict=True))
    angles: dict[str, list[np.ndarray]] = {}
    for r in records:
        if "pose" in r.arrays:
            angles.setdefault(dataset_of[r.clip_id], []).append(r.arrays["pose"][:, :3])
    width = 2 * POSE_RANGE / config.pose_bins
    # the inner bins over ±90°, then one bin each side (beyond) and one for unmeasured frames
    edges = np.linspace(-POSE_RANGE - width, POSE_RANGE + 2 * width, config.pose_bins + 4)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5), sharey=True)
    frames = unmeasured = 0
    for ax, column, name in zip(axes, range(3), ("yaw", "pitch", "roll"), strict=True):
        for dataset in [d for d in corpora_in(table) if d in angles]:
            values = np.concatenate(angles[dataset])[:, column]
            counts = binned(values, -POSE_RANGE, POSE_RANGE, config.pose_bins)
            ax.stairs(counts, edges, lw=1.5, label=dataset)
            if column == 0:
                frames += len(values)
                unmeasured += int(counts[-1])
        for lo, hi in ((edges[0], edges[1]), (edges[-3], edges[-1])):  # the extra bins
            ax.axvspan(lo, hi, color="0.9", zorder=0)
        inner = [-60, -30, 0, 30, 60]
        extra = [edges[i] + width / 2 for i in (0, -3, -2)]  # centres: below, above, n/a
        ticks = [extra[0], *inner, *extra[1:]]
        labels = ["<-90", *map(str, inner), ">90", "n/a"]
        ax.set_xticks(ticks, labels, rotation=90, fontsize=8)
        ax.set_xlabel(f"{name} (degrees)")
    axes[0].set_ylabel("frames")
    if angles:
        axes[0].legend(fontsize=8)
    _save(fig, out, "pose.png")
    n = sum(len(v) for v in angles.values())
    return "pose.png", (
        f"Head yaw / pitch / roll of all {frames} frames (30 fps timeline) of the {n} kept "
        "clips the report reads (report.max_pose_clips), "
        f"one outline per corpus; the outer bins hold angles beyond ±{POSE_RANGE:.0f}°, the "
        f"last bin (n/a) the {unmeasured} frames without a pose (no face)."
    )


def rotation_figure(table: pd.DataFrame, out: Path) -> Figure:
    test = table[table["keep"] & (table["split"] == "test")]
    ours = rotation_shares(test)
    labels = [label for label, _, _ in ROTATION_BUCKETS] + ["n/a"]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    paper = [*PAPER_ROTATION_SHARES, 0.0]
    ax.bar(x - 0.2, paper, width=0.4, label="SPACE paper", color="tab:gray")
    ax.bar(x + 0.2, ours, width=0.4, label=f"ours ({len(test)} test clips)", color="tab:orange")
    ax.set_xticks(x, labels)
    ax.set_ylabel("% of test clips")
    ax.set_title("largest head rotation per test clip")
    ax.legend()
    _save(fig, out, "rotation.png")
    return "rotation.png", (
        f"Test split: share of the {len(test)} kept test clips by largest |yaw|, |pitch| or "
        "|roll| (n/a: no pose measured), beside the SPACE paper's test set (about 45 / 35 / 20 %)."
    )


def durations_figure(table: pd.DataFrame, out: Path) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    # failed extractions carry empty statistics: their container header says how long they are
    durations = table["duration"].where(table["status"] == "ok", table["header_duration"])
    # the bins span every measured duration, so only unmeasured ones need a place: the legend
    bins = np.histogram_bin_edges(durations.dropna(), bins=20) if durations.notna().any() else 20
    for name, mask in (("kept", table["keep"]), ("dropped", ~table["keep"])):
        values = durations[mask].dropna()
        missing = int(mask.sum()) - len(values)
        label = f"{name} ({len(values)}" + (f"; {missing} unmeasured)" if missing else ")")
        if len(values) or missing:
            ax.hist(values, bins=bins, alpha=0.6, label=label)
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("clips")
    if len(table):
        ax.legend()
    _save(fig, out, "durations.png")
    unmeasured = int(durations.isna().sum())
    return (
        "durations.png",
        f"Durations of the {len(table)} clips (decoded video; container header where extraction "
        f"failed); {unmeasured} without either (not probed, never extracted) are counted in the "
        "legend only.",
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
