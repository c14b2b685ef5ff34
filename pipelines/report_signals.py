"""Report figures of the per-frame signals: predicted emotions (distribution per corpus, and the
confusion against the labels of labelled corpora), the speech-fraction histogram, the A/V
offset histogram per sync backend (unmeasured and out-of-range clips in their own bins), each
with the filter thresholds, and the sync curves of a few kept and dropped clips per corpus."""

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


OFFSET_RANGE = 20
"""Offsets (timeline frames) binned one per frame in ±OFFSET_RANGE; beyond: under/overflow."""
CURVES_PER_CORPUS = 2
"""Sync curves drawn per corpus, of kept clips and of clips the `av_offset` rule drops."""


def speech_offset_figure(table: pd.DataFrame, filters: FilterConfig, out: Path, save) -> Figure:
    """Histograms of speech fraction and, per sync backend, A/V offset over the extracted clips
    with audio; every clip is in a bin (under/overflow, unmeasured)."""
    rows = _with_audio(table)
    speech = rows["speech_fraction"].dropna().to_numpy(dtype=float)
    backends = sorted({b for b in rows["av_sync_backend"].fillna("") if b})
    fig, axes = plt.subplots(1, 1 + max(1, len(backends)), figsize=(6 * (1 + len(backends)), 4))
    axes[0].hist(speech, bins=np.linspace(0, 1, 21), color="tab:blue")
    axes[0].axvline(filters.min_speech_fraction, color="red", ls="--", label="min_speech_fraction")
    axes[0].set_xlabel("speech fraction (Silero VAD ≥ 0.5)")
    axes[0].set_ylabel("clips")
    axes[0].legend()
    notes = []
    for ax, backend in zip(axes[1:], backends, strict=False):
        notes.append(_offset_histogram(ax, rows[rows["av_sync_backend"] == backend], backend,
                                       filters))  # fmt: skip
    if not backends:
        axes[1].text(0.5, 0.5, "no A/V offsets measured", ha="center", va="center")
        axes[1].set_axis_off()
    save(fig, out, "speech_offset.png")
    below = int((speech < filters.min_speech_fraction).sum())
    no_backend = int((rows["av_sync_backend"].fillna("") == "").sum())
    return (
        "speech_offset.png",
        f"Speech fraction of {len(speech)} extracted clips with audio ({below} below "
        f"min_speech_fraction = {filters.min_speech_fraction}), and the A/V offset per sync "
        f"backend (30 fps frames, positive = audio late; dashed: ±max_offset_frames): "
        + "; ".join(notes)
        + (f"; {no_backend} clips with audio have no sync estimate" if no_backend else "")
        + ".",
    )


def _with_audio(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table["status"] == "ok") & table["has_audio"].fillna(False).astype(bool)]


def _drops_for_offset(rows: pd.DataFrame) -> np.ndarray:
    """(N,) bool: the filter's reasons for the clip include `av_offset`."""
    return np.array([r is not None and not isinstance(r, float) and "av_offset" in list(r)
                     for r in rows["reasons"]], dtype=bool)  # fmt: skip


