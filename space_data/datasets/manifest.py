"""`data/manifest.parquet`: one row per file an indexer saw, one column per `Clip` field.

The schema is fixed from `Clip` (strings, and float64 for `intensity`, `fps`, `duration`), so
an all-null column keeps its type. Rows keep the scan order (corpus by corpus, paths sorted).
"""

from __future__ import annotations

import dataclasses
import io
import typing

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from space_data import storage
from space_data.clip import Clip


def manifest_schema() -> pa.Schema:
    hints = typing.get_type_hints(Clip)
    return pa.schema(
        (f.name, pa.float64() if float in typing.get_args(hints[f.name]) else pa.string())
        for f in dataclasses.fields(Clip)
    )


def write_manifest(clips: list[Clip], path: str) -> None:
    """Write the manifest whole (local: temporary name + rename; object storage: one upload)."""
    table = pa.Table.from_pylist([c.to_row() for c in clips], schema=manifest_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_bytes(path, buffer.getvalue())


def read_manifest(path: str) -> list[Clip]:
    """The clips of a manifest written by `write_manifest`."""
    table = pq.read_table(io.BytesIO(storage.read_bytes(path)))
    # column-wise (parquet nulls come back as None): a million rows in seconds, where
    # `Clip.from_row` per row dict costs several times more
    names = [f.name for f in dataclasses.fields(Clip) if f.name in table.column_names]
    columns = [_shared(table.column(name)) for name in names]
    return [Clip(**dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)]


def _shared(column: pa.ChunkedArray) -> list:
    """The column as Python values, one object per distinct value when there are few (dataset,
    speaker, split, fps, ...): a million clips then hold one "voxceleb2", not a million."""
    values = column.to_pylist()
    if pc.count_distinct(column).as_py() * 10 > len(values):
        return values
    seen: dict = {}
    return [seen.setdefault(v, v) for v in values]
