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
- at raw lag L (`LAGS`: −12 … +20, centred on the mouth lead), mouth frame t is predicted from
  the audio frames t + L − `CONTEXT` … t + L + `CONTEXT` (39 features) by ridge regression
  (λ = `RIDGE` × training frames; features z-scored per lag over the lag's frames, which uses
  no mouth value), fitted and scored in `FOLDS` contiguous folds: each frame is predicted by a
  model that never saw it. Each lag uses every mouth frame whose audio context exists at that
  lag, so a 3-s clip keeps its frames at every lag and a shifted copy of the audio translates
  the curve (up to the few frames at its ends);
- the curve (`SyncEstimate.curve`): held-out R² (1 − squared error / variance, summed over the
  four mouth features) at the raw lags `LAGS`, in that order (index i is raw lag i − 12). The
  peak (refined by a parabola through its neighbours) minus `MOUTH_LEAD` is the offset in
  timeline frames, positive = audio late (the sound of mouth frame t arrives at t + offset):
  the mouth moves before the sound it makes, and on in-sync real talking clips the peak sits
  `MOUTH_LEAD` frames after the mouth;
- confidence: a block bootstrap over the held-out errors (blocks of `BLOCK` frames of the clip,
  the same blocks at every lag, drawn with replacement `BOOTSTRAPS` times, fixed seed): the
  share of resampled curves whose peak lies within ±`TOLERANCE` frames of the clip's peak. A
  probability-like number in [0, 1]: how often the same clip, its seconds weighted differently,
  points at the same offset; a curve with two near-equal peaks a syllable apart scores about
  the share of the taller one.

Unmeasured (`SyncEstimate.unmeasured`: offset NaN, confidence 0, a reason) instead of a guess:
`no_speech` (under `MIN_SPEECH_S` of frames with speech ≥ 0.5), `no_face` (under `MIN_FRAMES`
frames with a face), `too_short` (under `MIN_FRAMES` mouth frames whose audio context exists at
some lag: about 2 s of clip are needed), `flat` (the best held-out R² below `MIN_FIT`: the audio
does not predict this mouth at any lag — silence, music, a dubbed voice, lips that do not move,
a mis-tracked face), `weak` (the best R² × its frames below `MIN_EVIDENCE`: a fit too weak for
so few frames to place its peak; short real windows with such fits pointed confidently at the
wrong lag) and `edge` (the peak at the first or last lag: the true offset may lie beyond the
search, beyond −16.4 / +15.6 frames).

Measured (docs/signals.md, `python -m scripts.av_offset_check`) on the realdata talking clips,
windows of 2.5–5 s cut from the in-sync ones, and the sample corpus, each also with its audio
shifted by ±8 and ±12 frames.
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
MOUTH_LEAD = 4.4
"""Raw peak lag (frames) on in-sync real clips: the mouth moves before the sound it makes
(frontal_talking_may 4.4, interview_talking 4.2, voxceleb2_style_224_frontal 4.5; mean 4.35)."""
LAG_CENTRE = 4
"""Raw lag at the centre of the search: `MOUTH_LEAD` rounded (the search centres on offset 0)."""
MAX_LAG = 16
"""Raw lags searched: `LAG_CENTRE` ± MAX_LAG frames (−12 … +20); ±12-frame offsets fit inside."""
LAGS = LAG_CENTRE + np.arange(-MAX_LAG, MAX_LAG + 1)
"""The raw lags of the search, in the order of `SyncEstimate.curve`."""
CONTEXT = 1
"""Audio frames on each side of the lagged frame that predict one mouth frame (3 in all)."""
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
MIN_FRAMES = 40
"""Mouth frames (1.3 s) below which the clip is `no_face`, or at any lag `too_short`."""
MIN_SPEECH_S = 1.0
"""Seconds of speech below which the clip is `no_speech`."""
MIN_FIT = 0.05
"""Best held-out R² below which the curve is `flat`."""
MIN_EVIDENCE = 15.0
"""Best held-out R² × its frames below which the fit is `weak`: the frames' worth of mouth
variance the audio explains. A short clip needs a strong fit (R² 0.2 at 75 frames), a long
one only `MIN_FIT`; short real cuts with weaker fits were confidently wrong."""
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
    fits = held_out_errors(mouth, audio_features(audio))
    if fits is None:
        return SyncEstimate.unmeasured(BACKEND, "too_short")
    curve = np.array([1.0 - errors.sum() / totals.sum() for _, errors, totals in fits])
    best = int(np.argmax(curve))
    points = tuple(float(x) for x in curve)
    if curve[best] < MIN_FIT:
        return SyncEstimate.unmeasured(BACKEND, "flat", points)
    if curve[best] * len(fits[best][0]) < MIN_EVIDENCE:
        return SyncEstimate.unmeasured(BACKEND, "weak", points)
    if best in (0, len(curve) - 1):
        return SyncEstimate.unmeasured(BACKEND, "edge", points)
    a, b, c = curve[best - 1 : best + 2]
    peak = LAGS[best] + 0.5 * (a - c) / min(a - 2 * b + c, -1e-12)
    confidence = bootstrap_agreement(fits, len(mouth), best)
    return SyncEstimate(BACKEND, float(peak - MOUTH_LEAD), confidence, points)


