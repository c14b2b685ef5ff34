"""The report's A/V offset histogram and sync curves (pipelines/report_signals.py): every clip
with audio is in a bin of its backend's histogram (out-of-range and unmeasured included), and
the caption counts what the figure shows."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pipelines.report_signals import OFFSET_RANGE, speech_offset_figure, sync_curves_figure  # noqa: E402
from space_data.filters import FilterConfig  # noqa: E402

CURVE = list(np.cos(np.linspace(-3, 3, 33)))


def _row(clip_id, backend, offset, confidence, reason="", dropped=False, dataset="mead"):
    return {
        "clip_id": clip_id, "dataset": dataset, "status": "ok", "has_audio": True,
        "keep": not dropped, "reasons": ["av_offset"] if dropped else [],
        "speech_fraction": 0.8, "av_offset_frames": offset, "av_offset_confidence": confidence,
        "av_sync_backend": backend, "av_sync_curve": CURVE if backend else [],
        "av_sync_reason": reason,
    }  # fmt: skip


def _table() -> pd.DataFrame:
    nan = math.nan
    return pd.DataFrame([
        _row("a", "offline", 0.4, 0.9),
        _row("b", "offline", -9.6, 0.95, dropped=True),
        _row("c", "offline", 3.0, 0.2),  # low confidence, kept
        _row("d", "offline", 35.0, 0.9, dropped=True),  # overflow
        _row("e", "offline", -OFFSET_RANGE - 4.0, 0.1),  # underflow
        _row("f", "offline", nan, 0.0, "flat"),
        _row("g", "offline", nan, 0.0, "no_speech", dataset="ravdess"),
        _row("h", "syncnet", 1.2, 7.5, dataset="ravdess"),
        _row("i", "syncnet", nan, 0.0, "too_short", dataset="ravdess"),
        _row("j", "", nan, 0.0),  # no backend ran
        {**_row("k", "offline", 1.0, 0.9), "has_audio": False},  # not in the figure
    ])  # fmt: skip


def test_offset_histogram_shows_every_clip_per_backend(tmp_path):
    figures = {}

    def save(fig, out, name):
        figures[name] = fig

    name, caption = speech_offset_figure(_table(), FilterConfig(), tmp_path, save)
    fig = figures[name]
    speech_ax, offline_ax, syncnet_ax = fig.axes[:3]
    for ax, expected in ((offline_ax, 7), (syncnet_ax, 2)):
        heights = sum(p.get_height() for p in ax.patches)  # stacked: each clip once
        assert heights == expected, ax.get_xlabel()
    # the outer bins hold the out-of-range clips, the last one the unmeasured
    centres = {round(p.get_x() + p.get_width() / 2): 0 for p in offline_ax.patches}
    for p in offline_ax.patches:
        centres[round(p.get_x() + p.get_width() / 2)] += p.get_height()
    r = OFFSET_RANGE
    assert (centres[-r - 2], centres[r + 2], centres[r + 5]) == (1, 1, 2)
    # the thresholds are drawn: ±max_offset_frames of each backend
    limits = FilterConfig().av_offset
    xs = sorted(line.get_xdata()[0] for line in offline_ax.lines)
    assert xs == [-limits.offline.max_offset_frames, limits.offline.max_offset_frames]
    assert "offline: 7 clips, 5 measured (2 beyond ±20" in caption
    assert "2 unmeasured (flat 1, no_speech 1)" in caption
    assert "2 dropped for offset" in caption and "syncnet: 2 clips, 1 measured" in caption
    assert "1 clips with audio have no sync estimate" in caption
    plt.close("all")


def test_sync_curves_per_corpus_kept_and_dropped(tmp_path):
    figures = {}
    name, caption = sync_curves_figure(_table(), tmp_path, lambda f, o, n: figures.update({n: f}))
    axes = figures[name].axes
    assert [ax.get_title() for ax in axes] == ["mead", "ravdess"]
    mead = [line.get_label() for line in axes[0].lines]
    assert len(mead) == 4 and sum("dropped" in label for label in mead) == 2
    assert "Sync curves of 6 clips" in caption
    plt.close("all")
