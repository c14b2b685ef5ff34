"""Fixtures of the extract-job tests: short clips cut from real videos."""

from __future__ import annotations

import pytest

from space_data.clip import Clip, make_clip_id
from space_data.media import decode_audio, decode_video, write_video

SOURCES = ("frontal_talking_may_25fps", "news_talking_25fps", "interview_talking_25fps")


@pytest.fixture(scope="session")
def short_clips(realdata, tmp_path_factory) -> list[Clip]:
    """Two one-second clips (25 fps, 256 px, with audio) from each of three real videos; each
    video is one speaker, its clips in order (clip 2k, 2k+1 come from video k)."""
    root = tmp_path_factory.mktemp("corpus")
    out = []
    for name in SOURCES:
        path = str(realdata / "video" / f"{name}.mp4")
        frames, _, _ = decode_video(path, max_side=256)
        frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 4:2:0
        audio = decode_audio(path)
        for k in range(2):
            rel = f"{name}/{k:02d}.mp4"
            (root / name).mkdir(exist_ok=True)
            write_video(
                str(root / rel),
                frames[25 * k : 25 * (k + 1)],
                25.0,
                audio=audio[16000 * k : 16000 * (k + 1)],
            )
            out.append(
                Clip(
                    make_clip_id("mead", rel),
                    "mead",
                    name.split("_")[0],
                    str(root / rel),
                    split="train",
                    fps=25.0,
                    duration=1.0,
                )
            )
    return out
