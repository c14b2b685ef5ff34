"""Measure how much MediaPipe face mesh under-rotates turned heads: `extract.pose_gain`.

FaceMesh regresses towards its frontal prior: on a head turned by 40° its mesh is turned by
only ~32°, so the similarity fit of the canonical face reads a smaller angle (measured below
with landmarks taken from the renderer itself, the same fit is exact to < 1°: the loss is in
the landmarker, not in the fit). This script renders the photos the canonical face was built
from (scripts/build_canonical_face.py) with the synthetic renderer at a grid of known poses
(yaw −45..45 step 15, pitch ±20, roll ±15), runs FaceMesh (static mode) on each render, fits
the pose and prints the per-axis least-squares gain `true ≈ gain · estimated` (through 0),
with the errors before and after. The printed gains go into params.yaml `extract.pose_gain`.

Held out: the sample corpus also renders Grace Hopper (matplotlib's sample photo), mirrored
and tone-shifted identities and natural motion, none of which is in this grid.

Run: .venv/bin/python scripts/calibrate_pose_gain.py [--realdata ../shared/realdata]
"""

from __future__ import annotations

import itertools
from pathlib import Path

import click
import numpy as np

from space_data.landmarks import MESH_TO_IBUG68
from space_data.pose import estimate_pose
from space_data.synth.mesh import build_head_mesh
from space_data.synth.render import render

POSES = list(itertools.product(range(-45, 46, 15), (-20, 0, 20), (-15, 0, 15)))
SIZE, SCALE = 512, 150.0  # render size (px) and head scale (px per eye-corner distance)


def measure(photos) -> tuple[np.ndarray, np.ndarray]:
    """(truth (K, 3), estimate (K, 3)) degrees over every photo × pose the mesh finds."""
    import mediapipe as mp

    background = np.full((SIZE, SIZE, 3), 128, np.uint8)
    truth, estimate = [], []
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as model:
        for _, rgb in photos:
            mesh = build_head_mesh(rgb, model)
            for angles in POSES:
                pose = np.array([*angles, SIZE / 2, SIZE / 2, SCALE])
                result = model.process(render(mesh, pose, background))
                if not result.multi_face_landmarks:
                    continue
                pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark])
                lm68 = (pts * SIZE)[list(MESH_TO_IBUG68)]
                truth.append(angles)
                estimate.append(estimate_pose(lm68[None])[0][0, :3])
    return np.asarray(truth, dtype=np.float64), np.asarray(estimate, dtype=np.float64)


def _errors(label: str, err: np.ndarray) -> str:
    med, p90, top = (np.percentile(np.abs(err), q, axis=0) for q in (50, 90, 100))
    return f"{label:7s} median {med.round(2)}  p90 {p90.round(2)}  max {top.round(2)}"


@click.command()
@click.option(
    "--realdata",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path(__file__).resolve().parents[2] / "shared" / "realdata",
    show_default=True,
)
def main(realdata: Path) -> None:
    """Print the per-axis pose gains (yaw, pitch, roll) for extract.pose_gain."""
    from build_canonical_face import photos

    truth, est = measure(photos(realdata))
    gain = (truth * est).sum(0) / (est * est).sum(0)
    click.echo(f"{len(truth)} renders; errors (yaw, pitch, roll) in degrees")
    click.echo(_errors("raw", est - truth))
    click.echo(_errors("gained", est * gain - truth))
    click.echo(f"pose_gain: [{gain[0]:.3f}, {gain[1]:.3f}, {gain[2]:.3f}]")


if __name__ == "__main__":
    main()
