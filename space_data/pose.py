"""Head pose: the angle convention shared by the renderer (synth) and the estimator.

Coordinates are camera/image coordinates: x to the image right, y down, z away from the
camera (depth). The canonical face looks at the camera (its nose points along −z).

R = Rz(roll) · Ry(yaw) · Rx(pitch), angles in degrees:
- yaw > 0: the nose turns towards the image left (the subject's right);
- pitch > 0: the nose turns down;
- roll > 0: the face turns clockwise in the image.
Consequences (tested): mirroring the image (x → −x) negates yaw and roll and keeps pitch;
rotating the image in-plane by θ clockwise adds θ to roll.

Estimation (below): the project's canonical 3D face `CANONICAL_FACE68` (built by
scripts/build_canonical_face.py from FaceMesh on frontal photos: symmetric about x = 0,
centroid at 0, landmarks 0 and 16 two apart, "frontal" = its symmetry plane and principal
plane face the camera), deformed the way the landmarker deforms a face at each pose
(`model_face`, learnt by scripts/build_pose_response.py), is fitted to a frame's 68 landmarks
by similarity transforms (Umeyama); the rotation gives the angles above (`estimate_pose`).
`frontalize` undoes the rotation of the plain similarity fit for `lm_norm` / `eyes_norm`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from space_data.landmarks import IBUG68_MIRROR


def euler_to_matrix(
    yaw: np.ndarray | float, pitch: np.ndarray | float, roll: np.ndarray | float
) -> np.ndarray:
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


# ---------------------------------------------------------------------------------------------
# Canonical face, similarity fit, head pose and frontalization.
#
# Head pose is the rotation R of the similarity transform that maps the canonical 3D face onto a
# frame's 68 landmarks: lm68 ≈ s · R · CANONICAL_FACE68 + t (orthographic: landmark z is the
# landmarker's relative depth in the same pixel units as x, not a perspective distance).

ASSETS = Path(__file__).resolve().parent / "assets"
CANONICAL_PATH = ASSETS / "canonical_face68.npy"


def __getattr__(name: str) -> np.ndarray:
    # CANONICAL_FACE68 is read on first use, so scripts/build_canonical_face.py can import this
    # module before the asset exists.
    if name == "CANONICAL_FACE68":
        return _canonical_face()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _read_asset(path: Path, build: str) -> np.ndarray:
    """A committed float64 array, read-only; a missing file names the command that builds it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `{build}`")
    array = np.load(path).astype(np.float64)
    array.setflags(write=False)
    return array


@functools.cache
def _canonical_face() -> np.ndarray:
    return _read_asset(CANONICAL_PATH, "python scripts/build_canonical_face.py")


def mirror_landmarks(lm68: np.ndarray, width: float = 0.0) -> np.ndarray:
    """Landmarks of the horizontally mirrored image: x → width − x, iBUG labels swapped.

    (..., 68, 3) → (..., 68, 3); `width` is the image width in the landmarks' units (0 mirrors
    about x = 0, which is what the canonical face uses).
    """
    out = np.array(lm68, dtype=np.float64)[..., IBUG68_MIRROR, :]
    out[..., 0] = width - out[..., 0]
    return out


