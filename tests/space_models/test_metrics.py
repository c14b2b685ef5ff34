from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from space_data.pose import euler_to_matrix
from space_models.metrics import cli
from space_models.s2l import landmark_errors, normalize_mouth
from space_models.testing import FACE
from space_models.train import train


def test_mouth_normalization_puts_corners_at_minus_and_plus_one():
    rng = np.random.default_rng(0)
    lm = rng.normal(0, 1, (5, 68, 3))
    mouth = normalize_mouth(lm)
    np.testing.assert_allclose(mouth[:, 0], [[-1, 0]] * 5, atol=1e-12)
    np.testing.assert_allclose(mouth[:, 6], [[1, 0]] * 5, atol=1e-12)
    # invariant to in-plane rotation, scale and shift of the face
    rot = euler_to_matrix(0, 0, 30)[:2, :2]
    moved = lm.copy()
    moved[..., :2] = 3.0 * lm[..., :2] @ rot.T + [5.0, -2.0]
    np.testing.assert_allclose(normalize_mouth(moved), mouth, atol=1e-9)


def test_landmark_errors_are_mean_absolute_errors():
    true = np.repeat(FACE[None].astype(np.float64), 4, 0)
    pred = true + 0.1  # shifted face: mouth shape unchanged, every coordinate off by 0.1
    ok = np.array([True, True, False, True])
    errors = {k: total / count for k, (total, count) in landmark_errors(pred, true, ok).items()}
    assert errors["F-P"] == pytest.approx(0.1) and errors["F-V"] == pytest.approx(0.0)
    assert errors["M-P"] == pytest.approx(0.0, abs=1e-12)


def test_evaluate_writes_metrics_per_model_and_split(kp_shards, two_step_config, tmp_path):
    train("s2l", two_step_config, device="cpu")
    params = tmp_path / "params.yaml"
    section = {
        "preset": "tiny",
        "data": {"shards": str(kp_shards)},
        "checkpoints": str(tmp_path / "ckpt"),
        "reports": str(tmp_path / "rep"),
    }
    params.write_text(yaml.safe_dump({"train": section, "evaluate": {"max_frames": 20}}))
    result = CliRunner().invoke(cli, ["--params", str(params)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "rep" / "eval.json").read_text())
    s2l = report["models"]["s2l"]
    assert s2l["checkpoint_data_version"] == report["data_version"]
    for split in ("val", "test"):
        assert s2l[split]["clips"] == 2
        assert all(s2l[split][k] > 0 for k in ("M-P", "M-V", "F-P", "F-V"))
    assert "no trained posegen checkpoint" in report["models"]["posegen"]["skipped"]
