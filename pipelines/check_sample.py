"""Does every clip of the sample corpus end with its designed outcome? `make demo` runs this last
(`python -m pipelines.check_sample`); it is not a `space` command: it reads no params and only
makes sense on the sample corpus."""

from __future__ import annotations

import json
from pathlib import Path

import click

from space_data import storage
from space_data.params import keep_option
from space_data.synth.outcomes import outcome_mismatches


@click.command()
@click.option(
    "--sample",
    default="sample",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Sample corpus folder written by `space synth` (its truth.json).",
)
@keep_option
def cli(sample: str, keep: str) -> None:
    """Compare `space filter`'s decisions with the sample corpus's designed outcomes.

    Prints one line when every sample clip is kept or dropped as designed; otherwise lists each
    clip that is not, with what it was designed for and what it got, and exits with status 1.
    `make demo` runs it last.
    """
    truth_path = Path(sample) / "truth.json"
    if not truth_path.is_file():
        raise click.ClickException(f"{truth_path} not found: run `space synth --out {sample}`")
    if not storage.isfile(keep):
        raise click.ClickException(f"{keep} not found: run `space filter` first")
    truth = json.loads(truth_path.read_text())
    decisions = storage.read_parquet(keep, ("clip_id", "keep", "reason"))
    wrong = outcome_mismatches(truth, decisions)
    kept = int(decisions["keep"][decisions["clip_id"].isin(list(truth))].sum())
    if not wrong:
        click.echo(
            f"sample corpus: {len(truth)} clips, {kept} kept; every clip has its designed outcome"
        )
        return
    click.echo(f"sample corpus: {len(wrong)} of {len(truth)} clips miss their designed outcome:")
    for clip_id, (want, got) in wrong.items():
        click.echo(f"  {clip_id}: designed {want}, got {got}")
    raise click.exceptions.Exit(1)


if __name__ == "__main__":
    cli()
