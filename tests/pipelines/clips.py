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


def cut_clips(source: Path, starts: dict[Path, float], side: int) -> None:
    """Write one-second H.264 + AAC clips of `source` (25 fps, longer side `side`, even) to
    the paths in `starts`, each from its start time in seconds."""
    frames, times, _ = decode_video(str(source), max_side=side)
    frames = frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]  # H.264 4:2:0
    audio = decode_audio(str(source))
    for path, start in starts.items():
        first = int(np.searchsorted(times, start - 1e-6))
        path.parent.mkdir(parents=True, exist_ok=True)
        audio_part = audio[round(start * 16000) :][:16000]
        write_video(str(path), frames[first : first + 25], 25.0, audio=audio_part)
