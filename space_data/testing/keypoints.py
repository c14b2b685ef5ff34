"""A face-vid2vid checkpoint in the public layout from freshly initialised modules: RANDOM
WEIGHTS, for timings and interface tests only, never for features."""

from __future__ import annotations

from pathlib import Path

import torch

from space_data.keypoints import HEEstimator, KPDetector


def random_checkpoint(folder: Path) -> str:
    """Path of `folder/random-weights-checkpoint.pth.tar` (kp_detector and he_estimator)."""
    path = folder / "random-weights-checkpoint.pth.tar"
    torch.save(
        {"kp_detector": KPDetector().state_dict(), "he_estimator": HEEstimator().state_dict()},
        path,
    )
    return str(path)
