"""The memory one clip's extraction needs, estimated from its header before anything is decoded,
so a file that cannot fit fails as that clip's `too_large` error instead of killing the worker.

What grows with the file (the models' own memory is fixed per worker and not counted):
- per pixel of a frame: the decoded 4:2:0 frame, its RGB copy, the face detector's shrunk copy
  and the batch of `batch_size` square crops at native resolution (the crop side is at most
  the frame's shorter side; the whole frame for corpora used whole), which the frame models
  copy again;
- the frames kept between the two passes: at most `buffer_mb`;
- per native frame: landmarks, eye points, the colour histogram, hand and emotion samples;
- per timeline frame (30 per second of video): the record's arrays, MFCCs and the spectrum;
- per second of audio: the 16 kHz float32 samples and their copies (decoded chunks joined,
  the speech detector's padded copy), over the whole audio track, even past the video's end.

The constants are upper bounds of what benchmarks/extract.py `--memory` measured (peak RSS
above the warm worker's, per clip): `estimate` is 1.5 to 2.5 times the measured growth on every
input there (docs/performance.md, "Memory per clip").
"""

from __future__ import annotations

from dataclasses import dataclass

FIXED_BYTES = 384 * 2**20
"""Per clip whatever its size: working buffers the models and decoders allocate for a new
input, above what a warm-up clip left (measured: 213 MiB for a 10-s 512x512 clip)."""
BYTES_PER_PIXEL = 12.0
"""Per pixel of one frame: 4:2:0 frame (1.5) + RGB (3) + detector copy + reformatter buffers."""
CROP_BYTES_PER_PIXEL = 6.0
"""Per pixel of one square crop in a batch: the crop (3) and the frame models' copies."""
BYTES_PER_NATIVE_FRAME = 8192
"""Per decoded frame: per-frame outputs and samples kept until the clip ends."""
BYTES_PER_TIMELINE_FRAME = 24_576
"""Per 1/30 s of video: record arrays, MFCC rows and the power spectrum they come from (with
the native frames' share: 1.2 MiB per second of 25-fps video with its audio, 1.5 times the
0.8 MiB/s measured between a 1-minute and a 10-minute 1080p clip)."""
BYTES_PER_AUDIO_SECOND = 16_000 * 4 * 4
"""Per second of audio: 16 kHz float32 samples, about four copies at the peak."""


@dataclass(frozen=True, slots=True)
class ClipSize:
    """What a clip's header says about its size."""

    width: int
    height: int
    n_frames: int
    """Video frames (counted by the header, or duration × fps)."""
    video_seconds: float
    audio_seconds: float
    """The audio track's declared duration (0 without audio)."""


def estimate(size: ClipSize, batch_size: int, buffer_bytes: int, whole: bool) -> int:
    """Bytes one clip's extraction needs above the worker's fixed memory (models, libraries)."""
    pixels = size.width * size.height
    side = min(size.width, size.height)
    crop = pixels if whole else side * side
    kept = 0 if whole else min(buffer_bytes, int(1.5 * pixels * size.n_frames))
    return int(
        FIXED_BYTES
        + BYTES_PER_PIXEL * pixels
        + CROP_BYTES_PER_PIXEL * crop * batch_size
        + kept
        + BYTES_PER_NATIVE_FRAME * size.n_frames
        + BYTES_PER_TIMELINE_FRAME * 30 * size.video_seconds
        + BYTES_PER_AUDIO_SECOND * size.audio_seconds
    )


def too_large(size: ClipSize, need: int, bound: int) -> str | None:
    """The `too_large` detail (the numbers) when `need` bytes exceed `bound`, else None."""
    if need <= bound:
        return None
    return (
        f"extraction needs an estimated {need / 2**20:.0f} MiB, above the bound of "
        f"{bound / 2**20:.0f} MiB (extract.max_clip_mb): {size.width}x{size.height}, "
        f"{size.n_frames} frames ({size.video_seconds:.1f} s), {size.audio_seconds:.1f} s of audio"
    )
