"""The offline A/V sync backend: a clip's audio–video offset from its landmarks and its audio,
with a confidence that says how sure it is, and "unmeasured" when it cannot tell.

No model and no weights: for every candidate lag L the clip itself teaches a ridge regression
from its audio to its mouth, and the lag whose mapping best predicts held-out frames wins.

- mouth (T, 4): inner-lip gap (iBUG 61–67, 62–66, 63–65), outer-lip gap (50–58, 51–57, 52–56),
  mouth width (48–54) and jaw opening (8–27), each / face size (`scale`), smoothed (Gaussian
  σ `SMOOTH` frames) and high-passed (minus a Gaussian of σ `HIGH_PASS` frames: head motion and
  slow posture changes are not speech), z-scored;
- audio (Ta, 13): MFCCs of 512-sample windows centred on the 30 fps timeline (`mfcc_track`),
  over the whole audio, high-passed the same way (a channel's colour is not speech);
- at lag L, mouth frame t is predicted from the audio frames t + L − `CONTEXT` … t + L +
  `CONTEXT` (65 features) by ridge regression (λ = `RIDGE` × training frames; features
  z-scored per lag over the clip's frames, which uses no mouth value), fitted and scored in
  `FOLDS` contiguous folds: each frame is predicted by a model that never saw it. Every lag
  uses the same mouth frames (those whose audio context exists at every lag of the search), so
  the scores compare like with like, and a shifted copy of the audio translates the curve;
- the curve (`SyncEstimate.curve`): held-out R² (1 − squared error / variance, summed over the
  four mouth features) at raw lags −`MAX_LAG` … +`MAX_LAG` frames, in that order (index i is
  lag i − `MAX_LAG`). The peak (refined by a parabola through its neighbours) minus
  `MOUTH_LEAD` is the offset in timeline frames, positive = audio late (the sound of mouth
  frame t arrives at t + offset): the mouth moves before the sound it makes, and on in-sync
  real talking clips the peak sits `MOUTH_LEAD` frames after the mouth;
- confidence: a block bootstrap over the held-out errors (blocks of `BLOCK` frames drawn with
  replacement, `BOOTSTRAPS` times, fixed seed): the share of resampled curves whose peak lies
  within ±`TOLERANCE` frames of the clip's peak. A probability-like number in [0, 1]: how often
  the same clip, its seconds weighted differently, points at the same offset; a curve with two
  near-equal peaks a syllable apart scores about the share of the taller one.

Unmeasured (`SyncEstimate.unmeasured`: offset NaN, confidence 0, a reason) instead of a guess:
`no_speech` (under `MIN_SPEECH_S` of frames with speech ≥ 0.5), `no_face` (under `MIN_FRAMES`
frames with a face), `too_short` (under `MIN_FRAMES` mouth frames whose audio context exists
at every lag: a clip needs about 2 · (MAX_LAG + CONTEXT) + MIN_FRAMES frames, 3.5 s), `flat`
(the best held-out R² below `MIN_FIT`: the audio does not predict this mouth at any lag —
silence, music, a dubbed voice, lips that do not move, a mis-tracked face) and `edge` (the peak
at the first or last lag: the true offset may lie beyond the search, ±(MAX_LAG − MOUTH_LEAD)).

Measured (docs/signals.md, `python -m scripts.av_offset_check`) on the realdata talking clips
and their copies with audio shifted by ±8 and ±12 frames, and on the sample corpus.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
from threadpoolctl import threadpool_limits

from space_data.audio import AudioConfig, mfcc_track
from space_data.record import FPS, SAMPLE_RATE
from space_data.sync_estimate import SyncEstimate

BACKEND = "offline"
"""This backend's name in `SyncEstimate.backend` and `ClipStats.av_sync_backend`."""
MAX_LAG = 20
"""Largest raw lag searched, frames (0.67 s): ±12-frame offsets on top of the mouth lead fit."""
CONTEXT = 2
"""Audio frames on each side of the lagged frame that predict one mouth frame (5 in all)."""
MOUTH_LEAD = 4.4
"""Raw peak lag (frames) on in-sync real clips: the mouth moves before the sound it makes
(frontal_talking_may 4.7, interview_talking 5.0, voxceleb2_style_224_frontal 3.6; mean 4.4)."""
SMOOTH = 1.0
"""Gaussian σ (frames) against landmark jitter."""
HIGH_PASS = 8.0
"""Gaussian σ (frames) of the slow part removed from mouth and audio features."""
RIDGE = 3.0
"""Ridge penalty per training frame (z-scored features)."""
FOLDS = 5
"""Contiguous folds of the held-out fit."""
BLOCK = 15
"""Frames per bootstrap block (0.5 s: neighbouring errors are correlated)."""
BOOTSTRAPS = 500
"""Bootstrap resamples of the confidence."""
TOLERANCE = 2
"""A resampled peak within this many frames of the clip's peak agrees with it."""
MIN_FRAMES = 60
"""Mouth frames (2 s) below which the clip is `too_short` (or `no_face`)."""
MIN_SPEECH_S = 1.0
"""Seconds of speech below which the clip is `no_speech`."""
MIN_FIT = 0.05
"""Best held-out R² below which the curve is `flat`."""
MOUTH_PAIRS = (
    ((61, 67), (62, 66), (63, 65)),  # inner-lip gap
    ((50, 58), (51, 57), (52, 56)),  # outer-lip gap
    ((48, 54),),  # mouth width
    ((8, 27),),  # jaw opening: chin to nose bridge
)
"""iBUG point pairs whose mean distance makes each mouth feature."""
MFCC = AudioConfig(n_mfcc=13, n_fft=512, n_mels=40, augmentations=0)
"""Audio features: 13 MFCCs of 32-ms windows."""
_SEED = 0


