"""Clips with real hands at and away from real faces, made from the realdata folder, for the
`hands` rule's tests and calibration (`benchmarks/hands_calibration.py`).

- `still_<image>`: a hand photo (`hand_on_cheek`, `hand_waving_beside_face`) as a 3-s clip,
  drifting a few pixels;
- `over_face_<video>`: a real talking clip with the waving hand (cut from its photo, with its
  own background, 1.2 face sizes wide) pasted over the face for one second, from 1 s to 2 s
  (MediaPipe finds such a pasted hand on the news, may and outdoor clips, not on the
  interview's or the 256² emotion clips' frames);
- `lower_third_<video>`: the talking clip shrunk to 60 % at the top of its frame, the hand (cut
  out by a skin mask) a quarter of the frame wide in its lower third, all along.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from space_data.face import FaceDetector
from space_data.media import decode_audio, decode_video, probe, write_video
from space_data.testing.faces import read_rgb

WAVING = "hand_waving_beside_face.png"
HAND_BOX = (225, 70, 360, 235)
"""(x0, y0, x1, y1) of the open hand in the waving photo (360² pixels)."""


def hand_patch(realdata: Path) -> tuple[np.ndarray, np.ndarray]:
    """The open hand of the waving photo: (h, w, 3) uint8 RGB and its (h, w) float32 skin
    mask (YCrCb skin range, closed and feathered)."""
    x0, y0, x1, y1 = HAND_BOX
    patch = np.ascontiguousarray(read_rgb(realdata / "images" / WAVING)[y0:y1, x0:x1])
    ycc = cv2.cvtColor(patch, cv2.COLOR_RGB2YCrCb)
    low, high = np.array([0, 135, 85], np.uint8), np.array([255, 180, 135], np.uint8)
    skin = cv2.inRange(ycc, low, high).astype(np.float32) / 255
    closed = cv2.morphologyEx(skin, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    return patch, cv2.GaussianBlur(closed, (9, 9), 0)


def paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, x: int, y: int, width: int):
    """Blend `patch` (scaled to `width`, aspect kept) into `frame` in place at (x, y) through
    `mask` (1: patch); parts outside the frame are dropped."""
    height = round(patch.shape[0] * width / patch.shape[1])
    p = cv2.resize(patch, (width, height)).astype(np.float32)
    m = cv2.resize(mask, (width, height))[..., None]
    h, w = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, x), max(0, y), min(w, x + width), min(h, y + height)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    region = frame[fy0:fy1, fx0:fx1].astype(np.float32)
    pp = p[fy0 - y : fy1 - y, fx0 - x : fx1 - x]
    mm = m[fy0 - y : fy1 - y, fx0 - x : fx1 - x]
    frame[fy0:fy1, fx0:fx1] = (region * (1 - mm) + pp * mm).astype(np.uint8)


def still_clip(realdata: Path, image: str, path: Path, seconds: float = 3.0) -> Path:
    """A hand photo as a 25 fps clip (longer side 320 px), drifting ±2 px sideways."""
    rgb = read_rgb(realdata / "images" / image)
    h, w = rgb.shape[:2]
    s = 320 / max(h, w)
    size = (round(w * s) // 2 * 2, round(h * s) // 2 * 2)
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    frames = (np.roll(rgb, round(2 * np.sin(k / 8)), axis=1) for k in range(round(25 * seconds)))
    write_video(str(path), frames, 25.0)
    return path


def composite_clips(realdata: Path, video: str, out_dir: Path) -> dict[str, Path]:
    """`over_face_` and `lower_third_` versions of a realdata talking clip."""
    src = str(realdata / "video" / video)
    frames, _, _ = decode_video(src)
    audio, fps = decode_audio(src), probe(src).fps
    detector = FaceDetector()
    try:
        face = detector(frames[0])[0]
    finally:
        detector.close()
    size = face.x1 - face.x0
    patch, mask = hand_patch(realdata)
    stem = Path(video).stem
    out = {}

    over = frames.copy()
    solid = np.ones_like(mask)  # with its own background: a hand MediaPipe still sees
    for k in range(round(fps), round(2 * fps)):
        x, y = round(face.x0 - 0.1 * size), round(face.y0 - 0.15 * size)
        paste(over[k], patch, solid, x, y, round(1.2 * size))
    out["over_face"] = out_dir / f"over_face_{stem}.mp4"
    write_video(str(out["over_face"]), over, fps, audio)

    # the speaker shrunk to 60 % at the top of the frame (edges stretched around), a hand a
    # quarter of the frame wide in its lower third, 0.4 face sizes below the chin
    h, w = frames.shape[1:3]
    small = [cv2.resize(f, (round(0.6 * w), round(0.6 * h)), interpolation=cv2.INTER_AREA)
             for f in frames]  # fmt: skip
    left = (w - small[0].shape[1]) // 2
    pad = (0, h - small[0].shape[0], left, w - left - small[0].shape[1])
    shrunk = np.stack([cv2.copyMakeBorder(f, *pad, cv2.BORDER_REPLICATE) for f in small])
    for frame in shrunk:
        paste(frame, patch, mask, round(0.12 * w), round(0.64 * h), round(0.25 * w))
    out["lower_third"] = out_dir / f"lower_third_{stem}.mp4"
    write_video(str(out["lower_third"]), shrunk, fps, audio)
    return out
