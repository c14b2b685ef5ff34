"""Every params.yaml section parses into its dataclass, and bad params fail with the key named."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipelines.params import SECTIONS, load_section, read_params
from space_data.config import ConfigError, config_hash, from_mapping

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params.yaml"


def test_every_params_section_is_registered() -> None:
    assert set(read_params(PARAMS)) == set(SECTIONS)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_section_parses(name: str) -> None:
    cfg = load_section(name, PARAMS)
    assert len(config_hash(cfg)) == 16


def test_unknown_key_names_the_dotted_path(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("filter:\n  max_rotation_degs: 30\n")
    with pytest.raises(ConfigError, match="filter: unknown key"):
        load_section("filter", bad)


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
    with pytest.raises(ConfigError, match=r"outer\.inner: unknown key"):
        from_mapping(Outer, {"inner": {"c": 1}}, "outer")
