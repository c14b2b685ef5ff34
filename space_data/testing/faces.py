"""Real media for geometry tests: images and a few video frames from the realdata folder."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import cv2
import numpy as np

from space_data.media import VideoReader


def realdata_root() -> Path:
    """The real media folder (images/, video/, audio/): $SPACE_REALDATA, else ../shared/realdata
    beside the project root. It may be absent; tests then skip."""
    default = Path(__file__).resolve().parents[3] / "shared" / "realdata"
    return Path(os.environ.get("SPACE_REALDATA", default))


PORTRAITS = (
    "portrait_frontal_woman.jpg",
    "portrait_frontal_man_headset.png",
    "portrait_frontal_man_suit.png",
    "portrait_bw_2048.jpg",
)
HAND_IMAGES = ("hand_on_cheek.jpg", "hand_waving_beside_face.png")
TALKING_VIDEOS = (
    "frontal_talking_may_25fps.mp4",
    "interview_talking_25fps.mp4",
    "news_talking_25fps.mp4",
    "outdoor_singing_25fps.mp4",
    "strong_yaw_noaudio_30fps.mp4",
    "voxceleb2_style_224_frontal.mp4",
    "voxceleb2_style_224_turned.mp4",
)


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def video_frames(path: str | Path, count: int) -> list[np.ndarray]:
    """The first `count` frames of a video, (H, W, 3) uint8 RGB each (consecutive: tracking)."""
    return [rgb for _, rgb in itertools.islice(VideoReader(str(path)), count)]
