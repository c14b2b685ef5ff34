"""Hard cuts between two real clips, re-encoded at any frame rate and phase (tests, calibration).

A camera recording at `rate` shows, at each of its frame times, the latest source frame. The cut
joins clip A's content up to time `a_end` to clip B's content from `b_start`: whatever the rate
and phase, the last frame before the cut shows A at `a_end` and the first after it B at
`b_start`, so the discontinuity itself is the same and only its place on the 30 fps timeline
moves. `phase` frames of A are added in front, which shifts the cut by phase / rate seconds.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from space_data.clip import Clip
from space_data.extract import ClipExtractor
from space_data.landmarks import LandmarksConfig, make_landmarker
from space_data.media import decode_video, write_video
from space_data.record import ClipStats

RATES = {25.0: 5, 30000 / 1001: 2, 30.0: 1, 60.0: 2}
"""Frame rate → cut positions tried: a 25 fps frame takes five places on the 30 fps grid, a
60 fps frame two, a 30 fps frame one; 29.97 fps drifts 0.1 % a frame, so two neighbours."""


def square_frames(path: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A video's frames centre-cropped to a square and resized to `size`² → (N, size, size, 3)
    uint8 RGB, and their times (N,) seconds."""
    frames, times, _ = decode_video(path)
    h, w = frames.shape[1:3]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    out = [
        cv2.resize(f[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_AREA)
        for f in frames
    ]
    return np.stack(out), times


def at_times(frames: np.ndarray, times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The latest source frame at or before each time t (s) → (len(t), H, W, 3)."""
    index = np.clip(np.searchsorted(times, np.asarray(t) + 1e-6, side="right") - 1, 0, None)
    return frames[index]


def write_cut(
    path: str,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray] | None,
    rate: float,
    *,
    a_end: float,
    b_start: float = 0.0,
    before: float = 0.6,
    after: float = 0.6,
    phase: int = 0,
) -> int:
    """Write A's `before` seconds up to `a_end`, then B's `after` seconds from `b_start`, at
    `rate` fps (H.264, `space_data.media.write_video`); `a`, `b` are (frames, times) as from
    `square_frames`. b None: A continues uncut (the same frames an uncut original shows).
    Returns the index of the first frame after the cut."""
    n_before = round(before * rate) + phase
    n_after = round(after * rate)
    t_a = a_end - np.arange(n_before)[::-1] / rate
    shown = [at_times(*a, t_a)]
    if b is None:
        shown.append(at_times(*a, a_end + np.arange(1, n_after + 1) / rate))
    else:
        shown.append(at_times(*b, b_start + np.arange(n_after) / rate))
    write_video(path, np.concatenate(shown), rate)
    return n_before


def aligned(
    b: tuple[np.ndarray, np.ndarray], b_start: float, a: tuple[np.ndarray, np.ndarray], a_end: float
) -> tuple[np.ndarray, np.ndarray]:
    """Clip B moved by one similarity transform so that its face at `b_start` lands on A's face
    at `a_end` (68 MediaPipe landmarks): a cut from A to it is a cut between two identical
    framings, where the landmarks barely jump and only the picture changes."""
    landmarker = make_landmarker(LandmarksConfig())
    points = []
    for (frames, times), t in ((b, b_start), (a, a_end)):
        landmarker.reset()
        found = landmarker(at_times(frames, times, np.array([t]))[0])
        if found is None:
            raise ValueError(f"no face at {t} s to align")
        points.append(np.ascontiguousarray(found.lm68[:, :2], np.float32))
    landmarker.close()
    matrix, _ = cv2.estimateAffinePartial2D(points[0], points[1])
    frames, times = b
    size = frames.shape[2], frames.shape[1]
    moved = [cv2.warpAffine(f, matrix, size, borderMode=cv2.BORDER_REFLECT) for f in frames]
    return np.stack(moved), times


def stats_at_rates(
    extractor: ClipExtractor,
    folder: Path,
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray] | None,
    rates: dict[float, int] = RATES,
    **where: float,
) -> list[tuple[float, int, ClipStats]]:
    """(rate, phase, statistics) of `write_cut(a, b, **where)` at every rate and phase of
    `rates`, extracted as VoxCeleb2 face tracks (whole frames) by `extractor`."""
    out = []
    for rate, phases in rates.items():
        for phase in range(phases):
            path = folder / f"cut-{rate:.2f}-{phase}.mp4"
            write_cut(str(path), a, b, rate, phase=phase, **where)
            record = extractor(Clip("cut", "voxceleb2", "s", str(path)))
            if not record.ok:
                raise RuntimeError(f"{path}: {record.reason}")
            out.append((rate, phase, record.stats))
    return out
