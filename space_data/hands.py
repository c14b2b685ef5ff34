"""Hand detection: where are hands, and is one at the face? (the "hands" filter drops clips
where a hand stays at the face: it occludes the face and drags the landmarks).

A hand is *at the face* when its box (the box of its 21 landmarks) comes within `margin` face
sizes of the face box (`face_box`: the box of the frame's 68 landmarks raised to cover the
forehead and hair; while no face is found, a hand over it hides it, the last face box found;
before any face, the whole image). Hands are searched on a view twice the face crop's side
(`hand_view`): a hand beside the face is cut off by the crop itself, and not found there.

MediaPipe hands (palm detector + hand landmarks, models bundled in the mediapipe wheel) in
static-image mode: extraction samples every k-th frame, so consecutive calls are not a video
and tracking between them would only carry stale hands forward.

`model_complexity` picks MediaPipe's palm detector and hand-landmark models: 0 the lite pair,
1 the full pair. The cost is the palm detector, which runs on every call in static-image mode
(measured on 512² face crops, one core: 16 ms per call lite, 21 ms full; the input size does not
matter, MediaPipe resizes to 192² itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from space_data.face import as_rgb
from space_data.frames import check_frames


def face_gap(hand: np.ndarray, face: np.ndarray) -> float:
    """Distance between a hand box and a face box `(x0, y0, x1, y1)`, in face sizes (the face
    box's larger side): 0 when they overlap."""
    dx = max(face[0] - hand[2], hand[0] - face[2], 0.0)
    dy = max(face[1] - hand[3], hand[1] - face[3], 0.0)
    return float(max(dx, dy) / max(face[2] - face[0], face[3] - face[1]))


FOREHEAD = 0.5
"""Share of the 68-landmark box's height `face_box` adds above it: the landmarks stop at the
brows, and a hand on the forehead or in the hair is at the face too."""


def _box(points: np.ndarray) -> np.ndarray:
    """(4,) float64 box (x0, y0, x1, y1) of (K, 2+) points; NaN when any is NaN."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    if not np.isfinite(xy).all():
        return np.full(4, np.nan)
    return np.concatenate([xy.min(0), xy.max(0)])


def face_box(lm68: np.ndarray) -> np.ndarray:
    """(4,) float64 face box (x0, y0, x1, y1) of (68, 2+) landmarks: their box, its top raised
    by `FOREHEAD` of its height; NaN without a face."""
    box = _box(lm68)
    box[1] -= FOREHEAD * (box[3] - box[1])
    return box


HAND_VIEW_SIDE = 384
"""Pixels per side the hand detector's view is shrunk to at most (MediaPipe's palm detector
reads 192², its landmark model a crop of the hand from this view)."""


HAND_VIEW_SCALE = 2.0
"""The hand view's side in face-crop sides."""


def hand_view(box: tuple[int, int, int] | None, frame: tuple[int, int]) -> tuple[int, int, int]:
    """The square `(x0, y0, side)` of a `frame` (height, width) the hand detector looks at: the
    face crop `box` (x0, y0, side) grown to twice its side around its centre (a hand beside the
    face is cut off by the crop, and not found there), kept inside the frame; the largest
    centred square without a box (corpora whose frames are face tracks already)."""
    height, width = frame
    if box is None:
        side = min(height, width)
        return (width - side) // 2, (height - side) // 2, side
    x0, y0, crop = box
    side = min(round(HAND_VIEW_SCALE * crop), height, width)
    cx, cy = x0 + crop / 2, y0 + crop / 2
    vx = int(np.clip(round(cx - side / 2), 0, width - side))
    vy = int(np.clip(round(cy - side / 2), 0, height - side))
    return vx, vy, side


