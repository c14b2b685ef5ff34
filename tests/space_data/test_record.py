"""The typed record meta (space_data.record.ClipMeta): one constructor, stored as JSON, read back
strictly."""

from __future__ import annotations

import dataclasses
import json
import tarfile

import numpy as np
import pytest

from space_data.clip import Clip
from space_data.record import ClipFeatures, ClipMeta, MetaError, read_meta_json
from space_data.shards import PackConfig, sample_members, shard_urls, write_shards
from space_data.testing.records import make_record

# the keys of a stored meta.json: the manifest fields a record copies, how it was made, what
# extraction found, and the filter statistics (the format shards had before meta was typed)
STORED_KEYS = {
    "clip_id", "dataset", "speaker", "source", "emotion", "intensity", "emotion_source", "view",
    "split", "params_hash", "versions", "emotion_classifier", "speech_model", "keypoints",
    "native_fps", "crop_box", "crop_size", "source_size", "stats",
}  # fmt: skip


def test_meta_round_trips_through_a_shard(tmp_path):
    record = make_record("mead-a", emotion="sad")
    record.meta.crop_box, record.meta.crop_size = [10, 20, 138, 148], 128
    config = PackConfig()
    write_shards([("train", record.clip_id, sample_members(record, config))], tmp_path, config)
    [url] = shard_urls(tmp_path, "train")
    with tarfile.open(url) as tar:
        raw = tar.extractfile("mead-a.meta.json").read()
    assert set(json.loads(raw)) == STORED_KEYS
    meta, stats = read_meta_json(raw)
    assert meta == record.meta
    assert json.dumps(stats.to_dict()) == json.dumps(record.stats.to_dict())  # NaN included
    assert (meta.emotion, meta.intensity, meta.crop_box) == ("sad", 1.0, [10, 20, 138, 148])


def test_meta_round_trips_through_the_npz(tmp_path):
    record = make_record("voxceleb2-b", dataset="voxceleb2", emotion=None)
    record.save_npz(tmp_path / "r.npz")
    back = ClipFeatures.load_npz(tmp_path / "r.npz")
    assert back.meta == record.meta and back.clip_id == "voxceleb2-b"
    assert back.meta.emotion_source == "unlabelled"


def test_failure_and_success_meta_have_the_same_fields():
    clip = Clip("mead-c", "mead", "M003", "/corpus/c.mp4", emotion="happy", intensity=0.5)
    failed = ClipFeatures.failed(ClipMeta.of(clip, "h"), "no_frames: nothing decoded")
    ok = make_record("mead-c")
    assert set(failed.meta.to_dict()) == set(ok.meta.to_dict())
    assert set(failed.shard_members()) == {"meta.json"}
    assert set(json.loads(failed.shard_members()["meta.json"])) == STORED_KEYS
    assert failed.meta.native_fps is None and failed.meta.versions["numpy"] == np.__version__


@pytest.mark.parametrize("change", ["missing", "renamed", "extra"])
def test_a_meta_without_exactly_the_fields_fails_loudly(tmp_path, change):
    record = make_record("mead-d")
    stored = json.loads(record.shard_members()["meta.json"])
    if change in ("missing", "renamed"):
        value = stored.pop("emotion")
        if change == "renamed":
            stored["emotion_label"] = value
    else:
        stored["mood"] = "sunny"
    with pytest.raises(MetaError, match="mead-d does not fit ClipMeta"):
        read_meta_json(json.dumps(stored).encode())
    # an npz written with that meta is refused on load, not read with a default
    record.save_npz(tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz") as z:
        payload = {k: z[k] for k in z.files}
    del stored["stats"]
    payload["meta"] = np.frombuffer(json.dumps(stored).encode(), np.uint8)
    np.savez(tmp_path / "bad.npz", **payload)
    with pytest.raises(MetaError, match="emotion" if change != "extra" else "mood"):
        ClipFeatures.load_npz(tmp_path / "bad.npz")


def test_records_do_not_share_the_versions_dict():
    clip = Clip("mead-e", "mead", "M003", "/corpus/e.mp4")
    a, b = ClipMeta.of(clip, "h"), ClipMeta.of(clip, "h")
    a.versions["numpy"] = "0"
    assert b.versions["numpy"] != "0"
    assert dataclasses.replace(b) == b
