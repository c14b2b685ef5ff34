"""The data card `space pack` writes beside the shards: its header parses, its numbers are those
of index.json, keep.parquet and metrics.json, and Hugging Face `datasets` takes its splits,
files and types."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from space_data.card import UNASSIGNED, UNLABELLED, read_card
from space_data.clip import SPLITS
from space_data.datasets import CORPORA, DATASETS
from space_data.shard_schema import SCHEMA_VERSION
from space_data.shards import open_shards, read_index, shard_urls


@pytest.fixture(scope="module")
def card(packed_sample):
    return read_card(str(packed_sample["shards"]))


def test_header_states_licences_splits_files_and_versions(card, packed_sample):
    index = read_index(packed_sample["shards"])
    assert card["license"] == ["cc-by-4.0", "cc-by-nc-sa-4.0", "other"]  # no CREMA-D kept
    assert card["size_categories"] == ["n<1K"] and card["task_categories"]
    [config] = card["configs"]
    files = {entry["split"]: entry["path"] for entry in config["data_files"]}
    assert (
        files == {s: [x["name"] for x in index["shards"] if x["split"] == s] for s in SPLITS}
        and len(files["train"]) == 4
    )
    assert card["dataset_info"]["splits"] == [
        {"name": s, "num_bytes": index["totals"][s]["bytes"],
         "num_examples": index["totals"][s]["samples"]} for s in SPLITS
    ]  # fmt: skip
    space = card["space"]
    assert space["data_version"] == index["data_version"]
    assert space["schema_version"] == index["schema_version"] == SCHEMA_VERSION
    assert space["splits"] == {s: index["totals"][s] for s in SPLITS}
    assert space["params_hash"]["extract"] == ["test"] and len(space["params_hash"]["pack"]) == 16
    assert space["project_version"] == "0.1.0"
    for corpus, info in space["corpora"].items():
        assert (info["licence"], info["terms"]) == (CORPORA[corpus].licence, CORPORA[corpus].terms)


def test_numbers_are_those_of_the_shards_decisions_and_metrics(card, packed_sample):
    corpora = card["space"]["corpora"]
    metrics = json.loads((packed_sample["reports"] / "metrics.json").read_text())
    groups = [(c, s, n) for c, info in corpora.items() for s, n in info["splits"].items()]
    # kept clips: per split as index.json and metrics.json count them, per corpus as metrics
    for split in SPLITS:
        assert sum(n["clips"] for _, s, n in groups if s == split) == metrics[f"kept_{split}"]
    for corpus in DATASETS:
        kept = sum(n["clips"] for c, _, n in groups if c == corpus)
        dropped = sum(sum(n["dropped"].values()) for c, _, n in groups if c == corpus)
        assert kept == metrics["corpus"][corpus]["clips_kept"]
        assert kept + dropped == metrics["corpus"][corpus]["clips_total"]
    assert card["space"]["clips"] == metrics["clips_kept"] == 11
    assert card["space"]["hours"] == metrics["kept_hours"]
    # drop reasons: the first reason of each dropped decision
    keep = pd.read_parquet(packed_sample["keep"])
    reasons = Counter(r for _, _, n in groups for r, k in n["dropped"].items() for _ in range(k))
    assert reasons == Counter(keep.loc[~keep["keep"], "reason"])
    assert reasons == {"rotation": 1, "error:no_frames": 1, "index:song": 1}
    assert corpora["ravdess"]["splits"][UNASSIGNED]["dropped"] == {"index:song": 1}
    # speakers and emotion labels, from the samples' meta.json
    metas = [s["meta.json"] for split in SPLITS
             for s in open_shards(shard_urls(packed_sample["shards"], split))]  # fmt: skip
    for corpus, split, n in groups:
        mine = [m for m in metas if (m["dataset"], m["split"]) == (corpus, split)]
        assert n["speakers"] == len({m["speaker"] for m in mine})
        assert n["emotions"] == dict(Counter(m["emotion"] or UNLABELLED for m in mine))
        seconds = sum(m["stats"]["duration"] for m in mine)
        assert n["hours"] == round(seconds / 3600, 4)
    assert corpora["hdtf"]["splits"]["train"]["speakers"] == 3
    assert corpora["hdtf"]["splits"]["train"]["emotions"] == {UNLABELLED: 5}
    assert corpora["ravdess"]["splits"]["test"]["emotions"] == {"calm": 1, "angry": 1}


def test_text_has_the_tables_and_every_member(packed_sample, card):
    text = (packed_sample["shards"] / "README.md").read_text()
    assert "| hdtf | train | 5 | " in text and "| ravdess | unassigned | 0 |" in text
    for feature in card["dataset_info"]["features"]:
        if not feature["name"].startswith("__"):
            assert f"| `{feature['name']}` |" in text


def test_datasets_reads_the_card(card, packed_sample, tmp_path):
    datasets = pytest.importorskip("datasets")
    builder = datasets.load_dataset_builder(
        str(packed_sample["shards"]), cache_dir=str(tmp_path / "hf")
    )
    assert builder.info.features == datasets.Features._from_yaml_list(
        card["dataset_info"]["features"]
    )
    assert {s: builder.info.splits[s].num_examples for s in SPLITS} == {"train": 7, "val": 1,
                                                                        "test": 3}  # fmt: skip
    meta = builder.info.features["meta.json"]
    assert meta["view"] == datasets.Value("string") and meta["intensity"] == datasets.Value(
        "float64"
    )
    assert meta["stats"]["max_abs_yaw"] == datasets.Value("float64")
    assert builder.info.features["lm3d.npy"] == datasets.Array3D((None, 68, 3), "float32")
    assert builder.info.features["frame0.jpg"] == datasets.Image()
