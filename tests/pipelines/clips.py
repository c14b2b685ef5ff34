"""Short talking-face clips cut from the sample corpus for the extract-job tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from space_data.media import decode_audio, decode_video, write_video

SOURCES = ("voxceleb2", "hdtf", "ravdess")
"""The first sample clip designed to be kept of each of these corpora is a source video."""


def source_videos(sample_corpus: Path) -> list[Path]:
    """One talking-face video per `SOURCES` corpus (designed `keep`: a face in every frame)."""
    truth = json.loads((sample_corpus / "truth.json").read_text())
    keep = sorted(t["path"] for t in truth.values() if t["design"] == "keep")
    return [sample_corpus / next(p for p in keep if p.startswith(f"{d}/")) for d in SOURCES]


def cut_clips(source: Path, out: Path, seconds: list[float], side: int) -> list[Path]:
    """One-second H.264 + AAC clips of `source` starting at `seconds`, at 25 fps, longer side
    `side` (even), written under `out`."""
    frames, times, _ = decode_video(str(source), max_side=side)
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 4:2:0
    audio = decode_audio(str(source))
    paths = []
    for k, start in enumerate(seconds):
        first = int(np.searchsorted(times, start - 1e-6))
        path = out / f"{k:02d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        audio_part = audio[round(start * 16000) :][:16000]
        write_video(str(path), frames[first : first + 25], 25.0, audio=audio_part)
        paths.append(path)
    return paths
