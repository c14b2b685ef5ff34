"""The model registry: one line per model. Each model module declares its `SPEC`
(space_models/spec.py); train.py, metrics.py, the `--model` choices, `train.<name>` params and
dvc.yaml's `train@<name>` stages derive from this mapping."""

from __future__ import annotations

from space_models import l2l, posegen, s2l
from space_models.spec import ModelSpec

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (s2l.SPEC, posegen.SPEC, l2l.SPEC)}
