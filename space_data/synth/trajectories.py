"""Head-pose trajectories: (N, 6) per native frame — yaw, pitch, roll (degrees, the
`space_data.pose` convention), tx, ty (pixels: image position of the canonical face origin),
scale (pixels per canonical unit, the outer-eye-corner distance of a frontal face)."""

from __future__ import annotations

import numpy as np


def wander(n: int, fps: float, rng: np.random.Generator, peak: float) -> np.ndarray:
    """(n,) smooth zero-centred random motion (three sinusoids, 0.1–0.5 Hz), max |x| = peak."""
    t = np.arange(n) / fps
    x = np.zeros(n)
    for _ in range(3):
        x += rng.uniform(0.3, 1.0) * np.sin(
            2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi)
        )
    x -= x.mean()
    top = np.abs(x).max()
    return x * (peak / top) if top > 0 else x


def bump(n: int, fps: float, centre: float, rise: float, hold: float) -> np.ndarray:
    """(n,) 0 → 1 → 0: smooth (cosine) rise over `rise` s, flat for `hold` s around `centre` s."""
    t = np.arange(n) / fps
    d = np.abs(t - centre) - hold / 2
    ramp = np.clip(1 - d / rise, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def head_track(
    n: int,
    fps: float,
    rng: np.random.Generator,
    centre: tuple[float, float],
    scale: float,
    yaw: float = 15.0,
    pitch: float = 8.0,
    roll: float = 5.0,
    shift: float = 4.0,
    zoom: float = 0.04,
) -> np.ndarray:
    """(n, 6) natural talking-head motion around `centre` (px) at `scale` (px per unit).

    yaw, pitch, roll: peak |angle| in degrees; shift: peak translation in px; zoom: peak
    relative scale change.
    """
    track = np.empty((n, 6))
    track[:, 0] = wander(n, fps, rng, yaw)
    track[:, 1] = wander(n, fps, rng, pitch)
    track[:, 2] = wander(n, fps, rng, roll)
    track[:, 3] = centre[0] + wander(n, fps, rng, shift)
    track[:, 4] = centre[1] + wander(n, fps, rng, shift)
    track[:, 5] = scale * (1 + wander(n, fps, rng, zoom))
    return track
