"""The data card: `README.md` beside the shards, in the Hugging Face dataset-card format.

`space pack` writes it after index.json. Its YAML header holds the licences of the corpora in
the shards, task categories, the size category, `configs` (each split and its tar files, so
`datasets.load_dataset(<shard folder>)` finds them) and `dataset_info` (the features of every
member, from `shard_schema.MemberTypes`, and the examples per split, which `datasets` checks),
plus a `space` block with the numbers: per corpus and split the clips, hours, speakers, emotion
labels and the dropped clips by first reason (from the filter's decisions, keep.parquet);
shards, samples and bytes per split (index.json); the data version, schema version, params
hashes and project version. Below the header the same numbers in tables for people, what each
member holds, and how each loader reads the shards. No dates: same shards and decisions give
the same bytes.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata

import pandas as pd
import yaml

from space_data import storage
from space_data.clip import EMOTIONS, SPLITS
from space_data.config import config_hash
from space_data.datasets import CORPORA
from space_data.record import ARRAY_MEMBERS
from space_data.shard_schema import SCHEMA_VERSION, MemberTypes

CARD_NAME = "README.md"
UNASSIGNED = "unassigned"
"""The split of dropped clips that never got one (rejected by the indexer)."""
UNLABELLED = "unlabelled"
"""The emotion count of clips without a corpus label (VoxCeleb2, HDTF)."""
TASK_CATEGORIES = ("image-to-video", "keypoint-detection")
TAGS = ("talking-head", "speech-driven-animation", "facial-landmarks", "webdataset")
_SIZES = ((1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M"),
          (1e7, "1M<n<10M"), (1e8, "10M<n<100M"))  # fmt: skip
OTHER_MEMBERS = {
    "frame0.jpg": "JPEG of the first crop (512×512, or the native VoxCeleb2 track size): the "
    "still image a user animates",
    "audio.flac": "16 kHz mono FLAC of the clip (absent when the clip has no audio or "
    "`pack.include_audio` is false)",
    "meta.json": "who the clip is (id, corpus, speaker, emotion label, intensity, view, split), "
    "how it was made (params hash, package versions, models, crop box) and `stats`, the "
    "statistics the filters read; null where a value is absent or unmeasured",
}


@dataclass
class _Group:
    """What the card counts of one corpus and split."""

    clips: int = 0
    seconds: float = 0.0
    speakers: set[str] = field(default_factory=set)
    emotions: Counter = field(default_factory=Counter)


class CardData:
    """The card's numbers and the members' types, gathered from the samples as they are packed
    (memory: the speaker ids of each corpus and split)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
        self.types = MemberTypes()
        self.params_hashes: set[str] = set()

    def add(self, split: str, members: dict[str, bytes]) -> None:
        meta = json.loads(members["meta.json"])
        group = self.groups[meta["dataset"], split]
        group.clips += 1
        group.seconds += meta["stats"]["duration"] or 0.0
        group.speakers.add(meta["speaker"])
        group.emotions[meta["emotion"] or UNLABELLED] += 1
        self.params_hashes.add(meta["params_hash"])
        self.types.add(members, meta)

    def observe(
        self, samples: Iterable[tuple[str, str, dict[str, bytes]]]
    ) -> Iterator[tuple[str, str, dict[str, bytes]]]:
        """Pass `(split, key, members)` samples through, counting each."""
        for split, key, members in samples:
            self.add(split, members)
            yield split, key, members


def _size_category(n: int) -> str:
    return next((name for limit, name in _SIZES if n < limit), "n>100M")


def _dropped(decisions: pd.DataFrame) -> dict[tuple[str, str], dict[str, int]]:
    """(corpus, split) → first reason → dropped clips, from keep.parquet's columns."""
    dropped = decisions[~decisions["keep"].astype(bool)]
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    splits = dropped["split"].where(dropped["split"].isin(SPLITS), UNASSIGNED)
    counts = Counter(zip(dropped["dataset"], splits, dropped["reason"], strict=True))
    for (corpus, split, reason), n in sorted(counts.items()):
        out[corpus, split][reason] = n
    return out


