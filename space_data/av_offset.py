"""Audio–video offset of a clip from its landmarks and its audio (stats `av_offset_frames`,
`av_offset_confidence`).

A landmark-based estimate, not SyncNet (whose weights cannot be had offline): the mouth's
opening and closing should move with the loudness of speech. On the 30 fps timeline:

- mouth: the inner-lip gap (mean distance of iBUG points 61–67, 62–66, 63–65) divided by the face
  size (`scale`, half the ear-to-ear distance), frame by frame;
- audio: a 300–3000 Hz band (4th-order Butterworth, run forwards and backwards so it adds no
  delay), energy in a window of two frames (1/15 s) centred on k / 30 s, log;
- both smoothed by a Gaussian of `SMOOTH` frames (landmark jitter and single-frame noise), then
  differenced frame to frame: the velocities (raw levels gave worse peaks on the realdata clips);
- both velocities are z-scored over the frames where both exist, and the Pearson correlation is
  taken at every lag L in ±`MAX_LAG` frames: mouth frame t against audio frame t + L. The peak
  lag is refined with a parabola through its neighbours.

Positive = audio late (the sound of frame t arrives at t + L). Mouth movement naturally leads the
sound it makes (articulators move before the acoustic event); measured on the in-sync realdata
talking clips (README: "Emotion, speech and A/V offset") the raw peak sits at `MOUTH_LEAD`
frames, which is subtracted, so an in-sync clip reads about 0.

`av_offset_confidence` = peak correlation − median correlation over all lags (SyncNet's
"confidence" is the same contrast on its distances); 0 when there is less than `MIN_SPEECH_S`
of speech (by `speech` ≥ 0.5) or of frames with a face, so such clips are never dropped for
offset. Limits: lips that barely move (mumbling, profile views, a hand over the mouth), heavy
background sound or music, dubbed or voice-over audio give a flat correlation (low confidence)
or a wrong peak; offsets beyond ±15 frames are not measured.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.ndimage
import scipy.signal

from space_data.audio import frame_centres
from space_data.record import FPS, SAMPLE_RATE

MAX_LAG = 15
"""Largest offset searched, frames (0.5 s)."""
MOUTH_LEAD = 4.0
"""Raw peak lag (frames) on in-sync clips: the mouth moves before the sound it makes."""
SMOOTH = 1.5
"""Gaussian sigma (frames) applied to the gap and the envelope before differencing."""
ENVELOPE_FRAMES = 2
"""Energy window of the envelope, timeline frames."""
MIN_SPEECH_S = 1.0
"""Seconds of speech (and of face) below which the confidence is 0."""
BAND_HZ = (300.0, 3000.0)
"""Pass band of the loudness envelope (speech formants, above most hum and rumble)."""
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
"""Upper/lower inner-lip points (iBUG 68) whose distances make the mouth gap."""


def mouth_gap(lm3d: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(T,) float64 inner-lip gap / face size of (T, 68, 3) crop-pixel landmarks (NaN: no face)."""
    lm = np.asarray(lm3d, dtype=np.float64)[..., :2]
    upper = lm[:, [a for a, _ in INNER_LIP_PAIRS]]
    lower = lm[:, [b for _, b in INNER_LIP_PAIRS]]
    gap = np.linalg.norm(upper - lower, axis=-1).mean(-1)
    return gap / np.asarray(scale, dtype=np.float64)


def speech_envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """(T,) float64 log energy of the 300–3000 Hz band in a 2/30-s window around k / 30 s."""
    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) > 27:  # sosfiltfilt needs a few samples more than its padding
        audio = scipy.signal.sosfiltfilt(_band(), audio)
    half = ENVELOPE_FRAMES * SAMPLE_RATE // FPS // 2
    power = np.concatenate([[0.0], np.cumsum(audio**2)])
    centres = frame_centres(n_frames)
    lo = np.clip(centres - half, 0, len(audio))
    hi = np.clip(centres + half, 0, len(audio))
    energy = (power[hi] - power[lo]) / (2 * half)
    return np.log(energy + 1e-8)


def estimate_offset(
    lm3d: np.ndarray, scale: np.ndarray, audio: np.ndarray, speech: np.ndarray | None = None
) -> tuple[int, float]:
    """(av_offset_frames, av_offset_confidence) of one clip; positive = audio late.

    lm3d (T, 68, 3) and scale (T,) on the 30 fps timeline, audio (S,) 16 kHz mono with sample 0
    at frame 0, speech (T,) probabilities (None: every frame counts as speech).
    """
    lags, corr = lag_correlation(lm3d, scale, audio)
    n = len(scale)
    speech_frames = n if speech is None else int((np.asarray(speech) >= 0.5).sum())
    face_frames = int(np.isfinite(mouth_gap(lm3d, scale)).sum())
    if not np.isfinite(corr).any():
        return 0, 0.0
    best = int(np.nanargmax(corr))
    peak = float(lags[best])
    if 0 < best < len(corr) - 1 and np.isfinite(corr[best - 1 : best + 2]).all():
        a, b, c = corr[best - 1], corr[best], corr[best + 1]
        denom = a - 2 * b + c
        if denom < 0:
            peak += 0.5 * (a - c) / denom
    confidence = float(corr[best] - np.nanmedian(corr))
    if min(speech_frames, face_frames) < MIN_SPEECH_S * FPS:
        confidence = 0.0
    return int(round(peak - MOUTH_LEAD)), confidence


def lag_correlation(
    lm3d: np.ndarray, scale: np.ndarray, audio: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lags −MAX_LAG..MAX_LAG (frames) and the Pearson correlation of mouth-gap velocity at t
    with envelope velocity at t + lag (NaN where fewer than 2 s of frames overlap)."""
    n = len(scale)
    mouth = np.diff(_smooth(mouth_gap(lm3d, scale)))
    sound = np.diff(_smooth(speech_envelope(audio, n)))
    lags = np.arange(-MAX_LAG, MAX_LAG + 1)
    corr = np.full(len(lags), np.nan)
    for i, lag in enumerate(lags):
        m = mouth[max(0, -lag) : len(mouth) - max(0, lag)]
        s = sound[max(0, lag) : len(sound) - max(0, -lag)]
        ok = np.isfinite(m) & np.isfinite(s)
        if ok.sum() < 2 * FPS:
            continue
        m, s = m[ok] - m[ok].mean(), s[ok] - s[ok].mean()
        denom = np.sqrt((m**2).sum() * (s**2).sum())
        corr[i] = (m * s).sum() / denom if denom > 0 else 0.0
    return lags, corr


def _smooth(x: np.ndarray) -> np.ndarray:
    """Gaussian smoothing of (T,) `x` over its finite values; NaN stays NaN (no face)."""
    ok = np.isfinite(x)
    weight = scipy.ndimage.gaussian_filter1d(ok.astype(np.float64), SMOOTH, mode="nearest")
    total = scipy.ndimage.gaussian_filter1d(np.where(ok, x, 0.0), SMOOTH, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, total / weight, np.nan)


@functools.cache
def _band() -> np.ndarray:
    return scipy.signal.butter(4, BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos")
