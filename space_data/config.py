"""Build configuration dataclasses from plain mappings (a `params.yaml` section).

Every stage keeps its configuration in a dataclass beside its code, with a one-line docstring
per field and validation in `__post_init__`; `params.yaml` only overrides fields. This module
is the one place that turns a mapping into such a dataclass: unknown keys are errors (a typo
in params.yaml must not silently fall back to a default), nested dataclasses are built
recursively, and the error names the full dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section that does not fit its dataclass; the message names the key."""


def from_mapping(
    cls: type[T], mapping: Mapping[str, Any] | None, where: str = "", base: T | None = None
) -> T:
    """Instantiate dataclass `cls` from `mapping`, recursing into nested dataclass fields.

    Each value is checked against its field's annotation (numbers, integers, strings, booleans,
    `X | None`, lists/tuples of those, nested dataclasses) and a mismatch names the dotted key:
    `filter.max_rotation_deg: expected a number, got 'forty'`. An integral float (`2.0`) is
    accepted for an int, `2.5` is not; YAML lists become the annotated list/tuple. `base`, an
    instance of `cls`, supplies the values `mapping` leaves out instead of the class defaults;
    a class whose defaults depend on a key (train.preset picks the model sizes) provides it
    as `cls.params_base(mapping)`.
    """
    if not isinstance(mapping, Mapping | None):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {mapping!r}")
    mapping = dict(mapping or {})
    params_base = getattr(cls, "params_base", None)
    if base is None and params_base is not None:
        base = params_base(mapping)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for name in mapping:
        if name not in known:
            key = f"{where}.{name}" if where else name
            raise ConfigError(f"{key}: unknown key{did_you_mean(name, known)}")
    kwargs: dict[str, Any] = {}
    for name, value in mapping.items():
        key = f"{where}.{name}" if where else name
        sub = _dataclass_in(hints[name])
        if sub is not None and isinstance(value, Mapping):
            # a nested section overrides its own default, not the nested class's defaults
            inner = getattr(base, name) if base is not None else _field_default(known[name])
            kwargs[name] = from_mapping(sub, value, key, inner if isinstance(inner, sub) else None)
        else:
            kwargs[name] = _convert(hints[name], value, key)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)  # type: ignore[type-var]
    except (TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


def require_at_least_one(config: Any, names: tuple[str, ...], where: str = "") -> None:
    """Raise ValueError naming the first of the integer fields `names` of `config` below 1
    (`where`, e.g. "s2l.", prefixes the name), for `__post_init__` validation."""
    for name in names:
        value = getattr(config, name)
        if value < 1:
            raise ValueError(f"{where}{name} must be >= 1, not {value}")


def did_you_mean(name: str, known: Any) -> str:
    """`"; did you mean 'x'?"` for the closest of `known` names, else the list of them."""
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known: {', '.join(sorted(known))}"


def _describe(hint: Any) -> str:
    """`float` → "a number", `int | None` → "an integer or null", ... (for error messages)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return f"one of {list(args)}"
    if origin in (list, tuple) or hint in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} items"
        return "a list"
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return "a mapping"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, "null" if hint is type(None) else getattr(hint, "__name__", str(hint)))


def _convert(hint: Any, value: Any, key: str) -> Any:
    """`value` checked against (and, for numbers and sequences, converted to) `hint`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)

    def wrong() -> ConfigError:
        return ConfigError(f"{key}: expected {_describe(hint)}, got {value!r}")

    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in args:
            try:
                return _convert(option, value, key)
            except ConfigError:
                continue
        raise wrong()
    if origin is typing.Literal:
        if value in args:
            return value
        raise wrong()
    if hint is type(None):
        if value is None:
            return None
        raise wrong()
    if hint is bool or hint is str:
        if isinstance(value, hint):
            return value
        raise wrong()
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong()
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise wrong()
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            raise wrong()
        container = origin or hint
        if container is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise wrong()
            items = args
        else:
            items = (args[0] if args else Any,) * len(value)
        return container(
            _convert(h, v, f"{key}[{i}]") for i, (h, v) in enumerate(zip(items, value))
        )
    if origin is dict or hint is dict:
        if isinstance(value, Mapping):
            return dict(value)
        raise wrong()
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        raise wrong()
    return value  # other annotations (arrays, bytes) are not params values


def to_mapping(obj: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (nested dataclasses become dicts)."""
    return dataclasses.asdict(obj)


def config_hash(obj: Any) -> str:
    """Short stable hash of a config dataclass (or mapping): 16 hex chars of sha256."""
    data = to_mapping(obj) if dataclasses.is_dataclass(obj) else obj
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _field_default(f: dataclasses.Field) -> Any:
    """A dataclass field's default value (made by its factory), or None without one."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass type inside a hint like `Foo` or `Foo | None`, else None."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg  # type: ignore[return-value]
    return None
