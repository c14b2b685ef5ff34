"""Every common loader reads every sample of the sample shards with the same values as the
project's own reader (`space_data.shards.open_shards`): webdataset, Hugging Face `datasets`
(on the tar files with the card's types, and on the folder through its card), Ray Data, and a
PyTorch DataLoader with worker processes."""

from __future__ import annotations

import glob
import io
import json
import math
import tarfile

import numpy as np
import pytest
from PIL import Image

from space_data.clip import SPLITS
from space_data.record import ARRAY_MEMBERS
from space_data.shards import open_shards, shard_urls
from space_models.data import clip_loader


def project_samples(shards, split: str) -> dict[str, dict]:
    """The project's reader: key → sample (`.npy` arrays, meta.json dict, other bytes)."""
    return {s["__key__"]: s for s in open_shards(shard_urls(shards, split))}


def split_tars(shards, split: str) -> list[str]:
    """A split's tar files as the card's loading lines list them (a sorted glob)."""
    tars = sorted(glob.glob(f"{shards}/{split}-*.tar"))
    assert tars == shard_urls(shards, split)  # the same files, in index.json's order
    return tars


def image(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)))


def assert_same_sample(got: dict, want: dict, images_decoded: bool = False) -> None:
    """`got` (another loader's sample) holds `want`'s members with the same values; a member
    `want` lacks is None (or NaN where a loader goes through pandas) in `got`."""
    for name, value in want.items():
        if name.startswith("__"):
            continue
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.asarray(got[name], dtype=value.dtype), value)
        elif name.endswith(".jpg") and images_decoded:
            np.testing.assert_array_equal(np.asarray(got[name]), image(value))
        else:
            assert got[name] == value, name
    for name in set(got) - set(want) - {"__key__", "__url__"}:
        assert got[name] is None or (isinstance(got[name], float) and math.isnan(got[name]))


def test_webdataset_reads_every_member_as_stored(packed_sample):
    for split in SPLITS:
        samples = project_samples(packed_sample["shards"], split)
        raw: dict[str, dict] = {}
        for url in shard_urls(packed_sample["shards"], split):
            with tarfile.open(url) as tar:
                for info in tar:
                    key, member = info.name.split(".", 1)
                    raw.setdefault(key, {})[member] = tar.extractfile(info).read()
        assert sorted(samples) == sorted(raw)
        for key, members in raw.items():
            assert set(samples[key]) - {"__key__", "__url__", "__local_path__"} == set(members)
            for name, data in members.items():
                got = samples[key][name]
                if name.endswith(".npy"):
                    want = np.load(io.BytesIO(data))
                    assert got.dtype == want.dtype
                    np.testing.assert_array_equal(got, want)
                elif name == "meta.json":
                    assert got == json.loads(data)  # strict JSON: no NaN literal
                else:
                    assert got == data
    train = project_samples(packed_sample["shards"], "train")
    assert len(train) == 7 and train["hdtf-WDA_S0_000"]["meta.json"]["view"] is None


@pytest.mark.slow
def test_hugging_face_reads_the_tars_with_the_card_types_and_the_folder(packed_sample, tmp_path):
    datasets = pytest.importorskip("datasets")
    shards = str(packed_sample["shards"])
    features = datasets.load_dataset_builder(shards, cache_dir=str(tmp_path / "b")).info.features
    from_folder = datasets.load_dataset(shards, cache_dir=str(tmp_path / "folder"))
    from_tars = datasets.load_dataset(
        "webdataset",
        data_files={s: split_tars(shards, s) for s in SPLITS},
        features=features,
        cache_dir=str(tmp_path / "tars"),
    )
    for split in SPLITS:
        want = project_samples(shards, split)
        for ds in (from_folder[split], from_tars[split]):
            assert ds.features == features
            assert [row["__key__"] for row in ds] == list(want)
            for row in ds:
                assert_same_sample(row, want[row["__key__"]], images_decoded=True)
    # the clip without audio: its members are null, the others typed as in every sample
    no_audio = from_folder["test"][[r["__key__"] for r in from_folder["test"]].index("ravdess-n")]
    assert no_audio["speech.npy"] is None and no_audio["audio.flac"] is None
    assert no_audio["meta.json"]["stats"]["speech_fraction"] is None  # unmeasured: null


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_ray_data_reads_every_sample(packed_sample, local_ray):
    context = local_ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    shards = packed_sample["shards"]
    train = local_ray.data.read_webdataset(split_tars(shards, "train")).take_all()
    want = project_samples(shards, "train")
    assert sorted(row["__key__"] for row in train) == sorted(want)
    for row in train:
        assert_same_sample(row, want[row["__key__"]], images_decoded=True)
    # a split where a clip lacks members (no audio) needs Ray's tensor casting off (card text)
    context.enable_tensor_extension_casting = False
    try:
        test = local_ray.data.read_webdataset(split_tars(shards, "test")).take_all()
    finally:
        context.enable_tensor_extension_casting = True
    want = project_samples(shards, "test")
    assert sorted(row["__key__"] for row in test) == sorted(want)
    for row in test:
        assert_same_sample(row, want[row["__key__"]], images_decoded=True)


def test_dataloader_workers_read_each_clip_once(packed_sample):
    shards = packed_sample["shards"]
    want = project_samples(shards, "train")
    loader = clip_loader(shards, "train", members=tuple(ARRAY_MEMBERS), num_workers=2)
    clips = list(loader)
    assert sorted(c["key"] for c in clips) == sorted(want)  # 4 shards over 2 workers, no repeat
    for clip in clips:
        sample = want[clip["key"]]
        assert clip["meta"].clip_id == clip["key"] == sample["meta.json"]["clip_id"]
        arrays = {n: v for n, v in clip.items() if n not in ("key", "meta", "__key__")}
        assert set(arrays) == {n.removesuffix(".npy") for n in sample if n.endswith(".npy")}
        for name, array in arrays.items():
            assert isinstance(array, np.ndarray) and array.dtype == sample[f"{name}.npy"].dtype
            np.testing.assert_array_equal(array, sample[f"{name}.npy"])