class HandDetector:
    """`detector(rgb) -> bool`: at least one hand in an (H, W, 3) uint8 RGB image; `boxes(rgb)`
    where they are; a frame model (`space_data.frames`) whose `batch` gives `hands` per frame.

    The model is created at the first call, so a fresh detector pickles (ships to a Ray actor).
    """

    def __init__(
        self, min_confidence: float = 0.5, max_hands: int = 2, model_complexity: int = 1
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        if max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        if model_complexity not in (0, 1):
            raise ValueError(
                f"model_complexity must be 0 (lite) or 1 (full), not {model_complexity}"
            )
        self.min_confidence = min_confidence
        self.max_hands = max_hands
        self.model_complexity = model_complexity
        self._model: Any = None  # mediapipe Hands, created at the first call

    def __call__(self, rgb: np.ndarray) -> bool:
        return self.count(rgb) > 0

    def batch(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """hands (N,) bool: a hand in each of the (N, H, W, 3) uint8 RGB frames (one by one)."""
        return {"hands": np.array([self.count(rgb) > 0 for rgb in check_frames(frames)], bool)}

    def reset(self) -> None:
        """Nothing to forget: every frame is a still image."""

    def count(self, rgb: np.ndarray) -> int:
        """Number of hands found (at most `max_hands`)."""
        return len(self.boxes(rgb))

    def boxes(self, rgb: np.ndarray) -> np.ndarray:
        """(K, 4) float64 boxes (x0, y0, x1, y1) in pixels of the hands found (K ≤ `max_hands`):
        each the box of the hand's 21 landmarks."""
        if self._model is None:
            from mediapipe.python.solutions import hands

            self._model = hands.Hands(
                static_image_mode=True,
                max_num_hands=self.max_hands,
                min_detection_confidence=self.min_confidence,
                model_complexity=self.model_complexity,
            )
        result = self._model.process(as_rgb(rgb))
        height, width = rgb.shape[:2]
        boxes = [
            _box(np.array([(p.x * width, p.y * height) for p in hand.landmark]))
            for hand in result.multi_hand_landmarks or []
        ]
        return np.array(boxes, dtype=np.float64).reshape(-1, 4)

    def close(self) -> None:
        """Release the model (a later call creates it again)."""
        if self._model is not None:
            self._model.close()
            self._model = None

    def __getstate__(self) -> dict:
        return {
            "min_confidence": self.min_confidence,
            "max_hands": self.max_hands,
            "model_complexity": self.model_complexity,
        }

    def __setstate__(self, state: dict) -> None:
        HandDetector.__init__(self, **state)


class HandSampler:
    """Which native frames of a clip the (costly) hand detector runs on, and what it found.

    Every `every`-th frame while a hand is at the face; after a sample without one, the next
    comes `idle_every` frames later. With the defaults, 3 and 6, a hand that stays half a
    second at the face is seen on at least two consecutive samples at 25-30 fps, and one that
    stays D seconds gives a `longest_span` of at least D − 0.36 s at 25 fps (the first sample
    up to 6 frames late, the last up to 3 frames before it leaves). Call `start()` per clip,
    then `run(...)` on its frames in order, with each frame's face box.
    """

    def __init__(
        self, detector: HandDetector, every: int = 3, idle_every: int = 6, margin: float = 0.25
    ) -> None:
        if not 1 <= every <= idle_every:
            raise ValueError(f"need 1 <= every <= idle_every, not {every}, {idle_every}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, not {margin}")
        self.detector, self.every, self.idle_every = detector, every, idle_every
        self.margin = margin
        self.start()

    def start(self) -> None:
        """Forget the previous clip: the next frame (index 0) is sampled."""
        self.times: list[float] = []
        """Seconds of the sampled frames."""
        self.flags: list[bool] = []
        """Whether each sampled frame showed a hand (anywhere)."""
        self.at_face: list[bool] = []
        """Whether a hand was at the face on each sampled frame."""
        self.gaps: list[float] = []
        """Nearest hand's `face_gap` per sampled frame (inf without a hand)."""
        self._next = 0
        self._face: np.ndarray | None = None

    def run(
        self,
        index: Sequence[int],
        times: Sequence[float],
        frames: np.ndarray,
        faces: np.ndarray | None = None,
    ) -> None:
        """Consecutive frames (N, H, W, 3) uint8 RGB with their 0-based indices in the clip,
        times (s) and face boxes `faces` (N, 4) in the frames' pixels (NaN rows: no face found;
        None: none found): the detector runs on those due, one by one (each answer sets the
        next)."""
        for k, i in enumerate(index):
            if faces is not None and np.isfinite(faces[k]).all():
                self._face = np.asarray(faces[k], dtype=np.float64)
            if i < self._next:
                continue
            height, width = frames.shape[1:3]
            face = self._face if self._face is not None else np.array([0, 0, width, height])
            hands = self.detector.boxes(frames[k])
            gap = min((face_gap(h, face) for h in hands), default=np.inf)
            self.times.append(float(times[k]))
            self.flags.append(len(hands) > 0)
            self.gaps.append(gap)
            self.at_face.append(gap <= self.margin)
            self._next = i + (self.every if self.at_face[-1] else self.idle_every)

    def codes(self) -> np.ndarray:
        """(samples,) uint8 per sample: 0 no hand, 1 hands away from the face, 2 a hand at it."""
        return np.array(self.flags, np.uint8) + np.array(self.at_face, np.uint8)

    def longest_span(self) -> float:
        """Seconds from the first to the last of the longest run of consecutive samples with a
        hand at the face (0 for a run of one sample, or none)."""
        best, first = 0.0, None
        for t, at in zip(self.times, self.at_face, strict=True):
            first = (t if first is None else first) if at else None
            if first is not None:
                best = max(best, t - first)
        return best
