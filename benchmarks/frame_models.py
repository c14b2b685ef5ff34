"""Frame models fed one frame at a time against batches (`space_data.frames`): frames per second.

On the 512² crops of one real talking clip (the extractor's own crop box), each frame model runs
over the same frames in one process, models warm: `batch` with one frame per call and with
`--batch-size` frames per call, alternately `--repeat` times; the best pass of each counts (the
machine may be shared). MediaPipe iterates inside, so its ratio stays near 1; the
keypoint nets run a batch as one forward pass, which is where a GPU gains. The keypoint nets use a
checkpoint saved from freshly initialised modules: RANDOM WEIGHTS, a timing of the network cost
only, never features.

Run: .venv/bin/python benchmarks/frame_models.py [--frames 64] [--kp-frames 16] [--batch-size 16]
     [--repeat 3] [--device cpu|cuda]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch

from space_data.extract import ClipExtractor, ExtractConfig
from space_data.face import crop_and_resize
from space_data.frames import FrameModel
from space_data.hands import HandDetector
from space_data.keypoints import KeypointExtractor, KeypointsConfig, keypoint_input
from space_data.landmarks import LandmarksConfig, make_landmarker
from space_data.media import decode_video
from space_data.testing.keypoints import random_checkpoint

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "video"
CLIP = "frontal_talking_may_25fps.mp4"


def clip_crops(path: Path, n: int) -> np.ndarray:
    """(n, S, S, 3) uint8 crops of the clip's first n frames, cropped as the extractor does
    (native resolution)."""
    box = ClipExtractor(ExtractConfig()).crop_box(str(path))
    frames, _, _ = decode_video(str(path))
    if len(frames) < n:
        raise click.ClickException(f"{path} has {len(frames)} frames, fewer than {n}")
    return np.stack([crop_and_resize(f, box, None) for f in frames[:n]])


def seconds(model: FrameModel, frames: np.ndarray, batch_size: int) -> float:
    """Wall-clock seconds of `model.batch` over `frames` (one clip) in batches of `batch_size`."""
    model.reset()
    start = time.perf_counter()
    for i in range(0, len(frames), batch_size):
        model.batch(frames[i : i + batch_size])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def best_fps(model: FrameModel, frames: np.ndarray, sizes: tuple[int, int], repeat: int) -> list:
    """Frames per second of each batch size in `sizes`: the best of `repeat` alternating passes."""
    model.batch(frames[:1])  # warm-up: model creation is not per-frame cost
    best = [seconds(model, frames, size) for size in sizes]
    for _ in range(repeat - 1):
        best = [min(b, seconds(model, frames, size)) for b, size in zip(best, sizes, strict=True)]
    return [len(frames) / b for b in best]


@click.command()
@click.option("--frames", "n_frames", type=int, default=64, show_default=True)
@click.option("--kp-frames", type=int, default=16, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--repeat", type=int, default=3, show_default=True)
@click.option(
    "--device", default="cpu", show_default=True, help="torch device of the keypoint nets"
)
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path), default=VIDEO / CLIP)
def main(
    n_frames: int, kp_frames: int, batch_size: int, repeat: int, device: str, video: Path
) -> None:
    """Print frames per second of each frame model, one frame per call against batches."""
    torch.set_num_threads(1)
    crops = clip_crops(video, n_frames)
    kp_inputs = np.stack([keypoint_input(c) for c in crops[:kp_frames]])  # 256², as extraction
    click.echo(
        f"{n_frames} crops of {video.name} ({kp_frames} for the keypoint nets); torch threads 1; "
        f"keypoint nets on {device}"
    )
    click.echo(f"  {'model':34s} {'1/call fps':>11s} {f'{batch_size}/call fps':>12s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = random_checkpoint(Path(tmp))
        models: list[tuple[str, FrameModel, np.ndarray]] = [
            ("MediaPipe face mesh", make_landmarker(LandmarksConfig()), crops),
            ("MediaPipe hands", HandDetector(), crops),
            (
                "face-vid2vid nets (RANDOM weights)",
                KeypointExtractor(KeypointsConfig(checkpoint=checkpoint, device=device)),
                kp_inputs,
            ),
        ]
        for name, model, frames in models:
            one, many = best_fps(model, frames, (1, batch_size), repeat)
            click.echo(f"  {name:34s} {one:11.2f} {many:12.2f} {many / one:6.2f}")
            model.close()


if __name__ == "__main__":
    main()
