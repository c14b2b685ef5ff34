"""Shared small shards for the model tests (written once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from space_models.data import DataConfig
from space_models.testing import write_talking_shards
from space_models.train import TrainConfig


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # the test machines share 2 cores: intra-op threads only add contention at these sizes
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def kp_shards(tmp_path_factory) -> Path:
    """Train/val/test shards of talking records with keypoints (one clip has a gap)."""
    return write_talking_shards(tmp_path_factory.mktemp("kp_shards"), keypoints=True)


@pytest.fixture(scope="session")
def plain_shards(tmp_path_factory) -> Path:
    """The same without keypoints (extraction without the face-vid2vid checkpoint)."""
    return write_talking_shards(tmp_path_factory.mktemp("plain_shards"), n_train=4, n_val=1)


@pytest.fixture
def two_step_config(kp_shards, tmp_path) -> TrainConfig:
    """Tiny models, two steps on `kp_shards`: checkpoints in tmp/ckpt, reports in tmp/rep (a
    pipeline check for the consumers of checkpoints, not a quality claim)."""
    return TrainConfig(
        preset="tiny",
        steps=2,
        warmup_steps=1,
        batch_size=2,
        data=DataConfig(str(kp_shards), window=6),
        checkpoints=str(tmp_path / "ckpt"),
        reports=str(tmp_path / "rep"),
    )
