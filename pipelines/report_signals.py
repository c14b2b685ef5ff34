"""Report figures of the per-frame signals: predicted emotions (distribution per corpus, and the
confusion against the labels of labelled corpora), the speech-fraction histogram and the A/V
offset histogram, each with the filter thresholds."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from pipelines.report_data import corpora_in
from space_data.clip import EMOTIONS
from space_data.filters import FilterConfig
from space_data.record import ClipFeatures

Figure = tuple[str, str]  # (PNG file name, caption)


def clip_emotion(record: ClipFeatures) -> str | None:
    """The clip-level prediction: argmax of `emotion_pred` averaged over frames with a face."""
    pred = record.arrays.get("emotion_pred")
    if pred is None or not np.isfinite(pred).all(1).any():
        return None
    return EMOTIONS[int(np.nanmean(pred, axis=0).argmax())]


def predictions(records: list[ClipFeatures]) -> pd.DataFrame:
    """One row per record with a prediction: dataset, label (None: unlabelled), predicted."""
    rows = [
        {"dataset": r.meta.dataset, "label": r.meta.emotion, "predicted": p}
        for r in records
        if (p := clip_emotion(r)) is not None
    ]
    return pd.DataFrame(rows, columns=["dataset", "label", "predicted"])


def emotion_figures(records: list[ClipFeatures], out: Path, save) -> list[Figure]:
    """Predicted-emotion distribution per corpus, and one confusion matrix per labelled corpus."""
    table = predictions(records)
    figures = []
    fig, ax = plt.subplots(figsize=(8, 4))
    if not table.empty:
        counts = pd.crosstab(table["predicted"], table["dataset"]).reindex(
            index=[e for e in EMOTIONS if e in set(table["predicted"])],
            columns=corpora_in(table),
        )
        counts.plot.bar(ax=ax, rot=45)
    ax.set_title("clip-level predicted emotion per corpus")
    ax.set_ylabel("clips")
    save(fig, out, "emotion_predicted.png")
    figures.append(
        (
            "emotion_predicted.png",
            f"Clip-level emotion predicted by the FER-2013 classifier (argmax of the mean "
            f"per-frame distribution) per corpus, over the {len(table)} kept clips the report "
            "reads. The classifier has no calm or contempt class.",
        )
    )
    labelled = table[table["label"].notna()]
    corpora = corpora_in(labelled)
    if corpora:
        fig, axes = plt.subplots(1, len(corpora), figsize=(6 * len(corpora), 5), squeeze=False)
        notes = []
        for ax, corpus in zip(axes[0], corpora, strict=True):
            part = labelled[labelled["dataset"] == corpus]
            matrix = pd.crosstab(part["label"], part["predicted"]).reindex(
                index=list(EMOTIONS), columns=list(EMOTIONS), fill_value=0
            )
            ax.imshow(matrix.to_numpy(), cmap="Blues")
            for (i, j), v in np.ndenumerate(matrix.to_numpy()):
                if v:
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
            ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=60)
            ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
            accuracy = float((part["label"] == part["predicted"]).mean())
            ax.set_title(f"{corpus}: {accuracy:.0%} of {len(part)} clips")
            ax.set_xlabel("predicted")
            ax.set_ylabel("label")
            notes.append(f"{corpus} {accuracy:.0%} of {len(part)}")
        save(fig, out, "emotion_confusion.png")
        figures.append(
            (
                "emotion_confusion.png",
                "Confusion of the clip-level predicted emotion against the corpus label "
                f"(agreement: {', '.join(notes)}). Calm and contempt can never be predicted.",
            )
        )
    return figures


def speech_offset_figure(table: pd.DataFrame, filters: FilterConfig, out: Path, save) -> Figure:
    """Histograms of speech fraction and A/V offset over the extracted clips with audio."""
    rows = table[(table["status"] == "ok") & table["has_audio"].fillna(False).astype(bool)]
    speech = rows["speech_fraction"].dropna().to_numpy(dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    axes[0].hist(speech, bins=np.linspace(0, 1, 21), color="tab:blue")
    axes[0].axvline(filters.min_speech_fraction, color="red", ls="--", label="min_speech_fraction")
    axes[0].set_xlabel("speech fraction (Silero VAD ≥ 0.5)")
    axes[0].set_ylabel("clips")
    axes[0].legend()
    confident = rows["av_offset_confidence"].to_numpy(dtype=float) >= (
        filters.min_av_offset_confidence
    )
    offsets = rows["av_offset_frames"].to_numpy(dtype=float)
    bins = np.arange(-20.5, 21.5)
    axes[1].hist([offsets[confident], offsets[~confident]], bins=bins, stacked=True,
                 label=["confident", "low confidence (not filtered)"])  # fmt: skip
    if filters.max_av_offset_frames is not None:
        for x in (-filters.max_av_offset_frames, filters.max_av_offset_frames):
            axes[1].axvline(x, color="red", ls="--")
    axes[1].set_xlabel("A/V offset, frames (positive = audio late)")
    axes[1].legend()
    save(fig, out, "speech_offset.png")
    below = int((speech < filters.min_speech_fraction).sum())
    return (
        "speech_offset.png",
        f"Speech fraction of {len(speech)} extracted clips with audio ({below} below "
        f"min_speech_fraction = {filters.min_speech_fraction}), and the landmark-based A/V "
        f"offset ({int(confident.sum())} confident at ≥ {filters.min_av_offset_confidence}; "
        f"dashed: ±max_av_offset_frames = {filters.max_av_offset_frames}).",
    )
