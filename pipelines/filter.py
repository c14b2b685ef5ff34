"""`space filter`: keep/drop decision per manifest clip from the extraction statistics.

Reads only parquet (the manifest and `data/features/clips.parquet`), so a threshold change
reruns in seconds: `dvc exp run -S filter.max_rotation_deg=30`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields

import click
import pandas as pd

from space_data import storage
from space_data.filters import KEEP_COLUMNS, FilterConfig, filter_clips
from space_data.params import clips_option, load_section, manifest_option, params_option
from space_data.record import ClipStats

MANIFEST_COLUMNS = ("clip_id", "dataset", "path", "split", "reason", "detail")
CLIP_COLUMNS = ("clip_id", "status", "reason", *(f.name for f in fields(ClipStats)))


def decide(manifest: str, clips: str, config: FilterConfig) -> pd.DataFrame:
    """`filter_clips` over the two tables (paths or URLs), reading only the columns it uses."""
    keep = filter_clips(
        storage.read_parquet(manifest, MANIFEST_COLUMNS),
        storage.read_parquet(clips, CLIP_COLUMNS),
        config,
    )
    if keep.empty:  # pandas makes empty columns float64: give them their types
        keep = keep.astype({c: bool if c == "keep" else object for c in keep.columns})
    return keep


def count_reasons(keep: pd.DataFrame) -> Counter:
    """Clips per first reason ("kept" for kept clips)."""
    return Counter(keep["reason"].fillna("kept"))


@click.command()
@manifest_option
@clips_option
@click.option(
    "--out",
    default="data/keep.parquet",
    show_default=True,
    help=f"Decisions per manifest clip: {', '.join(KEEP_COLUMNS)} (parquet; a path or a URL).",
)
@params_option("filter")
def cli(manifest: str, clips: str, out: str, params: str) -> None:
    """Keep or drop every manifest clip by the SPACE rules (thresholds: params.yaml `filter`).

    Reads only parquet, so a threshold change reruns in seconds
    (`dvc exp run -S filter.max_rotation_deg=30`). Prints the clips per first reason.
    """
    config = load_section("filter", FilterConfig, params)
    for path, stage in ((manifest, "space index"), (clips, "space extract")):
        if not storage.isfile(path):
            raise click.ClickException(f"{path} not found: run `{stage}` first")
    keep = decide(manifest, clips, config)
    storage.write_parquet(keep, out)
    counts = count_reasons(keep)
    click.echo(f"{int(keep['keep'].sum())} of {len(keep)} clips kept → {out}")
    for reason, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        click.echo(f"  {reason:<28} {n}")
