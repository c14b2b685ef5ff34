"""FaceMesh landmarks on synthetic renders of real faces at known head poses.

Each photo becomes a textured head (space_data.synth.mesh.build_head_mesh), rendered at every
pose of a grid (space_data.synth.render, orthographic, 512² on grey); FaceMesh runs on each
render in static image mode. The ground-truth angles are relative to the head's own frontal
frame (mirror plane and principal plane, as the canonical face defines frontal).

Identities: `calibration_photos` (the faces the canonical face was built from, and first frames
of clips the 68-point map was fitted on) calibrate the pose response
(scripts/build_pose_response.py); `held_out_photos` are the faces used for acceptance only:
matplotlib's Grace Hopper and the first frame of each realdata clip the 68-point map was not
fitted on (scripts/fit_ibug_map.py HELD_OUT_VIDEOS) but the strong-yaw one (not frontal).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from space_data.media import VideoReader
from space_data.synth.mesh import build_head_mesh
from space_data.synth.photos import read_photo
from space_data.synth.render import render
from space_data.testing.faces import PORTRAITS

SIZE, SCALE = 512, 150.0
"""Render size (px) and head scale (px per eye-corner distance)."""
HELD_OUT_CLIPS = (
    "interview_talking_25fps.mp4",
    "outdoor_singing_25fps.mp4",
    "voxceleb2_style_224_frontal.mp4",
    "emotion_sad_crying_bw_30fps.mp4",
    "emotion_angry_man_30fps.mp4",
)


CALIBRATION_CLIPS = (
    "frontal_talking_may_25fps.mp4",
    "news_talking_25fps.mp4",
    "emotion_happy_woman_30fps.mp4",
    "emotion_sad_man_30fps.mp4",
    "emotion_surprised_woman_30fps.mp4",
)


def first_frame(path: Path) -> np.ndarray:
    return next(iter(VideoReader(str(path))))[1]


def calibration_photos(realdata: Path) -> dict[str, np.ndarray]:
    """name → RGB: the canonical-face photos (realdata portraits and skimage's astronaut) and
    the first frame of each CALIBRATION_CLIPS (frontal clips the 68-point map was fitted on)."""
    import skimage.data

    photos = {name: read_photo(realdata / "images" / name) for name in PORTRAITS}
    photos["astronaut"] = skimage.data.astronaut()
    for clip in CALIBRATION_CLIPS:
        photos[clip] = first_frame(realdata / "video" / clip)
    return photos


def held_out_photos(
    realdata: Path, clips: tuple[str, ...] = HELD_OUT_CLIPS
) -> dict[str, np.ndarray]:
    """name → RGB: Grace Hopper and the first frame of each of `clips`."""
    from matplotlib import cbook

    photos = {
        "hopper": read_photo(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    }
    for clip in clips:
        photos[clip] = first_frame(realdata / "video" / clip)
    return photos


def pose_grid(yaw: range, pitch: range, roll: tuple[int, ...]) -> list[tuple[int, int, int]]:
    return list(itertools.product(yaw, pitch, roll))


def render_frames(photos: dict[str, np.ndarray], poses: list[tuple[int, int, int]]):
    """Yield (identity index, angles, (512, 512, 3) uint8 RGB render) for every photo × pose."""
    import mediapipe as mp

    background = np.full((SIZE, SIZE, 3), 128, np.uint8)
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as model:
        heads = [build_head_mesh(rgb, model) for rgb in photos.values()]
    for i, head in enumerate(heads):
        for angles in poses:
            pose = np.array([*angles, SIZE / 2, SIZE / 2, SCALE])
            yield i, angles, render(head, pose, background)


def render_meshes(
    photos: dict[str, np.ndarray], poses: list[tuple[int, int, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every photo at every pose: (identity index (K,), truth angles (K, 3) degrees, FaceMesh
    points (K, 478, 3) pixels); renders where FaceMesh finds no face are left out."""
    import mediapipe as mp

    from space_data.landmarks import face_mesh_points

    ident, truth, meshes = [], [], []
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as model:
        for i, angles, frame in render_frames(photos, poses):
            points = face_mesh_points(model, frame)
            if points is not None:
                ident.append(i)
                truth.append(angles)
                meshes.append(points)
    return np.array(ident), np.array(truth, dtype=np.float64), np.array(meshes)
