"""Fixtures of the extract-job tests: short clips cut from the project's own sample corpus, so
the Ray job, node loss, Ctrl-C and object-storage tests run on a fresh clone (no realdata)."""

from __future__ import annotations

import pytest

from space_data.clip import Clip, make_clip_id
from tests.pipelines.clips import cut_clips, source_videos


@pytest.fixture(scope="session")
def short_clips(sample_corpus, tmp_path_factory) -> list[Clip]:
    """Two one-second clips (25 fps, 256 px, with audio) from each of three sample videos; each
    video is one speaker, its clips in order (clip 2k, 2k+1 come from video k)."""
    root = tmp_path_factory.mktemp("corpus")
    out = []
    for source in source_videos(sample_corpus):
        name = f"{source.parts[len(sample_corpus.parts)]}_{source.stem}"
        paths = [root / name / f"{k:02d}.mp4" for k in range(2)]
        cut_clips(source, {paths[0]: 0.0, paths[1]: 1.0}, 256)
        for path in paths:
            rel = path.relative_to(root).as_posix()
            out.append(
                Clip(
                    make_clip_id("mead", rel),
                    "mead",
                    name,
                    str(path),
                    split="train",
                    fps=25.0,
                    duration=1.0,
                )
            )
    return out
