"""`params.yaml` and the command-line plumbing every `space` command shares.

`params.yaml` is the single source of parameters, one section per stage (`SECTIONS`). Each
section is parsed into the dataclass that lives beside the code that uses it; the command that
reads a section names that dataclass (`load_section("filter", FilterConfig, path)`), so this
module knows section names only and imports nothing above `space_data`.

A bad params file is reported the same way by every command, before the command reads or
writes any data: one line on stderr naming the dotted key and what was expected, exit status 2
(`params_option` arranges it). Run as `space <command>`, the whole file is checked, every
section against its dataclass, also the sections the command does not read: the `space` group
(pipelines/cli.py, the one place that knows every section's dataclass) puts that check into
the click context (`VALIDATOR`). A `--params` given on the command line that does not exist is
an error; the default params.yaml may be absent where a command has defaults. The shared click
options (the data paths one stage writes and a later stage reads) are declared here once each,
so a default or help text cannot drift between commands; dvc.yaml passes the same paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from click.core import ParameterSource

from space_data.config import ConfigError, did_you_mean, from_mapping

T = TypeVar("T")

DEFAULT_PARAMS = Path("params.yaml")

# every section params.yaml may hold, → the stage that reads it
SECTIONS: dict[str, str] = {
    "corpora": "index: corpus roots",
    "index": "index: manifest and splits",
    "synth": "synth: the sample corpus",
    "extract": "extract: per-clip features",
    "ray": "extract: the Ray job",
    "filter": "filter: keep/drop rules",
    "pack": "pack: WebDataset shards",
    "report": "report: dataset report",
    "train": "train: S2L / PoseGen / L2L",
    "evaluate": "evaluate: model metrics",
}


def read_params(path: str | Path = DEFAULT_PARAMS) -> dict[str, Any]:
    """The raw params mapping, its section names checked against `SECTIONS`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"params file {path} not found (run from the project root or pass --params)"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        problem = " ".join(str(e).split())  # one line
        raise ConfigError(f"params file {path} is not valid YAML: {problem}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"params file {path}: expected a mapping of sections")
    for name in data:
        if name not in SECTIONS:
            raise ConfigError(f"{name}: unknown section in {path}{did_you_mean(name, SECTIONS)}")
    return data


VALIDATOR = "space.validate_params"
"""`click.Context.meta` key of the whole-file check: a function (params path) that raises
`ConfigError` for the first problem in any section; set by the `space` group."""


def load_section(name: str, cls: type[T], path: str | Path = DEFAULT_PARAMS) -> T:
    """Section `name` of the params file as dataclass `cls` (its defaults where absent)."""
    if name not in SECTIONS:
        raise KeyError(f"{name!r} is not a params section (space_data.params.SECTIONS)")
    return from_mapping(cls, read_params(path).get(name), name)


# ---------------------------------------------------------------- click plumbing


class ParamsError(click.ClickException):
    """A bad params file (or command-line override): one line on stderr, exit status 2."""

    exit_code = 2


FILE = click.Path(dir_okay=False)
DATA = click.STRING
"""A data path: a local path or any fsspec URL (`s3://bucket/...`), opened through
`space_data.storage`; click never checks or rewrites it."""


def _path_option(name: str, default: str, type: click.ParamType, help: str) -> Callable:
    return click.option(name, default=default, show_default=True, type=type, help=help)


manifest_option = _path_option(
    "--manifest",
    "data/manifest.parquet",
    DATA,
    "Manifest (parquet, one row per media file) written by `space index`.",
)
clips_option = _path_option(
    "--clips",
    "data/features/clips.parquet",
    DATA,
    "Per-clip statistics (parquet) written by `space extract`.",
)
features_option = _path_option(
    "--features",
    "data/features",
    DATA,
    "Features folder (clips.parquet + per-clip records) written by `space extract`.",
)
keep_option = _path_option(
    "--keep",
    "data/keep.parquet",
    DATA,
    "Keep/drop decisions (parquet) written by `space filter`.",
)
shards_option = _path_option(
    "--shards",
    "data/shards",
    DATA,
    "Shard folder (tars + index.json) written by `space pack`.",
)


def params_option(*sections: str) -> Callable:
    """`--params` (default params.yaml), its help naming the `sections` the command reads.

    Also reports a `ConfigError` raised anywhere in the command as one line and exit status 2
    (`reports_params_errors`).
    """
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise KeyError(f"not params sections: {sorted(unknown)}")
    names = ", ".join(f"`{s}`" for s in sections)
    plural = "s" if len(sections) > 1 else ""
    option = _path_option(
        "--params", str(DEFAULT_PARAMS), FILE, f"Parameters file (section{plural} {names})."
    )

    return lambda command: option(reports_params_errors(command))


def reports_params_errors(command: Callable) -> Callable:
    """Wrap a click callback so the params file is checked before it runs (`check_params` on
    its `params` argument) and a `ConfigError` becomes `ParamsError` (one line, exit 2)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            check_params(kwargs.get("params"))
            return command(*args, **kwargs)
        except ConfigError as e:
            raise ParamsError(" ".join(str(e).split())) from e

    return run


def check_params(path: str | Path | None) -> None:
    """Before any work: a `--params` given on the command line must exist; an existing file is
    checked whole (`VALIDATOR` of the running `space` command, else its section names only).
    None stands for the default params.yaml."""
    ctx = click.get_current_context(silent=True)
    given = ctx is not None and ctx.get_parameter_source("params") not in (
        None,
        ParameterSource.DEFAULT,
    )
    path = Path(path) if path is not None else DEFAULT_PARAMS
    if not path.is_file():
        if given:
            raise ConfigError(f"params file {path} not found (--params)")
        return  # the default params.yaml absent: the command uses defaults or says it needs it
    validate = ctx.meta.get(VALIDATOR) if ctx is not None else None
    if validate is not None:
        validate(path)
    else:
        read_params(path)
