"""`space animate`: a face image + speech → landmark animation (npz) and a preview video (mp4).

0. Checks that warn in one line each (the command still runs): the driving audio's speech
   fraction (Silero VAD, the same measure and `filter.min_speech_fraction` threshold as the
   `no_speech` filter: silence, a tone or noise animate nothing useful), and the faces in the
   image (more than one: the largest is used). An unreadable image is an error saying whether
   the file is corrupt or its format unsupported, with the supported formats.
1. Source landmarks: the image's 68 + 52 eye landmarks (the extraction landmarker), its head
   pose and `lm_norm` / `eyes_norm` (space_data.pose.estimate_pose / frontalize), exactly as
   extraction computes them for a clip's first frame. The image should frame the face like
   the shards' `frame0` crops (a portrait).
2. MFCC of the speech on the 30 fps timeline (space_data.audio.mfcc_track, `extract.audio`).
3. S2L predicts normalized landmarks and eye landmarks per frame; `--blink` closes the eyelids
   at seeded intervals by editing the eye landmarks.
4. Pose: `still` holds the source pose, `generate` samples PoseGen, `FILE.npy` reads (N, 6).
   Posed landmarks: l2l.posed_landmarks (units of the source face size).
5. L2L keypoints when an L2L checkpoint and the face-vid2vid checkpoint (`--checkpoint`, by
   default `extract.keypoints.checkpoint`) both exist; otherwise the reason is printed.
6. Frames: with L2L keypoints, the checkpoint's face-vid2vid generator warps the source image
   (space_models.generator, 256×256, batched, on the GPU when there is one) and
   `DIR/animation.mp4` is that video; otherwise it is the preview of the posed landmarks
   drawn over the source image (a similarity fitted at frame 0 maps them to image pixels).
   The input speech is muxed in either way; `DIR/animation.npz` holds the arrays.

Only trained checkpoints are used: without `checkpoints/s2l.pt` (or `posegen.pt` for
`--pose generate`) the command stops and says how to train one.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import cv2
import numpy as np
import torch

from space_data import storage
from space_data.audio import mfcc_track
from space_data.clip import EMOTIONS
from space_data.errors import SetupError
from space_data.extract import ExtractConfig
from space_data.face import FaceBox, FaceDetector, square_crop_box
from space_data.filters import FilterConfig
from space_data.keypoints import (
    CHECKPOINT_ENTRIES,
    KeypointExtractor,
    Vid2VidCheckpointError,
    read_vid2vid_checkpoint,
    torch_device,
)
from space_data.landmarks import EYE_BLOCK, EYES52_IRIS, EYES52_LID, EYES52_LID_CORNERS
from space_data.media import MediaError, decode_audio, write_video
from space_data.params import DEFAULT_PARAMS, load_section, params_option
from space_data.pose import estimate_pose, fit_similarity, frontalize
from space_data.record import FPS, SAMPLE_RATE
from space_data.vad import SpeechDetector, speech_fraction
from space_models.data import emotion_vector
from space_models.generator import load_generator, render_frames
from space_models.l2l import posed_landmarks
from space_models.train import CheckpointError, load_model, load_train_config

LM68_EYES = ((36, 39, range(36, 42)), (42, 45, range(42, 48)))  # (corner, corner, points)


class AnimateError(RuntimeError):
    """Bad input (no face in the image, unreadable files, bad --emotion / --pose)."""


def parse_emotion(text: str | None) -> np.ndarray:
    """`NAME[:INTENSITY]` → (len(EMOTIONS),) vector; None → zeros (unconditioned)."""
    if not text:
        return emotion_vector(None, None)
    name, _, value = text.partition(":")
    if name not in EMOTIONS:
        raise AnimateError(f"--emotion {name!r} is not one of {', '.join(EMOTIONS)}")
    try:
        intensity = float(value) if value else 1.0
    except ValueError:
        raise AnimateError(f"--emotion intensity {value!r} is not a number") from None
    if not 0.0 <= intensity <= 1.0:
        raise AnimateError(f"--emotion intensity {intensity} is outside [0, 1]")
    return emotion_vector(name, intensity)


def blink_curve(n_frames: int, seed: int = 0, every_s: float = 3.5, length: int = 7) -> np.ndarray:
    """(T,) eyelid closure in [0, 1]: a blink of `length` frames (0 → 1 → 0) about every
    `every_s` seconds (±30 %, seeded), the first after ~1 s."""
    rng = np.random.default_rng(seed)
    closure = np.zeros(n_frames, np.float32)
    shape = np.sin(np.linspace(0, np.pi, length + 2)[1:-1]).astype(np.float32)
    t = int(FPS * rng.uniform(0.7, 1.3))
    while t + length <= n_frames:
        closure[t : t + length] = np.maximum(closure[t : t + length], shape)
        t += int(FPS * every_s * rng.uniform(0.7, 1.3))
    return closure


def insert_blinks(lm: np.ndarray, eyes: np.ndarray, closure: np.ndarray) -> None:
    """Close the eyes in place by `closure` (T,): lid and iris points move towards the line
    between the eye corners (y only), in both the 52 eye points and iBUG 36–47."""
    c = closure[:, None]
    for block in range(2):
        base = block * EYE_BLOCK
        a, b = (base + EYES52_LID_CORNERS[0], base + EYES52_LID_CORNERS[1])
        mid = (eyes[:, a, 1] + eyes[:, b, 1])[:, None] / 2  # (T, 1)
        for part in (EYES52_LID, EYES52_IRIS):
            rows = slice(base + part.start, base + part.stop)
            eyes[:, rows, 1] += c * (mid - eyes[:, rows, 1])
    for a, b, points in LM68_EYES:
        rows = list(points)
        mid = (lm[:, a, 1] + lm[:, b, 1])[:, None] / 2
        lm[:, rows, 1] += c * (mid - lm[:, rows, 1])


def read_pose_file(path: str, n_frames: int) -> np.ndarray:
    """(N, 6) .npy in the shards' pose units → (T, 6): cut, or the last row held."""
    pose = np.load(path, allow_pickle=False).astype(np.float32)
    if pose.ndim != 2 or pose.shape[1] != 6 or not len(pose):
        raise AnimateError(f"--pose {path}: expected an (N, 6) array, got {pose.shape}")
    if len(pose) < n_frames:
        pose = np.concatenate([pose, np.repeat(pose[-1:], n_frames - len(pose), 0)])
    return pose[:n_frames]


