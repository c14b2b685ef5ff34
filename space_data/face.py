"""Face detection and the per-clip square crop.

A clip gets ONE crop box for all its frames (paper, Appendix B): the union of the per-frame face
boxes, grown by a margin, made square and kept inside the frame. A fixed crop keeps head motion
in the landmark tracks instead of cancelling it out frame by frame.

Boxes are in image pixels of the frame they were detected on: x to the right, y down,
(x0, y0) the top-left and (x1, y1) the bottom-right corner (x1 > x0, y1 > y0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(slots=True)
class FaceBox:
    """One detected face: corners in image pixels (may reach outside the frame) and a score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float


def as_rgb(rgb: np.ndarray) -> np.ndarray:
    """`rgb` as a C-contiguous (H, W, 3) uint8 array (what MediaPipe takes); else ValueError."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    return np.ascontiguousarray(rgb)


class FaceDetector:
    """MediaPipe face detection (BlazeFace, model bundled in the mediapipe wheel).

    `full_range=False` is the short-range model (faces within ~2 m, i.e. faces that fill a good
    part of the frame, as in talking-head footage); `full_range=True` also finds small faces.
    The model is created at the first call, so a fresh detector pickles (ships to a Ray actor).
    """

    def __init__(self, min_confidence: float = 0.5, full_range: bool = False) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        self.min_confidence = min_confidence
        self.full_range = full_range
        self._model: Any = None

    def __call__(self, rgb: np.ndarray) -> list[FaceBox]:
        """Faces in an (H, W, 3) uint8 RGB image, highest score first (empty list: no face)."""
        if self._model is None:
            from mediapipe.python.solutions import face_detection

            self._model = face_detection.FaceDetection(
                model_selection=int(self.full_range),
                min_detection_confidence=self.min_confidence,
            )
        rgb = as_rgb(rgb)
        height, width = rgb.shape[:2]
        result = self._model.process(rgb)
        boxes = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            x0, y0 = rel.xmin * width, rel.ymin * height
            boxes.append(
                FaceBox(x0, y0, x0 + rel.width * width, y0 + rel.height * height, det.score[0])
            )
        return sorted(boxes, key=lambda b: -b.score)

    def close(self) -> None:
        """Release the model (a later call creates it again)."""
        if self._model is not None:
            self._model.close()
            self._model = None

    def __getstate__(self) -> dict:
        # The MediaPipe graph cannot be pickled; the copy builds its own at first use.
        return {"min_confidence": self.min_confidence, "full_range": self.full_range}

    def __setstate__(self, state: dict) -> None:
        FaceDetector.__init__(self, **state)


def square_crop_box(
    boxes: list[FaceBox | None], width: int, height: int, margin: float
) -> tuple[int, int, int]:
    """One square crop `(x0, y0, side)` in integer pixels covering every face box of a clip.

    The union of the boxes (`None` entries, i.e. frames without a face, are skipped) is clipped
    to the frame; the square is centred on it with side `max(union w, union h) * (1 + 2*margin)`
    (margin = fraction of the union's larger side added on each side), rounded up. It is then
    moved (not shrunk) to lie inside the frame. Only when it is larger than the frame's shorter
    side does it shrink, to exactly that side: the crop then spans the whole shorter dimension
    and may cut off part of the margin (or of the faces, for a union wider than the frame is tall).
    Without any box the result is the largest square centred in the frame.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    present = [b for b in boxes if b is not None]
    limit = min(width, height)
    if not present:
        return (width - limit) // 2, (height - limit) // 2, limit
    ux0 = min(max(min(b.x0 for b in present), 0.0), width)
    uy0 = min(max(min(b.y0 for b in present), 0.0), height)
    ux1 = min(max(max(b.x1 for b in present), 0.0), width)
    uy1 = min(max(max(b.y1 for b in present), 0.0), height)
    wanted = max(ux1 - ux0, uy1 - uy0) * (1.0 + 2.0 * margin)
    side = max(1, min(math.ceil(wanted - 1e-9), limit))
    x0 = _place(0.5 * (ux0 + ux1), side, width)
    y0 = _place(0.5 * (uy0 + uy1), side, height)
    return x0, y0, side


def _place(centre: float, side: int, extent: int) -> int:
    """Start of a `side`-long interval centred on `centre`, moved to lie within [0, extent]."""
    return min(max(round(centre - 0.5 * side), 0), extent - side)


def resized_points(points: np.ndarray, side: int, size: int | None) -> np.ndarray:
    """Pixel coordinates in a `side`² crop → the same points in that crop resized to `size`²
    (`crop_and_resize`): x and y as OpenCV maps pixel centres, (p + 0.5) · size / side − 0.5;
    z (on the scale of x) times size / side. (..., 3) float32; `size=None` keeps them."""
    if size is None or size == side:
        return points
    f = np.float32(size / side)
    out = np.empty_like(points)
    out[..., :2] = (points[..., :2] + np.float32(0.5)) * f - np.float32(0.5)
    out[..., 2] = points[..., 2] * f
    return out


def crop_and_resize(
    rgb: np.ndarray, box: tuple[int, int, int], out_size: int | None, out: np.ndarray | None = None
) -> np.ndarray:
    """The square `box = (x0, y0, side)` of an (H, W, 3) image, resized to (out_size, out_size, 3).

    `out_size=None` keeps the side. Downscaling uses cv2.INTER_AREA (averages, no aliasing),
    upscaling cv2.INTER_LINEAR. The box must lie inside the image (as `square_crop_box` returns).
    `out`: a C-contiguous (size, size, 3) uint8 array the crop is written into (e.g. a slot of
    a preallocated batch, saving a copy per frame) and returned; None = a new array.
    """
    x0, y0, side = (int(v) for v in box)
    height, width = rgb.shape[:2]
    if side <= 0 or x0 < 0 or y0 < 0 or x0 + side > width or y0 + side > height:
        raise ValueError(f"crop box {box} does not lie inside a {width}x{height} image")
    size = side if out_size is None else out_size
    if out is not None and (out.shape != (size, size, 3) or not out.flags.c_contiguous):
        raise ValueError(f"out must be a C-contiguous ({size}, {size}, 3) array, not {out.shape}")
    crop = rgb[y0 : y0 + side, x0 : x0 + side]
    if size == side:
        if out is None:
            return np.ascontiguousarray(crop)
        out[...] = crop
        return out
    if size <= 0:
        raise ValueError(f"out_size must be positive, got {out_size}")
    interpolation = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), dst=out, interpolation=interpolation)
