"""Deterministic WebDataset shards: writer, index with checksums, and a reader.

Layout of a shard directory:

    {split}-000000.tar, {split}-000001.tar, ...   one sample per clip, key = clip_id
    index.json                                    per shard: name, split, samples, bytes, sha256,
                                                  first/last key; totals; schema_version;
                                                  data_version
    README.md                                     the data card (`space_data.card`, by pack)

A sample's members are `ClipFeatures.shard_members()`: `<key>.lm3d.npy`, `<key>.pose.npy`, ...,
`<key>.meta.json`, `<key>.frame0.jpg` and, when kept, `<key>.audio.flac`. Same records and
config ⇒ byte-identical tars: samples sorted by key, members sorted by name, and every tar
header field fixed (mtime 0, uid/gid 0, empty user/group names, mode 0o644). `data_version`
is the sha256 of the index content (shard names, sizes and checksums), so it names the data.

The shard folder may be local or on object storage (any fsspec URL, `space_data.storage`):
each tar is written to a local temporary file, checksummed, then renamed into place or
uploaded whole, so shards on object storage are byte-identical to local ones. The readers
take such URLs too (`webdataset_fsspec` teaches WebDataset to open them).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import re
import tarfile
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

from space_data import storage
from space_data.clip import SPLITS
from space_data.record import ClipFeatures
from space_data.shard_schema import SCHEMA_VERSION

INDEX_NAME = "index.json"
SHARD_PATTERN = re.compile(r"^(?P<split>[a-z]+)-(?P<number>\d{6})\.tar$")
_BLOCK = tarfile.BLOCKSIZE  # 512: tar header and data padding unit


@dataclass
class PackConfig:
    """How kept clips are packed into WebDataset shards."""

    max_shard_bytes: int = 256 * 1024**2
    """Start a new shard before its samples (tar headers included) would pass this size."""
    max_shard_samples: int = 1000
    """Start a new shard after this many samples."""
    include_audio: bool = True
    """Pack the FLAC audio member when the record has one (needed to re-augment audio)."""

    def __post_init__(self) -> None:
        if self.max_shard_bytes < 10 * _BLOCK:
            raise ValueError(
                f"max_shard_bytes must be >= {10 * _BLOCK}, not {self.max_shard_bytes}"
            )
        if self.max_shard_samples < 1:
            raise ValueError(f"max_shard_samples must be >= 1, not {self.max_shard_samples}")


def sample_members(record: ClipFeatures, config: PackConfig) -> dict[str, bytes]:
    """The members of one sample (name without key → bytes), sorted by name."""
    members = record.shard_members()
    if not config.include_audio:
        members.pop("audio.flac", None)
    return members


def _tar_size(members: dict[str, bytes]) -> int:
    """Bytes these members add to a tar (one header block each plus padded data)."""
    return sum(_BLOCK + -(-len(data) // _BLOCK) * _BLOCK for data in members.values())


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class ShardWriter:
    """Writes one split's samples into `{split}-%06d.tar` files, each to a local temporary
    file that becomes the shard (renamed, or uploaded whole) when it is complete."""

    def __init__(self, out_dir: str | Path, split: str, config: PackConfig) -> None:
        self.out_dir = str(out_dir)
        self.split = split
        self.config = config
        self.shards: list[dict] = []  # index entries of completed shards
        self._tar: tarfile.TarFile | None = None
        self._target: AbstractContextManager[str] | None = None
        self._tmp = ""
        self._keys: list[str] = []
        self._bytes = 0
        self._last_key: str | None = None

    def write(self, key: str, members: dict[str, bytes]) -> None:
        """Add one sample; keys must arrive in strictly increasing order (determinism)."""
        if self._last_key is not None and key <= self._last_key:
            raise ValueError(f"keys must be sorted and unique: {key!r} after {self._last_key!r}")
        self._last_key = key
        size = _tar_size(members)
        full = self._keys and (
            len(self._keys) >= self.config.max_shard_samples
            or self._bytes + size > self.config.max_shard_bytes
        )
        if self._tar is None or full:
            self._open_next()
        assert self._tar is not None
        for name in sorted(members):
            data = members[name]
            self._tar.addfile(_tarinfo(f"{key}.{name}", len(data)), io.BytesIO(data))
        self._keys.append(key)
        self._bytes += size

    def close(self) -> list[dict]:
        """Finish the open shard; returns the index entries of all shards written."""
        self._finish()
        return self.shards

    def _open_next(self) -> None:
        self._finish()
        name = f"{self.split}-{len(self.shards):06d}.tar"
        # both stay open across write() calls; _finish closes them
        self._target = storage.writing(storage.join(self.out_dir, name))
        self._tmp = self._target.__enter__()
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self._keys = []
        self._bytes = 0

    def _finish(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        name = f"{self.split}-{len(self.shards):06d}.tar"
        entry = {"bytes": Path(self._tmp).stat().st_size, "sha256": file_sha256(self._tmp)}
        assert self._target is not None
        self._target.__exit__(None, None, None)  # rename into place, or upload whole
        self.shards.append(
            {
                "name": name,
                "split": self.split,
                "samples": len(self._keys),
                **entry,
                "first_key": self._keys[0],
                "last_key": self._keys[-1],
            }
        )
        self._tar = None


def write_shards(
    samples: Iterable[tuple[str, str, dict[str, bytes]]],
    out_dir: str | Path,
    config: PackConfig,
) -> dict:
    """Write `(split, key, members)` samples, sorted by (split, key), as shards plus index.json.

    Samples must come sorted (the caller sorts cheap keys, then loads records lazily, so
    memory stays one record). The previous index is removed first and shards of an earlier
    run that this run did not write are deleted afterwards, so the directory holds exactly
    what the new index lists. Returns the index (also written to `out_dir/index.json`).
    """
    out = str(out_dir)
    storage.makedirs(out)
    storage.remove([storage.join(out, INDEX_NAME)])
    shards: list[dict] = []
    writer: ShardWriter | None = None
    for split, key, members in samples:
        if split not in SPLITS:
            raise ValueError(f"sample {key!r} has split {split!r}, not one of {SPLITS}")
        if writer is None or writer.split != split:
            if writer is not None:
                if SPLITS.index(split) <= SPLITS.index(writer.split):
                    raise ValueError(
                        f"samples must be sorted by split: {split} after {writer.split}"
                    )
                shards += writer.close()
            writer = ShardWriter(out, split, config)
        writer.write(key, members)
    if writer is not None:
        shards += writer.close()
    _remove_stale(out, {s["name"] for s in shards})
    index = build_index(shards, config)
    storage.write_text(
        storage.join(out, INDEX_NAME), json.dumps(index, indent=1, sort_keys=True) + "\n"
    )
    return index


def build_index(shards: list[dict], config: PackConfig) -> dict:
    """index.json content: shards, totals per split, config, the sample schema version
    (`shard_schema.SCHEMA_VERSION`) and `data_version` (sha256 of the rest, serialized with
    sorted keys)."""
    totals = {
        split: {
            "shards": sum(1 for s in shards if s["split"] == split),
            "samples": sum(s["samples"] for s in shards if s["split"] == split),
            "bytes": sum(s["bytes"] for s in shards if s["split"] == split),
        }
        for split in SPLITS
    }
    totals["all"] = {k: sum(t[k] for t in totals.values()) for k in ("shards", "samples", "bytes")}
    index = {
        "format": 1,
        "schema_version": SCHEMA_VERSION,
        "config": asdict(config),
        "shards": shards,
        "totals": totals,
    }
    index["data_version"] = index_hash(index)
    return index


def index_hash(index: dict) -> str:
    """sha256 (hex) of the index without its `data_version` field."""
    body = {k: v for k, v in index.items() if k != "data_version"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_stale(out: str, keep: set[str]) -> None:
    storage.remove(
        storage.join(out, name)
        for name in storage.listdir(out)
        if (SHARD_PATTERN.match(name) and name not in keep) or ".tar.tmp" in name
    )


def read_index(shard_dir: str | Path) -> dict:
    path = storage.join(str(shard_dir), INDEX_NAME)
    if not storage.isfile(path):
        raise FileNotFoundError(f"{path} not found: run `space pack` first")
    return json.loads(storage.read_bytes(path))


def data_version(shard_dir: str | Path) -> str:
    """The version of the shards in `shard_dir` (`index_hash`, stored in index.json)."""
    return read_index(shard_dir)["data_version"]


def shard_urls(shard_dir: str | Path, split: str) -> list[str]:
    """Paths (or URLs) of a split's shards, in order, from index.json."""
    index = read_index(shard_dir)
    return [storage.join(str(shard_dir), s["name"]) for s in index["shards"] if s["split"] == split]


def open_shards(urls: str | list[str]):
    """A plain `webdataset.WebDataset` over the shards, in shard order, with webdataset's
    default decoding: `.npy` → np.ndarray, `.json` → dict; `.jpg` and `.flac` stay bytes
    (decode audio with `space_data.audio.read_flac`). Works in a torch DataLoader with workers:
    shards are split between workers, and a worker without a shard yields nothing.
    """
    import webdataset as wds

    webdataset_fsspec()
    return wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode()


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kw) -> object:
    """WebDataset opener for fsspec URLs: one streamed read of the shard."""
    return storage.open_file(url, mode)


def webdataset_fsspec() -> None:
    """Let WebDataset (which opens only files, pipes and a few command-line tools) open `s3://`,
    `gs://`, `az://`, ... shards through fsspec. Call before building a pipeline; DataLoader
    workers forked afterwards inherit it. (Not done at import: webdataset loads torch.)"""
    gopen = importlib.import_module("webdataset.gopen")  # the module (the package exports a
    # function of the same name)
    for scheme in ("s3", "s3a", "gcs", "gs", "az", "abfs", "memory"):
        gopen.gopen_schemes[scheme] = _gopen_fsspec
