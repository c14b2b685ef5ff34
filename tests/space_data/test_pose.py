"""Canonical face, similarity fit, head pose and frontalization (space_data.pose)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from space_data.pose import (
    CANONICAL_FACE68,
    IBUG68_MIRROR,
    estimate_pose,
    euler_to_matrix,
    fit_similarity,
    frontalize,
    matrix_to_euler,
    mirror_landmarks,
    model_face,
)

angle = st.floats(-80.0, 80.0)
yaw_angle = st.floats(-75.0, 75.0)  # away from the Euler singularity at ±90° the fit starts in
pitch_angle = st.floats(-60.0, 60.0)
roll_angle = st.floats(-179.0, 179.0)


def posed(yaw, pitch, roll, scale=120.0, t=(256.0, 240.0, 3.0)) -> np.ndarray:
    """(T, 68, 3) landmarks of the canonical face at the given angles (arrays of length T),
    turned rigidly."""
    rot = euler_to_matrix(np.atleast_1d(yaw), np.atleast_1d(pitch), np.atleast_1d(roll))
    return scale * np.einsum("tij,nj->tni", rot, CANONICAL_FACE68) + np.asarray(t)


def observed(yaw, pitch, roll, scale=120.0, t=(256.0, 240.0, 3.0)) -> np.ndarray:
    """(T, 68, 3) landmarks as the pose model says the landmarker reports a canonical head at
    these angles: the face deformed by the landmarker's pose response, then turned."""
    yaw, pitch, roll = np.atleast_1d(yaw), np.atleast_1d(pitch), np.atleast_1d(roll)
    rot = euler_to_matrix(yaw, pitch, roll)
    return scale * np.einsum("tij,tnj->tni", rot, model_face(yaw, pitch)) + np.asarray(t)


def test_canonical_face_is_symmetric_centred_unit_and_frontal():
    face = CANONICAL_FACE68
    assert face.shape == (68, 3) and face.dtype == np.float64
    np.testing.assert_allclose(mirror_landmarks(face), face, atol=1e-12)
    np.testing.assert_allclose(face.mean(0), 0.0, atol=1e-12)
    assert np.linalg.norm(face[0] - face[16]) == pytest.approx(2.0)
    # image-axis sanity: jaw 0 on the image left, chin below the eyes, nose tip towards the camera
    assert face[0, 0] < 0 < face[16, 0]
    assert face[8, 1] > face[36:48, 1].max()
    assert face[30, 2] < face[:, 2].mean()
    pose, scale, _ = estimate_pose(face[None])
    np.testing.assert_allclose(pose[0], 0.0, atol=1e-4)
    assert scale[0] == pytest.approx(1.0)


def test_mirror_permutation_is_an_involution():
    perm = np.asarray(IBUG68_MIRROR)
    np.testing.assert_array_equal(perm[perm], np.arange(68))


@pytest.mark.parametrize(
    "angles", [(0, 0, 0), (30, -20, 10), (-60, 40, -170), (80, 0, 0), (10, 60, 45)]
)
def test_synthetic_rotations_are_recovered_exactly(angles):
    pose, scale, _ = estimate_pose(observed(*angles))
    np.testing.assert_allclose(pose[0, :3], angles, atol=1e-3)
    np.testing.assert_allclose(pose[0, 3:], (256.0, 240.0, 3.0), atol=1e-3)
    assert scale[0] == pytest.approx(120.0, rel=1e-5)
    # the rotation returned for frontalize is the plain similarity fit's: exact on a rigid face
    _, _, rot = estimate_pose(posed(*angles))
    np.testing.assert_allclose(rot[0], euler_to_matrix(*angles), atol=1e-9)