def card_header(index: dict, data: CardData, decisions: pd.DataFrame) -> dict:
    """The YAML header of the card of the shards `index` lists (index.json), `data` gathered
    while packing them, and the filter's `decisions` (keep.parquet: dataset, split, keep,
    reason)."""
    dropped = _dropped(decisions)
    seen = {corpus for corpus, _ in [*data.groups, *dropped]}
    corpora = [c for c in CORPORA if c in seen] + sorted(seen - set(CORPORA))  # registry order
    in_shards = {corpus for corpus, _ in data.groups}
    licences = sorted({CORPORA[c].licence if c in CORPORA else "unknown" for c in in_shards})
    totals = index["totals"]
    split_names = [s for s in SPLITS if totals[s]["samples"]]
    header: dict = {"license": licences}
    if "other" in licences:
        header["license_name"] = "per corpus, see the licence table"
    header.update(
        pretty_name="space talking-head features",
        task_categories=list(TASK_CATEGORIES),
        tags=list(TAGS),
        size_categories=[_size_category(totals["all"]["samples"])],
        configs=[
            {
                "config_name": "default",
                "default": True,
                "data_files": [
                    {"split": s, "path": [x["name"] for x in index["shards"] if x["split"] == s]}
                    for s in split_names
                ],
            }
        ],
        dataset_info={
            "features": data.types.features(),
            "splits": [  # num_bytes: of the split's tar files
                {"name": s, "num_bytes": totals[s]["bytes"], "num_examples": totals[s]["samples"]}
                for s in split_names
            ],
        },
        space=_numbers(index, data, dropped, corpora),
    )
    return header


def _numbers(
    index: dict, data: CardData, dropped: dict[tuple[str, str], dict[str, int]], corpora: list[str]
) -> dict:
    """The `space` block: versions, totals per split, and per corpus and split the counts."""
    try:
        project_version = metadata.version("space")
    except metadata.PackageNotFoundError:
        project_version = "unknown (space is not installed)"
    kept_seconds = sum(g.seconds for g in data.groups.values())
    per_corpus = {}
    for corpus in corpora:
        splits = {}
        for split in (*SPLITS, UNASSIGNED):
            group = data.groups.get((corpus, split))
            drops = dropped.get((corpus, split), {})
            if group is None and not drops:
                continue
            group = group or _Group()
            splits[split] = {
                "clips": group.clips,
                "hours": round(group.seconds / 3600, 4),
                "speakers": len(group.speakers),
                "emotions": {
                    e: group.emotions[e] for e in (*EMOTIONS, UNLABELLED) if group.emotions[e]
                },  # fmt: skip
                "dropped": dict(drops),
            }
        registered = CORPORA.get(corpus)
        per_corpus[corpus] = {
            "licence": registered.licence if registered else "unknown",
            "terms": registered.terms if registered else "not a registered corpus",
            "splits": splits,
        }
    return {
        "data_version": index["data_version"],
        "schema_version": SCHEMA_VERSION,
        "project_version": project_version,
        "params_hash": {
            "extract": sorted(data.params_hashes),
            "pack": config_hash(index["config"]),
        },
        "clips": index["totals"]["all"]["samples"],
        "hours": round(kept_seconds / 3600, 4),
        "splits": {s: dict(index["totals"][s]) for s in SPLITS},
        "corpora": per_corpus,
    }


