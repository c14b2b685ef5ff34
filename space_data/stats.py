"""Per-clip filter statistics (`ClipStats`): the 30 fps tracks, plus two cut cues measured
between consecutive NATIVE frames.

Filters read only these numbers, so thresholds can change without touching video again.
Face size is the pose fit's `scale`: crop pixels per canonical unit, i.e. half the ear-to-ear
distance (canonical landmarks 0 and 16 are 2 apart), which does not shrink when the head turns.

Cuts are measured before any resampling: linear interpolation onto the 30 fps timeline spreads
a hard cut of a 25 fps video over two timeline frames (a jump of 0.17 → 0.10 depending on where
the cut falls), while between two native frames it is one jump whatever the rate or phase.
Two cues: the landmark jump (geometry: the face moved more than a head can in one frame) and
the colour-histogram change (appearance: the picture changed, as PySceneDetect's content
detector), which also sees a cut between two similar framings of similar faces.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from space_data.record import SAMPLE_RATE, ClipStats
from space_data.sync_estimate import SyncEstimate
from space_data.vad import speech_fraction


def landmark_jumps(lm3d: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Mean image-plane landmark displacement between successive face frames / face size.

    lm3d (T, 68, 3) crop pixels, scale (T,) → (F − 1,) float64 for the F frames with a face,
    in order: frames without a face are bridged, so a cut during which the tracker briefly
    loses the face still shows as one jump. Only x, y count: z is the landmarker's relative
    depth, not an observed position. The face size of a pair is the mean of its two scales.
    """
    lm = np.asarray(lm3d, dtype=np.float64)[..., :2]
    size = np.asarray(scale, dtype=np.float64)
    valid = np.isfinite(lm).all((1, 2)) & np.isfinite(size) & (size > 0)
    lm, size = lm[valid], size[valid]
    step = np.linalg.norm(np.diff(lm, axis=0), axis=-1).mean(-1)
    return step / (0.5 * (size[1:] + size[:-1]))


HISTOGRAM_BINS = (8, 4, 4)
"""Hue, saturation, value bins of `colour_histogram` (OpenCV HSV: hue 0–180, the others 0–255)."""
HISTOGRAM_SIDE = 64
"""About this many pixels per side are sampled (a strided view: no resize cost)."""


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """Joint HSV histogram of an (H, W, 3) uint8 RGB image → (128,) float32 summing to 1.

    Pixels are taken on a regular grid of about HISTOGRAM_SIDE² points: a histogram is a
    statistic of the whole picture, and a 512² crop sampled every 8th pixel gives the same one.
    Pixels in the lowest saturation bin all count as hue 0: the hue of a near-grey pixel is
    noise, and a codec's keyframe "pop" (measured on FLV1 at 12-frame GOPs) swings it enough to
    move a quarter of a face crop's mass between hue bins, which read as a cut.
    """
    step = max(1, min(rgb.shape[:2]) // HISTOGRAM_SIDE)
    small = np.ascontiguousarray(rgb[::step, ::step])
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hsv[..., 0][hsv[..., 1] < 256 // HISTOGRAM_BINS[1]] = 0
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HISTOGRAM_BINS), [0, 180, 0, 256, 0, 256])
    return (hist.reshape(-1) / (small.shape[0] * small.shape[1])).astype(np.float32)


def histogram_jumps(histograms: np.ndarray) -> np.ndarray:
    """Total-variation distance between consecutive histograms: (N, B) → (N − 1,) in [0, 1].

    0: the same colours; 1: no colour in common (half the L1 distance of two distributions).
    """
    h = np.asarray(histograms, dtype=np.float64)
    return 0.5 * np.abs(np.diff(h, axis=0)).sum(-1)


def compute_stats(
    *,
    face: np.ndarray,
    pose: np.ndarray,
    scale: np.ndarray,
    hands: np.ndarray,
    native_lm68: np.ndarray,
    native_scale: np.ndarray,
    histograms: np.ndarray,
    duration: float,
    native_fps: float,
    decoded_frames: int,
    truncated: bool,
    audio_samples: int | None,
    speech: np.ndarray | None = None,
    av_sync: SyncEstimate | None = None,
) -> ClipStats:
    """ClipStats of one clip.

    face, hands (T,) uint8; pose (T, 6) degrees first; scale (T,), all on the 30 fps
    timeline. The cut cues come from the N native frames: native_lm68 (N, 68, 3)
    crop pixels (NaN without a face), native_scale (N,) their face sizes, histograms (N, B)
    `colour_histogram`s of the crops. duration: seconds of video that decoded; audio_samples:
    decoded 16 kHz samples, None when the clip has no audio; speech (T,) speech probabilities
    (None without audio); av_sync the clip's A/V offset from its sync backend (None:
    unmeasured, offline).
    """
    has_face = np.asarray(face, dtype=bool)
    angles = np.abs(np.asarray(pose, dtype=np.float64)[has_face, :3])
    scales = np.asarray(scale, dtype=np.float64)[has_face]
    scales = scales[np.isfinite(scales)]
    jumps = landmark_jumps(native_lm68, native_scale)
    jumps = jumps[np.isfinite(jumps)]
    colour = histogram_jumps(histograms)
    audio_duration = 0.0 if audio_samples is None else audio_samples / SAMPLE_RATE
    if av_sync is None:
        av_sync = SyncEstimate.unmeasured("offline", "not estimated")
    return ClipStats(
        n_frames=int(has_face.size),
        duration=float(duration),
        native_fps=float(native_fps),
        decoded_frames=int(decoded_frames),
        truncated=bool(truncated),
        frames_no_face=int((~has_face).sum()),
        max_abs_yaw=_nanmax(angles[:, 0]),
        max_abs_pitch=_nanmax(angles[:, 1]),
        max_abs_roll=_nanmax(angles[:, 2]),
        scale_min=float(scales.min()) if scales.size else math.nan,
        scale_max=float(scales.max()) if scales.size else math.nan,
        scale_median=float(np.median(scales)) if scales.size else math.nan,
        max_landmark_jump=float(jumps.max()) if jumps.size else math.nan,
        max_histogram_jump=float(colour.max()) if colour.size else math.nan,
        hand_frames=int(np.count_nonzero(hands)),
        has_audio=audio_samples is not None,
        audio_duration=float(audio_duration),
        av_mismatch=0.0 if audio_samples is None else float(audio_duration - duration),
        speech_fraction=math.nan if speech is None else speech_fraction(speech),
        av_offset_frames=float(av_sync.offset_frames),
        av_offset_confidence=float(av_sync.confidence),
        av_sync_backend=av_sync.backend,
        av_sync_curve=[float(x) for x in av_sync.curve],
    )


def _nanmax(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else math.nan