def test_the_landmarkers_pose_response_is_undone():
    """Without the response model a turned head reads too little (FaceMesh regresses to a
    frontal face); with it the angle comes back."""
    lm = observed(40.0, 20.0, 5.0)
    s, rot, _ = fit_similarity(CANONICAL_FACE68, lm[0])
    plain = matrix_to_euler(rot)
    assert plain[0] < 36.0 and plain[1] < 18.0
    np.testing.assert_allclose(estimate_pose(lm)[0][0, :3], (40.0, 20.0, 5.0), atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(yaw_angle, pitch_angle, roll_angle, st.floats(20.0, 400.0))
def test_pose_recovery_property(yaw, pitch, roll, scale):
    pose, s, _ = estimate_pose(observed(yaw, pitch, roll, scale))
    rot_back = euler_to_matrix(*pose[0, :3].astype(np.float64))
    np.testing.assert_allclose(rot_back, euler_to_matrix(yaw, pitch, roll), atol=1e-4)
    assert s[0] == pytest.approx(scale, rel=1e-4)


@settings(max_examples=60, deadline=None)
@given(yaw_angle, pitch_angle, roll_angle)
def test_mirrored_frames_negate_yaw_and_roll_keep_pitch(yaw, pitch, roll):
    lm = observed(yaw, pitch, roll)
    pose, _, _ = estimate_pose(lm)
    mirrored, _, _ = estimate_pose(mirror_landmarks(lm, width=512.0))
    np.testing.assert_allclose(mirrored[0, 0], -pose[0, 0], atol=1e-3)
    np.testing.assert_allclose(mirrored[0, 1], pose[0, 1], atol=1e-3)
    assert _angle_diff(mirrored[0, 2], -pose[0, 2]) < 1e-3
    assert mirrored[0, 3] == pytest.approx(512.0 - pose[0, 3], abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(st.floats(-60, 60), st.floats(-40, 40), st.floats(-60, 60), st.floats(-170, 170))
def test_in_plane_image_rotation_adds_to_roll(yaw, pitch, roll, theta):
    lm = observed(yaw, pitch, roll)
    centre = np.array([300.0, 200.0])
    c, s = np.cos(np.deg2rad(theta)), np.sin(np.deg2rad(theta))
    turned = lm.copy()
    # clockwise on screen (y down) by theta about an arbitrary image point
    turned[..., :2] = (lm[..., :2] - centre) @ np.array([[c, s], [-s, c]]) + centre
    before, _, _ = estimate_pose(lm)
    after, _, _ = estimate_pose(turned)
    np.testing.assert_allclose(after[0, :2], before[0, :2], atol=1e-3)
    assert _angle_diff(after[0, 2], before[0, 2] + theta) < 1e-3


def test_nan_frames_stay_nan_and_bad_points_are_ignored():
    lm = observed([10.0, 20.0, 30.0], [0.0, 5.0, -5.0], [0.0, 0.0, 3.0])
    lm[1] = np.nan
    lm[2, [3, 40, 60]] = np.nan  # a few missing points: the fit uses the rest
    pose, scale, rot = estimate_pose(lm)
    assert np.isnan(pose[1]).all() and np.isnan(scale[1]) and np.isnan(rot[1]).all()
    np.testing.assert_allclose(pose[2, :3], (30.0, -5.0, 3.0), atol=1e-4)


def test_fit_similarity_weights_and_degenerate_input():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(20, 3))
    rot = euler_to_matrix(25.0, -10.0, 40.0)
    dst = 2.5 * src @ rot.T + (1.0, -2.0, 3.0)
    dst[0] += 50.0  # an outlier, switched off by its weight
    weights = np.ones(20)
    weights[0] = 0.0
    s, r, t = fit_similarity(src, dst, weights)
    assert s == pytest.approx(2.5)
    np.testing.assert_allclose(r, rot, atol=1e-9)
    np.testing.assert_allclose(t, (1.0, -2.0, 3.0), atol=1e-9)
    assert np.linalg.det(r) == pytest.approx(1.0)
    s, r, t = fit_similarity(src[:2], dst[:2])
    assert np.isnan(s) and np.isnan(r).all() and np.isnan(t).all()


@settings(max_examples=40, deadline=None)
@given(angle, angle, roll_angle, st.floats(20.0, 400.0))
def test_frontalize_undoes_pose_and_normalizes(yaw, pitch, roll, scale):
    lm = posed(yaw, pitch, roll, scale)
    _, _, rot = estimate_pose(lm)
    norm = frontalize(lm, rot, lm)
    assert norm.dtype == np.float32
    assert np.linalg.norm(norm[0, 0] - norm[0, 16]) == pytest.approx(2.0, rel=1e-5)
    np.testing.assert_allclose(norm[0].mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(norm[0], CANONICAL_FACE68, atol=1e-4)


def test_frontalize_other_points_share_the_normalization():
    lm = posed([20.0], [10.0], [-5.0], 80.0)
    _, _, rot = estimate_pose(lm)
    extra = lm[:, [0, 16, 30]]
    np.testing.assert_allclose(
        frontalize(extra, rot, lm)[0], CANONICAL_FACE68[[0, 16, 30]], atol=1e-5
    )
    nan_rot = np.full_like(rot, np.nan)
    assert np.isnan(frontalize(lm, nan_rot, lm)).all()


def test_euler_round_trip():
    angles = np.array([[30.0, -20.0, 10.0], [-45.0, 60.0, 170.0]])
    np.testing.assert_allclose(matrix_to_euler(euler_to_matrix(*angles.T)), angles, atol=1e-9)


@pytest.mark.realdata
def test_mirrored_real_portrait_gives_mirrored_pose(realdata):
    import cv2

    from space_data.landmarks import LandmarksConfig, make_landmarker

    rgb = cv2.imread(str(realdata / "images" / "portrait_frontal_woman.jpg"))[:, :, ::-1]
    landmarker = make_landmarker(LandmarksConfig())
    try:
        lm = landmarker(np.ascontiguousarray(rgb)).lm68
        landmarker.reset()
        lm_mirror = landmarker(np.ascontiguousarray(rgb[:, ::-1])).lm68
    finally:
        landmarker.close()
    pose, _, _ = estimate_pose(np.stack([lm, lm_mirror]))
    # FaceMesh is not exactly mirror-equivariant: a degree of slack
    assert abs(pose[1, 0] + pose[0, 0]) < 1.5
    assert abs(pose[1, 1] - pose[0, 1]) < 1.5
    assert abs(pose[1, 2] + pose[0, 2]) < 1.5


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_pose_of_renders_of_a_held_out_face():
    """FaceMesh on renders of Grace Hopper (a face used to build or calibrate nothing) at known
    poses: yaw within 5° (a rigid fit reads ±45° as about ±36°), pitch and roll within 8° (her
    own frontal pitch differs from the canonical face's by ~3.5°)."""
    from matplotlib import cbook

    from scripts.pose_renders import render_meshes
    from space_data.landmarks import mesh_to_ibug68
    from space_data.synth.photos import read_photo

    photo = read_photo(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    poses = [(0, 0, 0), (45, 0, 0), (-45, 0, 0), (0, 25, 0), (0, -25, 0), (30, 15, -10)]
    _, truth, mesh = render_meshes({"hopper": photo}, poses)
    assert len(truth) == len(poses)
    pose, _, _ = estimate_pose(mesh_to_ibug68(mesh))
    err = np.abs(pose[:, :3] - truth)
    print(f"held-out renders: |error| (yaw, pitch, roll) per pose {err.round(1).tolist()}")
    assert err[:, 0].max() < 5.0 and err[:, 1:].max() < 8.0
