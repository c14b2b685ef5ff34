"""Every params.yaml section parses into its dataclass, and bad params fail with the key named."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipelines.extract import RayConfig
from pipelines.report_data import ReportConfig
from space_data.config import ConfigError, config_hash, from_mapping, to_mapping
from space_data.datasets import CorporaConfig, IndexConfig
from space_data.extract import ExtractConfig
from space_data.filters import FilterConfig
from space_data.params import SECTIONS, load_section, read_params
from space_data.shards import PackConfig
from space_data.synth import SynthConfig
from space_models.metrics import EvalConfig
from space_models.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"
# the dataclass each command reads its section into
CLASSES = {
    "corpora": CorporaConfig,
    "index": IndexConfig,
    "synth": SynthConfig,
    "extract": ExtractConfig,
    "ray": RayConfig,
    "filter": FilterConfig,
    "pack": PackConfig,
    "report": ReportConfig,
    "train": TrainConfig,
    "evaluate": EvalConfig,
}


def test_every_params_section_is_registered() -> None:
    assert set(read_params(PARAMS)) == set(SECTIONS) == set(CLASSES)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_section_parses_with_every_value_params_yaml_sets(name: str) -> None:
    """Each value in params.yaml reaches its dataclass field (none silently left at the
    default), and the section's hash follows a change of each value that may change alone."""
    cfg = load_section(name, CLASSES[name], PARAMS)
    written = read_params(PARAMS)[name]
    loaded = to_mapping(cfg)
    for path, value in _leaves(written):
        got = loaded
        for key in path:
            got = got[key]
        assert _plain(got) == _plain(value), (name, path)
    changed = 0
    for path, value in _leaves(written):
        if not isinstance(value, (int, float, str)):
            continue
        try:  # some values are bound to others (fractions that sum to 1, preset names)
            other = from_mapping(CLASSES[name], _with(written, path, _other(value)), name)
        except ConfigError:
            continue
        assert config_hash(other) != config_hash(cfg), path
        changed += 1
    assert changed


def _leaves(mapping: dict, path: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out += _leaves(value, (*path, key))
        else:
            out.append(((*path, key), value))
    return out


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def _other(value: object) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"{value}x"


def _with(mapping: dict, path: tuple, value: object) -> dict:
    copy = dict(mapping)
    copy[path[0]] = value if len(path) == 1 else _with(mapping[path[0]], path[1:], value)
    return copy


def test_unknown_key_names_the_dotted_path(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("filter:\n  max_rotation_degs: 30\n")
    with pytest.raises(ConfigError, match=r"filter\.max_rotation_degs: unknown key"):
        load_section("filter", FilterConfig, bad)


def test_misspelled_section_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("filterr:\n  max_rotation_deg: 30\n")
    with pytest.raises(ConfigError, match="filterr: unknown section .*did you mean 'filter'"):
        load_section("pack", PackConfig, bad)


def test_missing_params_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_params(tmp_path / "nope.yaml")


@dataclass
class Inner:
    a: int = 1


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    b: str = "x"


def test_nested_dataclasses_are_built() -> None:
    cfg = from_mapping(Outer, {"inner": {"a": 5}})
    assert cfg.inner.a == 5 and cfg.b == "x"
    with pytest.raises(ConfigError, match=r"outer\.inner\.c: unknown key"):
        from_mapping(Outer, {"inner": {"c": 1}}, "outer")


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("filter.max_rotation_deg: forty", "expected a number, got 'forty'"),
        ("filter.max_rotation_deg: true", "expected a number, got True"),
        ("filter.max_av_mismatch: x", "expected a number or null, got 'x'"),
        ("pack.max_shard_samples: 2.5", "expected an integer, got 2.5"),
        ("pack.include_audio: 'yes'", "expected true or false, got 'yes'"),
        ("evaluate.splits: val", "expected a list, got 'val'"),
        ("evaluate.splits: [val, 3]", r"\[1\]: expected a string, got 3"),
    ],
)
def test_wrong_types_name_the_key_and_the_expectation(
    tmp_path: Path, setting: str, expected: str
) -> None:
    key, value = setting.split(": ")
    section, field_name = key.split(".")
    bad = tmp_path / "params.yaml"
    bad.write_text(f"{section}:\n  {field_name}: {value}\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}:? ?{expected}$"):
        load_section(section, CLASSES[section], bad)


def test_values_are_converted_to_the_annotation() -> None:
    cfg = from_mapping(EvalConfig, {"splits": ["val"], "max_frames": 30.0})
    assert cfg.splits == ("val",) and type(cfg.max_frames) is int
    assert type(from_mapping(FilterConfig, {"max_jump": 1}).max_jump) is float


def test_base_supplies_the_unset_fields() -> None:
    base = Outer(inner=Inner(a=7), b="y")
    cfg = from_mapping(Outer, {"b": "z"}, base=base)
    assert cfg.inner.a == 7 and cfg.b == "z"
    assert from_mapping(Outer, {"inner": {}}, base=base).inner.a == 7
