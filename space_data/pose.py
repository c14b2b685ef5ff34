"""Head pose: the angle convention shared by the renderer (synth) and the estimator.

Coordinates are camera/image coordinates: x to the image right, y down, z away from the
camera (depth). The canonical face looks at the camera (its nose points along −z).

R = Rz(roll) · Ry(yaw) · Rx(pitch), angles in degrees:
- yaw > 0: the nose turns towards the image left (the subject's right);
- pitch > 0: the nose turns down;
- roll > 0: the face turns clockwise in the image.
Consequences (tested): mirroring the image (x → −x) negates yaw and roll and keeps pitch;
rotating the image in-plane by θ clockwise adds θ to roll.
"""

from __future__ import annotations

import numpy as np


def euler_to_matrix(yaw: np.ndarray | float, pitch: np.ndarray | float,
                    roll: np.ndarray | float) -> np.ndarray:
    """Rotation matrices (..., 3, 3) float64 from angles in degrees (broadcast together)."""
    y, p, r = (np.deg2rad(np.asarray(a, dtype=np.float64)) for a in (yaw, pitch, roll))
    y, p, r = np.broadcast_arrays(y, p, r)
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    one, zero = np.ones_like(y), np.zeros_like(y)
    rx = np.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).reshape(*y.shape, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*y.shape, 3, 3)
    rz = np.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).reshape(*y.shape, 3, 3)
    return rz @ ry @ rx


def matrix_to_euler(rot: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees, shape (..., 3), from rotation matrices (..., 3, 3)."""
    rot = np.asarray(rot, dtype=np.float64)
    yaw = np.arctan2(-rot[..., 2, 0], np.hypot(rot[..., 2, 1], rot[..., 2, 2]))
    pitch = np.arctan2(rot[..., 2, 1], rot[..., 2, 2])
    roll = np.arctan2(rot[..., 1, 0], rot[..., 0, 0])
    return np.rad2deg(np.stack([yaw, pitch, roll], -1))
