"""What the project's face crop changes in SyncNet's input and outputs, against the reference's
crop (docs: "SyncNet backend").

The reference (joonson/syncnet_python run_pipeline.py) crops every frame around its own S3FD
face box (median-smoothed over 13 frames): half-side s = larger box side / 2, the crop spans
1.4 box sides and reaches 0.4 s further down than up (chin and mouth), padded with grey 110 at
the frame's borders. VoxCeleb2's face tracks were cut the same way, so the two 224² realdata
tracks are the reference's input as it is. The project crops ONE square per clip: the union of
the MediaPipe face boxes of every 10th frame plus 30 % of its larger side on each side, centred,
moved inside the frame; SyncNet gets it resized to 224².

Per track this prints, against the fixture (the reference's outputs on the whole track, its
seeded random weights; ../shared/syncnet_reference):
- "whole": the track as its corpus uses it (VoxCeleb2: whole frames) — the fixture's input;
- "cropped": the project's crop of the track as a generic corpus would take it (the box is
  clamped by the frame: the track is already tight);
- "in frame": the track placed in a 3× larger grey (110) frame, as in a wider source video, and
  cropped by the project's rule: what the project's crop does to a VoxCeleb-style face;
and for each: the crop box (side in track pixels, centre offset), the MediaPipe face box's side
and centre height as fractions of the 224² input, the curve's largest difference (% of the
fixture curve's range), the curve's correlation with the fixture's, the argmin, and the lip
embeddings' median relative difference. The wide realdata clips' project crops get the same
face-box fractions. The CPU time of SyncNet (one thread) on the whole tracks is printed too.
With random weights the sizes of the changes are those of a random network
on these inputs: a measure of how different the input is, not of the trained model's error.

Run (project root): .venv/bin/python -m scripts.syncnet_crop_check [--realdata DIR]  (~2 min)
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
import torch

from scripts.ibug_reference import realdata_option
from space_data.extract import ClipExtractor, ExtractConfig
from space_data.face import FaceDetector, crop_and_resize, square_crop_box
from space_data.media import VideoReader, decode_audio, decode_video
from space_data.syncnet import face_input, int16_audio, load_syncnet, run_syncnet

TRACKS = ("voxceleb2_style_224_frontal", "voxceleb2_style_224_turned")
WIDE = ("frontal_talking_may_25fps", "interview_talking_25fps", "news_talking_25fps")
"""Realdata talking clips with a wider frame: the project's crop of a real source."""
DETECT_EVERY = 10
MARGIN = 0.3
"""`extract.detect_every` and `extract.crop_margin` defaults."""


def project_box(detector: FaceDetector, frames: np.ndarray) -> tuple[int, int, int]:
    """The extractor's crop box (x0, y0, side) of (N, H, W, 3) RGB frames (no shrinking: every
    frame here is under `detect_max_side`)."""
    boxes = [(detector(f) or [None])[0] for f in frames[::DETECT_EVERY]]
    height, width = frames.shape[1:3]
    return square_crop_box(boxes, width, height, MARGIN)


def face_fractions(detector: FaceDetector, inputs: list[np.ndarray]) -> tuple[float, float]:
    """Median MediaPipe face-box side and box-centre height in 224² BGR inputs, as fractions
    of 224."""
    sides, heights = [], []
    for bgr in inputs[::DETECT_EVERY]:
        found = detector(np.ascontiguousarray(bgr[..., ::-1]))
        if found:
            b = found[0]
            sides.append(max(b.x1 - b.x0, b.y1 - b.y0) / 224)
            heights.append((b.y0 + b.y1) / 2 / 224)
    return float(np.median(sides)), float(np.median(heights))


def compare(name: str, result, ref: dict, box, detector, inputs) -> None:
    mdist = ref["mdist"].numpy()
    lips = ref["im_feat"].numpy()
    n = min(len(lips), len(result.im_feat))
    rel = np.linalg.norm(result.im_feat[:n] - lips[:n], axis=1) / np.linalg.norm(lips[:n], axis=1)
    side, height = face_fractions(detector, inputs)
    curve_diff = np.abs(result.mdist - mdist).max() / np.ptp(mdist) * 100
    level_diff = np.abs(result.mdist - mdist).max() / mdist.mean() * 100
    r = np.corrcoef(result.mdist, mdist)[0, 1]
    print(
        f"  {name:9s} box {box}  face box {side:.2f} of the input, centre at {height:.2f} "
        f"height | curve max diff {curve_diff:5.1f} % "
        f"of range ({level_diff:.2f} % of level), r = {r:+.3f}, argmin "
        f"{int(np.argmin(result.mdist))} (fixture {int(np.argmin(mdist))}), lip embeddings "
        f"median rel. diff {np.median(rel):.3f}"
    )


@click.command()
@realdata_option
def main(realdata: Path) -> None:
    reference = realdata.parent / "syncnet_reference"
    torch.set_num_threads(1)  # an extraction worker's one core (extract.one_core)
    model = load_syncnet(str(reference / "ref_sync.model"))
    cpu = torch.device("cpu")
    detector = FaceDetector()
    for track in TRACKS:
        ref = torch.load(reference / f"ref_sync_{track}.pt", weights_only=True)
        rgb, times, _ = decode_video(str(realdata / "video" / f"{track}.mp4"))
        audio = int16_audio(decode_audio(str(realdata / "video" / f"{track}.mp4")))
        duration = len(rgb) / 25
        print(track)
        pad = rgb.shape[1]
        framed = np.pad(rgb, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=110)
        for name, frames in (("whole", None), ("cropped", rgb), ("in frame", framed)):
            if frames is None:
                box, inputs = (0, 0, rgb.shape[1]), [face_input(f) for f in rgb]
            else:
                box = project_box(detector, frames)
                inputs = [face_input(crop_and_resize(f, box, None)) for f in frames]
            start = time.process_time()
            result = run_syncnet(model, cpu, zip(times, inputs, strict=True), audio, duration)
            cpu_s = time.process_time() - start
            if frames is None:
                print(f"  SyncNet: {cpu_s / duration:.2f} CPU s per second of video (one thread)")
            shown = box if frames is not framed else (box[0] - pad, box[1] - pad, box[2])
            compare(name, result, ref, shown, detector, inputs)
    extractor = ClipExtractor(ExtractConfig())
    for clip in WIDE:
        path = str(realdata / "video" / f"{clip}.mp4")
        box = extractor.crop_box(path)
        reader = VideoReader(path)
        inputs = [face_input(crop_and_resize(f, box, None)) for _, f in reader]
        side, height = face_fractions(detector, inputs)
        print(f"{clip} ({reader.info.width}×{reader.info.height}): project crop {box}: face box "
              f"{side:.2f} of the input, centre at {height:.2f} height")  # fmt: skip
    extractor.close()


if __name__ == "__main__":
    main()
