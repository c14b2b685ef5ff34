"""An independent iBUG-300W 68-point reference for the MediaPipe → iBUG map: dlib's predictor.

dlib's `shape_predictor_68_face_landmarks.dat` (from the `face-recognition-models` package) was
trained on the iBUG-300W annotations. Its licence allows non-commercial use only, so it is used
here, in scripts and tests, never by space_data / pipelines / space_models at run time.

`collect` runs MediaPipe FaceMesh (the project's `MeshLandmarker` internals: refined, tracking
through a clip) and dlib (HOG face detector + 68-point predictor) on the same frames and returns
the pairs: the 478 mesh points (pixels, z on the scale of x) and dlib's 68 points (pixels).

Run as a module from the project root (`python -m scripts.<name>`), so `scripts` imports.
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from space_data.landmarks import face_mesh_points
from space_data.media import VideoReader
from space_data.testing.faces import read_rgb, realdata_root

REALDATA = realdata_root()
"""Default realdata folder: $SPACE_REALDATA, else ../shared/realdata from the project root."""

realdata_option = click.option(
    "--realdata",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=REALDATA,
    show_default=True,
    help="The realdata folder (images/, video/).",
)
"""The scripts' `--realdata` option (default REALDATA)."""


def npz_cache_option(contents: str) -> Callable:
    """The scripts' `--cache FILE.npz` option, holding `contents` (see `cached_npz`)."""
    return click.option(
        "--cache",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"npz of {contents}: read when present, else written.",
    )


def cached_npz(
    path: Path | None, make: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays of the npz file `path` when it exists; else `make()`'s, written to `path` when
    one is given (a script's slow collection, made once)."""
    if path is not None and path.is_file():
        return dict(np.load(path))
    out = make()
    if path is not None:
        np.savez(path, **out)
    return out


def predictor_path() -> Path:
    """The dlib 68-point model file inside the installed `face_recognition_models` package.

    Located without importing the package (its __init__ needs setuptools' pkg_resources).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face_recognition_models is not installed")
    path = Path(
        spec.submodule_search_locations[0], "models", "shape_predictor_68_face_landmarks.dat"
    )
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing")
    return path


class DlibReference:
    """dlib's HOG face detector + 68-point predictor: (68, 2) float64 pixels or None."""

    def __init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(predictor_path()))

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        """Points of the largest face dlib finds in an (H, W, 3) uint8 RGB image, or None."""
        rgb = np.ascontiguousarray(rgb)  # dlib misreads strided arrays
        upsample = 1 if max(rgb.shape[:2]) < 400 else 0
        boxes = self._detector(rgb, upsample)
        if not boxes:
            return None
        box = max(boxes, key=lambda b: b.area())
        shape = self._predictor(rgb, box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


@dataclass
class Pairs:
    """Frames where both found a face: mesh (F, 478, 3) px, ref (F, 68, 2) px, source (F,) str."""

    mesh: np.ndarray
    ref: np.ndarray
    source: np.ndarray

    def select(self, keep: np.ndarray) -> Pairs:
        return Pairs(self.mesh[keep], self.ref[keep], self.source[keep])


def collect(sources: dict[str, list[np.ndarray]], static: bool = False) -> Pairs:
    """Mesh and dlib points on every frame of every source (name → consecutive RGB frames).

    The mesh tracks through each source's frames (static image mode when `static`), as the
    extractor does within a clip.
    """
    import mediapipe as mp

    ref_model = DlibReference()
    mesh, ref, names = [], [], []
    for name, frames in sources.items():
        with mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, refine_landmarks=True, max_num_faces=1
        ) as model:
            for rgb in frames:
                m = face_mesh_points(model, rgb)
                r = ref_model(rgb)
                if m is not None and r is not None:
                    mesh.append(m)
                    ref.append(r)
                    names.append(name)
    return Pairs(np.array(mesh), np.array(ref), np.array(names))


def video_sources(folder: Path, names: list[str], step: int = 1) -> dict[str, list[np.ndarray]]:
    """name → every `step`-th frame (RGB) of each video in `folder`."""
    return {
        name: [rgb for _, rgb in itertools.islice(VideoReader(str(folder / name)), 0, None, step)]
        for name in names
    }


def photo_sources(folder: Path, names: list[str]) -> dict[str, list[np.ndarray]]:
    """name → [photo and its mirror image] (RGB)."""
    out = {}
    for name in names:
        rgb = read_rgb(folder / name)
        out[name] = [rgb]
        out[f"{name}-mirror"] = [np.ascontiguousarray(rgb[:, ::-1])]
    return out


def nme(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(F, 68) per-point 2D error of pred against ref, in inter-ocular distances (outer eye
    corners 36–45 of ref, the iBUG-300W normalisation)."""
    iod = np.linalg.norm(ref[:, 36, :2] - ref[:, 45, :2], axis=-1)
    return np.linalg.norm(pred[..., :2] - ref[..., :2], axis=-1) / iod[:, None]
