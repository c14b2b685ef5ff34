"""Tiny media files and corpus trees for indexer tests (real H.264/AAC, made by `write_video`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from space_data.media import write_audio, write_video


def write_tiny_video(
    path: Path, n_frames: int = 10, fps: float = 25.0, audio: bool = True, size: int = 32
) -> Path:
    """A `size`² noise video of `n_frames` frames, with 16 kHz noise audio of the same length."""
    rng = np.random.default_rng(n_frames)
    frames = rng.integers(0, 256, (n_frames, size, size, 3), dtype=np.uint8)
    sound = None
    if audio:
        sound = (0.1 * rng.standard_normal(round(n_frames / fps * 16_000))).astype(np.float32)
    write_video(str(path), frames, fps, audio=sound)
    return path


def place(files: dict[str, Path | None], root: Path) -> Path:
    """Copy each source to `root/relpath` (None → a 0-byte file); returns `root`."""
    for rel, source in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            target.write_bytes(b"")
        else:
            shutil.copyfile(source, target)
    return root


def tiny_m4a(path: Path, seconds: float = 0.4) -> Path:
    """A noise AAC `.m4a` (MEAD keeps audio in separate files)."""
    rng = np.random.default_rng(1)
    write_audio(str(path), (0.1 * rng.standard_normal(round(seconds * 16_000))).astype(np.float32))
    return path
