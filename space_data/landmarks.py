"""Per-frame 3D face landmarks: 68 iBUG points and 52 eye points, from one of two backends.

Coordinates are image pixels of the frame passed in: x to the right, y down, z depth (larger =
further from the camera) on the same pixel scale as x.

Backends (`LandmarksConfig.backend`):
- "mediapipe" (default): MediaPipe face mesh with refined eyes/iris (478 points), tracking mode
  across the frames of one clip (`reset()` between clips). Offline, CPU, model bundled in the
  wheel. 68 points are fixed convex combinations of mesh vertices (`IBUG68_FROM_MESH`; the jaw
  0–16 then moved onto the face's visible outline in each frame, `mesh_to_ibug68`), 52
  eye points are mesh vertices picked by `MESH_TO_EYES52`. Mesh z comes normalised by the image
  width: multiplied by width here.
- "fan": face-alignment's 3D FAN (`LandmarksType.THREE_D`) with its SFD or BlazeFace detector,
  per frame (no tracking). Its weights are NOT in the wheel: face-alignment downloads them at
  first use into `torch.hub.get_dir()/checkpoints` (`$TORCH_HOME/hub/checkpoints`). Before
  building the model this module checks that directory and raises `MissingWeightsError` naming
  the missing files, the directory and their URLs, instead of letting it try a download.
  Eye points: lids resampled from the 68 (below), iris rows NaN, brows from the 68. z is FAN's
  depth on the pixel scale (face-alignment scales it with the face crop); its sign could not be
  checked here without the weights: the nose tip (30) must come out with a smaller z than the
  jaw ends (0, 16), as it does for the mesh.

`IBUG68_FROM_MESH` puts the 68 points where the iBUG-300W convention does: each point is a
weighted mean (weights ≥ 0, summing to 1) of 1–6 FaceMesh vertices, so it is carried rigidly
with the mesh, z included. The weights were fitted by scripts/fit_ibug_map.py against dlib's
68-point predictor (trained on iBUG-300W; used only there and in tests, its licence is
non-commercial) on near-frontal frames of six realdata clips and the portraits, each also
mirrored; lid and lip points only use vertices of their own lid or lip, so they open and close
with it. The map is exactly mirror-symmetric (point `IBUG68_MIRROR[k]` uses the mirror vertices
of point k with the same weights). Each row's comment names the point; in short: 0/16 are
the jaw ends at the ear, a little below the outer eye corners (not at the temples), 8 the chin,
17–26 the brows along their middle, 27–30 the nose bridge down to the tip, 31–35 the nostrils,
36–47 the eye corners and lids (36–41 the subject's right eye, image left when frontal), 48–59
the outer and 60–67 the inner lip contour. iBUG's jaw line is the visible outline of the face,
which moves over the mesh as the head turns, so the jaw points are "marched": each surface-map
jaw point moves outwards (image plane, along the jaw line's normal) onto the silhouette found
among a strip of vertices across the outline (`JAW_SILHOUETTE`, `silhouette_depth`), then by a
fitted outset (`JAW_OUTSET`; scripts/fit_jaw_contour.py). Measured against dlib on held-out
clips (docs/record.md): median NME 2.9 % of the inter-ocular distance, jaw 3.8 % (the widely used
one-vertex-per-point map: 4.2 %, jaw 6.8 %).

Eye points `eyes52` (`EYES52_*` name the slices): two blocks of 26, block 0 = the subject's right
eye (iBUG 36–41 side, image left when frontal), block 1 = the subject's left eye. Per block:
- 0–15 lid contour, a closed loop: 0 outer corner, 1–7 lower lid towards the nose, 8 inner
  corner, 9–15 upper lid back towards the outer corner (MediaPipe: the FACEMESH_RIGHT_EYE /
  FACEMESH_LEFT_EYE loops; FAN: iBUG 36–41 / 42–47 resampled by arc length, 9 points per lid);
- 16–20 iris: centre, then the contour point on the outer, upper, inner, lower side
  (MediaPipe refined iris 468–477; FAN: NaN);
- 21–25 brow from outer to inner end (MediaPipe: FaceMesh's brow vertices, a little above the
  iBUG brow points; FAN: iBUG 17–21 for block 0, 26–22 for block 1).
So a mirrored image swaps the two blocks and keeps the order inside each.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np

from space_data.errors import SetupError
from space_data.face import as_rgb
from space_data.frames import FrameModel, check_frames

# iBUG 68 order: jaw 0–16, brows 17–21 / 22–26, nose 27–35, eyes 36–41 / 42–47, mouth 48–67.
# "right"/"left" are the subject's (right = image left in a frontal view).
IBUG68_NAMES: tuple[str, ...] = (
    "jaw end at the right ear (subject's right)",
    "right jaw line 1",
    "right jaw line 2",
    "right jaw line 3",
    "right jaw line 4",
    "right jaw line 5",
    "right jaw line 6",
    "right jaw line 7",
    "chin",
    "left jaw line 9",
    "left jaw line 10",
    "left jaw line 11",
    "left jaw line 12",
    "left jaw line 13",
    "left jaw line 14",
    "left jaw line 15",
    "jaw end at the left ear",
    "right brow outer end",
    "right brow",
    "right brow top",
    "right brow",
    "right brow inner end",
    "left brow inner end",
    "left brow",
    "left brow top",
    "left brow",
    "left brow outer end",
    "nose bridge top (between the eyes)",
    "nose bridge",
    "nose bridge",
    "nose tip",
    "right nostril outer",
    "right nostril",
    "below the nose tip (columella)",
    "left nostril",
    "left nostril outer",
    "right eye outer corner",
    "right upper lid outer",
    "right upper lid inner",
    "right eye inner corner",
    "right lower lid inner",
    "right lower lid outer",
    "left eye inner corner",
    "left upper lid inner",
    "left upper lid outer",
    "left eye outer corner",
    "left lower lid outer",
    "left lower lid inner",
    "right mouth corner (outer)",
    "upper lip outer, right",
    "upper lip outer, right peak",
    "upper lip outer, middle",
    "upper lip outer, left peak",
    "upper lip outer, left",
    "left mouth corner (outer)",
    "lower lip outer, left",
    "lower lip outer, left",
    "lower lip outer, middle",
    "lower lip outer, right",
    "lower lip outer, right",
    "right mouth corner (inner)",
    "upper lip inner, right",
    "upper lip inner, middle",
    "upper lip inner, left",
    "left mouth corner (inner)",
    "lower lip inner, left",
    "lower lip inner, middle",
    "lower lip inner, right",
)

# iBUG point k = Σ weight · FaceMesh vertex, per row (vertex, weight) pairs summing to 1
# (fitted by scripts/fit_ibug_map.py; see the module docstring).
IBUG68_FROM_MESH: tuple[tuple[tuple[int, float], ...], ...] = (
    ((127, 0.780), (162, 0.138), (227, 0.082)),  # 0 jaw end at the right ear (subject's right)
    ((227, 0.554), (93, 0.317), (127, 0.129)),  # 1 right jaw line 1
    ((137, 0.392), (132, 0.374), (227, 0.143), (215, 0.091)),  # 2 right jaw line 2
    ((215, 0.700), (132, 0.300)),  # 3 right jaw line 3
    ((172, 0.634), (215, 0.264), (138, 0.102)),  # 4 right jaw line 4
    ((136, 0.977), (150, 0.023)),  # 5 right jaw line 5
    ((149, 0.677), (150, 0.323)),  # 6 right jaw line 6
    ((176, 0.503), (148, 0.497)),  # 7 right jaw line 7
    ((152, 1.000),),  # 8 chin
    ((400, 0.503), (377, 0.497)),  # 9 left jaw line 9
    ((378, 0.677), (379, 0.323)),  # 10 left jaw line 10
    ((365, 0.977), (379, 0.023)),  # 11 left jaw line 11
    ((397, 0.634), (435, 0.264), (367, 0.102)),  # 12 left jaw line 12
    ((435, 0.700), (361, 0.300)),  # 13 left jaw line 13
    ((366, 0.392), (361, 0.374), (447, 0.143), (435, 0.091)),  # 14 left jaw line 14
    ((447, 0.554), (323, 0.317), (356, 0.129)),  # 15 left jaw line 15
    ((356, 0.780), (389, 0.138), (447, 0.082)),  # 16 jaw end at the left ear
    ((70, 0.500), (156, 0.346), (225, 0.080), (71, 0.074)),  # 17 right brow outer end
    ((68, 0.556), (29, 0.281), (224, 0.101), (225, 0.062)),  # 18 right brow
    ((104, 0.464), (222, 0.259), (27, 0.219), (66, 0.058)),  # 19 right brow top
    ((107, 0.605), (105, 0.347), (28, 0.048)),  # 20 right brow
    ((107, 0.427), (55, 0.232), (9, 0.198), (56, 0.143)),  # 21 right brow inner end
    ((336, 0.427), (285, 0.232), (9, 0.198), (286, 0.143)),  # 22 left brow inner end
    ((336, 0.605), (334, 0.347), (258, 0.048)),  # 23 left brow
    ((333, 0.464), (442, 0.259), (257, 0.219), (296, 0.058)),  # 24 left brow top
    ((298, 0.556), (259, 0.281), (444, 0.101), (445, 0.062)),  # 25 left brow
    ((300, 0.500), (383, 0.346), (445, 0.080), (301, 0.074)),  # 26 left brow outer end
    ((168, 0.497), (189, 0.227), (413, 0.227), (6, 0.049)),  # 27 nose bridge top (between the eyes)
    ((196, 0.261), (419, 0.261), (245, 0.239), (465, 0.239)),  # 28 nose bridge
    ((236, 0.427), (456, 0.427), (174, 0.073), (399, 0.073)),  # 29 nose bridge
    ((51, 0.278), (281, 0.278), (125, 0.222), (354, 0.222)),  # 30 nose tip
    ((75, 0.869), (98, 0.131)),  # 31 right nostril outer
    ((97, 0.675), (141, 0.163), (60, 0.162)),  # 32 right nostril
    ((2, 0.761), (164, 0.239)),  # 33 below the nose tip (columella)
    ((326, 0.675), (370, 0.163), (290, 0.162)),  # 34 left nostril
    ((305, 0.869), (327, 0.131)),  # 35 left nostril outer
    ((226, 0.405), (160, 0.304), (144, 0.203), (110, 0.088)),  # 36 right eye outer corner
    ((160, 0.410), (158, 0.391), (247, 0.129), (33, 0.070)),  # 37 right upper lid outer
    ((157, 0.431), (158, 0.418), (160, 0.099), (27, 0.052)),  # 38 right upper lid inner
    ((133, 0.745), (157, 0.170), (232, 0.085)),  # 39 right eye inner corner
    ((133, 0.472), (144, 0.430), (23, 0.098)),  # 40 right lower lid inner
    ((153, 0.444), (33, 0.305), (110, 0.177), (24, 0.074)),  # 41 right lower lid outer
    ((362, 0.745), (384, 0.170), (452, 0.085)),  # 42 left eye inner corner
    ((384, 0.431), (385, 0.418), (387, 0.099), (257, 0.052)),  # 43 left upper lid inner
    ((387, 0.410), (385, 0.391), (467, 0.129), (263, 0.070)),  # 44 left upper lid outer
    ((446, 0.405), (387, 0.304), (373, 0.203), (339, 0.088)),  # 45 left eye outer corner
    ((380, 0.444), (263, 0.305), (339, 0.177), (254, 0.074)),  # 46 left lower lid outer
    ((362, 0.472), (373, 0.430), (253, 0.098)),  # 47 left lower lid inner
    ((61, 0.866), (57, 0.134)),  # 48 right mouth corner (outer)
    ((39, 0.631), (40, 0.200), (191, 0.169)),  # 49 upper lip outer, right
    ((167, 0.391), (81, 0.332), (12, 0.202), (0, 0.075)),  # 50 upper lip outer, right peak
    ((37, 0.327), (267, 0.327), (82, 0.173), (312, 0.173)),  # 51 upper lip outer, middle
    ((393, 0.391), (311, 0.332), (12, 0.202), (0, 0.075)),  # 52 upper lip outer, left peak
    ((269, 0.631), (270, 0.200), (415, 0.169)),  # 53 upper lip outer, left
    ((291, 0.866), (287, 0.134)),  # 54 left mouth corner (outer)
    ((405, 0.346), (321, 0.268), (406, 0.197), (324, 0.189)),  # 55 lower lip outer, left
    ((314, 0.469), (313, 0.201), (403, 0.167), (17, 0.163)),  # 56 lower lip outer, left
    (
        (84, 0.370),
        (314, 0.370),
        (83, 0.102),
        (313, 0.102),
        (86, 0.028),
        (316, 0.028),
    ),  # 57 lower lip outer, middle
    ((84, 0.469), (83, 0.201), (179, 0.167), (17, 0.163)),  # 58 lower lip outer, right
    ((181, 0.346), (91, 0.268), (182, 0.197), (95, 0.189)),  # 59 lower lip outer, right
    ((78, 0.784), (191, 0.174), (95, 0.042)),  # 60 right mouth corner (inner)
    ((81, 0.489), (13, 0.412), (80, 0.076), (37, 0.023)),  # 61 upper lip inner, right
    ((82, 0.500), (312, 0.500)),  # 62 upper lip inner, middle
    ((311, 0.489), (13, 0.412), (310, 0.076), (267, 0.023)),  # 63 upper lip inner, left
    ((308, 0.784), (415, 0.174), (324, 0.042)),  # 64 left mouth corner (inner)
    ((14, 0.473), (318, 0.291), (402, 0.208), (314, 0.028)),  # 65 lower lip inner, left
    (
        (14, 0.312),
        (178, 0.291),
        (402, 0.291),
        (84, 0.053),
        (314, 0.053),
    ),  # 66 lower lip inner, middle
    ((14, 0.473), (88, 0.291), (178, 0.208), (84, 0.028)),  # 67 lower lip inner, right
)

# iBUG index of each point's mirror image (left ↔ right of the face).
IBUG68_MIRROR: tuple[int, ...] = (
    *range(16, -1, -1),
    *range(26, 16, -1),
    27, 28, 29, 30,
    35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46,
    39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
    64, 63, 62, 61, 60, 67, 66, 65,
)  # fmt: skip

N_LM = 68
"""Landmarks per frame (iBUG-68 order)."""
N_MESH = 478
"""FaceMesh points with the refined iris (468 face vertices + 10 iris points)."""


@functools.cache
@functools.cache
def ibug68_weights() -> np.ndarray:
    """(68, 478) float64 read-only matrix of `IBUG68_FROM_MESH`: lm68 = W @ mesh478."""
    weights = np.zeros((N_LM, N_MESH))
    for k, row in enumerate(IBUG68_FROM_MESH):
        for vertex, weight in row:
            weights[k, vertex] = weight
    weights.setflags(write=False)
    return weights


def face_mesh_points(model, rgb: np.ndarray) -> np.ndarray | None:
    """(478, 3) float64 points of the first face MediaPipe FaceMesh `model` finds in (H, W, 3)
    uint8 RGB `rgb`: x, y in pixels, z on the scale of x (FaceMesh normalises x and y by the
    width and height, z by the width); None without a face."""
    result = model.process(np.ascontiguousarray(rgb))
    if not result.multi_face_landmarks:
        return None
    height, width = rgb.shape[:2]
    mesh = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark])
    return mesh * (width, height, width)


JAW_SILHOUETTE: tuple[tuple[int, ...], ...] = (
    (34, 127, 162, 227, 234),  # 0
    (34, 93, 137, 227, 234),  # 1
    (93, 132, 137, 147, 177),  # 2
    (58, 132, 177, 213, 215),  # 3
    (58, 135, 138, 172, 215),  # 4
    (135, 136, 150, 172),  # 5
    (140, 149, 150, 170, 176),  # 6
    (148, 149, 171, 176),  # 7
    (148, 152, 175, 377),  # 8
    (377, 378, 396, 400),  # 9
    (369, 378, 379, 395, 400),  # 10
    (364, 365, 379, 397),  # 11
    (288, 364, 367, 397, 435),  # 12
    (288, 361, 401, 433, 435),  # 13
    (323, 361, 366, 376, 401),  # 14
    (264, 323, 366, 447, 454),  # 15
    (264, 356, 389, 447, 454),  # 16
)
"""Per jaw point 0–16: the FaceMesh vertices on a short strip across the face outline at that
point (within 0.2 inter-ocular distances of it along the contour, at most 0.05 inside it, on the
mean frontal face), among which the visible silhouette is looked for (scripts/fit_jaw_contour.py;
mirror-symmetric: row 16 − k holds the mirror vertices of row k)."""
JAW_OUTSET: tuple[float, ...] = (
    -0.007, -0.012, -0.019, -0.017, -0.004, 0.004, 0.004, 0.016, 0.017,
    0.016, 0.004, 0.004, -0.004, -0.017, -0.019, -0.012, -0.007,
)  # fmt: skip
"""Per jaw point 0–16: how far (inter-ocular distances, outwards along the contour normal) dlib's
iBUG jaw line lies beyond the FaceMesh silhouette, median over the fitting frames
(scripts/fit_jaw_contour.py; mirror-symmetric)."""
SILHOUETTE_SOFTNESS = 0.01
"""Temperature (inter-ocular distances) of the smooth maximum that finds the silhouette."""


def jaw_normals(lm68: np.ndarray) -> np.ndarray:
    """(..., 68, ≥2) points → (..., 17, 2) unit image-plane normals of the jaw line 0–16,
    pointing out of the face (central differences; one-sided at the ends)."""
    jaw = np.asarray(lm68, dtype=np.float64)[..., :17, :2]
    tangent = np.concatenate(
        [jaw[..., 1:2, :] - jaw[..., :1, :], jaw[..., 2:, :] - jaw[..., :-2, :],
         jaw[..., -1:, :] - jaw[..., -2:-1, :]],
        axis=-2,
    )  # fmt: skip
    normal = np.stack([-tangent[..., 1], tangent[..., 0]], axis=-1)
    return normal / np.linalg.norm(normal, axis=-1, keepdims=True)


def silhouette_depth(
    mesh: np.ndarray, surface68: np.ndarray, strips: tuple[tuple[int, ...], ...] = JAW_SILHOUETTE
) -> np.ndarray:
    """How far the visible face outline lies beyond each surface-map jaw point, (..., 17) ≥ 0 in
    inter-ocular distances (outer eye corners 36–45 of `surface68`).

    mesh (..., 478, 3) pixels; surface68 (..., 68, 3) = `ibug68_weights() @ mesh`. Per jaw point
    k, the vertices `strips[k]` are projected on the point's outward normal
    (`jaw_normals`) in this frame's image; the outermost of them is on the silhouette: as the
    head turns, the outline moves over the mesh and a different strip vertex comes out. A smooth
    maximum (log-sum-exp at `SILHOUETTE_SOFTNESS`) keeps the result a smooth function of the
    mesh, so it adds no jitter of its own when the outermost vertex changes.
    """
    mesh = np.asarray(mesh, dtype=np.float64)
    normal = jaw_normals(surface68)
    iod = np.linalg.norm(surface68[..., 36, :2] - surface68[..., 45, :2], axis=-1)[..., None]
    depth = np.empty(normal.shape[:-1])
    for k, strip in enumerate(strips):
        reach = np.einsum("...vc,...c->...v", mesh[..., strip, :2], normal[..., k, :])
        reach = reach / iod / SILHOUETTE_SOFTNESS
        top = reach.max(axis=-1)
        outline = SILHOUETTE_SOFTNESS * (top + np.log(np.exp(reach - top[..., None]).sum(-1)))
        own = np.einsum("...c,...c->...", surface68[..., k, :2], normal[..., k, :]) / iod[..., 0]
        depth[..., k] = outline - own
    return np.maximum(depth, 0.0)


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(..., 478, 3) FaceMesh points → (..., 68, 3) iBUG points, same dtype and units.

    Points 17–67: the fixed surface map `IBUG68_FROM_MESH`. Jaw points 0–16 follow the visible
    outline as the view changes ("contour marching"): the surface-map point moves outwards, in
    the image plane along the jaw line's normal, onto the face silhouette (`silhouette_depth`)
    and then by `JAW_OUTSET` (z unchanged).
    """
    mesh = np.asarray(mesh)
    points = ibug68_weights() @ mesh.astype(np.float64)  # BLAS: ~20x einsum's time
    iod = np.linalg.norm(points[..., 36, :2] - points[..., 45, :2], axis=-1)[..., None]
    shift = (silhouette_depth(mesh, points) + np.array(JAW_OUTSET)) * iod
    points[..., :17, :2] += shift[..., None] * jaw_normals(points)
    return points.astype(mesh.dtype)


