from __future__ import annotations

import pytest
import torch

from space_models.data import DataConfig, train_batches
from space_models.layers import parameter_count
from space_models.models import MODELS


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_paper_configs_construct_and_run_a_tiny_batch(name, kp_shards):
    spec = MODELS[name]
    model = spec.model(spec.config())
    count = parameter_count(model)
    print(f"{name} paper-size parameters: {count:,}")
    assert count > 1_000_000
    batch = next(iter(train_batches(DataConfig(str(kp_shards), window=4), 2, members=spec.members)))
    loss, _ = model(batch)
    assert torch.isfinite(loss)


# (steps, learning rate): PoseGen's VAE noise and teacher forcing need a few more steps
OVERFIT = {"s2l": (100, 3e-3), "posegen": (130, 1e-2), "l2l": (100, 3e-3)}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiny_configs_overfit_one_batch(name, kp_shards):
    torch.manual_seed(0)
    spec = MODELS[name]
    model = spec.model(spec.preset("tiny"))
    batch = next(iter(train_batches(DataConfig(str(kp_shards), window=8), 4, members=spec.members)))
    steps, lr = OVERFIT[name]
    optimizer = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for _ in range(steps):
        loss, _ = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    final = min(losses[-5:])
    print(f"{name} tiny overfit: loss {losses[0]:.4f} → {final:.5f} ({losses[0] / final:.0f}×)")
    assert final <= losses[0] / 10
