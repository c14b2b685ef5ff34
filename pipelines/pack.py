"""`space pack`: kept clips → deterministic WebDataset shards per split + index.json + README.md
(the data card, `space_data.card`: licences, counts per corpus and split, member types).

Shards are `{split}-NNNNNN.tar` (one sample per clip, key = clip_id, members from the
clip's feature record); the same kept clips and params give byte-identical shards.
Shards of an earlier run that this run does not write are removed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import click
import pandas as pd
from tqdm import tqdm

from pipelines.units import CLIPS_TABLE
from space_data import storage
from space_data.card import CARD_NAME, CardData, write_card
from space_data.clip import SPLITS
from space_data.params import features_option, keep_option, load_section, params_option
from space_data.record import ClipFeatures
from space_data.shards import INDEX_NAME, PackConfig, sample_members, write_shards


def kept_records(
    keep: pd.DataFrame, clips: pd.DataFrame, features: str
) -> list[tuple[str, str, str]]:
    """(split, clip_id, record path) of every kept clip, sorted by split order then clip_id."""
    kept = keep[keep["keep"].astype(bool)]
    records = dict(zip(clips["clip_id"], clips["record"], strict=True))
    out = []
    for clip_id, split in zip(kept["clip_id"], kept["split"], strict=True):
        if split not in SPLITS:
            raise click.ClickException(
                f"kept clip {clip_id} has no split ({split!r}): rerun `space index`"
            )
        record = records.get(clip_id)
        if not isinstance(record, str):
            raise click.ClickException(
                f"kept clip {clip_id} has no feature record in clips.parquet: rerun `space filter`"
            )
        out.append((split, clip_id, storage.join(features, record)))
    return sorted(out, key=lambda s: (SPLITS.index(s[0]), s[1]))


def plan_records(keep: str, features: str) -> list[tuple[str, str, str]]:
    """`kept_records` from keep.parquet and the features folder's clips.parquet (paths or URLs),
    reading only the columns it uses."""
    return kept_records(
        storage.read_parquet(keep, ("clip_id", "split", "keep")),
        storage.read_parquet(storage.join(features, CLIPS_TABLE), ("clip_id", "record")),
        features,
    )


def load_samples(
    planned: list[tuple[str, str, str]], config: PackConfig
) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """Load records one at a time (memory stays one record) as `(split, key, members)`."""
    for split, clip_id, path in tqdm(planned, desc="pack", unit="clip"):
        record = ClipFeatures.load_npz(io.BytesIO(storage.read_bytes(path)))
        if record.clip_id != clip_id or not record.ok:
            raise click.ClickException(
                f"{path} holds {record.clip_id} ({record.status}), not a usable {clip_id}"
            )
        yield split, clip_id, sample_members(record, config)


@click.command()
@keep_option
@features_option
@click.option(
    "--out",
    default="data/shards",
    show_default=True,
    help="Shard folder (tars + index.json); a path or a URL (s3://...).",
)
@params_option("pack")
def cli(keep: str, features: str, out: str, params: str) -> None:
    """Pack kept clips into byte-reproducible WebDataset shards per split, plus index.json and
    README.md, the data card (Hugging Face format: licences, counts, member types).

    Shards are `{split}-NNNNNN.tar`, one sample per clip (key = clip_id); shards of an
    earlier run that this run does not write are removed. Sizes: params.yaml `pack`.
    """
    config = load_section("pack", PackConfig, params)
    clips_path = storage.join(features, CLIPS_TABLE)
    for path, stage in ((keep, "space filter"), (clips_path, "space extract")):
        if not storage.isfile(path):
            raise click.ClickException(f"{path} not found: run `{stage}` first")
    planned = plan_records(keep, features)
    storage.remove([storage.join(out, CARD_NAME)])  # a card never describes other shards
    card = CardData()
    index = write_shards(card.observe(load_samples(planned, config)), out, config)
    decisions = storage.read_parquet(keep, ("clip_id", "dataset", "split", "keep", "reason"))
    card_path = write_card(out, index, card, decisions)
    for split in SPLITS:
        t = index["totals"][split]
        click.echo(
            f"  {split:<5} {t['samples']:>6} clips in {t['shards']} shard(s), {t['bytes']:,} bytes"
        )
    click.echo(f"data version {index['data_version'][:16]} → {storage.join(out, INDEX_NAME)}")
    click.echo(f"data card → {card_path}")
