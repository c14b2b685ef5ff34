"""Build space_data/assets/pose_response.npy and pose_correction.npy: FaceMesh's pose response.

FaceMesh regresses towards a frontal face: on a head turned by 40° its landmark cloud (depth
and image positions alike) is turned by only ~32°, and by how much differs from face to face.
space_data.pose.estimate_pose models this in two steps (see its docstring):
    lm68 ≈ s · R · (CANONICAL_FACE68 + Σ_j f_j(yaw, pitch) · D_j) + t,
f = `response_features` (sin y, sin p, sin² y, sin² p, sin y · sin p), then the fitted angles
+= `correction_features` @ W (what the landmarks deviate from the model, × 1, sin y, sin p).
This script learns D and W:

1. renders the calibration faces (scripts/pose_renders.py `calibration_photos`: the
   canonical-face photos and first frames of five clips the 68-point map was fitted on) at a
   grid of known poses (yaw −65…65 step 13, pitch −35…35 step 14, roll −12/0/12) and runs
   FaceMesh; adds each sample's mirror image (landmarks mirrored, yaw and roll negated), so D
   and W are exactly mirror-symmetric;
2. D: per sample, undoes the true rotation (scale and centre by least squares with the
   rotation fixed) and takes the residual shape against the canonical face (68, 3); least
   squares residual ≈ c + F(yaw, pitch) · D over all samples; the intercept c (identity and
   rendering offsets common to all poses) is dropped;
3. W: fits step 1 of the estimator (with this D) to every sample and regresses the angle error
   (truth − fit, degrees) on the correction features: ridge regression without intercept,
   penalty λ · N · mean feature variance. λ is chosen by leave-one-identity-out cross-validation
   over the calibration faces (a face and its mirror image left out together): the score is the
   mean over the three axes of the 95th-percentile absolute error on the held-out face's
   renders with |yaw| ≤ 60° and |pitch| ≤ 30° (the acceptance range); the largest λ whose score
   is within 1 % of the best is taken (more regularization at equal accuracy).
Identities used for acceptance (scripts/measure_geometry.py) are never rendered here.

Run (project root): python -m scripts.build_pose_response [--realdata DIR] [--cache FILE.npz]
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from scripts.ibug_reference import realdata_option
from scripts.pose_renders import calibration_photos, pose_grid, render_meshes
from space_data.landmarks import mesh_to_ibug68
from space_data.pose import (
    ASSETS,
    CANONICAL_FACE68,
    CORRECTION_PATH,
    RESPONSE_PATH,
    correction_features,
    euler_to_matrix,
    fit_response_model,
    mirror_landmarks,
    response_features,
)

GRID = pose_grid(range(-65, 66, 13), range(-35, 36, 14), (-12, 0, 12))
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0)
"""Ridge penalties tried for the correction W (relative to N · mean feature variance)."""
MIRROR = np.array([-1.0, 1.0, -1.0])
"""Mirroring the image negates yaw and roll."""


def residual_shapes(truth: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """(K, 68, 3) landmarks with the true rotation undone, scaled and centred like the
    canonical face, minus the canonical face. truth (K, 3) degrees, lm68 (K, 68, 3)."""
    rot = euler_to_matrix(*truth.T)
    centred = lm68 - lm68.mean(1, keepdims=True)
    model = np.einsum("kij,nj->kni", rot, CANONICAL_FACE68)
    scale = (centred * model).sum((1, 2)) / (model * model).sum((1, 2))
    return np.einsum("kji,knj->kni", rot, centred) / scale[:, None, None] - CANONICAL_FACE68


def fit_response(truth: np.ndarray, lm68: np.ndarray) -> np.ndarray:
    """(5, 68, 3) response basis D from samples (already including their mirror images)."""
    res = residual_shapes(truth, lm68).reshape(len(truth), -1)
    feats = response_features(truth[:, 0], truth[:, 1])
    design = np.concatenate([np.ones((len(truth), 1)), feats], 1)
    coef, *_ = np.linalg.lstsq(design, res, rcond=None)
    return coef[1:].reshape(-1, 68, 3)


def ridge(features: np.ndarray, target: np.ndarray, lam: float) -> np.ndarray:
    """(F, 3) W minimizing |features @ W − target|² + lam · N · mean(var) · |W|²."""
    penalty = lam * len(features) * features.var(0).mean()
    gram = features.T @ features + penalty * np.eye(features.shape[1])
    return np.linalg.solve(gram, features.T @ target)


def choose_lambda(
    ident: np.ndarray, truth: np.ndarray, features: np.ndarray, error: np.ndarray
) -> float:
    """Leave-one-identity-out choice of the ridge penalty (module docstring, step 3); prints
    the scores. ident, truth (K, 3), features (K, F), error (K, 3) cover samples and mirrors."""
    in_range = (np.abs(truth[:, 0]) <= 60) & (np.abs(truth[:, 1]) <= 30)
    scores = []
    for lam in LAMBDAS:
        left_out_error = np.empty_like(error)
        for face in np.unique(ident):
            out = ident == face
            w = ridge(features[~out], error[~out], lam)
            left_out_error[out] = error[out] - features[out] @ w
        p95 = np.percentile(np.abs(left_out_error[in_range]), 95, axis=0)
        scores.append(p95.mean())
        click.echo(f"  λ {lam:5.1f}: left-out p95 yaw/pitch/roll {np.round(p95, 2)}")
    best = min(scores)
    return max(lam for lam, score in zip(LAMBDAS, scores, strict=True) if score <= 1.01 * best)


@click.command()
@realdata_option
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="npz of the renders' identities, angles and meshes: read when present, else written.",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=ASSETS, show_default=True
)
def main(realdata: Path, cache: Path | None, out: Path) -> None:
    """Render the calibration faces, fit the response D and the correction W, write to OUT."""
    if cache is not None and cache.is_file():
        z = np.load(cache)
        ident, truth, mesh = z["ident"], z["truth"], z["mesh"]
    else:
        ident, truth, mesh = render_meshes(calibration_photos(realdata), GRID)
        if cache is not None:
            np.savez(cache, ident=ident, truth=truth, mesh=mesh)
    lm68 = mesh_to_ibug68(mesh)
    ident = np.concatenate([ident, ident])
    truth = np.concatenate([truth, truth * MIRROR])
    lm68 = np.concatenate([lm68, mirror_landmarks(lm68)])

    response = fit_response(truth, lm68)
    fit = fit_response_model(lm68, CANONICAL_FACE68, response)
    features = correction_features(lm68, fit, CANONICAL_FACE68, response)
    error = truth - fit[0]
    click.echo("correction: leave-one-face-out cross-validation")
    lam = choose_lambda(ident, truth, features, error)
    correction = ridge(features, error, lam)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / RESPONSE_PATH.name, response)
    np.save(out / CORRECTION_PATH.name, correction)
    click.echo(
        f"wrote {out / RESPONSE_PATH.name} and {out / CORRECTION_PATH.name} (λ {lam}): "
        f"{len(truth) // 2} renders of {len(np.unique(ident))} faces and their mirror images"
    )


if __name__ == "__main__":
    main()