Fit = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One lag's held-out fit: mouth frames t (N,), squared held-out errors (N,) and squared
deviations from the mean (N,), both summed over the mouth features."""


def held_out_errors(mouth: np.ndarray, audio: np.ndarray) -> list[Fit] | None:
    """Per lag of `LAGS`, the held-out fit over every mouth frame with a face whose audio
    context exists at that lag; None when some lag has fewer than MIN_FRAMES such frames.

    mouth (T, F) `mouth_features`, audio (Ta, D) `audio_features`. Each lag fits on its own
    frames, so a clip only loses the frames its own lag pushes outside the audio.
    """
    faces = np.flatnonzero(np.isfinite(mouth).all(1))
    context = np.arange(-CONTEXT, CONTEXT + 1)
    fits = []
    # 33 × 5 systems of 39 unknowns: a second BLAS thread only adds overhead
    with threadpool_limits(limits=1, user_api="blas"):
        for lag in LAGS:
            t = faces[(faces + lag - CONTEXT >= 0) & (faces + lag + CONTEXT < len(audio))]
            if len(t) < MIN_FRAMES:
                return None
            y = _zscore(mouth[t])
            x = _zscore(audio[t[:, None] + lag + context].reshape(len(t), -1))
            fits.append((t, _cross_validated_errors(x, y), (y**2).sum(1)))
    return fits


def _cross_validated_errors(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) squared errors of ridge predictions of y (N, F) from x (N, K), each frame predicted
    by the fit on the other `FOLDS` − 1 contiguous folds (features z-scored over all N frames:
    no target value enters them)."""
    gram, cross = x.T @ x, x.T @ y
    errors = np.empty(len(x))
    for test in np.array_split(np.arange(len(x)), FOLDS):
        n = len(x) - len(test)
        mean = (x.sum(0) - x[test].sum(0)) / n
        y_mean = (y.sum(0) - y[test].sum(0)) / n
        centred = gram - x[test].T @ x[test] - n * np.outer(mean, mean)
        centred_cross = cross - x[test].T @ y[test] - n * np.outer(mean, y_mean)
        weights = np.linalg.solve(centred + RIDGE * n * np.eye(x.shape[1]), centred_cross)
        errors[test] = (((x[test] - mean) @ weights + y_mean - y[test]) ** 2).sum(1)
    return errors


def bootstrap_agreement(fits: list[Fit], frames: int, best: int) -> float:
    """Share of block-bootstrap resamples of the clip's `frames` frames (blocks of BLOCK
    frames, shared by every lag) whose held-out R² curve peaks within ±TOLERANCE lags of
    `best`."""
    blocks = -(-frames // BLOCK)
    errors = np.stack([np.bincount(t // BLOCK, e, blocks) for t, e, _ in fits])  # (lags, B)
    totals = np.stack([np.bincount(t // BLOCK, v, blocks) for t, _, v in fits])
    rng = np.random.default_rng(_SEED)
    weights = rng.multinomial(blocks, np.full(blocks, 1 / blocks), BOOTSTRAPS)
    curves = 1.0 - (weights @ errors.T) / np.maximum(weights @ totals.T, 1e-12)
    return float(np.mean(np.abs(curves.argmax(1) - best) <= TOLERANCE))


def _zscore(x: np.ndarray) -> np.ndarray:
    """Columns of (N, K) `x` at zero mean and unit variance (constant columns stay 0)."""
    return (x - x.mean(0)) / np.maximum(x.std(0), 1e-9)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 of (T, F) `x` over rows with a face; NaN rows stay NaN."""
    ok = np.isfinite(x).all(1)
    weight = scipy.ndimage.gaussian_filter1d(ok.astype(np.float64), sigma, mode="nearest")
    total = scipy.ndimage.gaussian_filter1d(np.where(ok[:, None], x, 0.0), sigma, axis=0,
                                            mode="nearest")  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok[:, None], total / weight[:, None], np.nan)