def card_text(header: dict) -> str:
    """The whole card: the YAML header between `---` lines, then the text for people."""
    space = header["space"]
    hashes = space["params_hash"]
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=100).rstrip(),
        "---",
        "",
        "# space talking-head features",
        "",
        "Frame-aligned features of talking-head clips for speech-driven portrait animation "
        "(SPACE: Speech2Landmarks, PoseGen, Landmarks2Latents), made by the `space` pipeline: "
        "`space index` lists the clips of each corpus and gives every speaker one split; "
        "`space extract` decodes each clip, crops the face, tracks 68 3D landmarks, eyes, head "
        "pose, hands, emotion probabilities and speech on a 30 fps timeline, and computes "
        "MFCCs of the 16 kHz audio; `space filter` keeps or drops each clip by the SPACE rules "
        "(rotation, zoom, cuts, hands, A/V sync, speech); `space pack` writes the kept clips "
        "into these WebDataset shards, one sample per clip (key = clip id). Every array shares "
        "the timeline: row k of every per-frame member is time k/30 s.",
        "",
        f"Data version `{space['data_version']}` (sha256 of index.json), sample schema "
        f"{space['schema_version']}, space {space['project_version']}; params hashes: extract "
        f"{', '.join(hashes['extract']) or '-'}, pack {hashes['pack']}.",
        "",
        "## Licences",
        "",
        "Each corpus keeps its own terms; using these features means accepting each of them.",
        "",
        "| corpus | licence | terms |",
        "|---|---|---|",
        *(f"| {c} | {v['licence']} | {v['terms']} |" for c, v in space["corpora"].items()),
        "",
        "## Contents",
        "",
        f"{space['clips']} clips, {space['hours']} hours. Dropped clips are counted by their "
        "first reason.",
        "",
        "| corpus | split | clips | hours | speakers | emotion labels | dropped |",
        "|---|---|---|---|---|---|---|",
    ]
    for corpus, info in space["corpora"].items():
        for split, n in info["splits"].items():
            emotions = ", ".join(f"{e} {k}" for e, k in n["emotions"].items()) or "-"
            drops = ", ".join(f"{r} {k}" for r, k in n["dropped"].items()) or "-"
            lines.append(
                f"| {corpus} | {split} | {n['clips']} | {n['hours']} | {n['speakers']} | "
                f"{emotions} | {drops} |"
            )
    lines += ["", "| split | shards | samples | bytes |", "|---|---|---|---|"]
    lines += [f"| {s} | {t['shards']} | {t['samples']} | {t['bytes']} |"
              for s, t in space["splits"].items()]  # fmt: skip
    lines += ["", "## Members", "", "| member | what it holds |", "|---|---|"]
    for feature in header["dataset_info"]["features"]:
        name = feature["name"]
        stem = name.removesuffix(".npy")
        if name in OTHER_MEMBERS or stem in ARRAY_MEMBERS:
            lines.append(f"| `{name}` | {OTHER_MEMBERS.get(name) or ARRAY_MEMBERS[stem]} |")
    lines += ["", LOADING]
    return "\n".join(lines) + "\n"


LOADING = """## Loading

From the folder of this card (`data/shards` after `dvc repro`); every loader yields the same
samples, members named as in the table (`lm_norm.npy`, `meta.json`, ...).

```python
import glob
train = sorted(glob.glob("data/shards/train-*.tar"))

import webdataset as wds  # the project's own loader (space_data.shards.open_shards)
ds = wds.WebDataset(train, shardshuffle=False).decode()

import ray  # Ray Data
ds = ray.data.read_webdataset(train)

import datasets  # Hugging Face: this card gives the splits, their files and every member's type
ds = datasets.load_dataset("data/shards", split="train")

from space_models.data import clip_loader  # PyTorch DataLoader, one clip at a time, decoded
loader = clip_loader("data/shards", "train", num_workers=4)
```

`audio.flac` stays bytes in every loader (`soundfile.read(io.BytesIO(b))`). A member a clip
lacks (no audio: no `speech.npy`, no `audio.flac`) is absent in webdataset and null in Hugging
Face; Ray Data reads such a split with
`ray.data.DataContext.get_current().enable_tensor_extension_casting = False`. Hugging Face on
the tar files alone needs this card's types (inferred from the first samples they fail on
meta fields null there): `datasets.load_dataset("webdataset", data_files={"train": train},
features=datasets.load_dataset_builder("data/shards").info.features)`.
"""


def write_card(shard_dir: str, index: dict, data: CardData, decisions: pd.DataFrame) -> str:
    """Write `shard_dir/README.md`; returns its path."""
    path = storage.join(shard_dir, CARD_NAME)
    storage.write_text(path, card_text(card_header(index, data, decisions)))
    return path


def read_card(shard_dir: str) -> dict:
    """The YAML header of `shard_dir/README.md`."""
    text = storage.read_bytes(storage.join(shard_dir, CARD_NAME)).decode()
    if not text.startswith("---\n"):
        raise ValueError(f"{storage.join(shard_dir, CARD_NAME)} has no YAML header")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])