def _offset_histogram(ax, rows: pd.DataFrame, backend: str, filters: FilterConfig) -> str:
    """One backend's offsets: ±OFFSET_RANGE one bin per frame, an underflow and an overflow
    bin, and an unmeasured bin, stacked by the filter's verdict; returns the caption part."""
    limits = filters.av_offset.for_backend(backend)
    offsets = rows["av_offset_frames"].to_numpy(dtype=float)
    confident = rows["av_offset_confidence"].to_numpy(dtype=float) >= limits.min_confidence
    dropped = _drops_for_offset(rows)
    measured = np.isfinite(offsets)
    r = OFFSET_RANGE
    # positions: −r..r, −r−2 underflow, r+2 overflow, r+5 unmeasured
    position = np.where(measured, np.round(np.nan_to_num(offsets)), r + 5)
    position[measured & (offsets < -r - 0.5)] = -r - 2
    position[measured & (offsets > r + 0.5)] = r + 2
    groups = {
        "dropped (av_offset)": dropped,
        f"kept, confidence ≥ {limits.min_confidence}": ~dropped & measured & confident,
        "kept, low confidence": ~dropped & measured & ~confident,
        "unmeasured": ~measured,
    }
    bins = np.arange(-r - 2.5, r + 6.5)
    ax.hist([position[g] for g in groups.values()], bins=bins, stacked=True, label=list(groups),
            color=["tab:red", "tab:green", "tab:olive", "tab:gray"])  # fmt: skip
    if limits.max_offset_frames is not None:
        for x in (-limits.max_offset_frames, limits.max_offset_frames):
            ax.axvline(x, color="red", ls="--")
    ticks = [-r - 2, -r, -r // 2, 0, r // 2, r, r + 2, r + 5]
    ax.set_xticks(ticks, [f"<{-r}", str(-r), str(-r // 2), "0", str(r // 2), str(r), f">{r}",
                          "unmeasured"], rotation=30)  # fmt: skip
    ax.set_xlabel(f"A/V offset ({backend}), frames (positive = audio late)")
    ax.legend(fontsize=8)
    reasons = rows.loc[~measured, "av_sync_reason"].fillna("").replace("", "unknown")
    why = ", ".join(f"{k} {v}" for k, v in reasons.value_counts().sort_index().items())
    return (
        f"{backend}: {len(rows)} clips, {int(measured.sum())} measured "
        f"({int((measured & (np.abs(offsets) > r + 0.5)).sum())} beyond ±{r}, in the outer bins), "
        f"{int((~measured).sum())} unmeasured{f' ({why})' if why else ''}, "
        f"{int(dropped.sum())} dropped for offset (max |offset| {limits.max_offset_frames}, "
        f"confidence ≥ {limits.min_confidence}"
        f"{', lower confidence drops too' if limits.drop_unconfident else ''})"
    )


def sync_curves_figure(table: pd.DataFrame, out: Path, save) -> Figure:
    """The sync curves (score against lag, as the backend stores them) of up to
    CURVES_PER_CORPUS kept clips and as many dropped by `av_offset`, per corpus."""
    rows = _with_audio(table)
    has_curve = [isinstance(c, list | np.ndarray) and len(c) > 0 for c in rows["av_sync_curve"]]
    rows = rows[np.array(has_curve, dtype=bool)]  # a mask even when empty (a [] picks columns)
    rows = rows.assign(dropped=_drops_for_offset(rows)).sort_values("clip_id")
    corpora = corpora_in(rows)
    fig, axes = plt.subplots(max(1, len(corpora)), 1, figsize=(8, 3 * max(1, len(corpora))),
                             squeeze=False)  # fmt: skip
    shown = 0
    for ax, corpus in zip(axes[:, 0], corpora, strict=False):
        part = rows[rows["dataset"] == corpus]
        picks = pd.concat([part[part["keep"].astype(bool)].head(CURVES_PER_CORPUS),
                           part[part["dropped"]].head(CURVES_PER_CORPUS)])  # fmt: skip
        for row in picks.itertuples():
            curve = np.asarray(row.av_sync_curve, dtype=float)
            lags = np.arange(len(curve)) - len(curve) // 2
            reading = (f"{row.av_offset_frames:+.1f} ({row.av_offset_confidence:.2f})"
                       if np.isfinite(row.av_offset_frames) else row.av_sync_reason)  # fmt: skip
            ax.plot(lags, curve, ls="--" if row.dropped else "-",
                    color="tab:red" if row.dropped else None,
                    label=f"{row.clip_id[-28:]} [{row.av_sync_backend}] {reading}"
                    f"{' dropped' if row.dropped else ''}")  # fmt: skip
            shown += 1
        ax.set_title(corpus)
        ax.set_xlabel("lag from the search's centre, backend frames (offline: ≈ the offset)")
        ax.set_ylabel("score")
        ax.legend(fontsize=7)
    if not corpora:
        axes[0, 0].text(0.5, 0.5, "no sync curves", ha="center", va="center")
        axes[0, 0].set_axis_off()
    save(fig, out, "sync_curves.png")
    return (
        "sync_curves.png",
        f"Sync curves of {shown} clips: per corpus up to {CURVES_PER_CORPUS} kept (solid) and "
        f"{CURVES_PER_CORPUS} dropped by the av_offset rule (dashed red), labelled offset "
        "(confidence) or why unmeasured. Offline: held-out R² of the audio→mouth fit at raw "
        "lags −12…+20 of 30 fps, drawn from the centre lag 4 (higher is better; the offset is "
        "the peak minus the mouth lead 4.4). SyncNet: mean distance at lags −15…+15 of 25 fps "
        "(lower is better).",
    )
