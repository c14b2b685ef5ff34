"""`space synth`: render the sample corpus with known ground truth (the DVC `synth` stage)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from tqdm import tqdm

from space_data.params import load_section, params_option
from space_data.synth import SynthConfig, build_sample_corpus, plan


@click.command()
@click.option(
    "--out",
    default="sample",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to write; absent, or holding only a previous sample corpus (replaced).",
)
@params_option("synth")
def cli(out: str, params: str) -> None:
    """Render a small VoxCeleb2 / MEAD / RAVDESS sample corpus from real face photos.

    Heads move along known pose tracks and speak synthetic speech; some clips are designed to
    be dropped (rotation, zoom, cut, no face, hands, excluded view, song, video only). Writes
    the media in each corpus's real layout plus truth/<clip_id>.npy (per-frame yaw, pitch,
    roll, tx, ty, scale) and truth.json (designed outcome per clip).
    Without a params file the SynthConfig defaults apply.
    """
    config = load_section("synth", SynthConfig, params) if Path(params).is_file() else SynthConfig()
    try:
        specs = plan(config)
        with tqdm(total=len(specs), unit="clip", desc="synth") as bar:
            truth = build_sample_corpus(out, config, on_clip=lambda spec: bar.update(1))
    except (FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    counts = Counter((r["dataset"], r["outcome"]) for r in truth.values())
    click.echo(f"wrote {len(truth)} clips to {out}/ (truth in {out}/truth.json, {out}/truth/)")
    for dataset in ("voxceleb2", "mead", "ravdess"):
        parts = ", ".join(f"{o} {n}" for (d, o), n in sorted(counts.items()) if d == dataset)
        click.echo(f"  {dataset}: {parts}")
