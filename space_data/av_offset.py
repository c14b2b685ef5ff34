"""Audio–video offset of a clip from its landmarks and its audio (stats `av_offset_frames`,
`av_offset_confidence`).

A landmark-based estimate, not SyncNet (whose weights cannot be had offline): the mouth's
opening and closing should move with the loudness of speech. On the 30 fps timeline:

- mouth: the inner-lip gap (mean distance of iBUG points 61–67, 62–66, 63–65) divided by the face
  size (`scale`, half the ear-to-ear distance), frame by frame;
- audio: a 300–3000 Hz band (4th-order Butterworth, run forwards and backwards so it adds no
  delay), energy in a window of two frames (1/15 s) centred on k / 30 s, log (missing where the
  window reaches past the audio);
- both smoothed by a Gaussian of `SMOOTH` frames (landmark jitter and single-frame noise), then
  differenced frame to frame: the velocities (raw levels gave worse peaks on the realdata clips);
- the mouth velocities are cut into fixed windows of `WINDOW` frames (2 s) every `HOP` frames;
  for each window and every lag L in ±`MAX_LAG` frames the Pearson correlation of the window's
  mouth frames t with the audio frames t + L (z-scored over the pairs where both exist) is taken,
  and the per-window curves are averaged. A window keeps the same mouth frames at every lag, so a
  shifted copy of the audio gives the same curve translated by the shift (correlating the whole
  clip at each lag would compare a different subset of frames per lag). The peak lag is refined
  with a parabola through its neighbours.

Positive = audio late (the sound of frame t arrives at t + L). Mouth movement naturally leads the
sound it makes (articulators move before the acoustic event); measured on the in-sync realdata
talking clips (README: "A/V offset") the raw peak sits at `MOUTH_LEAD` frames, which is
subtracted, so an in-sync clip reads about 0.

`av_offset_confidence` = peak correlation − median correlation over all lags (SyncNet's
"confidence" is the same contrast on its distances); 0 when there is less than `MIN_SPEECH_S`
of speech (by `speech` ≥ 0.5) or of frames with a face, and (offset 0, confidence 0) for clips
of `WINDOW` frames or fewer (2 s: no whole window), so such clips are never dropped for offset.
Limits: lips that barely move (mumbling, profile views, a hand over the mouth), heavy background
sound or music, dubbed or voice-over audio give a flat correlation (low confidence) or a wrong
peak; the curve is periodic at the syllable rate, so a short clip can peak a syllable (~10
frames) away; raw lags beyond ±`MAX_LAG` frames (offsets outside −24..+16) are not measured.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.ndimage
import scipy.signal

from space_data.audio import frame_centres
from space_data.record import FPS, SAMPLE_RATE

MAX_LAG = 20
"""Largest raw lag searched, frames (0.67 s): ±8 and ±12 shifts on top of the mouth lead fit."""
WINDOW = 60
"""Mouth window, frames (2 s): a few syllables, short enough for several windows per clip."""
HOP = 15
"""Step between mouth windows, frames (0.5 s)."""
MOUTH_LEAD = 4.0
"""Raw peak lag (frames) on in-sync clips: the mouth moves before the sound it makes (may 3.6,
interview 4.6: mean 4.1; README "A/V offset")."""
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


def speech_envelope(
    audio: np.ndarray, n_frames: int, band: tuple[float, float] = BAND_HZ
) -> np.ndarray:
    """(T,) float64 log energy of the `band` (Hz; default 300–3000) in a 2/30-s window around
    k / 30 s; NaN where that window is not wholly inside the audio (frame 0, audio shorter than
    the video)."""
    audio = np.asarray(audio, dtype=np.float64)
    if len(audio) > 27:  # sosfiltfilt needs a few samples more than its padding
        audio = scipy.signal.sosfiltfilt(_band(band), audio)
    half = ENVELOPE_FRAMES * SAMPLE_RATE // FPS // 2
    power = np.concatenate([[0.0], np.cumsum(audio**2)])
    centres = frame_centres(n_frames)
    lo = np.clip(centres - half, 0, len(audio))
    hi = np.clip(centres + half, 0, len(audio))
    energy = (power[hi] - power[lo]) / (2 * half)
    # a window reaching past either end of the audio has no level: NaN, not a step to silence
    return np.where(hi - lo == 2 * half, np.log(energy + 1e-8), np.nan)


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
    peak, confidence = peak_lag(lags, corr)
    if min(speech_frames, face_frames) < MIN_SPEECH_S * FPS:
        confidence = 0.0
    return int(round(peak - MOUTH_LEAD)), confidence


def peak_lag(lags: np.ndarray, corr: np.ndarray) -> tuple[float, float]:
    """(raw peak lag in frames, refined by a parabola through its neighbours; peak − median of
    `corr`) of a curve over integer `lags` with at least one finite value."""
    best = int(np.nanargmax(corr))
    peak = float(lags[best])
    if 0 < best < len(corr) - 1 and np.isfinite(corr[best - 1 : best + 2]).all():
        a, b, c = corr[best - 1], corr[best], corr[best + 1]
        denom = a - 2 * b + c
        if denom < 0:
            peak += 0.5 * (a - c) / denom
    return peak, float(corr[best] - np.nanmedian(corr))


def lag_correlation(
    lm3d: np.ndarray, scale: np.ndarray, audio: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lags −MAX_LAG..MAX_LAG (frames) and the correlation curve: the mean over mouth windows of
    the Pearson correlation of mouth-gap velocity at t with envelope velocity at t + lag.

    All NaN when no window has a face in half its frames (clips of `WINDOW` frames or fewer
    have no window at all).
    """
    n = len(scale)
    mouth = np.diff(smooth(mouth_gap(lm3d, scale)))
    sound = np.diff(smooth(speech_envelope(audio, n)))
    lags = np.arange(-MAX_LAG, MAX_LAG + 1)
    padded = np.pad(sound, MAX_LAG, constant_values=np.nan)  # audio beyond the clip: missing
    curves = []
    for start in range(0, len(mouth) - WINDOW + 1, HOP):
        m = mouth[start : start + WINDOW]
        if np.isfinite(m).sum() < WINDOW // 2:
            continue
        rows = start + MAX_LAG + lags[:, None] + np.arange(WINDOW)  # (lags, WINDOW) into padded
        curves.append(_pearson_rows(np.broadcast_to(m, rows.shape), padded[rows]))
    if not curves:
        return lags, np.full(len(lags), np.nan)
    stacked = np.array(curves)  # (windows, lags)
    counts = np.isfinite(stacked).sum(0)
    total = np.nansum(stacked, 0)
    with np.errstate(invalid="ignore"):
        return lags, np.where(counts > 0, total / counts, np.nan)


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(R,) Pearson correlation of each row of (R, N) `x` and `y` over the pairs where both are
    finite; NaN with fewer than WINDOW / 2 pairs, 0 where either is constant."""
    ok = np.isfinite(x) & np.isfinite(y)
    count = ok.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(ok, x - np.where(ok, x, 0.0).sum(1, keepdims=True) / count[:, None], 0.0)
        y = np.where(ok, y - np.where(ok, y, 0.0).sum(1, keepdims=True) / count[:, None], 0.0)
        denom = np.sqrt((x**2).sum(1) * (y**2).sum(1))
        r = np.where(denom > 0, (x * y).sum(1) / denom, 0.0)
    return np.where(count >= WINDOW // 2, r, np.nan)


def smooth(x: np.ndarray) -> np.ndarray:
    """Gaussian smoothing of (T,) `x` over its finite values; NaN stays NaN (no face)."""
    ok = np.isfinite(x)
    weight = scipy.ndimage.gaussian_filter1d(ok.astype(np.float64), SMOOTH, mode="nearest")
    total = scipy.ndimage.gaussian_filter1d(np.where(ok, x, 0.0), SMOOTH, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, total / weight, np.nan)


@functools.cache
def _band(band: tuple[float, float]) -> np.ndarray:
    return scipy.signal.butter(4, band, btype="bandpass", fs=SAMPLE_RATE, output="sos")
