"""Build space_data/assets/canonical_face68.npy: the project's canonical 3D face (68 iBUG points).

No canonical 3D face ships with any MediaPipe wheel, so head pose is measured against this one,
built once from frontal photos of real faces:

1. MediaPipe FaceMesh (static image mode, refined) on each photo → 478 points in pixels
   (z: relative depth on the scale of x) → 68 iBUG points by
   `space_data.landmarks.mesh_to_ibug68`.
2. Each face is made left-right symmetric: its mirror image (x → −x, iBUG labels swapped by
   `IBUG68_MIRROR`) is aligned to it by a similarity and the two are averaged.
3. Generalized Procrustes: faces are centred, scaled (landmarks 0 and 16 two apart), aligned
   to the running mean by similarities, averaged, until the mean stops moving.
4. Orientation (what "frontal" means, yaw = pitch = roll = 0):
   - x: the normal of the mean face's mirror-symmetry plane (the direction of the vectors
     joining left/right landmark pairs), pointing from landmark 0 to 16 (image right);
   - z: the direction of least spread of the mean 468-vertex FaceMesh face (each photo's
     468 face vertices carried into the canonical frame by its 68-point similarity, then
     averaged), made orthogonal to x, pointing away from the camera (the nose tip in front);
     i.e. the face's principal plane faces the camera. This is the definition the synthetic
     renderer (space_data/synth/mesh.py) uses for its ground truth, so sample-corpus pose
     errors measure the estimator, not a disagreement about where "frontal" is;
   - y = z × x (down). The script prints two alternatives for reference: the photos' own
     mean pitch (photographers' frontal) and the tilt of the nose-bridge-to-chin line.
5. Centred on the landmark centroid, scaled so landmarks 0 and 16 are exactly 2 apart, and
   symmetrized exactly about x = 0.

Run: .venv/bin/python scripts/build_canonical_face.py [--realdata ../shared/realdata]
"""

from __future__ import annotations

from pathlib import Path

import click
import cv2
import numpy as np
import skimage.data

from space_data.landmarks import face_mesh_points, mesh_to_ibug68
from space_data.pose import (
    CANONICAL_PATH,
    IBUG68_MIRROR,
    fit_similarity,
    matrix_to_euler,
    mirror_landmarks,
)
from space_data.synth.mesh import N_FACE

PHOTOS = (
    "images/portrait_frontal_woman.jpg",
    "images/portrait_frontal_man_headset.png",
    "images/portrait_frontal_man_suit.png",
    "images/portrait_bw_2048.jpg",
)


def face_mesh(rgb: np.ndarray, model) -> np.ndarray:
    """(478, 3) float64 FaceMesh points in pixels (z on the scale of x)."""
    points = face_mesh_points(model, rgb)
    if points is None:
        raise click.ClickException("FaceMesh found no face in a canonical-face photo")
    return points


def normalize(face: np.ndarray) -> np.ndarray:
    """Centred on the centroid, landmarks 0 and 16 two apart."""
    face = face - face.mean(0)
    return face * (2.0 / np.linalg.norm(face[0] - face[16]))


def align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """src moved onto dst by the least-squares similarity."""
    s, rot, t = fit_similarity(src, dst)
    return s * src @ rot.T + t


def symmetrize(face: np.ndarray) -> np.ndarray:
    """Average of a face and its aligned mirror image (exactly symmetric about some plane)."""
    return 0.5 * (face + align(mirror_landmarks(face), face))


def procrustes_mean(faces: list[np.ndarray], iterations: int = 20) -> np.ndarray:
    mean = normalize(faces[0])
    for _ in range(iterations):
        new = normalize(symmetrize(np.mean([align(f, mean) for f in faces], axis=0)))
        if np.abs(new - mean).max() < 1e-10:
            break
        mean = new
    return mean


def frontal_frame(mean68: np.ndarray, meshes468: list[np.ndarray], faces68: list[np.ndarray]):
    """Rotation (3, 3) whose columns are the canonical x, y, z axes in mean68's frame."""
    pairs = mean68 - mean68[list(IBUG68_MIRROR)]
    _, _, vt = np.linalg.svd(pairs)
    x = vt[0] * np.sign(vt[0] @ (mean68[16] - mean68[0]))
    carried = []
    for mesh, face in zip(meshes468, faces68, strict=True):
        s, rot, t = fit_similarity(face, mean68)
        carried.append(s * mesh @ rot.T + t)
    mesh = np.mean(carried, axis=0)
    centred = mesh - mesh.mean(0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    z = vecs[:, 0] - (vecs[:, 0] @ x) * x
    z /= np.linalg.norm(z)
    z *= -np.sign(z @ (mean68[30] - mean68.mean(0)))  # nose tip towards the camera (−z)
    return np.stack([x, np.cross(z, x), z], axis=1)


def photos(realdata: Path):
    for rel in PHOTOS:
        bgr = cv2.imread(str(realdata / rel), cv2.IMREAD_COLOR)
        if bgr is None:
            raise click.ClickException(f"cannot read {realdata / rel}")
        yield rel, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    yield "skimage.data.astronaut", skimage.data.astronaut()


@click.command()
@click.option(
    "--realdata",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path(__file__).resolve().parents[2] / "shared" / "realdata",
    show_default=True,
    help="Folder with the real portrait photos.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=CANONICAL_PATH)
def main(realdata: Path, out: Path) -> None:
    """Build the canonical 68-point 3D face from frontal photos and write it to OUT."""
    import mediapipe as mp

    names, meshes, faces = [], [], []
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=1
    ) as model:
        for name, rgb in photos(realdata):
            pts = face_mesh(rgb, model)
            names.append(name)
            meshes.append(pts[:N_FACE])
            faces.append(mesh_to_ibug68(pts))
    sym = [symmetrize(f) for f in faces]
    mean = procrustes_mean(sym)
    canonical = normalize(mean @ frontal_frame(mean, meshes, sym))
    canonical = 0.5 * (canonical + mirror_landmarks(canonical))  # exact symmetry about x = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, canonical)
    click.echo(f"wrote {out}: {len(names)} faces")

    click.echo("photo pose under the new canonical face (yaw, pitch, roll deg):")
    angles = []
    for name, face in zip(names, faces, strict=True):
        _, rot, _ = fit_similarity(canonical, face)
        angles.append(matrix_to_euler(rot))
        click.echo(f"  {name:45s} " + " ".join(f"{a:+6.2f}" for a in angles[-1]))
    click.echo(f"photos' mean pitch (alternative zero): {np.mean(angles, axis=0)[1]:+.2f} deg")
    bridge_chin = canonical[8] - canonical[27]
    tilt = np.degrees(np.arctan2(bridge_chin[2], bridge_chin[1]))
    click.echo(f"nose-bridge-to-chin line, tilt from the image vertical: {tilt:+.2f} deg")


if __name__ == "__main__":
    main()
