"""The per-clip memory bound: the estimate grows with each dimension of a file, and a clip
whose estimate is above `extract.max_clip_mb` is recorded `too_large` with the numbers before
anything is decoded (the bound is lowered so a small real file exceeds it)."""

from __future__ import annotations

import dataclasses

import numpy as np

from space_data import clip_memory
from space_data.clip import Clip
from space_data.clip_memory import ClipSize
from space_data.extract import ExtractConfig, extract_clip
from space_data.media import write_video

SMALL = ClipSize(width=512, height=512, n_frames=250, video_seconds=10.0, audio_seconds=10.0)


def _need(size: ClipSize, whole: bool = False) -> int:
    return clip_memory.estimate(size, batch_size=16, buffer_bytes=512 * 2**20, whole=whole)


def test_the_estimate_grows_with_frame_size_length_and_audio():
    base = _need(SMALL)
    assert _need(dataclasses.replace(SMALL, width=7680, height=4320)) > base
    assert _need(dataclasses.replace(SMALL, n_frames=15_000, video_seconds=600.0)) > base
    assert _need(dataclasses.replace(SMALL, audio_seconds=7200.0)) > base + 7000 * 16_000 * 4
    assert _need(SMALL, whole=True) < base  # used whole: one streaming pass, nothing kept
    assert clip_memory.too_large(SMALL, base, base) is None


def test_a_clip_above_the_bound_is_too_large_with_the_numbers(tmp_path):
    path = tmp_path / "clip.mp4"
    frames = np.zeros((10, 64, 96, 3), np.uint8)
    write_video(str(path), frames, 25.0, audio=np.zeros(6400, np.float32))
    clip = Clip(clip_id="big", dataset="mead", speaker="s", path=str(path))
    config = ExtractConfig(max_clip_mb=1)
    record = extract_clip(clip, config)
    assert record.status == "error" and record.reason.startswith("too_large: ")
    assert "above the bound of 1 MiB (extract.max_clip_mb): 96x64, 10 frames" in record.reason
    fits = extract_clip(clip, dataclasses.replace(config, max_clip_mb=3072))
    assert not fits.reason or not fits.reason.startswith("too_large"), fits.reason
