"""Frame models: the one interface of every model that reads a clip's video frames.

A frame model takes a batch of frames, `(N, H, W, 3)` uint8 RGB, and returns a dict of
arrays whose leading axis is N (names, shapes and units in each model's docstring). The
batches of one clip arrive in frame order, after one `reset()`; models that carry state from
frame to frame (MediaPipe's face mesh in tracking mode) carry it across batches. A model may
take per-frame side inputs as keyword arrays with the same leading axis N (the landmarkers'
`faceless`). Models load at first use, so a fresh instance pickles (ships to a Ray actor).

CPU models (MediaPipe face mesh, hands) iterate over the batch inside; torch models (FAN, the
face-vid2vid nets) run the batch as one forward pass. `ClipExtractor` feeds batches of
`extract.batch_size` frames.

Implementations: `space_data.landmarks` (`MeshLandmarker`, `FanLandmarker`: lm68, eyes52),
`space_data.hands.HandDetector` (hands), `space_data.keypoints.KeypointExtractor` (kp, kp_pose,
kp_t, kp_exp), `space_data.emotion.EmotionClassifier` (emotion_pred, over face crops).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class FrameModel(Protocol):
    """`batch(frames)` → arrays per frame; `reset()` before each clip; `close()` at the end."""

    def batch(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 RGB frames of one clip, in order → {name: (N, ...) array}."""
        ...

    def reset(self) -> None:
        """Forget what earlier frames left (call before each clip)."""
        ...

    def close(self) -> None:
        """Release the model (a later call loads it again)."""
        ...


def check_frames(frames: np.ndarray) -> np.ndarray:
    """`frames` as an (N, H, W, 3) uint8 array with N >= 1; else ValueError naming the shape."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise ValueError(
            f"expected (N, H, W, 3) uint8 RGB frames with N >= 1, got {frames.shape} {frames.dtype}"
        )
    return frames
