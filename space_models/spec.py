"""What a model file declares so that training and evaluation can run it without knowing it.

Each model module (s2l.py, posegen.py, l2l.py) ends with one `SPEC = ModelSpec(...)`, and
space_models/models.py registers it (one line). train.py, metrics.py, the `--model` choices,
the `train.<name>:` params section and dvc.yaml's `train@<name>` stages all derive from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

PRESETS = ("paper", "tiny")
"""Model sizes: `paper` (the config class defaults, SPACE appendix) or `tiny` (`config.tiny()`,
tests and the CPU demo)."""

Errors = dict[str, tuple[float, int]]
"""Evaluation sums: metric name → (sum of per-frame errors, number of frames)."""


@dataclass(frozen=True)
class ModelSpec:
    """One model: its name, classes, the shard members it reads, and how it is evaluated."""

    name: str
    """`--model NAME`, `checkpoints/NAME.pt`, `reports/train/NAME.json`, params `train.NAME`."""
    model: type[nn.Module]
    """Built as `model(config)`; `forward(batch) → (loss, {part: float})` is its training loss
    on a loader batch (data.collate), `predict(...)` its inference."""
    config: type
    """Config dataclass: paper sizes by default, `config.tiny()` for the tiny preset."""
    members: tuple[str, ...]
    """Shard members (`<member>.npy`) the model reads. The loader decodes these, windows start
    only where they are all finite, and training is skipped with a reason when the train
    shards carry none of one of them (keypoints exist only with a face-vid2vid checkpoint)."""
    evaluate: Callable[[Any, dict[str, torch.Tensor], torch.Generator], Errors]
    """(model in eval mode, one clip's batch of 1 (data.collate), generator for sampling) →
    error sums; metrics.py averages them over clips."""
    missing_hint: str = ""
    """Said after 'the shards carry no <member>.npy' when training is skipped."""

    def preset(self, name: str) -> Any:
        """The config of preset `name` (one of PRESETS)."""
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, not {name!r}")
        return self.config.tiny() if name == "tiny" else self.config()