def mouth_features(lm3d: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(T, 4) float64 mouth distances / face size of (T, 68, 3) crop-pixel landmarks, smoothed
    and high-passed; NaN rows where there is no face."""
    lm = np.asarray(lm3d, dtype=np.float64)[..., :2]
    size = np.asarray(scale, dtype=np.float64)[:, None]
    distances = np.stack(
        [np.mean([np.linalg.norm(lm[:, a] - lm[:, b], axis=-1) for a, b in pairs], 0)
         for pairs in MOUTH_PAIRS], 1,
    )  # fmt: skip
    smooth = _smooth(distances / size, SMOOTH)
    return smooth - _smooth(smooth, HIGH_PASS)


def audio_features(audio: np.ndarray) -> np.ndarray:
    """(Ta, 13) float64 high-passed MFCCs of (S,) 16 kHz audio, one row per timeline frame
    whose centre lies inside the audio (Ta = S · 30 // 16000)."""
    n = len(audio) * FPS // SAMPLE_RATE
    mfcc = mfcc_track(np.asarray(audio, dtype=np.float32), n, MFCC).astype(np.float64)
    return mfcc - scipy.ndimage.gaussian_filter1d(mfcc, HIGH_PASS, axis=0, mode="nearest")


def estimate_offset(
    lm3d: np.ndarray, scale: np.ndarray, audio: np.ndarray, speech: np.ndarray | None = None
) -> SyncEstimate:
    """The clip's offset (backend "offline"): timeline frames, positive = audio late.

    lm3d (T, 68, 3) and scale (T,) on the 30 fps timeline, audio (S,) 16 kHz mono with sample 0
    at frame 0, speech (T,) probabilities (None: every frame counts as speech).
    """
    if speech is not None and (np.asarray(speech) >= 0.5).sum() < MIN_SPEECH_S * FPS:
        return SyncEstimate.unmeasured(BACKEND, "no_speech")
    mouth = mouth_features(lm3d, scale)
    if np.isfinite(mouth).all(1).sum() < MIN_FRAMES:
        return SyncEstimate.unmeasured(BACKEND, "no_face")
    fit = held_out_errors(mouth, audio_features(audio))
    if fit is None:
        return SyncEstimate.unmeasured(BACKEND, "too_short")
    errors, totals = fit
    curve = 1.0 - errors.sum(1) / totals.sum()
    best = int(np.argmax(curve))
    points = tuple(float(x) for x in curve)
    if curve[best] < MIN_FIT:
        return SyncEstimate.unmeasured(BACKEND, "flat", points)
    if best in (0, len(curve) - 1):
        return SyncEstimate.unmeasured(BACKEND, "edge", points)
    a, b, c = curve[best - 1 : best + 2]
    peak = best - MAX_LAG + 0.5 * (a - c) / min(a - 2 * b + c, -1e-12)
    confidence = bootstrap_agreement(errors, totals, best)
    return SyncEstimate(BACKEND, float(peak - MOUTH_LEAD), confidence, points)


def held_out_errors(mouth: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per lag −MAX_LAG..MAX_LAG and mouth frame: the squared held-out error of the ridge fit
    (lags, N) and the frame's squared deviation from the mean (N,), over the N mouth frames
    with a face whose audio context exists at every lag; None when N < MIN_FRAMES.

    mouth (T, F) `mouth_features`, audio (Ta, D) `audio_features`.
    """
    reach = MAX_LAG + CONTEXT
    t = np.arange(reach, min(len(mouth), len(audio) - reach))
    t = t[np.isfinite(mouth[t]).all(1)]
    if len(t) < MIN_FRAMES:
        return None
    y = mouth[t]
    y = (y - y.mean(0)) / np.maximum(y.std(0), 1e-12)
    context = np.arange(-CONTEXT, CONTEXT + 1)
    lags = np.arange(-MAX_LAG, MAX_LAG + 1)
    x = audio[t[:, None, None] + lags[:, None] + context]  # (N, lags, 2C+1, D)
    x = x.reshape(len(t), len(lags), -1)  # (N, lags, K)
    # features z-scored per lag over all the frames (no mouth value enters); one Gram matrix
    # per lag, each fold's training Gram is it minus the fold's part
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)
    xt = np.ascontiguousarray(x.transpose(1, 2, 0))  # (lags, K, N), contiguous for BLAS
    gram, xty = xt @ xt.transpose(0, 2, 1), xt @ y  # (lags, K, K), (lags, K, F)
    errors = np.empty((len(lags), len(t)))
    # 41 systems of 65 unknowns per fold: a second BLAS thread only adds overhead (6× the CPU)
    with threadpool_limits(limits=1, user_api="blas"):
        for test in np.array_split(np.arange(len(t)), FOLDS):
            part = xt[:, :, test]  # (lags, K, n)
            n = len(t) - len(test)
            mean = (xt.sum(2) - part.sum(2)) / n  # (lags, K) training means
            y_mean = (y.sum(0) - y[test].sum(0)) / n  # (F,)
            centred = gram - part @ part.transpose(0, 2, 1) - n * mean[:, :, None] * mean[:, None]
            cross = xty - part @ y[test] - n * mean[:, :, None] * y_mean
            weights = np.linalg.solve(centred + RIDGE * n * np.eye(x.shape[2]), cross)
            predicted = (x[test].transpose(1, 0, 2) - mean[:, None]) @ weights + y_mean
            errors[:, test] = ((predicted - y[test]) ** 2).sum(2)  # (lags, n)
    return errors, (y**2).sum(1)


def bootstrap_agreement(errors: np.ndarray, totals: np.ndarray, best: int) -> float:
    """Share of block-bootstrap resamples of the frames whose held-out R² curve peaks within
    ±TOLERANCE lags of `best` (errors (lags, N), totals (N,))."""
    starts = np.arange(0, errors.shape[1], BLOCK)
    block_errors = np.add.reduceat(errors, starts, axis=1)  # (lags, B)
    block_totals = np.add.reduceat(totals, starts)
    rng = np.random.default_rng(_SEED)
    weights = rng.multinomial(len(starts), np.full(len(starts), 1 / len(starts)), BOOTSTRAPS)
    curves = 1.0 - (weights @ block_errors.T) / (weights @ block_totals)[:, None]
    return float(np.mean(np.abs(curves.argmax(1) - best) <= TOLERANCE))


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 of (T, F) `x` over rows with a face; NaN rows stay NaN."""
    ok = np.isfinite(x).all(1)
    weight = scipy.ndimage.gaussian_filter1d(ok.astype(np.float64), sigma, mode="nearest")
    total = scipy.ndimage.gaussian_filter1d(np.where(ok[:, None], x, 0.0), sigma, axis=0,
                                            mode="nearest")  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok[:, None], total / weight[:, None], np.nan)
