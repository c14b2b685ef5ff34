"""Deterministic WebDataset shards: bytes, index checksums, splitting, and reading back."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import tarfile

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from space_data.audio import read_flac
from space_data.record import RECORD_PACKAGES, ClipStats, read_meta_json
from space_data.shard_schema import SCHEMA_VERSION, MemberTypes
from space_data.shards import (
    PackConfig,
    open_shards,
    read_index,
    sample_members,
    shard_urls,
    write_shards,
)
from space_data.testing.records import make_record

SPLIT_OF = {"train": ["c03", "c01", "c05", "c02", "c04"], "val": ["v01"], "test": ["t02", "t01"]}


@pytest.fixture(scope="module")
def records():
    return {
        clip_id: make_record(clip_id, split=split, max_yaw=5.0 * i)
        for split, ids in SPLIT_OF.items()
        for i, clip_id in enumerate(ids)
    }


def samples(records, config):
    planned = sorted(
        ((r.meta.split, r.clip_id) for r in records.values()),
        key=lambda s: (("train", "val", "test").index(s[0]), s[1]),
    )
    return ((split, key, sample_members(records[key], config)) for split, key in planned)


def shard_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_two_runs_give_identical_bytes_and_index(records, tmp_path):
    config = PackConfig(max_shard_samples=2)
    first = write_shards(samples(records, config), tmp_path / "a", config)
    second = write_shards(samples(records, config), tmp_path / "b", config)
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert first == second
    names = [s["name"] for s in first["shards"]]
    assert names == [f"train-00000{i}.tar" for i in range(3)] + [
        "val-000000.tar",
        "test-000000.tar",
    ]
    assert first["totals"]["all"]["samples"] == 8
    train_bytes = sum(s["bytes"] for s in first["shards"][:3])
    assert first["totals"]["train"] == {"shards": 3, "samples": 5, "bytes": train_bytes}


def test_index_checksums_and_data_version(records, tmp_path):
    config = PackConfig(max_shard_samples=3)
    write_shards(samples(records, config), tmp_path, config)
    index = read_index(tmp_path)
    for shard in index["shards"]:
        data = (tmp_path / shard["name"]).read_bytes()
        assert shard["sha256"] == hashlib.sha256(data).hexdigest()
        assert shard["bytes"] == len(data)
    body = {k: v for k, v in index.items() if k != "data_version"}
    assert (
        index["data_version"]
        == hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    )
    # a different packing is a different data version
    other = PackConfig(max_shard_samples=2)
    assert (
        write_shards(samples(records, other), tmp_path / "o", other)["data_version"]
        != index["data_version"]
    )


def test_tar_headers_are_fixed_and_members_sorted(records, tmp_path):
    config = PackConfig()
    write_shards(samples(records, config), tmp_path, config)
    with tarfile.open(tmp_path / "train-000000.tar") as tar:
        infos = tar.getmembers()
    names = [i.name for i in infos]
    assert names == sorted(names, key=lambda n: (n.split(".")[0], n))
    assert names[0].startswith("c01.") and "c01.audio.flac" in names and "c01.meta.json" in names
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {
        (0, 0, 0, "", "", 0o644)
    }


def test_shards_split_by_bytes_and_stale_shards_go(records, tmp_path):
    one = len(b"".join(sample_members(records["c01"], PackConfig()).values()))
    config = PackConfig(max_shard_bytes=int(one * 2.5))
    index = write_shards(samples(records, config), tmp_path, config)
    assert index["totals"]["train"]["shards"] >= 2
    assert all(s["samples"] <= 2 for s in index["shards"])
    # repack into fewer shards: the extra ones of the first run are deleted
    small = {k: r for k, r in records.items() if k in ("c01", "t01")}
    write_shards(samples(small, PackConfig()), tmp_path, PackConfig())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.json",
        "test-000000.tar",
        "train-000000.tar",
    ]


def test_unsorted_keys_are_refused(records, tmp_path):
    config = PackConfig()
    bad = [("train", "c02", {"x.json": b"{}"}), ("train", "c01", {"x.json": b"{}"})]
    with pytest.raises(ValueError, match="sorted"):
        write_shards(iter(bad), tmp_path, config)


def test_round_trip_through_webdataset_and_dataloader(records, tmp_path):
    config = PackConfig(max_shard_samples=2)
    write_shards(samples(records, config), tmp_path, config)
    urls = shard_urls(tmp_path, "train")
    got = {s["__key__"]: s for s in open_shards(urls)}
    assert sorted(got) == sorted(SPLIT_OF["train"])
    for key, sample in got.items():
        record = records[key]
        for name, array in record.arrays.items():
            np.testing.assert_array_equal(sample[f"{name}.npy"], array)
            assert sample[f"{name}.npy"].dtype == array.dtype
        assert (
            sample["meta.json"]["split"] == "train"
            and sample["meta.json"]["stats"]["n_frames"] == 45
        )
        assert sample["frame0.jpg"] == record.frame0
        audio, _ = read_flac(sample["audio.flac"])
        np.testing.assert_allclose(audio, soundfile.read(io.BytesIO(record.audio))[0], atol=1e-4)

    def to_tensors(sample):
        return sample["__key__"], torch.from_numpy(sample["pose.npy"])

    loader = torch.utils.data.DataLoader(
        open_shards(urls).map(to_tensors), batch_size=None, num_workers=2
    )
    seen = {key: pose for key, pose in loader}
    assert sorted(seen) == sorted(SPLIT_OF["train"])
    torch.testing.assert_close(seen["c03"], torch.from_numpy(records["c03"].arrays["pose"]))


def test_audio_can_be_left_out(records):
    assert "audio.flac" not in sample_members(records["c01"], PackConfig(include_audio=False))
    assert "audio.flac" in sample_members(records["c01"], PackConfig())


@settings(max_examples=15, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 6000), min_size=1, max_size=12),
    max_samples=st.integers(1, 5),
    max_bytes=st.integers(10 * 512, 20_000),
)
def test_every_sample_lands_once_in_order_within_limits(
    tmp_path_factory, sizes, max_samples, max_bytes
):
    config = PackConfig(max_shard_bytes=max_bytes, max_shard_samples=max_samples)
    keys = [f"k{i:03d}" for i in range(len(sizes))]
    members = {
        k: {"data.bin": bytes(n), "meta.json": b"{}"} for k, n in zip(keys, sizes, strict=True)
    }
    out = tmp_path_factory.mktemp("prop")
    index = write_shards((("train", k, members[k]) for k in keys), out, config)
    seen = []
    for shard in index["shards"]:
        with tarfile.open(out / shard["name"]) as tar:
            names = tar.getnames()
        shard_keys = list(dict.fromkeys(n.split(".")[0] for n in names))
        assert len(shard_keys) == shard["samples"] <= max_samples
        if len(shard_keys) > 1:  # a sample bigger than the limit goes alone
            payload = sum(
                512 + -(-len(d) // 512) * 512 for k in shard_keys for d in members[k].values()
            )
            assert payload <= max_bytes
        seen += shard_keys
    assert seen == keys


def test_meta_json_is_strict_json_with_null_for_unmeasured():
    record = make_record("x")
    record.stats.max_abs_yaw = float("nan")
    raw = sample_members(record, PackConfig())["meta.json"]

    def no_constant(name):
        raise ValueError(f"{name} is not JSON")

    stored = json.loads(raw, parse_constant=no_constant)
    assert stored["stats"]["max_abs_yaw"] is None and stored["view"] is None
    _, stats = read_meta_json(raw)
    assert math.isnan(stats.max_abs_yaw) and stats.n_frames == 45


def test_member_types_follow_every_sample_not_the_first():
    types = MemberTypes()
    for clip_id, n_frames, emotion in (("a", 40, None), ("b", 50, "sad")):
        members = make_record(clip_id, n_frames=n_frames, emotion=emotion).shard_members()
        types.add(members, json.loads(members["meta.json"]))
    features = {f["name"]: f for f in types.features()}
    assert features["lm3d.npy"]["dtype"] == {"array3_d": {"shape": [None, 68, 3],
                                                          "dtype": "float32"}}  # fmt: skip
    assert features["mfcc.npy"]["list"] == {"list": {"list": "float32"}}  # (3, T, 40): T varies
    assert features["face.npy"]["list"] == "uint8"
    assert (features["frame0.jpg"]["dtype"], features["audio.flac"]["dtype"]) == ("image", "binary")
    meta = {f["name"]: f for f in features["meta.json"]["struct"]}
    assert [f["name"] for f in features["meta.json"]["struct"]] == sorted(meta)
    assert meta["emotion"] == {"name": "emotion", "dtype": "string"}  # null in the first sample
    assert meta["intensity"]["dtype"] == "float64" and meta["crop_box"]["list"] == "int64"
    assert meta["emotion_classifier"]["dtype"] == "null"  # null in every sample
    assert {f["name"] for f in meta["versions"]["struct"]} == set(RECORD_PACKAGES)
    stats = {f["name"]: f for f in meta["stats"]["struct"]}
    assert stats["max_abs_yaw"]["dtype"] == "float64" and stats["truncated"]["dtype"] == "bool"
    assert set(stats) == {f.name for f in dataclasses.fields(ClipStats)}
    # one member, two dtypes: packing stops with the member's name
    odd = make_record("c", n_frames=45).shard_members()
    buf = io.BytesIO()
    np.save(buf, np.zeros((45, 68, 3), np.float64))
    odd["lm3d.npy"] = buf.getvalue()
    with pytest.raises(ValueError, match="lm3d.npy is float64"):
        types.add(odd, json.loads(odd["meta.json"]))


def test_index_records_the_schema_version(records, tmp_path):
    config = PackConfig()
    assert write_shards(samples(records, config), tmp_path, config)["schema_version"] == (
        SCHEMA_VERSION
    )
