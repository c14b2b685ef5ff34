"""`space synth`: render the sample corpus with known ground truth (the DVC `synth` stage)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import click
from tqdm import tqdm

from space_data.datasets import DATASETS, CorporaConfig
from space_data.params import load_section, params_option, read_params
from space_data.synth import SynthConfig, build_sample_corpus, plan


def sample_corpora(out: str, params: str) -> tuple[str, ...]:
    """The corpora to render: those whose `corpora:` root lies inside `out` (the roots that
    use the sample corpus), or every corpus when the params file has no `corpora:` section."""
    if not Path(params).is_file() or "corpora" not in read_params(params):
        return DATASETS
    roots = load_section("corpora", CorporaConfig, params).roots()
    inside = Path(out).resolve()
    return tuple(
        name
        for name, root in roots.items()
        if "://" not in root and Path(root).resolve().is_relative_to(inside)
    )


@click.command()
@click.option(
    "--out",
    default="sample",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder to write; absent, or holding only a previous sample corpus (replaced).",
)
@params_option("synth", "corpora")
def cli(out: str, params: str) -> None:
    """Render a small sample corpus of every registered corpus from real face photos.

    Heads move along known pose tracks and speak synthetic speech; some clips are designed to
    be dropped (rotation, zoom, cut, no face, hands, excluded view, song, video only). Writes
    the media in each corpus's real layout plus truth/<clip_id>.npy (per-frame yaw, pitch,
    roll, tx, ty, scale) and truth.json (designed outcome per clip).
    Only the corpora whose `corpora:` root lies inside OUT are rendered (all of them when the
    params file has no `corpora:` section); with none, OUT is left an empty sample corpus at
    once, so pointing every corpus at real data makes this stage cost nothing.
    Without a params file the SynthConfig defaults apply.
    """
    config = load_section("synth", SynthConfig, params) if Path(params).is_file() else SynthConfig()
    wanted = sample_corpora(out, params)
    try:
        if wanted != DATASETS:
            ids = [s.clip_id for s in plan(config) if s.dataset in wanted]
            config = dataclasses.replace(config, only=ids)
        specs = plan(config)
        with tqdm(total=len(specs), unit="clip", desc="synth") as bar:
            truth = build_sample_corpus(out, config, on_clip=lambda spec: bar.update(1))
    except (FileExistsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if not wanted:
        click.echo(f"no corpora: root lies inside {out}/: nothing to render")
    counts = Counter((r["dataset"], r["outcome"]) for r in truth.values())
    click.echo(f"wrote {len(truth)} clips to {out}/ (truth in {out}/truth.json, {out}/truth/)")
    for dataset in wanted:
        parts = ", ".join(f"{o} {n}" for (d, o), n in sorted(counts.items()) if d == dataset)
        click.echo(f"  {dataset}: {parts}")