EYES52_LID = slice(0, 16)  # within a 26-point block
EYES52_IRIS = slice(16, 21)
EYES52_BROW = slice(21, 26)
EYES52_LID_CORNERS = (0, 8)  # outer and inner corner within a block's lid contour
EYE_BLOCK = 26
N_EYES = 2 * EYE_BLOCK
"""Eye landmarks per frame: one 26-point block per eye (subject's right, then left)."""

MESH_TO_EYES52: tuple[int, ...] = (
    # subject's right eye: lid (outer corner, lower lid, inner corner, upper lid), iris, brow
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
    468, 471, 470, 469, 472,
    71, 63, 105, 66, 107,
    # subject's left eye, same layout
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
    473, 474, 475, 476, 477,
    301, 293, 334, 296, 336,
)  # fmt: skip

# FAN eyes: per eye the iBUG points of the lower lid (outer → inner) and of the upper lid
# (inner → outer), and the brow (outer → inner).
_FAN_EYES = (
    ((36, 41, 40, 39), (39, 38, 37, 36), (17, 18, 19, 20, 21)),
    ((45, 46, 47, 42), (42, 43, 44, 45), (26, 25, 24, 23, 22)),
)

BACKENDS = ("mediapipe", "fan")
FAN_DETECTORS = ("sfd", "blazeface")


