from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from space_data.clip import EMOTIONS
from space_data.shards import data_version
from space_models.data import (
    DataConfig,
    DataError,
    collate,
    cut_window,
    emotion_vector,
    missing_members,
    train_batches,
    window_starts,
)
from space_models.testing import make_talking_record, write_talking_shards


def _stamped(clip_id: str, n_frames: int, rows: int = 3):
    """A record whose every member carries its frame index k (and MFCC row r as 1000·r)."""
    rec = make_talking_record(clip_id, n_frames, augmentations=rows - 1)
    k = np.arange(n_frames, dtype=np.float32)
    rec.arrays["mfcc"][:, :, 0] = k[None] + 1000 * np.arange(rows, dtype=np.float32)[:, None]
    rec.arrays["lm_norm"][:, 0, 0] = k
    rec.arrays["eyes_norm"][:, 0, 0] = k
    rec.arrays["pose"][:, 5] = k
    return rec


def test_loader_windows_align_mfcc_and_landmarks(tmp_path):
    records = [_stamped(f"clip-{i}", 40 + 7 * i) for i in range(5)]
    write_talking_shards(tmp_path, records=records, max_shard_samples=2)
    config = DataConfig(str(tmp_path), window=12, shuffle_buffer=3)
    batches = iter(train_batches(config, 4, seed=3))
    rows_seen, starts_seen = set(), set()
    for _ in range(6):
        batch = next(batches)
        frames = batch["lm"][:, :, 0, 0]  # (B, T) frame index of each landmark row
        mfcc = batch["mfcc"][:, :, 0]  # (B, T) frame index + 1000 · row
        row = (mfcc[:, :1] // 1000) * 1000
        np.testing.assert_array_equal(mfcc - row, frames)  # frame k of both is the same time
        np.testing.assert_array_equal(batch["eyes"][:, :, 0, 0], frames)
        np.testing.assert_array_equal(batch["pose"][:, :, 5], frames)
        assert (frames[:, 1:] - frames[:, :-1] == 1).all()  # consecutive 30 fps frames
        rows_seen |= set((row[:, 0] / 1000).int().tolist())
        starts_seen |= set(frames[:, 0].int().tolist())
    assert rows_seen == {0, 1, 2}  # augmentation rows are drawn
    assert len(starts_seen) > 3  # windows start at random frames


@settings(max_examples=30, deadline=None)
@given(n=st.integers(5, 40), window=st.integers(2, 12), gap=st.integers(0, 39))
def test_window_starts_need_a_face_and_room(n, window, gap):
    rec = make_talking_record("clip", n, augmentations=0, missing=(gap,) if gap < n else ())
    clip = {**rec.arrays, "meta": rec.meta}
    starts = window_starts(clip, window)
    assert all(s + window <= n and s != gap for s in starts)
    assert len(starts) == max(0, n - window + 1) - (gap <= n - window)


def test_collate_masks_missing_frames():
    rec = make_talking_record("clip", 20, missing=(5,))
    clip = {**rec.arrays, "meta": rec.meta}
    batch = collate([cut_window(clip, 0, 10), cut_window(clip, 2, 10)])
    assert batch["mask"].tolist()[0] == [k != 5 for k in range(10)]
    assert not batch["lm_ok"][0, 5].any() and batch["lm_ok"][0, 4].all()
    assert all(v.isfinite().all() for v in batch.values() if v.is_floating_point())


def test_window_emotion_label_or_prediction():
    """Labelled clips: one-hot × intensity on every frame; unlabelled: the classifier's rows."""
    labelled = make_talking_record("mead-clip", 20, emotion="angry")
    ex = cut_window({**labelled.arrays, "meta": labelled.meta}, 3, 10)
    assert ex["emotion"].shape == (10, len(EMOTIONS))
    np.testing.assert_array_equal(
        ex["emotion"], np.repeat(emotion_vector("angry", 1.0)[None], 10, 0)
    )
    vox = make_talking_record("vox-clip", 20, emotion=None, missing=(5,))
    clip = {**vox.arrays, "meta": vox.meta}
    ex = cut_window(clip, 2, 10)
    pred = vox.arrays["emotion_pred"]
    np.testing.assert_array_equal(ex["emotion"][[0, 1, 2, 4]], pred[[2, 3, 4, 6]])
    assert not ex["emotion"][3].any()  # frame 5 has no face: unconditioned
    # shards written before emotion_pred: zeros, as before
    del clip["emotion_pred"]
    assert not cut_window(clip, 2, 10)["emotion"].any()
    batch = collate([cut_window({**labelled.arrays, "meta": labelled.meta}, 0, 10), ex])
    assert batch["emotion"].shape == (2, 10, len(EMOTIONS))


def test_emotion_vector():
    vec = emotion_vector("angry", 2 / 3)
    assert vec[EMOTIONS.index("angry")] == pytest.approx(2 / 3) and vec.sum() == pytest.approx(
        2 / 3
    )
    assert not emotion_vector(None, None).any()  # VoxCeleb2: unconditioned


def test_data_version_and_member_detection(kp_shards, plain_shards, tmp_path):
    index = json.loads((kp_shards / "index.json").read_text())
    assert data_version(kp_shards) == index["data_version"]
    assert missing_members(kp_shards, ("mfcc", "kp", "kp_source")) == []
    assert missing_members(plain_shards, ("mfcc", "kp", "kp_source")) == ["kp", "kp_source"]
    with pytest.raises(DataError, match="not found"):
        missing_members(tmp_path / "nowhere", ("kp",))


def test_loader_stops_with_a_reason_when_no_clip_fits(plain_shards):
    batches = iter(train_batches(DataConfig(str(plain_shards), window=500), 2))
    with pytest.raises(DataError, match="no window of 500 frames"):
        next(batches)
