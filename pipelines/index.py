"""`space index`: scan raw corpora into `data/manifest.parquet` (the DVC `index` stage)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from tqdm import tqdm

from space_data import storage
from space_data.clip import Clip
from space_data.config import ConfigError
from space_data.datasets import (
    CORPORA,
    DATASETS,
    CorporaConfig,
    IndexConfig,
    assign_splits,
    probe_clips,
    scan_corpora,
    write_manifest,
)
from space_data.params import load_section, params_option


def _root_problem(root: str) -> str | None:
    """Why `root` cannot be scanned, or None."""
    try:
        return None if storage.isdir(root) else f"{root!r} is not a folder"
    except (ImportError, ValueError) as e:  # unknown URL protocol, or its fsspec driver missing
        return str(e)


def _corpora_from_options(values: tuple[str, ...]) -> CorporaConfig:
    roots: dict[str, str] = {}
    for value in values:
        name, sep, root = value.partition("=")
        if not sep or not root:
            raise click.BadParameter(f"{value!r} is not NAME=ROOT", param_hint="--corpus")
        if name not in CORPORA:
            raise click.BadParameter(
                f"unknown corpus {name!r}; known: {', '.join(DATASETS)}", param_hint="--corpus"
            )
        problem = _root_problem(root)
        if problem:
            raise click.BadParameter(f"{name}: {problem}", param_hint="--corpus")
        roots[name] = root
    return CorporaConfig(**roots)


def _configs(corpus: tuple[str, ...], params: str) -> tuple[CorporaConfig, IndexConfig]:
    """--corpus options win over params.yaml `corpora:`; `index:` comes from params when present."""
    has_params = Path(params).is_file()
    if not corpus and not has_params:
        raise click.UsageError(f"no --corpus given and params file {params} not found")
    index = load_section("index", IndexConfig, params) if has_params else IndexConfig()
    if corpus:
        return _corpora_from_options(corpus), index
    corpora = load_section("corpora", CorporaConfig, params)
    if not corpora.roots():
        raise click.UsageError(f"no corpus configured: pass --corpus or fill corpora: in {params}")
    for name, root in corpora.roots().items():
        problem = _root_problem(root)
        if problem:
            raise ConfigError(f"corpora.{name}: {problem} (in {params})")
    return corpora, index


def _summary(clips: list[Clip]) -> str:
    lines = []
    for dataset in DATASETS:
        rows = [c for c in clips if c.dataset == dataset]
        if not rows:
            continue
        usable = [c for c in rows if c.usable]
        splits = Counter(c.split for c in usable)
        speakers = len({c.speaker for c in usable})
        per_split = ", ".join(f"{s} {splits[s]}" for s in ("train", "val", "test"))
        lines.append(f"{dataset}: {len(usable)} usable of {len(rows)} files, {speakers} speakers")
        lines.append(f"  clips per split: {per_split}")
        for reason, n in sorted(Counter(c.reason for c in rows if not c.usable).items()):
            lines.append(f"  rejected {reason}: {n}")
    return "\n".join(lines)


@click.command(
    help="Scan raw corpora into a manifest with one row per media file: usable clips with "
    "labels and a speaker-disjoint split, rejected files with a reason. Without --corpus the "
    "roots come from params.yaml `corpora:`."
)
@click.option(
    "--corpus",
    multiple=True,
    metavar="NAME=ROOT",
    help="Corpus root (local path or URL), repeatable; NAME=ROOT is one of: "
    + "; ".join(f"{c.name}={c.root}" for c in CORPORA.values()),
)
@click.option(
    "--out",
    default="data/manifest.parquet",
    show_default=True,
    help="Manifest to write (parquet; path or URL).",
)
@params_option("corpora", "index")
def cli(corpus: tuple[str, ...], out: str, params: str) -> None:
    corpora, config = _configs(corpus, params)
    clips = scan_corpora(corpora)
    if config.probe:
        probed = probe_clips(clips, config.probe_workers)
        clips = list(tqdm(probed, total=len(clips), desc="probing", unit="file"))
    clips = assign_splits(clips, config)
    write_manifest(clips, out)
    click.echo(_summary(clips))
    click.echo(f"manifest: {out} ({len(clips)} rows)")
