"""Per-frame 3D face landmarks: 68 iBUG points and 52 eye points, from one of two backends.

Coordinates are image pixels of the frame passed in: x to the right, y down, z depth (larger =
further from the camera) on the same pixel scale as x.

Backends (`LandmarksConfig.backend`):
- "mediapipe" (default): MediaPipe face mesh with refined eyes/iris (478 points), tracking mode
  across the frames of one clip (`reset()` between clips). Offline, CPU, model bundled in the
  wheel. 68 points are mesh vertices picked by `MESH_TO_IBUG68`, 52 eye points by
  `MESH_TO_EYES52`. Mesh z comes normalised by the image width: multiplied by width here.
- "fan": face-alignment's 3D FAN (`LandmarksType.THREE_D`) with its SFD or BlazeFace detector,
  per frame (no tracking). Its weights are NOT in the wheel: face-alignment downloads them at
  first use into `torch.hub.get_dir()/checkpoints` (`$TORCH_HOME/hub/checkpoints`). Before
  building the model this module checks that directory and raises `MissingWeightsError` naming
  the missing files, the directory and their URLs, instead of letting it try a download.
  Eye points: lids resampled from the 68 (below), iris rows NaN, brows from the 68. z is FAN's
  depth on the pixel scale (face-alignment scales it with the face crop); its sign could not be
  checked here without the weights: the nose tip (30) must come out with a smaller z than the
  jaw ends (0, 16), as it does for the mesh.

`MESH_TO_IBUG68` is the FaceMesh → iBUG-68 vertex map in wide use (e.g. ByteDance LatentSync
1.5, `LM68_FROM_MP478`; the same list appears in many MediaPipe-to-dlib converters). It was
checked by drawing both on the realdata portraits: jaw 0 and 16 are the ear ends of the jaw line
at eye level (lm_norm scales by their distance), 8 the chin, 36–41 the subject's right eye
(image left in a frontal view), 48/54 the mouth corners. It is mirror-consistent: mirroring the
face maps vertex `MESH_TO_IBUG68[i]` to `MESH_TO_IBUG68[IBUG68_MIRROR[i]]` (tested).

Eye points `eyes52` (`EYES52_*` name the slices): two blocks of 26, block 0 = the subject's right
eye (iBUG 36–41 side, image left when frontal), block 1 = the subject's left eye. Per block:
- 0–15 lid contour, a closed loop: 0 outer corner, 1–7 lower lid towards the nose, 8 inner
  corner, 9–15 upper lid back towards the outer corner (MediaPipe: the FACEMESH_RIGHT_EYE /
  FACEMESH_LEFT_EYE loops; FAN: iBUG 36–41 / 42–47 resampled by arc length, 9 points per lid);
- 16–20 iris: centre, then the contour point on the outer, upper, inner, lower side
  (MediaPipe refined iris 468–477; FAN: NaN);
- 21–25 brow from outer to inner end (iBUG 17–21 for block 0, 26–22 for block 1).
So a mirrored image swaps the two blocks and keeps the order inside each.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

import numpy as np

from space_data.errors import SetupError
from space_data.face import as_rgb

# iBUG 68 order: jaw 0–16, brows 17–21 / 22–26, nose 27–35, eyes 36–41 / 42–47, mouth 48–67.
MESH_TO_IBUG68: tuple[int, ...] = (
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  # jaw
    71, 63, 105, 66, 107,  # subject's right brow, outer → inner
    336, 296, 334, 293, 301,  # subject's left brow, inner → outer
    168, 197, 5, 4,  # nose bridge
    75, 97, 2, 326, 305,  # nostrils
    33, 160, 158, 133, 153, 144,  # subject's right eye
    362, 385, 387, 263, 373, 380,  # subject's left eye
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lips
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lips
)  # fmt: skip

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


class Landmarker(Protocol):
    """A landmark backend: one call per frame, `reset()` between clips, `close()` at the end."""

    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


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

    def __call__(self, rgb: np.ndarray) -> FaceLandmarks | None:
        """Landmarks of the face in an (H, W, 3) uint8 RGB frame, or None without a face."""
        if self._mesh is None:
            from mediapipe.python.solutions import face_mesh

            self._mesh = face_mesh.FaceMesh(
                static_image_mode=False,
                max_num_faces=1,
                refine_landmarks=True,
                min_detection_confidence=self.config.min_detection_confidence,
                min_tracking_confidence=self.config.min_tracking_confidence,
            )
        rgb = as_rgb(rgb)
        height, width = rgb.shape[:2]
        result = self._mesh.process(rgb)
        self._tracking = True
        if not result.multi_face_landmarks:
            return None
        mesh = np.array(
            [(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float64
        )
        # x, y are normalised by width and height, z by width ("roughly the scale of x").
        mesh *= (width, height, width)
        mesh = mesh.astype(np.float32)
        return FaceLandmarks(mesh[list(MESH_TO_IBUG68)], mesh[list(MESH_TO_EYES52)])

    def reset(self) -> None:
        """Forget the tracked face (call between clips: the next frame starts with detection).

        Restarts the graph run (about half the cost of building the model again) and only when
        a frame went through it since the last reset.
        """
        if self._mesh is not None and self._tracking:
            self._mesh.reset()
        self._tracking = False

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
        self._tracking = False

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["config"])


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
        self._model = None

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
        if self._model is None:
            self._model = self._load()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            faces, _, boxes = self._model.get_landmarks_from_image(as_rgb(rgb), return_bboxes=True)
        if not faces:
            return None
        areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
        lm68 = np.asarray(faces[int(np.argmax(areas))], dtype=np.float32)
        return FaceLandmarks(lm68, fan_eyes52(lm68))

    def reset(self) -> None:
        """Nothing to forget: FAN works frame by frame."""

    def close(self) -> None:
        self._model = None

    def __getstate__(self) -> dict:
        return {"config": self.config}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["config"])


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
