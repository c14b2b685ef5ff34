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
    CorpusLayoutError,
    IndexConfig,
    assign_splits,
    balanced_table,
    empty_splits,
    probe_clips,
    read_split_table,
    scan_corpora,
    write_manifest,
    write_split_table,
)
from space_data.datasets.splits import SplitTable
from space_data.params import ParamsError, load_section, params_option


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


def _pinned(config: IndexConfig) -> SplitTable:
    """The pinned split table of `index.splits_file` ({} without one); a missing or malformed
    file, or rows of unregistered corpora, are params errors (before any scan)."""
    path = config.splits_file
    if path is None:
        return {}
    if not storage.isfile(path):
        raise ConfigError(f"index.splits_file: {path} not found (write one: --write-splits)")
    try:
        table = read_split_table(path)
    except ValueError as e:
        raise ConfigError(f"index.splits_file: {e}") from e
    unknown = sorted({dataset for dataset, _ in table} - set(DATASETS))
    if unknown:
        raise ConfigError(f"index.splits_file: {path} pins corpora {unknown}; known: {DATASETS}")
    return table


def _summary(clips: list[Clip]) -> str:
    lines = []
    for dataset in DATASETS:
        rows = [c for c in clips if c.dataset == dataset]
        if not rows:
            continue
        usable = [c for c in rows if c.usable]
        splits = Counter(c.split for c in usable)
        speakers = {s: len({c.speaker for c in usable if c.split == s}) for s in splits}
        per_split = ", ".join(f"{s} {splits[s]}" for s in ("train", "val", "test"))
        per_speaker = ", ".join(f"{s} {speakers.get(s, 0)}" for s in ("train", "val", "test"))
        n_speakers = sum(speakers.values())
        lines.append(f"{dataset}: {len(usable)} usable of {len(rows)} files, {n_speakers} speakers")
        lines.append(f"  clips per split: {per_split}; speakers per split: {per_speaker}")
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
@click.option(
    "--write-splits",
    metavar="CSV",
    help="Also write a pinned split table with exact fractions (largest remainders, a speaker "
    "in every split where the speakers allow; rows of index.splits_file kept) and use it for "
    "this manifest. Commit it and set index.splits_file to it.",
)
@params_option("corpora", "index")
def cli(corpus: tuple[str, ...], out: str, write_splits: str | None, params: str) -> None:
    corpora, config = _configs(corpus, params)
    pinned = _pinned(config)
    try:
        clips = scan_corpora(corpora)
    except CorpusLayoutError as e:
        raise ParamsError(str(e)) from e
    if config.probe:
        probed = probe_clips(clips, config.probe_workers)
        clips = list(tqdm(probed, total=len(clips), desc="probing", unit="file"))
    if write_splits:
        pinned = balanced_table(clips, config, pinned)
        write_split_table(pinned, write_splits)
    clips = assign_splits(clips, config, pinned)
    write_manifest(clips, out)
    click.echo(_summary(clips))
    if pinned:
        used = {(c.dataset, c.speaker) for c in clips if c.usable} & set(pinned)
        source = write_splits or config.splits_file
        click.echo(f"pinned splits: {len(used)} speakers from {source} ({len(pinned)} rows)")
    for dataset, missing in empty_splits(clips, config).items():
        click.echo(
            f"warning: {dataset}: no speaker in {' or '.join(missing)}: a speaker's split is a "
            "hash, so fractions hold in expectation only; exact ones: --write-splits CSV",
            err=True,
        )
    click.echo(f"manifest: {out} ({len(clips)} rows)")
