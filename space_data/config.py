"""Build configuration dataclasses from plain mappings (a `params.yaml` section).

Every stage keeps its configuration in a dataclass beside its code, with a one-line docstring
per field and validation in `__post_init__`; `params.yaml` only overrides fields. This module
is the one place that turns a mapping into such a dataclass: unknown keys are errors (a typo
in params.yaml must not silently fall back to a default), nested dataclasses are built
recursively, and the error names the full dotted key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section that does not fit its dataclass; the message names the key."""


def from_mapping(cls: type[T], mapping: Mapping[str, Any] | None, where: str = "") -> T:
    """Instantiate dataclass `cls` from `mapping`, recursing into nested dataclass fields."""
    mapping = dict(mapping or {})
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(known)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in mapping.items():
        sub = _dataclass_in(hints[name])
        key = f"{where}.{name}" if where else name
        if sub is not None and isinstance(value, Mapping):
            kwargs[name] = from_mapping(sub, value, key)
        else:
            kwargs[name] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


def to_mapping(obj: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (nested dataclasses become dicts)."""
    return dataclasses.asdict(obj)


def config_hash(obj: Any) -> str:
    """Short stable hash of a config dataclass (or mapping): 16 hex chars of sha256."""
    data = to_mapping(obj) if dataclasses.is_dataclass(obj) else obj
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass type inside a hint like `Foo` or `Foo | None`, else None."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg  # type: ignore[return-value]
    return None
