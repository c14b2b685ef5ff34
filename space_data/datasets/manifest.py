"""`data/manifest.parquet`: one row per file an indexer saw, one column per `Clip` field.

The schema is fixed from `Clip` (strings, and float64 for `intensity`, `fps`, `duration`), so
an all-null column keeps its type. Rows keep the scan order (corpus by corpus, paths sorted).
"""

from __future__ import annotations

import dataclasses
import io
import os
import typing

import pyarrow as pa
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
    """Write the manifest; local files are written to a temporary name and renamed."""
    table = pa.Table.from_pylist([c.to_row() for c in clips], schema=manifest_schema())
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    if storage.is_remote(path):
        with storage.open_file(path, "wb") as f:
            f.write(buffer.getvalue())
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)


def read_manifest(path: str) -> list[Clip]:
    """The clips of a manifest written by `write_manifest`."""
    with storage.open_file(path, "rb") as f:
        table = pq.read_table(f)
    return [Clip.from_row(row) for row in table.to_pylist()]
