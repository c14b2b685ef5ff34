"""The `space` command line. Each subcommand lives in its own module as a click command
named `cli` and is imported only when used, so `space --help` stays fast."""

from __future__ import annotations

import importlib

import click

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
def main() -> None:
    """space: talking-head corpora → versioned training shards → SPACE models."""
