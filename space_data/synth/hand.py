"""A real hand, cut out of a photo, laid over the rendered face (the `hands` design).

MediaPipe Hands finds the 21 hand landmarks in the photo; the cut-out mask is the palm polygon
plus a thick stroke along each finger bone (a convex hull would carry the background between
the fingers along), feathered at the edge. Pasted frames are checked by the tests with
MediaPipe Hands, so a hand that is not found again would fail them, not pass silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

PALM = (0, 1, 5, 9, 13, 17)
HAND_HEIGHT = 2.6
"""Height of the pasted hand cut-out, canonical face units (outer-eye-corner distance)."""
OFFSET = (0.9, 0.5)
"""Where the cut-out's centre goes relative to the face origin, canonical units (x, y)."""


@dataclass(slots=True)
class HandOverlay:
    """rgb: (h, w, 3) uint8 hand cut-out; alpha: (h, w) float32 in [0, 1]."""

    rgb: np.ndarray
    alpha: np.ndarray

    def paste(self, frame: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Frame with the hand over the face at `pose` (the frame's (6,) truth row)."""
        scale = pose[5]
        size = HAND_HEIGHT * scale / self.rgb.shape[0]
        hw = max(2, round(self.rgb.shape[1] * size))
        hh = max(2, round(self.rgb.shape[0] * size))
        rgb = cv2.resize(self.rgb, (hw, hh), interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = cv2.resize(self.alpha, (hw, hh), interpolation=cv2.INTER_AREA)[:, :, None]
        x0 = round(pose[3] + OFFSET[0] * scale - hw / 2)
        y0 = round(pose[4] + OFFSET[1] * scale - hh / 2)
        fh, fw = frame.shape[:2]
        ax0, ay0 = max(0, x0), max(0, y0)
        ax1, ay1 = min(fw, x0 + hw), min(fh, y0 + hh)
        if ax0 >= ax1 or ay0 >= ay1:
            return frame
        out = frame.copy()
        region = out[ay0:ay1, ax0:ax1].astype(np.float32)
        a = alpha[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        src = rgb[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        out[ay0:ay1, ax0:ax1] = np.round(a * src + (1 - a) * region).astype(np.uint8)
        return out


def hand_landmarks(rgb: np.ndarray) -> np.ndarray | None:
    """(21, 2) float64 pixel positions of the first hand MediaPipe Hands finds, or None."""
    import mediapipe as mp

    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=1) as hands:
        result = hands.process(np.ascontiguousarray(rgb))
    if not result.multi_hand_landmarks:
        return None
    h, w = rgb.shape[:2]
    return np.array([(p.x * w, p.y * h) for p in result.multi_hand_landmarks[0].landmark])


def load_hand(path: str | None) -> HandOverlay:
    """Cut the hand out of the photo at `path`; raises ValueError when there is none."""
    import mediapipe as mp

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path and Path(path).is_file() else None
    if bgr is None:
        raise ValueError(f"hand photo {path} cannot be read")
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    pts = hand_landmarks(rgb)
    if pts is None:
        raise ValueError(f"MediaPipe Hands finds no hand in {path}")
    finger = 0.8 * np.linalg.norm(pts[5] - pts[9])  # stroke width ≈ finger width
    mask = np.zeros(rgb.shape[:2], dtype=np.uint8)
    cv2.fillConvexPoly(mask, np.round(pts[list(PALM)]).astype(np.int32), 255)
    for a, b in mp.solutions.hands.HAND_CONNECTIONS:
        cv2.line(
            mask,
            tuple(np.round(pts[a]).astype(int)),
            tuple(np.round(pts[b]).astype(int)),
            255,
            max(1, round(finger)),
        )
    for tip in (4, 8, 12, 16, 20):  # round finger tips
        cv2.circle(mask, tuple(np.round(pts[tip]).astype(int)), max(1, round(finger / 2)), 255, -1)
    x, y, w, h = cv2.boundingRect(mask)
    alpha = cv2.GaussianBlur(mask, (0, 0), max(1.0, finger / 8)).astype(np.float32) / 255
    return HandOverlay(rgb=rgb[y : y + h, x : x + w].copy(), alpha=alpha[y : y + h, x : x + w])
