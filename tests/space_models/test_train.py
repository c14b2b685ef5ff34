from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch
import yaml
from click.testing import CliRunner

from space_data.config import from_mapping
from space_data.shards import data_version
from space_models.data import DataConfig
from space_models.l2l import L2LConfig
from space_models.models import MODELS
from space_models.s2l import S2LConfig
from space_models.train import (
    TrainConfig,
    cli,
    learning_rate,
    load_model,
    load_train_config,
    read_checkpoint,
    train,
)


def _config(shards, out, steps: int) -> TrainConfig:
    return TrainConfig(
        preset="tiny",
        steps=steps,
        warmup_steps=2,
        batch_size=2,
        log_every=1,
        checkpoint_every=2,
        data=DataConfig(str(shards), window=6, shuffle_buffer=4),
        checkpoints=str(out / "checkpoints"),
        reports=str(out / "reports"),
    )


def test_schedule_warms_up_then_decays_to_zero():
    c = TrainConfig()  # the paper's schedule
    assert learning_rate(0, c) == pytest.approx(1e-5)
    assert learning_rate(5_000, c) == pytest.approx((1e-5 + 5e-4) / 2)
    assert learning_rate(10_000, c) == pytest.approx(5e-4)
    assert learning_rate(505_000, c) == pytest.approx(2.5e-4)
    assert learning_rate(1_000_000, c) == pytest.approx(0.0, abs=1e-12)
    assert c.batch_size == 256


@pytest.mark.parametrize("name", ["s2l", "posegen"])
def test_resumed_run_equals_uninterrupted_run(name, kp_shards, tmp_path):
    whole = train(name, _config(kp_shards, tmp_path / "a", 4), device="cpu")
    train(name, _config(kp_shards, tmp_path / "b", 2), device="cpu")  # stops at step 2
    resumed = train(name, _config(kp_shards, tmp_path / "b", 4), device="cpu")
    a = read_checkpoint(tmp_path / "a" / "checkpoints" / f"{name}.pt", name)
    b = read_checkpoint(tmp_path / "b" / "checkpoints" / f"{name}.pt", name)
    assert a["step"] == b["step"] == 4
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0, msg=key)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"]]
    # the checkpoint carries the data version and loads safely into a working model
    assert a["data_version"] == data_version(kp_shards) == whole["data_version"]
    report = json.loads((tmp_path / "a" / "reports" / f"{name}.json").read_text())
    assert report["data_version"] == a["data_version"] and report["steps"] == 4
    model, _ = load_model(tmp_path / "a" / "checkpoints" / f"{name}.pt", name)
    assert not model.training


def test_l2l_trains_with_keypoints(kp_shards, tmp_path):
    """Two optimizer steps on keypoint shards: each logged, the saved weights moved away from
    the seeded initialization (the loss reached them), and the checkpoint loads."""
    config = _config(kp_shards, tmp_path, 2)
    metrics = train("l2l", config, device="cpu")
    assert [h["step"] for h in metrics["history"]] == [1, 2]
    assert metrics["final_loss"] == metrics["history"][-1]["loss"]
    assert all(math.isfinite(h["loss"]) for h in metrics["history"])
    _, ckpt = load_model(tmp_path / "checkpoints" / "l2l.pt", "l2l")
    torch.manual_seed(config.seed)  # the loop's initialization (one process)
    initial = MODELS["l2l"].model(from_mapping(L2LConfig, ckpt["config"], "l2l"))
    moved = [
        name
        for name, value in initial.state_dict().items()
        if not torch.equal(value, ckpt["model"][name])
    ]
    assert moved, "no weight changed in two steps"


def test_l2l_skips_without_keypoints_through_the_cli(plain_shards, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"train": {"preset": "tiny", "data": {"shards": str(plain_shards)}}})
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "--model",
            "l2l",
            "--params",
            str(params),
            f"checkpoints={out}",
            f"reports={out}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    report = json.loads((out / "l2l.json").read_text())
    assert "keypoints" in report["skipped"] and report["data_version"] == data_version(plain_shards)
    with pytest.raises(RuntimeError, match="skipped"):
        read_checkpoint(out / "l2l.pt", "l2l")


