"""SPACE's clip filters: small rules over `ClipStats` that return None (keep) or a reason.

The rules run in the fixed order of `RULES`; `filter_clip` returns every reason that applies
(first = the one reports count). `filter_clips` joins the manifest with the extraction table
(`data/features/clips.parquet`) and gives one decision per manifest clip, so rejections made
earlier in the pipeline stay visible as reasons too:

- `index:<reason>`: the indexer rejected the file (excluded view, song, bad name, ...);
- `error:<reason>`: extraction failed (unreadable file, no frames, no audio, ...), or the clip
  has no extraction row at all (`error:not_extracted`);
- then the rules: `truncated`, `rotation`, `hands`, `no_face`, `cut`, `zoom`, `too_short`,
  `av_mismatch`, `no_speech`, `av_offset`.

Order matters only for the first reason (the one reports count): a cause comes before its
symptoms. A file whose decoding ended early is `truncated` whatever else it shows (its audio
usually outlasts the video, an `av_mismatch`). A head turned past the limit loses the face
detector, so `rotation` precedes `no_face`; hands over the face hide it and make the
landmarks jump, so `hands` precedes `no_face` and `cut`; a shot change often loses the face
for a frame or two, so a few face-less frames are tolerated (`max_no_face_frames`) and the
jump across such a gap still reads as a `cut`. `av_offset` comes last: without speech there
is no offset to trust.

Filtering reads only the statistics table, never video, so changing a threshold is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import pandas as pd

from space_data.record import ClipStats
from space_data.sync_estimate import BACKENDS


@dataclass
class SyncThresholds:
    """When the `av_offset` rule drops a clip whose offset one sync backend measured."""

    max_offset_frames: float | None
    """Largest |offset| kept, timeline frames (1/30 s); None disables the rule for this backend."""
    min_confidence: float
    """Confidence (the backend's scale) from which an offset is trusted."""
    drop_unconfident: bool = False
    """Also drop a measured offset below `min_confidence` (SyncNet practice: low confidence
    means no synchronised talking face); False: such an offset is simply not trusted."""


@dataclass
class AvOffsetConfig:
    """The `av_offset` rule's thresholds per sync backend (`stats.av_sync_backend`); an
    unmeasured offset (NaN) never drops."""

    offline: SyncThresholds = field(default_factory=lambda: SyncThresholds(6.0, 0.7))
    """`space_data.av_offset`: bootstrap agreement 0–1 (calibrated: docs/signals.md)."""
    syncnet: SyncThresholds = field(default_factory=lambda: SyncThresholds(7.2, 3.0, True))
    """SyncNet: median − min distance. LatentSync's data pipeline keeps conf ≥ 3 and |offset|
    ≤ 6 frames at 25 fps (= 7.2 timeline frames)."""

    def for_backend(self, backend: str) -> SyncThresholds:
        if backend not in BACKENDS:
            raise ValueError(f"no av_offset thresholds for sync backend {backend!r}")
        return getattr(self, backend)


@dataclass
class FilterConfig:
    """Thresholds of the SPACE filters; how each default was calibrated: docs/filters.md."""

    drop_truncated: bool = True
    """Drop a file whose decoding ended before the container's promised end (`truncated`)."""
    max_no_face_frames: int = 3
    """Frames (30 fps timeline) without a detected face a kept clip may have (SPACE: 0)."""
    max_jump: float = 0.4
    """Largest landmark jump between consecutive native face frames, in face sizes; above: `cut`."""
    max_histogram_jump: float = 0.2
    """Largest colour-histogram change between consecutive native frames (0–1); above: `cut`."""
    max_rotation_deg: float = 45.0
    """Largest |yaw|, |pitch| or |roll| in degrees (SPACE: 45)."""
    max_zoom: float = 0.4
    """Largest face-scale range (max − min) / median; above it is a `zoom`."""
    min_hand_span: float | None = 0.4
    """Seconds of consecutive hand samples at the face (`hand_span`) that make a clip `hands`:
    MediaPipe's false hands on hand-free sample-corpus faces span up to 0.3 s, real hands at
    the face 0.7 s and more (docs/filters.md); None disables."""
    min_duration: float = 1.0
    """Shortest kept clip in seconds."""
    max_av_mismatch: float | None = 0.5
    """Largest |audio − video duration| in seconds; None disables the check."""
    min_speech_fraction: float = 0.2
    """Smallest share of frames with speech (Silero VAD ≥ 0.5) a kept clip may have
    (calibrated: docs/signals.md)."""
    av_offset: AvOffsetConfig = field(default_factory=AvOffsetConfig)
    """Thresholds of the `av_offset` rule per sync backend."""

    def __post_init__(self) -> None:
        if self.max_no_face_frames < 0:
            raise ValueError(f"max_no_face_frames must be >= 0, not {self.max_no_face_frames}")
        if self.min_hand_span is not None and self.min_hand_span < 0.0:
            raise ValueError(f"min_hand_span must be >= 0 or null, not {self.min_hand_span}")
        if not 0.0 < self.max_rotation_deg <= 180.0:
            raise ValueError(f"max_rotation_deg must lie in (0, 180], not {self.max_rotation_deg}")
        for name in ("max_jump", "max_histogram_jump", "max_zoom"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")
        if self.min_duration < 0.0:
            raise ValueError(f"min_duration must be >= 0, not {self.min_duration}")
        if self.max_av_mismatch is not None and self.max_av_mismatch < 0.0:
            raise ValueError(f"max_av_mismatch must be >= 0 or null, not {self.max_av_mismatch}")
        if not 0.0 <= self.min_speech_fraction <= 1.0:
            raise ValueError(
                f"min_speech_fraction must lie in [0, 1], not {self.min_speech_fraction}"
            )
        for backend in BACKENDS:
            limit = self.av_offset.for_backend(backend).max_offset_frames
            if limit is not None and limit < 0:
                raise ValueError(
                    f"av_offset.{backend}.max_offset_frames must be >= 0 or null, not {limit}"
                )


Rule = Callable[[ClipStats, FilterConfig], "str | None"]


def truncated(s: ClipStats, c: FilterConfig) -> str | None:
    """A damaged file: what decoded is only part of the clip (and may end mid-word)."""
    return "truncated" if c.drop_truncated and s.truncated else None


def no_face(s: ClipStats, c: FilterConfig) -> str | None:
    """A frame without a face: nothing to learn from there, and the crop may have lost the face."""
    return "no_face" if s.frames_no_face > c.max_no_face_frames else None


def cut(s: ClipStats, c: FilterConfig) -> str | None:
    """A shot change, seen by either cue between two native frames: a landmark jump no head
    makes in one frame (a jump cut, or a tracker switching faces), or a colour change no
    head motion makes (a cut to another person or scene, even one framed like the first)."""
    geometry = _above(s.max_landmark_jump, c.max_jump)
    appearance = _above(s.max_histogram_jump, c.max_histogram_jump)
    return "cut" if geometry or appearance else None


def rotation(s: ClipStats, c: FilterConfig) -> str | None:
    """A head turned beyond the limit on any axis (landmarks and frontalization degrade)."""
    angles = (s.max_abs_yaw, s.max_abs_pitch, s.max_abs_roll)
    return "rotation" if any(_above(a, c.max_rotation_deg) for a in angles) else None


def zoom(s: ClipStats, c: FilterConfig) -> str | None:
    """The face grows or shrinks a lot: a camera zoom or the speaker walking to/from the camera."""
    if not s.scale_median > 0.0:
        return None
    spread = (s.scale_max - s.scale_min) / s.scale_median
    return "zoom" if _above(spread, c.max_zoom) else None


def hands(s: ClipStats, c: FilterConfig) -> str | None:
    """A hand at the face occludes it and moves landmarks that speech did not move.

    A span, not a share: a hand that stays at the face for a moment (on consecutive samples)
    drops the clip, hands elsewhere in the picture (in the lap, holding a cup) do not, nor does
    one sample alone (MediaPipe's occasional false hand on a face).
    """
    if c.min_hand_span is None or s.hand_frames == 0:
        return None
    return "hands" if s.hand_span >= c.min_hand_span else None


def too_short(s: ClipStats, c: FilterConfig) -> str | None:
    return "too_short" if s.duration < c.min_duration else None


def av_mismatch(s: ClipStats, c: FilterConfig) -> str | None:
    """Audio and video of very different length cannot be aligned frame by frame."""
    if c.max_av_mismatch is None or not s.has_audio:
        return None
    return "av_mismatch" if abs(s.av_mismatch) > c.max_av_mismatch else None


def no_speech(s: ClipStats, c: FilterConfig) -> str | None:
    """Silence, noise or music: nothing for speech-driven models to learn (no audio: not judged
    here, `extract.require_audio` decides)."""
    if not s.has_audio or math.isnan(s.speech_fraction):
        return None
    return "no_speech" if s.speech_fraction < c.min_speech_fraction else None


def av_offset(s: ClipStats, c: FilterConfig) -> str | None:
    """Audio out of sync with the lips, by the thresholds of the backend that measured it. An
    unmeasured offset (NaN: no speech, no face, a flat, weak or edge-peaked curve) never drops."""
    if not s.av_sync_backend or math.isnan(s.av_offset_frames):
        return None
    t = c.av_offset.for_backend(s.av_sync_backend)
    if t.max_offset_frames is None:
        return None
    if s.av_offset_confidence < t.min_confidence:
        return "av_offset" if t.drop_unconfident else None
    return "av_offset" if abs(s.av_offset_frames) > t.max_offset_frames else None


RULES: tuple[Rule, ...] = (
    truncated,
    rotation,
    hands,
    no_face,
    cut,
    zoom,
    too_short,
    av_mismatch,
    no_speech,
    av_offset,
)
"""The rules in the order they are reported; the first reason is the one counted."""
RULE_REASONS: tuple[str, ...] = tuple(r.__name__ for r in RULES)


def filter_clip(stats: ClipStats, config: FilterConfig) -> list[str]:
    """Every reason that drops the clip, in `RULES` order; empty means keep."""
    return [reason for rule in RULES if (reason := rule(stats, config)) is not None]


KEEP_COLUMNS = ("clip_id", "dataset", "path", "split", "keep", "reason", "reasons", "detail")


def filter_clips(manifest: pd.DataFrame, clips: pd.DataFrame, config: FilterConfig) -> pd.DataFrame:
    """One decision per manifest row: columns `KEEP_COLUMNS`, rows in manifest order.

    `manifest` has the `Clip` columns (`data/manifest.parquet`); `clips` has one row per
    extracted clip with `status`, `reason` and the `ClipStats` columns (`clips.parquet`).
    `reason` is the first reason (None when kept), `reasons` all of them (a list of str),
    `detail` what exactly is wrong: the indexer's detail or the extraction error message.
    """
    # column-wise access (Python scalars from `tolist`), decisions collected as columns: a
    # million clips in seconds and well under 2 GiB, where per-row dicts cost minutes and GiBs
    row_of = {clip_id: i for i, clip_id in enumerate(clips["clip_id"].tolist())}
    status, error = clips["status"].tolist(), clips["reason"].tolist()
    stat_names = [f.name for f in fields(ClipStats) if f.name in clips.columns]
    # numpy columns, not lists: 20 million Python numbers would cost ~0.6 GiB at 1M clips
    stat_columns = [clips[name].to_numpy() for name in stat_names]
    n = len(manifest)
    ids = manifest["clip_id"].tolist()
    index_reasons = manifest["reason"].tolist()
    index_details = manifest["detail"].tolist() if "detail" in manifest else [None] * n
    keep, first, every, details = [], [], [], []
    for clip_id, index_reason, index_detail in zip(ids, index_reasons, index_details, strict=True):
        detail = None
        i = row_of.get(clip_id)
        if _present(index_reason):
            reasons = [f"index:{index_reason}"]
            detail = index_detail if _present(index_detail) else None
        elif i is None:
            reasons = ["error:not_extracted"]
        elif status[i] != "ok":
            message = error[i] if _present(error[i]) else "unknown"
            code, _, detail = str(message).partition(":")
            reasons = [f"error:{code.strip() or 'unknown'}"]
            detail = detail.strip() or None
        else:
            values = [column[i] for column in stat_columns]  # numpy scalars: rules compare
            reasons = filter_clip(ClipStats(**dict(zip(stat_names, values, strict=True))), config)
        keep.append(not reasons)
        first.append(reasons[0] if reasons else None)
        every.append(reasons)
        details.append(detail)
    columns = {
        "clip_id": ids,
        "dataset": manifest["dataset"].tolist(),
        "path": manifest["path"].tolist(),
        "split": [s if _present(s) else None for s in manifest["split"].tolist()],
        "keep": keep,
        "reason": first,
        "reasons": every,
        "detail": details,
    }
    return pd.DataFrame(columns, columns=list(KEEP_COLUMNS))


def _above(value: float, limit: float) -> bool:
    # NaN means "not measured" (e.g. no face anywhere); no_face reports that case.
    return not math.isnan(value) and value > limit


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))