@dataclass
class LandmarksConfig:
    """Which landmark backend runs and how (params.yaml: `extract.landmarks`)."""

    backend: str = "mediapipe"
    """Backend: "mediapipe" (face mesh, CPU, offline) or "fan" (face-alignment 3D FAN)."""
    min_detection_confidence: float = 0.5
    """MediaPipe: minimum face-detector score to start tracking a face, in [0, 1]."""
    min_tracking_confidence: float = 0.5
    """MediaPipe: below this landmark-presence score the face is re-detected, in [0, 1]."""
    fan_device: str = "auto"
    """FAN: torch device ("cpu", "cuda", "cuda:1"); "auto" = cuda when available, else cpu."""
    fan_detector: str = "sfd"
    """FAN: face-alignment's detector, "sfd" or "blazeface" (retinaface needs torchvision)."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.fan_detector not in FAN_DETECTORS:
            raise ValueError(
                f"fan_detector must be one of {FAN_DETECTORS}, got {self.fan_detector!r}"
            )
        if self.fan_device != "auto" and not self.fan_device.startswith(("cpu", "cuda", "mps")):
            raise ValueError(
                f"fan_device must be 'auto', 'cpu', 'cuda[:N]' or 'mps', got {self.fan_device!r}"
            )


@dataclass(slots=True)
class FaceLandmarks:
    """Landmarks of one face in one frame, image pixels (x, y; z on the x scale)."""

    lm68: np.ndarray
    """(68, 3) float32, iBUG order."""
    eyes52: np.ndarray
    """(52, 3) float32, layout in the module docstring; NaN rows where the backend has none."""


class Landmarker(FrameModel, Protocol):
    """A landmark backend: a frame model (`batch`, `reset` between clips, `close` at the end)
    that also answers for one image."""

    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """The face in one (H, W, 3) uint8 RGB frame (the next frame of the clip), or None."""
        ...

    def batch(
        self, frames: np.ndarray, faceless: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """(N, H, W, 3) uint8 RGB frames → lm68 (N, 68, 3) and eyes52 (N, 52, 3) float32 in the
        frames' pixels, NaN rows where no face; `faceless` (N,) bool: frames known to show no
        face (a face detector's verdict), left NaN without running the model."""
        ...


class MissingWeightsError(SetupError):
    """The FAN backend's weight files are not in the torch hub cache (no download is tried)."""


def make_landmarker(config: LandmarksConfig) -> Landmarker:
    """The backend `config.backend`; its model is built at the first frame (picklable before)."""
    if config.backend == "fan":
        return FanLandmarker(config)
    return MeshLandmarker(config)


class MeshLandmarker:
    """MediaPipe face mesh, refined (478 points), tracking one face (the first found) per clip."""

    def __init__(self, config: LandmarksConfig) -> None:
        self.config = config
        self._mesh = None
        self._tracking = False  # frames went through the graph since the last reset
        self._had_face = False  # the previous frame of the clip had a face

    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """Landmarks of the face in an (H, W, 3) uint8 RGB frame, or None without a face."""
        return first_face(self.batch(as_rgb(rgb)[None]))

    def batch(
        self, frames: np.ndarray, faceless: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """lm68 (N, 68, 3) and eyes52 (N, 52, 3) float32 pixels, NaN without a face; frame by
        frame through the tracker, with its tracking kept honest.

        FaceMesh in tracking mode keeps "tracking" a face that has left the picture (measured:
        a whole second of empty background on the sample corpus's no-face clip), so a frame
        marked `faceless` (the face detector found none) is left empty and the tracker is reset.
        When the tracker loses the face of the previous frame (a cut to another shot), the frame
        is searched afresh instead of being left empty.
        """
        meshes = self.meshes(frames, faceless)
        found = ~np.isnan(meshes[:, 0, 0])
        faces = meshes[found]
        out = empty_landmarks(len(meshes))
        out["lm68"][found] = mesh_to_ibug68(faces)  # one vectorised pass per batch
        out["eyes52"][found] = faces[:, list(MESH_TO_EYES52)]
        return out

    def meshes(self, frames: np.ndarray, faceless: np.ndarray | None = None) -> np.ndarray:
        """(N, 478, 3) float32 FaceMesh points in pixels, NaN without a face: the face mesh
        stage alone (`batch` maps its output to the record's points)."""
        frames = check_frames(frames)
        out = np.full((len(frames), N_MESH, 3), np.nan, np.float32)
        for i, rgb in enumerate(frames):
            if faceless is not None and faceless[i]:
                self.reset()
                continue
            mesh = self._mesh_points(rgb)
            if mesh is None and self._had_face:
                self.reset()
                mesh = self._mesh_points(rgb)
            self._had_face = mesh is not None
            if mesh is not None:
                out[i] = mesh
        return out

    def _mesh_points(self, rgb: np.ndarray) -> np.ndarray | None:
        """(478, 3) float32 mesh points in pixels of one frame (the next in the clip), or None."""
        if self._mesh is None:
            from mediapipe.python.solutions import face_mesh

            self._mesh = face_mesh.FaceMesh(
                static_image_mode=False,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=self.config.min_detection_confidence,
                min_tracking_confidence=self.config.min_tracking_confidence,
            )
        mesh = face_mesh_points(self._mesh, rgb)
        self._tracking = True
        return None if mesh is None else mesh.astype(np.float32)

    def reset(self) -> None:
        """Forget the tracked face (call between clips: the next frame starts with detection).

        Restarts the graph run (about half the cost of building the model again) and only when
        a frame went through it since the last reset.
        """
        if self._mesh is not None and self._tracking:
            self._mesh.reset()
        self._tracking = False
        self._had_face = False

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
        self._tracking = False
        self._had_face = False

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        MeshLandmarker.__init__(self, state["config"])


def fan_weight_files(detector: str) -> dict[str, str]:
    """File name → download URL of every file FAN 3D with `detector` loads from the hub cache.

    Read from the installed face_alignment, so the names follow its version.
    """
    from face_alignment import api

    urls = [api.models_urls["3DFAN-4"], api.models_urls["depth"]]
    if detector == "sfd":
        from face_alignment.detection.sfd import sfd_detector

        urls.append(sfd_detector.models_urls["s3fd"])
    else:
        from face_alignment.detection.blazeface import blazeface_detector

        urls += [
            blazeface_detector.models_urls["blazeface_weights"],
            blazeface_detector.models_urls["blazeface_anchors"],
        ]
    # torch.hub and face_alignment name a cached file after the URL path's last part.
    return {os.path.basename(urlparse(url).path): url for url in urls}


def check_fan_weights(detector: str) -> None:
    """Raise MissingWeightsError unless every FAN weight file is in the torch hub cache."""
    import torch

    directory = os.path.join(torch.hub.get_dir(), "checkpoints")
    files = fan_weight_files(detector)
    missing = {
        name: url
        for name, url in files.items()
        if not os.path.isfile(os.path.join(directory, name))
    }
    if missing:
        listing = "\n".join(f"  {name}  <-  {url}" for name, url in missing.items())
        raise MissingWeightsError(
            f"landmarks backend 'fan' (detector {detector!r}) needs face-alignment weights "
            f"that are not in the torch hub cache {directory}.\n"
            f"Missing files (name <- source URL):\n{listing}\n"
            "Download them on a machine with network access and copy them into that directory "
            "(it is $TORCH_HOME/hub/checkpoints; set TORCH_HOME to use another), or use "
            "extract.landmarks.backend: mediapipe."
        )


class FanLandmarker:
    """face-alignment 3D FAN: 68 points per frame; the largest detected face is kept."""

    def __init__(self, config: LandmarksConfig) -> None:
        self.config = config
        self._model: Any = None

    def _load(self):
        import face_alignment
        import torch

        check_fan_weights(self.config.fan_detector)
        device = self.config.fan_device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            return face_alignment.FaceAlignment(
                face_alignment.LandmarksType.THREE_D,
                device=device,
                flip_input=False,
                face_detector=self.config.fan_detector,
                # torch.compile costs minutes at start-up and gains nothing on CPU.
                compile=False,
            )
        except Exception as e:
            # A half-copied weight file fails deep inside torch.load: say which files to check.
            raise RuntimeError(
                f"face-alignment 3D FAN could not be built on {device!r} from the weights in "
                f"{os.path.join(torch.hub.get_dir(), 'checkpoints')} "
                f"({', '.join(fan_weight_files(self.config.fan_detector))}): "
                f"{type(e).__name__}: {e}"
            ) from e

    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """Landmarks of the largest face in an (H, W, 3) uint8 RGB frame, or None without a face."""
        return first_face(self.batch(as_rgb(rgb)[None]))

    def batch(
        self, frames: np.ndarray, faceless: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """lm68 (N, 68, 3) and eyes52 (N, 52, 3) float32 pixels of the largest face per frame,
        NaN without a face. The face detector runs on the batch at once (face-alignment's
        `get_landmarks_from_batch`); face-alignment 1.5 then runs FAN on each frame's faces."""
        import torch

        frames = check_frames(frames)
        if self._model is None:
            self._model = self._load()
        out = empty_landmarks(len(frames))
        todo = np.arange(len(frames)) if faceless is None else np.flatnonzero(~faceless)
        if not len(todo):
            return out
        images = torch.from_numpy(frames[todo]).permute(0, 3, 1, 2)  # (n, 3, H, W) RGB
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            faces, _, boxes = self._model.get_landmarks_from_batch(images, return_bboxes=True)
        for i, points, found in zip(todo, faces, boxes, strict=True):
            if not len(found):
                continue
            areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in found]
            lm68 = np.asarray(points, np.float32).reshape(-1, 68, 3)[int(np.argmax(areas))]
            out["lm68"][i] = lm68
            out["eyes52"][i] = fan_eyes52(lm68)
        return out

    def reset(self) -> None:
        """Nothing to forget: FAN works frame by frame."""

    def close(self) -> None:
        self._model = None

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        FanLandmarker.__init__(self, state["config"])


def empty_landmarks(n: int) -> dict[str, np.ndarray]:
    """lm68 (n, 68, 3) and eyes52 (n, 52, 3) float32, all NaN (no face yet)."""
    return {
        "lm68": np.full((n, 68, 3), np.nan, np.float32),
        "eyes52": np.full((n, 2 * EYE_BLOCK, 3), np.nan, np.float32),
    }


def first_face(landmarks: dict[str, np.ndarray]) -> FaceLandmarks | None:
    """The first frame of a landmarker's `batch` output, or None when it has no face."""
    lm68 = landmarks["lm68"][0]
    return FaceLandmarks(lm68, landmarks["eyes52"][0]) if np.isfinite(lm68).all() else None


def fan_eyes52(lm68: np.ndarray) -> np.ndarray:
    """(52, 3) float32 eye points from (68, 3) iBUG landmarks: resampled lids, NaN iris, brows."""
    eyes = np.full((2 * EYE_BLOCK, 3), np.nan, dtype=np.float32)
    for block, (lower, upper, brow) in enumerate(_FAN_EYES):
        base = block * EYE_BLOCK
        eyes[base : base + 9] = _resample_polyline(lm68[list(lower)], 9)
        eyes[base + 9 : base + 16] = _resample_polyline(lm68[list(upper)], 9)[1:-1]
        eyes[base + EYES52_BROW.start : base + EYES52_BROW.stop] = lm68[list(brow)]
    return eyes


def _resample_polyline(points: np.ndarray, n: int) -> np.ndarray:
    """`n` points evenly spaced by arc length along the polyline `points` (P, 3), ends kept."""
    points = np.asarray(points, dtype=np.float64)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    if arc[-1] <= 0:
        return np.repeat(points[:1], n, axis=0)
    targets = np.linspace(0.0, arc[-1], n)
    return np.stack([np.interp(targets, arc, points[:, k]) for k in range(3)], axis=1)
