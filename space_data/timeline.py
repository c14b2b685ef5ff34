"""Resample per-frame tracks from a video's native frame times onto the shared 30 fps timeline.

Frame k of the timeline is at t_k = k / 30 s; a clip of `duration` seconds has
T = round(duration × 30) frames (halves round up). Native times come from the decoder's
presentation timestamps, so variable-frame-rate video lands where it really was.

NaN means "no measurement" (no face in that frame): a target that falls between a NaN sample
and a valid one is NaN, never half a value. A target within `SNAP` seconds of a valid sample
counts as on it and keeps its value even when the neighbour is NaN: timestamp rounding
(1/12800 s time bases) puts a 30 fps target a hair past its sample, and a missing neighbour
must not blank a valid frame. Flags snap the same way.
"""

from __future__ import annotations

import math

import numpy as np

from space_data.record import FPS

SNAP = 5e-5
"""Seconds: a target this close to a valid sample counts as on it (above 1/12800-s pts rounding)."""


def timeline_length(duration: float) -> int:
    """T = round(duration × 30), halves rounded up."""
    return int(math.floor(duration * FPS + 0.5))


def _targets(times: np.ndarray, n_frames: int):
    """Per target t_k: sample index at or before it (i0), the one after (i1), the linear weight
    of i1, and whether t_k is within SNAP of i0 / of i1."""
    if times.ndim != 1 or np.any(np.diff(times) < 0):
        raise ValueError("times must be a 1-D non-decreasing array of seconds")
    t = np.arange(n_frames, dtype=np.float64) / FPS
    i0 = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    i1 = np.minimum(i0 + 1, len(times) - 1)
    span = times[i1] - times[i0]
    with np.errstate(invalid="ignore", divide="ignore"):
        # ends are held: before the first sample (w < 0) and after the last (span 0)
        w = np.clip(np.where(span > 0, (t - times[i0]) / span, 0.0), 0.0, 1.0)
    near0 = t - times[i0] <= SNAP
    near1 = (times[i1] - t <= SNAP) & (span > 0)
    return i0, i1, w, near0, near1


def resample_track(
    times: np.ndarray, values: np.ndarray, n_frames: int, angles: bool = False
) -> np.ndarray:
    """Linear interpolation of `values` `(N, ...)` sampled at `times` `(N,)` s → `(T, ...)` float32.

    NaN samples stay NaN and blank the targets between them and their neighbours. Ends are
    held (no extrapolation). `angles=True`: values are degrees, unwrapped over the valid samples
    before interpolating (179° → −179° passes through 180°, not 0°), results wrapped back to
    [−180, 180). No samples at all → all NaN.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(times):
        raise ValueError(f"{len(times)} times but {len(values)} values")
    if len(times) == 0:
        return np.full((n_frames, *values.shape[1:]), np.nan, np.float32)
    flat = values.reshape(len(values), -1)
    if angles:
        flat = _unwrap_degrees(flat)
    i0, i1, w, near0, near1 = _targets(times, n_frames)
    v0, v1 = flat[i0], flat[i1]
    out = np.where(w[:, None] == 0.0, v0, v0 + w[:, None] * (v1 - v0))
    # on a sample, a NaN neighbour does not blank it
    out = np.where(near0[:, None] & np.isnan(v1), v0, out)
    out = np.where(near1[:, None] & np.isnan(v0), v1, out)
    if angles:
        out = (out + 180.0) % 360.0 - 180.0
    return out.reshape(n_frames, *values.shape[1:]).astype(np.float32)


def _unwrap_degrees(flat: np.ndarray) -> np.ndarray:
    """Unwrap each column `(N, D)` over its non-NaN entries (NaN gaps are bridged)."""
    out = flat.copy()
    for d in range(flat.shape[1]):
        valid = ~np.isnan(flat[:, d])
        out[valid, d] = np.unwrap(flat[valid, d], period=360.0)
    return out


def resample_flags(times: np.ndarray, flags: np.ndarray, n_frames: int) -> np.ndarray:
    """Sample-and-hold of per-sample flags `(N,)` at `times` → `(T,) uint8` (the latest sample
    at or before t_k; the first sample before it). No samples → all zeros."""
    times = np.asarray(times, dtype=np.float64)
    flags = np.asarray(flags)
    if len(flags) != len(times):
        raise ValueError(f"{len(times)} times but {len(flags)} flags")
    if len(times) == 0:
        return np.zeros(n_frames, np.uint8)
    i0, i1, _, _, near1 = _targets(times, n_frames)
    return np.where(near1, flags[i1], flags[i0]).astype(np.uint8)