def fit_similarity(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama least-squares similarity: dst ≈ s · R @ src + t.

    src, dst (N, 3); weights (N,) ≥ 0 or None. Rows with NaN in src or dst are ignored.
    Returns s (float), R (3, 3) proper rotation (det +1), t (3,); all NaN when fewer than 3
    valid rows remain.
    """
    w = None if weights is None else np.asarray(weights, dtype=np.float64)[None]
    s, rot, t = _umeyama(np.asarray(src, dtype=np.float64), np.asarray(dst)[None], w)
    return float(s[0]), rot[0], t[0]


def _umeyama(
    src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched Umeyama: src (N, 3) or (T, N, 3), dst (T, N, 3), weights (T, N) or None →
    s (T,), R (T, 3, 3), t (T, 3)."""
    dst = np.asarray(dst, dtype=np.float64)
    src = np.broadcast_to(src, dst.shape)
    valid = np.isfinite(dst).all(-1) & np.isfinite(src).all(-1)  # (T, N)
    w = valid.astype(np.float64) if weights is None else np.where(valid, weights, 0.0)
    src0 = np.where(np.isfinite(src), src, 0.0)
    dst0 = np.where(valid[..., None], dst, 0.0)
    total = w.sum(-1)  # (T,)
    ok = (valid.sum(-1) >= 3) & (total > 0)
    wn = w / np.where(ok, total, 1.0)[:, None]
    mu_s = np.einsum("tn,tnc->tc", wn, src0)
    mu_d = np.einsum("tn,tnc->tc", wn, dst0)
    xs = src0 - mu_s[:, None]  # (T, N, 3)
    xd = dst0 - mu_d[:, None]
    cov = np.einsum("tn,tni,tnj->tij", wn, xd, xs)  # (T, 3, 3)
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones_like(sv)
    d[:, 2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    d[d == 0] = 1.0
    rot = (u * d[:, None, :]) @ vt
    var_s = np.einsum("tn,tn->t", wn, (xs**2).sum(-1))
    s = (sv * d).sum(-1) / np.where(var_s > 0, var_s, 1.0)
    t = mu_d - s[:, None] * np.einsum("tij,tj->ti", rot, mu_s)
    bad = ~ok | (var_s <= 0)
    s[bad], rot[bad], t[bad] = np.nan, np.nan, np.nan
    return s, rot, t


RESPONSE_PATH = ASSETS / "pose_response.npy"
RESPONSE_ITERATIONS = 8
"""Fixed-point steps of the pose fit (the change per step shrinks ~5×; 8 reach < 0.01°)."""


RESPONSE_RANGE = (70.0, 45.0)
"""|yaw|, |pitch| (degrees) beyond which the response is held constant: it was learnt up to
65° and 35° and is not extrapolated further."""


def response_features(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(..., 5) features of the landmarker's pose response: sin y, sin p, sin² y, sin² p,
    sin y · sin p (y, p: yaw and pitch in degrees, (...) arrays, clipped to RESPONSE_RANGE)."""
    yaw = np.clip(yaw, -RESPONSE_RANGE[0], RESPONSE_RANGE[0])
    pitch = np.clip(pitch, -RESPONSE_RANGE[1], RESPONSE_RANGE[1])
    sy, sp = np.sin(np.deg2rad(yaw)), np.sin(np.deg2rad(pitch))
    return np.stack([sy, sp, sy * sy, sp * sp, sy * sp], -1)


def model_face(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """(..., 68, 3) the canonical face as the landmarker sees it at this yaw and pitch (degrees,
    (...) arrays), unrotated: CANONICAL_FACE68 + Σ_j f_j · D_j."""
    feats = response_features(yaw, pitch)
    return _canonical_face() + np.einsum("...j,jnc->...nc", feats, _response())


@functools.cache
def _response() -> np.ndarray:
    return _read_asset(RESPONSE_PATH, "python -m scripts.build_pose_response")


def estimate_pose(
    lm68: np.ndarray, response: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Head pose per frame from 68 3D landmarks, with the landmarker's pose response modelled.

    lm68: (T, 68, 3) crop pixels (z: the landmarker's relative depth, same units); NaN frames
    stay NaN. response: model FaceMesh's pose response (below); False fits the canonical face
    rigidly (for other landmarkers: the response was measured for FaceMesh only).

    FaceMesh does not turn its landmarks rigidly with the head: it regresses towards a frontal
    face, in depth and in the image alike (on renders at known poses a similarity fit of the
    canonical face reads ~0.81 of the yaw and pitch, a fit to the image positions alone ~0.87
    and ~0.8). The model: the landmarks are a similarity transform of the canonical face
    deformed by the landmarker's response to the pose,
        lm68 ≈ s · R(yaw, pitch, roll) · (CANONICAL_FACE68 + Σ_j f_j(yaw, pitch) · D_j) + t,
    (`model_face`), f = `response_features`, D (5, 68, 3) = `space_data/assets/pose_response.npy`
    learnt by scripts/build_pose_response.py from renders of the canonical-face photos at known
    poses (mirror-symmetric, roll-free: an in-plane turn of the image is a plain rotation).
    Fitting alternates a Umeyama similarity fit to the deformed face with updating the
    deformation from the fitted angles (`RESPONSE_ITERATIONS` steps, from the undeformed face).

    Returns
      pose (T, 6) float32: yaw, pitch, roll in degrees (this module's convention), then
        tx, ty, tz = t: tx, ty are the crop-pixel position of the canonical face's centre (its
        landmark centroid); tz is that centre's depth in the landmarker's relative z (≈ 0 for
        MediaPipe, whose z is centred on the face; the fit is orthographic, so distance to the
        camera shows up in `scale`, not in tz);
      scale (T,) float32: s, crop pixels per canonical unit (half the ear-to-ear distance,
        since canonical landmarks 0 and 16 are 2 apart);
      R (T, 3, 3) float64: the rotation of the plain similarity fit of the canonical face
        (camera ← canonical), the one that best aligns the landmark cloud with it: what
        `frontalize` undoes for `lm_norm`.
    """
    lm68 = np.asarray(lm68, dtype=np.float64)
    s, rot, t = _umeyama(_canonical_face(), lm68, None)
    s_k, rot_k, t_k = s, rot, t
    for _ in range(RESPONSE_ITERATIONS if response else 0):
        angles = np.nan_to_num(matrix_to_euler(rot_k))
        s_k, rot_k, t_k = _umeyama(model_face(angles[:, 0], angles[:, 1]), lm68, None)
    pose = np.concatenate([matrix_to_euler(rot_k), t_k], -1)
    return pose.astype(np.float32), s_k.astype(np.float32), rot


def frontalize(points: np.ndarray, rot: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """Undo head rotation and normalize: the `lm_norm` / `eyes_norm` coordinates.

    points (T, P, 3) crop pixels (lm68 itself or the 52 eye points), rot (T, 3, 3) from
    `estimate_pose`, lm68 (T, 68, 3) crop pixels. Each frame is rotated back to the canonical
    (frontal) orientation, kept orthographic (x, y and z all kept), translated so the
    un-rotated 68 landmarks have their centroid at 0, and scaled so landmarks 0 and 16 are
    exactly 2 apart. Returns (T, P, 3) float32, unitless; NaN where rot or lm68 is NaN.
    """
    rot = np.asarray(rot, dtype=np.float64)
    # row vectors: p' = Rᵀ p  ⇔  p'ᵀ = pᵀ R
    ref = np.asarray(lm68, dtype=np.float64) @ rot
    out = np.asarray(points, dtype=np.float64) @ rot
    centre = ref.mean(1, keepdims=True)
    ear = np.linalg.norm(ref[:, 0] - ref[:, 16], axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(ear > 0, 2.0 / ear, np.nan)
    return ((out - centre) * factor[:, None, None]).astype(np.float32)
