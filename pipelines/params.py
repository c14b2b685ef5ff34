"""`params.yaml`: the single source of parameters, one section per stage.

Each section is parsed into the dataclass that lives beside the code that uses it
(`SECTIONS` names them), so a typo or a bad value fails at load time with the dotted key.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml

from space_data.config import ConfigError, from_mapping

DEFAULT_PARAMS = Path("params.yaml")

# section name → "module:Dataclass"
SECTIONS: dict[str, str] = {
    "corpora": "space_data.datasets:CorporaConfig",
    "index": "space_data.datasets:IndexConfig",
    "synth": "space_data.synth:SynthConfig",
    "extract": "space_data.extract:ExtractConfig",
    "ray": "pipelines.extract:RayConfig",
    "filter": "space_data.filters:FilterConfig",
    "pack": "space_data.shards:PackConfig",
    "report": "pipelines.report:ReportConfig",
    "train": "space_models.train:TrainConfig",
    "evaluate": "space_models.metrics:EvalConfig",
}


def section_class(name: str) -> type:
    try:
        module, cls = SECTIONS[name].split(":")
    except KeyError:
        raise ConfigError(
            f"params.yaml has no section {name!r}; known: {sorted(SECTIONS)}"
        ) from None
    return getattr(importlib.import_module(module), cls)


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The raw params mapping; a missing or unreadable file is an infrastructure error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"params file {path} not found (run from the project root or pass --params)"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"params file {path} must hold a mapping of sections")
    return data


def load_section(name: str, path: str | Path = DEFAULT_PARAMS) -> Any:
    """The dataclass for section `name`, with params.yaml overrides applied."""
    return from_mapping(section_class(name), read_params(path).get(name), name)