def test_overrides_and_bad_keys(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  preset: tiny\n  steps: 10\n  warmup_steps: 5\n")
    c = load_train_config(params, ("steps=20", "data.window=32", "s2l.teacher_forcing=0.25"))
    assert (c.steps, c.data.window, c.preset) == (20, 32, "tiny")
    result = CliRunner().invoke(cli, ["--model", "s2l", "--params", str(params), "s2l.hiden=3"])
    assert result.exit_code == 2 and "train.s2l.hiden: unknown key" in result.stderr


def test_model_settings_are_typed_and_sit_on_the_preset(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("train:\n  preset: tiny\n  s2l:\n    teacher_forcing: 0.25\n")
    tiny = load_train_config(params)
    assert tiny.s2l == dataclasses.replace(S2LConfig.tiny(), teacher_forcing=0.25)
    assert tiny.l2l == L2LConfig.tiny()
    paper = load_train_config(params, ("preset=paper",))
    assert paper.s2l == dataclasses.replace(S2LConfig(), teacher_forcing=0.25)
    for name, spec in MODELS.items():  # every registered model has its typed field
        assert isinstance(getattr(TrainConfig(preset="tiny"), name), spec.config)
        assert getattr(TrainConfig(preset="tiny"), name) == spec.config.tiny()


@pytest.mark.slow
def test_ddp_two_ranks_on_cpu(kp_shards, tmp_path):
    """torchrun with 2 gloo ranks: one global batch split over the ranks, rank 0 writes."""
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "-m", "space_models.train", "--model", "posegen", "--device", "cpu", "--params",
        str(tmp_path / "none.yaml"), "preset=tiny", "steps=3", "warmup_steps=1",
        "batch_size=4", "data.window=6", f"data.shards={kp_shards}",
        f"checkpoints={out}", f"reports={out}",
    ]  # fmt: skip
    (tmp_path / "none.yaml").write_text("{}\n")
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    ckpt = read_checkpoint(out / "posegen.pt", "posegen")
    assert ckpt["world_size"] == 2 and ckpt["step"] == 3
    assert json.loads((out / "posegen.json").read_text())["world_size"] == 2


def test_shards_and_checkpoints_on_object_storage(kp_shards, s3_bucket, tmp_path):
    """Training reads the shards from s3:// (webdataset through fsspec) and writes checkpoints
    and reports there; the run equals the local one and records the same data version."""
    from space_data import storage

    shards = f"{s3_bucket}/shards"
    for path in kp_shards.iterdir():
        storage.write_bytes(f"{shards}/{path.name}", path.read_bytes())
    local = train("s2l", _config(kp_shards, tmp_path / "local", 2), device="cpu")
    config = _config(kp_shards, tmp_path, 2)
    config.data.shards = shards
    config.checkpoints, config.reports = f"{s3_bucket}/ckpt", f"{s3_bucket}/reports"
    remote = train("s2l", config, device="cpu")
    assert [h["loss"] for h in remote["history"]] == [h["loss"] for h in local["history"]]
    ckpt = read_checkpoint(f"{s3_bucket}/ckpt/s2l.pt", "s2l")
    assert ckpt["data_version"] == data_version(kp_shards) == data_version(shards)
    report = json.loads(storage.read_bytes(f"{s3_bucket}/reports/s2l.json"))
    assert report["data_version"] == ckpt["data_version"]
    config.steps = 3
    assert train("s2l", config, device="cpu")["steps"] == 3  # resumed from the s3 checkpoint
    assert read_checkpoint(f"{s3_bucket}/ckpt/s2l.pt", "s2l")["step"] == 3
    assert not (tmp_path / "s3:").exists()
