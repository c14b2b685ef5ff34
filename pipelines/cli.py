"""The `space` command line. Each subcommand lives in its own module as a click command
named `cli` and is imported only when used, so `space --help` stays fast.

Every subcommand checks the whole params file before any work (`validate_params`, put into
the click context for `space_data.params.check_params`): this module is the top of the
layers, the one place that may name every section's dataclass.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from space_data.config import ConfigError, from_mapping
from space_data.params import VALIDATOR, read_params

# subcommand → module holding `cli`
COMMANDS: dict[str, str] = {
    "synth": "pipelines.synth",
    "index": "pipelines.index",
    "extract-clip": "pipelines.extract_clip",
    "extract": "pipelines.extract",
    "filter": "pipelines.filter",
    "pack": "pipelines.pack",
    "report": "pipelines.report",
    "train": "space_models.train",
    "evaluate": "space_models.metrics",
    "animate": "space_models.animate",
}


# params.yaml section → "module:dataclass" that parses it (imported for the sections present,
# and for the defaults a rule spanning sections needs; an absent section is valid by construction)
PARAMS_CLASSES: dict[str, str] = {
    "corpora": "space_data.datasets:CorporaConfig",
    "index": "space_data.datasets:IndexConfig",
    "synth": "space_data.synth:SynthConfig",
    "extract": "space_data.extract:ExtractConfig",
    "ray": "pipelines.extract:RayConfig",
    "filter": "space_data.filters:FilterConfig",
    "pack": "space_data.shards:PackConfig",
    "report": "pipelines.report_data:ReportConfig",
    "train": "space_models.train:TrainConfig",
    "evaluate": "space_models.metrics:EvalConfig",
}


def params_class(section: str) -> type:
    """The dataclass of a params section (imports its module)."""
    module, _, name = PARAMS_CLASSES[section].partition(":")
    return getattr(importlib.import_module(module), name)


def validate_params(path: str | Path) -> dict[str, Any]:
    """Every section of the params file parsed into its dataclass (section → config), and the
    rules that span sections; the first problem raises `ConfigError` naming the dotted key."""
    data = read_params(path)
    configs = {name: from_mapping(params_class(name), value, name) for name, value in data.items()}

    def config(section: str) -> Any:
        return configs[section] if section in configs else params_class(section)()

    if config("pack").include_audio and not config("extract").audio.store_flac:
        raise ConfigError(
            "pack.include_audio: true needs extract.audio.store_flac: true (records without "
            f"audio give shards without audio): in {path} set extract.audio.store_flac: true, "
            "or pack.include_audio: false"
        )
    return configs


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(COMMANDS[name]).cli

    def invoke(self, ctx: click.Context):
        """Run the subcommand; object-storage access errors (no credentials, endpoint
        unreachable, missing bucket or driver, transient errors that outlasted the retries) and
        a full disk end with one line naming what is missing and exit status 2, not a
        traceback."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            from space_data.storage import access_problem, disk_full

            problem = disk_full(e) or access_problem(e)
            if problem is None:
                raise
            click.echo(f"Error: {problem}", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """space: talking-head corpora → versioned training shards → SPACE models."""
    ctx.meta[VALIDATOR] = validate_params
