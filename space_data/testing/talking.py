"""The realdata talking clips and shifted copies of their audio, for A/V-offset checks
(tests/space_data/test_av_offset.py, scripts/av_offset_check.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from space_data.record import FPS, SAMPLE_RATE

TALKING = ("frontal_talking_may", "interview_talking", "news_talking", "outdoor_singing",
           "voxceleb2_style_224_frontal")  # fmt: skip
"""The realdata talking clips of 5 s or more with audio (all 25 fps)."""
TALKING_SHORT = ("voxceleb2_style_224_turned",)
"""The realdata talking clip under 5 s (4.3 s, head turned about 23°)."""
IN_SYNC = ("frontal_talking_may", "interview_talking", "voxceleb2_style_224_frontal")
"""Those whose audio is in sync, by eye (may, interview) or by construction (a VoxCeleb2 track:
VoxCeleb kept only tracks SyncNet found in sync): the reference clips of `av_offset.MOUTH_LEAD`.
The others' sources (a lip-sync model's example face input, a sung clip) claim nothing."""


def talking_path(realdata: Path, name: str) -> Path:
    """Path of realdata talking clip `name` (a TALKING entry)."""
    path = realdata / "video" / f"{name}_25fps.mp4"
    return path if path.is_file() else realdata / "video" / f"{name}.mp4"


def shifted(audio: np.ndarray, frames: int) -> np.ndarray:
    """(S',) 16 kHz `audio` made `frames` timeline frames late (zeros in front) or early (its
    start cut)."""
    n = round(abs(frames) * SAMPLE_RATE / FPS)
    if frames >= 0:
        return np.concatenate([np.zeros(n, np.float32), audio])
    return audio[n:]
