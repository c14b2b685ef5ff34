"""The type of every member of a shard sample, for loaders that fix a schema up front.

Hugging Face `datasets` infers a schema from the first few samples unless it is given one: a
meta field that is null there (`view`, the emotion of an unlabelled corpus) and a string
later fails the whole load. `MemberTypes` sees every sample as it is packed and states each
member's type in the Hugging Face feature format (the `dataset_info.features` list of a dataset
card, written without importing `datasets`):

- `<name>.npy`: its dtype; a fixed-size array type (`array2_d` … `array5_d`, leading axis
  None when it varies) when only the first axis differs between samples, else nested lists;
- `meta.json`: a struct whose field types come from the `ClipMeta` / `ClipStats` annotations
  (str → string, int → int64, float → float64, bool, list[...] → list, dict → struct of the
  keys seen), so a new field needs no change here; null stands for None and for an unmeasured
  (NaN) statistic (`record.meta_json`);
- `.jpg` members: image; any other member (`audio.flac`): binary (decode with soundfile:
  `datasets`' own audio type needs torchcodec and FFmpeg libraries even to store bytes);
- `__key__` and `__url__` (added by every WebDataset reader): string.

A member a sample lacks (clips without audio have no `speech.npy` nor `audio.flac`) is null in
that sample.
"""

from __future__ import annotations

import io
import types
import typing
from collections import defaultdict
from dataclasses import fields

import numpy as np

from space_data.record import ClipMeta, ClipStats

SCHEMA_VERSION = 2
"""Version of the sample layout (member names and encodings, meta.json's rules), recorded in
index.json and the data card; bump it when a member or a rule changes. 1: meta.json wrote NaN
literals (not JSON) for unmeasured statistics; 2: null there, every field one type or null."""

_SCALARS = {str: "string", int: "int64", float: "float64", bool: "bool"}
_MAX_ARRAY_DIMS = 5  # datasets has Array2D … Array5D


class MemberTypes:
    """Accumulates the types of every sample's members; `features()` states them."""

    def __init__(self) -> None:
        self.arrays: dict[str, tuple[str, tuple[int | None, ...]]] = {}
        """`.npy` member → (dtype name, shape with None on axes that differ between samples)."""
        self.dict_keys: dict[str, set[str]] = defaultdict(set)
        """Dict field of meta.json (dotted for stats: `stats.x`) → keys seen in any sample."""
        self.others: set[str] = set()
        """Members that are neither arrays nor meta.json (frame0.jpg, audio.flac)."""

    def add(self, members: dict[str, bytes], meta: dict) -> None:
        """One sample: its members and its meta.json, parsed."""
        for name, data in members.items():
            if name.endswith(".npy"):
                self._add_array(name, data)
            elif name != "meta.json":
                self.others.add(name)
        for prefix, cls, values in (("", ClipMeta, meta), ("stats.", ClipStats, meta["stats"])):
            for f in fields(cls):
                if isinstance(values.get(f.name), dict):
                    self.dict_keys[prefix + f.name].update(values[f.name])

    def _add_array(self, name: str, data: bytes) -> None:
        f = io.BytesIO(data)
        version = np.lib.format.read_magic(f)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(f)
        seen = self.arrays.get(name)
        if seen is not None and (seen[0] != dtype.name or len(seen[1]) != len(shape)):
            raise ValueError(
                f"member {name} is {dtype.name} {shape} in one sample and {seen[0]} "
                f"{seen[1]} in another: one member must have one dtype and rank"
            )
        if seen is not None:
            shape = tuple(a if a == b else None for a, b in zip(seen[1], shape, strict=True))
        self.arrays[name] = (dtype.name, tuple(shape))

    def features(self) -> list[dict]:
        """The Hugging Face feature list (YAML form) of the samples seen, members sorted."""
        out: list[dict] = [{"name": "__key__", "dtype": "string"}]
        for name in sorted([*self.arrays, "meta.json", *self.others]):
            if name in self.arrays:
                out.append({"name": name, **_array_type(*self.arrays[name])})
            elif name == "meta.json":
                out.append({"name": name, "struct": self._struct(ClipMeta, "")})
            elif name.endswith(".jpg"):
                out.append({"name": name, "dtype": "image"})
            else:
                out.append({"name": name, "dtype": "binary"})
        out.append({"name": "__url__", "dtype": "string"})
        return out

    def _struct(self, cls: type, prefix: str) -> list[dict]:
        hints = typing.get_type_hints(cls)
        out = [{"name": f.name, **self._field_type(prefix + f.name, hints[f.name])}
               for f in fields(cls)]  # fmt: skip
        if cls is ClipMeta:
            out.append({"name": "stats", "struct": self._struct(ClipStats, "stats.")})
        return sorted(out, key=lambda entry: entry["name"])  # meta.json's keys are sorted

    def _field_type(self, name: str, hint: object) -> dict:
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            [hint] = [a for a in typing.get_args(hint) if a is not type(None)]
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if hint in _SCALARS:
            return {"dtype": _SCALARS[hint]}  # type: ignore[index]
        if origin is list and args[0] in _SCALARS:
            return {"list": _SCALARS[args[0]]}
        if origin is dict and args[1] in _SCALARS:
            keys = sorted(self.dict_keys.get(name, ()))
            if not keys:  # null in every sample
                return {"dtype": "null"}
            return {"struct": [{"name": k, "dtype": _SCALARS[args[1]]} for k in keys]}
        raise TypeError(f"meta field {name}: no feature type for {hint} (add one to _field_type)")


def _array_type(dtype: str, shape: tuple[int | None, ...]) -> dict:
    """An `.npy` member's feature: a fixed-size array type when only the first axis varies."""
    if 2 <= len(shape) <= _MAX_ARRAY_DIMS and None not in shape[1:]:
        return {"dtype": {f"array{len(shape)}_d": {"shape": list(shape), "dtype": dtype}}}
    feature: str | dict = dtype
    for _ in range(len(shape) - 1):
        feature = {"list": feature}
    return {"list": feature}
