"""Click options shared by the `space` subcommands: the data paths one stage writes and a later
stage reads, and `--params`. One declaration each, so a default or help text cannot drift
between commands; dvc.yaml passes the same paths explicitly.

Imports only click: `space --help` and the model commands stay light.
"""

from __future__ import annotations

from collections.abc import Callable

import click

FILE = click.Path(dir_okay=False)
FOLDER = click.Path(file_okay=False)


def _path_option(name: str, default: str, type: click.Path, help: str) -> Callable:
    return click.option(name, default=default, show_default=True, type=type, help=help)


manifest_option = _path_option(
    "--manifest",
    "data/manifest.parquet",
    FILE,
    "Manifest (parquet, one row per media file) written by `space index`.",
)
clips_option = _path_option(
    "--clips",
    "data/features/clips.parquet",
    FILE,
    "Per-clip statistics (parquet) written by `space extract`.",
)
features_option = _path_option(
    "--features",
    "data/features",
    FOLDER,
    "Features folder (clips.parquet + per-clip records) written by `space extract`.",
)
keep_option = _path_option(
    "--keep",
    "data/keep.parquet",
    FILE,
    "Keep/drop decisions (parquet) written by `space filter`.",
)
shards_option = _path_option(
    "--shards",
    "data/shards",
    FOLDER,
    "Shard folder (tars + index.json) written by `space pack`.",
)


def params_option(*sections: str) -> Callable:
    """`--params` (default params.yaml), its help naming the `sections` the command reads."""
    names = ", ".join(f"`{s}`" for s in sections)
    plural = "s" if len(sections) > 1 else ""
    return _path_option(
        "--params", "params.yaml", FILE, f"Parameters file (section{plural} {names})."
    )
