"""Hand detection: is a hand in the frame? (the "hands" filter drops clips with hands on screen).

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


class HandDetector:
    """`detector(rgb) -> bool`: at least one hand in an (H, W, 3) uint8 RGB image; a frame
    model (`space_data.frames`) whose `batch` gives `hands` per frame.

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
        if self._model is None:
            from mediapipe.python.solutions import hands

            self._model = hands.Hands(
                static_image_mode=True,
                max_num_hands=self.max_hands,
                min_detection_confidence=self.min_confidence,
                model_complexity=self.model_complexity,
            )
        result = self._model.process(as_rgb(rgb))
        return len(result.multi_hand_landmarks or [])

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

    Every `every`-th frame while hands are being seen; after a sample without a hand the next
    one comes `idle_every` frames later. Most talking-head clips never show a hand, so most of
    the palm detector's calls were spent confirming that; a hand that stays in the picture (what
    the `hands` filter drops: a share of the frames) is still sampled densely once found, at most
    `idle_every` frames late. Call `start()` per clip, then `run(...)` on its frames in order.
    """

    def __init__(self, detector: HandDetector, every: int = 10, idle_every: int = 10) -> None:
        if not 1 <= every <= idle_every:
            raise ValueError(f"need 1 <= every <= idle_every, not {every}, {idle_every}")
        self.detector, self.every, self.idle_every = detector, every, idle_every
        self.start()

    def start(self) -> None:
        """Forget the previous clip: the next frame (index 0) is sampled."""
        self.times: list[float] = []
        """Seconds of the sampled frames."""
        self.flags: list[bool] = []
        """Whether each sampled frame showed a hand."""
        self._next = 0

    def run(self, index: Sequence[int], times: Sequence[float], frames: np.ndarray) -> None:
        """Consecutive frames (N, H, W, 3) uint8 RGB with their 0-based indices in the clip and
        times (s): the detector runs on those due, one by one (each answer sets the next)."""
        for k, i in enumerate(index):
            if i < self._next:
                continue
            found = bool(self.detector.batch(frames[k : k + 1])["hands"][0])
            self.times.append(float(times[k]))
            self.flags.append(found)
            self._next = i + (self.every if found else self.idle_every)