IMAGE_FORMATS = "JPEG, PNG, BMP, TIFF, WebP, PPM, PFM, Sun raster, Radiance HDR"
"""Image formats OpenCV's reader in this environment decodes (tests/space_models/test_animate.py
round-trips each)."""
_SIGNATURES = {  # first bytes → name, for formats people try that OpenCV does not read
    b"GIF8": "GIF",
    b"%PDF": "PDF",
    b"<": "SVG or other text",
}


def read_image(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file (a path or a URL); an unreadable one raises
    AnimateError saying whether its format is unsupported or the file is corrupt."""
    with storage.local_path(path) as local:
        bgr = cv2.imread(local, cv2.IMREAD_COLOR)
        if bgr is not None:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        head = Path(local).read_bytes()[:32]
        supported = bool(head) and cv2.haveImageReader(local)
    if not head:
        raise AnimateError(f"cannot read the image {path}: the file is empty")
    if supported:
        raise AnimateError(f"cannot read the image {path}: the file is corrupt (its format is "
                           "one OpenCV reads, but it does not decode)")  # fmt: skip
    kind = next((n for sig, n in _SIGNATURES.items() if head.lstrip().startswith(sig)), None)
    if kind is None and b"ftyp" in head[:12]:
        kind = "HEIC/AVIF (an ISO media container)"
    what = kind or (f"a {Path(path).suffix} file" if Path(path).suffix else "no image signature")
    raise AnimateError(
        f"cannot read the image {path}: unsupported format ({what}); supported: {IMAGE_FORMATS}"
    )


def speech_warning(speech: np.ndarray, n_frames: int, min_fraction: float) -> str | None:
    """One line when (S,) 16 kHz audio has speech (Silero VAD ≥ 0.5) in fewer than
    `min_fraction` of its frames, as the `no_speech` filter judges clips; None when it has
    enough. A missing VAD model is said too (the check did not run)."""
    try:
        fraction = speech_fraction(SpeechDetector()(speech, n_frames))
    except SetupError as e:
        return f"speech not checked: {e}"
    if fraction >= min_fraction:
        return None
    return (
        f"the audio has speech in {fraction:.0%} of its frames (Silero VAD; the no_speech filter "
        f"drops clips under filter.min_speech_fraction = {min_fraction:.0%}): silence, a tone or "
        "noise drives no meaningful lip motion"
    )


def image_faces(rgb: np.ndarray) -> list[FaceBox]:
    """Faces in the image, largest first, in image pixels. MediaPipe's full-range detector
    sees a square input, so a wide (or tall) image is searched in square windows along its
    longer side, half a window apart, and a face found in two windows is counted once."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    starts = sorted({*range(0, max(height, width) - side, side // 2), max(height, width) - side})
    boxes: list[FaceBox] = []
    detector = FaceDetector(full_range=True)
    try:
        for start in starts:
            x, y = (start, 0) if width >= height else (0, start)
            for b in detector(np.ascontiguousarray(rgb[y : y + side, x : x + side])):
                box = FaceBox(b.x0 + x, b.y0 + y, b.x1 + x, b.y1 + y, b.score)
                if all(_overlap(box, other) < 0.3 for other in boxes):
                    boxes.append(box)
    finally:
        detector.close()
    return sorted(boxes, key=lambda b: -(b.x1 - b.x0) * (b.y1 - b.y0))


def _overlap(a: FaceBox, b: FaceBox) -> float:
    """Intersection over the smaller box's area (a face cut by a window edge still matches)."""
    w = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    h = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    smaller = min((a.x1 - a.x0) * (a.y1 - a.y0), (b.x1 - b.x0) * (b.y1 - b.y0))
    return w * h / smaller if smaller > 0 else 0.0


def warn(message: str) -> None:
    """One warning line on stderr (the command goes on)."""
    print(f"animate: warning: {message}", file=sys.stderr)


def source_face(rgb: np.ndarray, extract_config, box: FaceBox | None = None) -> dict:
    """lm68 (68, 3) px, eyes52, lm_norm (68, 3), eyes_norm (52, 3), pose (6,), scale ();
    with `box`, the face there (landmarks found on a crop around it, in image pixels)."""
    from space_data.landmarks import make_landmarker  # loads MediaPipe: only when used

    x0 = y0 = 0
    image = rgb
    if box is not None:
        height, width = rgb.shape[:2]
        x0, y0, side = square_crop_box([box], width, height, extract_config.crop_margin)
        image = np.ascontiguousarray(rgb[y0 : y0 + side, x0 : x0 + side])
    landmarker = make_landmarker(extract_config.landmarks)
    try:
        found = landmarker(image)
    finally:
        landmarker.close()
    if found is None:
        raise AnimateError("no face found in the image")
    offset = np.array([x0, y0, 0], np.float32)  # crop pixels → image pixels
    lm68 = (found.lm68 + offset)[None].astype(np.float32)  # (1, 68, 3)
    pose, scale, rot = estimate_pose(lm68)
    if not np.isfinite(pose).all():
        raise AnimateError("could not fit a head pose to the image's landmarks")
    eyes = (found.eyes52 + offset)[None].astype(np.float32)
    return {
        "lm68": lm68[0],
        "eyes52": eyes[0],
        "pose": pose[0],
        "scale": scale[0],
        "lm_norm": np.nan_to_num(frontalize(lm68, rot, lm68)[0]),
        "eyes_norm": np.nan_to_num(frontalize(eyes, rot, lm68)[0]),
    }


def draw(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The image with (N, 2) pixel points drawn (even height and width for H.264)."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    frame = rgb[:h, :w].copy()  # a fresh canvas per frame
    radius = max(1, round(min(h, w) / 200))
    for x, y in points:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(frame, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1)
    return frame


@dataclass(frozen=True)
class RenderOptions:
    """How frames are rendered from L2L's keypoints (the face-vid2vid generator)."""

    checkpoint: str | None = None
    """face-vid2vid checkpoint; None = `extract.keypoints.checkpoint` of the params."""
    relative: bool = False
    """Move the source keypoints by each frame's change from the first frame (reference
    demo's --relative) instead of using L2L's keypoints as they are."""
    adapt_scale: bool = False
    """With `relative`: scale the change by the keypoint hulls' size ratio."""
    batch_size: int = 4
    """Frames per generator forward pass."""
    device: str = "auto"
    """torch device: "auto" (cuda when available), "cpu", "cuda", "cuda:N"."""


def animate(
    image: str,
    audio: str,
    out_dir: str,
    emotion: str | None = None,
    pose_mode: str = "still",
    blink: bool = False,
    params: str = str(DEFAULT_PARAMS),
    seed: int = 0,
    render: RenderOptions | None = None,
) -> dict[str, str]:
    """Run the pipeline above; returns {"npz": path, "mp4": path, "video": "rendered" or
    "landmarks", "note": why no frames were rendered (empty when they were)}."""
    render = render or RenderOptions()
    ckpts = load_train_config(params).checkpoints  # params first: fail before any work
    extract_config = load_section("extract", ExtractConfig, params)
    min_speech = load_section("filter", FilterConfig, params).min_speech_fraction
    emo = torch.from_numpy(parse_emotion(emotion))[None]  # (1, E)
    kp_config = extract_config.keypoints
    if render.checkpoint is not None:
        kp_config = dataclasses.replace(kp_config, checkpoint=render.checkpoint)

    rgb = read_image(image)  # the inputs, checked before any model loads
    try:
        speech = decode_audio(audio, SAMPLE_RATE)
    except MediaError as e:
        raise AnimateError(f"cannot read the audio {audio}: {e.detail}") from e
    n_frames = round(len(speech) / SAMPLE_RATE * FPS)
    if n_frames < 2:
        raise AnimateError(f"{audio} is shorter than two frames")
    no_speech = speech_warning(speech, n_frames, min_speech)
    if no_speech:
        warn(no_speech)
    faces = image_faces(rgb)
    if len(faces) > 1:
        warn(f"{len(faces)} faces in the image; the largest is animated")
    s2l, _ = load_model(storage.join(ckpts, "s2l.pt"), "s2l")
    posegen = (
        load_model(storage.join(ckpts, "posegen.pt"), "posegen")[0]
        if pose_mode == "generate"
        else None
    )
    src = source_face(rgb, extract_config, faces[0] if len(faces) > 1 else None)
    mfcc = torch.from_numpy(mfcc_track(speech, n_frames, extract_config.audio))[None]
    lm, eyes = s2l.predict(
        mfcc, torch.from_numpy(src["lm_norm"])[None], torch.from_numpy(src["eyes_norm"])[None], emo
    )
    lm, eyes = lm[0].numpy(), eyes[0].numpy()  # (T, 68, 3), (T, 52, 3)
    if blink:
        insert_blinks(lm, eyes, blink_curve(n_frames, seed))

    if pose_mode == "still":
        pose = np.repeat(src["pose"][None], n_frames, 0)
    elif pose_mode == "generate":
        generator = torch.Generator().manual_seed(seed)
        pose = posegen.predict(
            mfcc,
            torch.from_numpy(src["pose"])[None],
            torch.tensor([float(src["scale"])]),
            emo,
            generator,
        )[0].numpy()
    else:
        pose = read_pose_file(pose_mode, n_frames)
    posed = posed_landmarks(lm, pose, np.full(n_frames, src["scale"], np.float32))

    result = {
        "lm_norm": lm,
        "eyes_norm": eyes,
        "posed": posed,
        "pose": pose.astype(np.float32),
        "emotion": emo[0].numpy(),
        "fps": np.float32(FPS),
    }
    note, vid2vid = _keypoints(ckpts, kp_config, rgb, mfcc, posed, emo, result)
    print(f"animate: {note or 'keypoints from L2L written'}")

    s, rot, t = fit_similarity(posed[0], src["lm68"])  # normalized posed space → image pixels
    pixels = (s * posed @ rot.T + t)[..., :2]  # (T, 68, 2)
    result["image_points"] = pixels.astype(np.float32)
    with storage.staged_folder(out_dir) as folder:  # a local folder, or uploaded to a URL
        out = Path(folder)
        np.savez(out / "animation.npz", **result)
        mp4 = str(out / "animation.mp4")
        if note:  # no keypoints: the landmark preview
            write_video(mp4, (draw(rgb, p) for p in pixels), FPS, speech)
            print(f"animate: landmark preview only ({note})")
        else:
            generator = load_generator(kp_config.checkpoint, vid2vid)
            generator = generator.to(torch_device(render.device))
            frames = render_frames(
                generator,
                rgb,
                result["kp_source_driving"],
                result["kp"],
                render.batch_size,
                render.relative,
                render.adapt_scale,
            )
            write_video(mp4, frames, FPS, speech)
    paths = {name: storage.join(out_dir, f"animation.{name}") for name in ("npz", "mp4")}
    return {**paths, "video": "landmarks" if note else "rendered", "note": note}


def _keypoints(ckpts, kp_config, rgb, mfcc, posed, emo, result) -> tuple[str, dict | None]:
    """Add L2L keypoints to `result` when possible; returns why not ("" when added) and the
    face-vid2vid state dicts read for them, the generator's included (one read of the file
    for the keypoint nets and the generator)."""
    try:
        l2l, _ = load_model(storage.join(ckpts, "l2l.pt"), "l2l")
    except CheckpointError as e:
        return f"no keypoints: {e}", None
    missing = KeypointExtractor(kp_config).missing_reason
    if missing:
        return f"no keypoints: {missing}", None
    vid2vid = read_vid2vid_checkpoint(kp_config.checkpoint, (*CHECKPOINT_ENTRIES, "generator"))
    source = KeypointExtractor(kp_config, vid2vid)(rgb[None])
    kp = l2l.predict(
        mfcc,
        torch.from_numpy(posed)[None],
        torch.from_numpy(source["kp_source"])[None],
        torch.from_numpy(source["kp"][:1]),
        emo,
    )
    result["kp"] = kp[0].numpy()
    result["kp_source"] = source["kp_source"]
    result["kp_source_driving"] = source["kp"][0]
    return "", vid2vid


@click.command("animate")
@click.option(
    "--image",
    required=True,
    help="Face image (a portrait framed like the shards' frame0 crops); a path or a URL.",
)
@click.option(
    "--audio",
    required=True,
    help="Speech (wav, flac, m4a, mp4, ...), resampled to 16 kHz mono; a path or a URL.",
)
@click.option(
    "--emotion",
    default=None,
    metavar="NAME[:INTENSITY]",
    help=f"Emotion control, NAME one of {', '.join(EMOTIONS)}; intensity in [0, 1] "
    "(default 1). Omitted: unconditioned.",
)
@click.option(
    "--pose",
    "pose_mode",
    default="still",
    show_default=True,
    metavar="still|generate|FILE.npy",
    help="Head pose: hold the source pose, sample PoseGen, or read an (N, 6) array.",
)
@click.option("--blink/--no-blink", default=False, help="Insert eye blinks (~every 3.5 s).")
@click.option(
    "--out",
    "out_dir",
    required=True,
    help="Output folder for animation.npz and animation.mp4; a path or a URL (s3://...).",
)
@click.option(
    "--checkpoint",
    default=None,
    metavar="FACE_VID2VID.pth.tar",
    help="face-vid2vid checkpoint (Vox-256 00000189-checkpoint.pth.tar) for L2L's keypoints "
    "and the generator; default: extract.keypoints.checkpoint of the params.",
)
@click.option(
    "--relative/--absolute",
    default=False,
    show_default=True,
    help="Drive with each frame's keypoint change from the first frame (reference demo's "
    "--relative) or with L2L's keypoints as they are.",
)
@click.option("--adapt-scale", is_flag=True, help="With --relative: scale the keypoint motion.")
@click.option(
    "--batch-size",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Frames per generator pass.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@params_option("train", "extract", "filter")
@click.option("--seed", default=0, show_default=True, help="Seeds PoseGen's z and the blinks.")
def cli(
    image,
    audio,
    emotion,
    pose_mode,
    blink,
    out_dir,
    checkpoint,
    relative,
    adapt_scale,
    batch_size,
    device,
    params,
    seed,
) -> None:
    """Animate a face image with speech using the trained S2L (+ PoseGen, + L2L, + the
    face-vid2vid generator).

    Writes OUT/animation.npz (lm_norm (T, 68, 3), eyes_norm (T, 52, 3), posed (T, 68, 3),
    pose (T, 6), image_points (T, 68, 2) pixels, kp (T, K, 3) when L2L ran) and
    OUT/animation.mp4 at 30 fps with the speech: 256×256 frames rendered by the generator when
    L2L and the face-vid2vid checkpoint are there, else the landmarks over the image.
    """
    for path, option in ((image, "--image"), (audio, "--audio")):
        if not storage.isfile(path):
            raise click.BadParameter(f"{path} does not exist", param_hint=option)
    if pose_mode not in ("still", "generate") and not Path(pose_mode).is_file():
        raise click.BadParameter(
            f"{pose_mode!r} is not still, generate or an existing .npy file", param_hint="--pose"
        )
    render = RenderOptions(checkpoint, relative, adapt_scale, batch_size, device)
    try:
        paths = animate(image, audio, out_dir, emotion, pose_mode, blink, params, seed, render)
    except (AnimateError, CheckpointError, Vid2VidCheckpointError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {paths['npz']} and {paths['mp4']} ({paths['video']})")
