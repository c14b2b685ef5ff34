"""Build space_data/assets/pose_response.npy: how FaceMesh's 68 points deform with head pose.

FaceMesh regresses towards a frontal face: on a head turned by 40° its landmark cloud (depth
and image positions alike) is turned by only ~32°. space_data.pose.estimate_pose models this:
    lm68 ≈ s · R · (CANONICAL_FACE68 + Σ_j f_j(yaw, pitch) · D_j) + t,
f = `response_features` (sin y, sin p, sin² y, sin² p, sin y · sin p). This script learns D:

1. renders the canonical-face photos (scripts/pose_renders.py CALIBRATION: the realdata
   portraits and skimage's astronaut, the faces the canonical face was built from) at a grid of
   known poses (yaw −65…65 step 13, pitch −35…35 step 14, roll −12/0/12) and runs FaceMesh;
2. adds each sample's mirror image (landmarks mirrored, yaw and roll negated), so D is exactly
   mirror-symmetric;
3. per sample, undoes the true rotation (scale and centre by least squares with the rotation
   fixed) and takes the residual shape against the canonical face (68, 3);
4. least squares residual ≈ c + F(yaw, pitch) · D over all samples; the intercept c (identity
   and rendering offsets common to all poses) is dropped, D is written.
Identities used for acceptance (scripts/measure_geometry.py) are never rendered here.

Run (project root): python -m scripts.build_pose_response [--realdata DIR] [--cache FILE.npz]
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from scripts.ibug_reference import cached_npz, npz_cache_option, realdata_option
from scripts.pose_renders import calibration_photos, pose_grid, render_meshes
from space_data.landmarks import mesh_to_ibug68
from space_data.pose import (
    CANONICAL_FACE68,
    RESPONSE_PATH,
    euler_to_matrix,
    mirror_landmarks,
    response_features,
)

GRID = pose_grid(range(-65, 66, 13), range(-35, 36, 14), (-12, 0, 12))


def residual_shapes(truth: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """(K, 68, 3) landmarks with the true rotation undone, scaled and centred like the
    canonical face, minus the canonical face. truth (K, 3) degrees, lm68 (K, 68, 3)."""
    rot = euler_to_matrix(*truth.T)
    centred = lm68 - lm68.mean(1, keepdims=True)
    model = np.einsum("kij,nj->kni", rot, CANONICAL_FACE68)
    scale = (centred * model).sum((1, 2)) / (model * model).sum((1, 2))
    return np.einsum("kji,knj->kni", rot, centred) / scale[:, None, None] - CANONICAL_FACE68


def fit_response(truth: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """(5, 68, 3) response basis D from samples and their mirror images."""
    mirrored = truth * np.array([-1.0, 1.0, -1.0])
    truth = np.concatenate([truth, mirrored])
    lm68 = np.concatenate([lm68, mirror_landmarks(lm68)])
    res = residual_shapes(truth, lm68).reshape(len(truth), -1)
    feats = response_features(truth[:, 0], truth[:, 1])
    design = np.concatenate([np.ones((len(truth), 1)), feats], 1)
    coef, *_ = np.linalg.lstsq(design, res, rcond=None)
    return coef[1:].reshape(-1, 68, 3)


@click.command()
@realdata_option
@npz_cache_option("the renders' landmarks")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=RESPONSE_PATH)
def main(realdata: Path, cache: Path | None, out: Path) -> None:
    """Render the calibration faces, fit the pose response basis and write it to OUT."""

    def renders() -> dict[str, np.ndarray]:
        _, truth, mesh = render_meshes(calibration_photos(realdata), GRID)
        return {"truth": truth, "mesh": mesh}

    z = cached_npz(cache, renders)
    truth, mesh = z["truth"], z["mesh"]
    basis = fit_response(truth, mesh_to_ibug68(mesh))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, basis)
    click.echo(f"wrote {out}: {len(truth)} renders (and their mirror images)")


if __name__ == "__main__":
    main()
