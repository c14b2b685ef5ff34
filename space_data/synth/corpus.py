"""Build the sample corpus: every planned clip rendered, encoded, and its true pose written.

Output (`out_dir`)::

    voxceleb2/{dev,test}/mp4/idNNNNN/<youtube id>/NNNNN.mp4      224×224, 25 fps, H.264 + AAC
    mead/<spk>/video/<view>/<emotion>/level_<n>/NNN.mp4           384×216, 30 fps, video only
    mead/<spk>/audio/<emotion>/level_<n>/NNN.m4a                 AAC
    ravdess/Actor_NN/MM-VV-EE-II-SS-RR-AA.mp4                    384×216, 29.97 fps
    hdtf/<source>_<Name>_NNN.mp4                                 256×256, 25 fps
    cremad/VideoFlash/<actor>_<sentence>_<emotion>_<level>.flv   320×240, 30 fps, FLV1 + MP3
    cremad/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav     16 kHz PCM
    truth/<clip_id>.npy     (N_native, 6) float64 per native frame: yaw, pitch, roll (deg),
                            tx, ty (px), scale (px per unit); NaN rows where no face is shown
    truth.json              clip_id → designed outcome, stage, fps, duration, ... (see `_record`)

The angles follow `space_data.pose` and are relative to the frontalized source mesh (see
`space_data.synth.mesh`): zero = mirror-symmetry plane and principal face plane facing the
camera. tx, ty: image position of the face-vertex centroid; scale: image pixels per outer-eye-
corner distance of the frontal face.
"""

from __future__ import annotations

import json
import math
import shutil
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from space_data import media
from space_data.datasets import DATASETS
from space_data.synth.layouts import sample_layout
from space_data.synth.mesh import HeadMesh, _face_mesh_model, build_head_mesh
from space_data.synth.photos import base_photos, identity_names, identity_photo, read_photo
from space_data.synth.plan import ClipSpec, plan_corpus
from space_data.synth.render import render
from space_data.synth.speech import SAMPLE_RATE, mouth_envelope, synthesize_speech
from space_data.synth.trajectories import bump, head_track

ANGLES_RELATIVE_TO = (
    "frontalized source mesh: yaw/roll 0 where its mirror-symmetry plane faces the camera, pitch "
    "0 where its principal (least-spread) plane faces the camera; R = Rz(roll)Ry(yaw)Rx(pitch)"
)
MOUTH_OPEN = 0.3
"""Jaw drop at full loudness, canonical units (outer-eye-corner distance)."""


@dataclass(slots=True)
class SynthConfig:
    """How the sample corpus is generated (params.yaml section `synth`)."""

    seed: int = 0
    """Seed of every random choice (motion, speech, backgrounds, names)."""
    speakers_per_corpus: int = 5
    """Speakers per corpus, ≥ 3 so each of train/val/test can get one (hashed splits of so few
    speakers may leave val or test empty; `space index --write-splits` pins exact ones)."""
    keep_clips_per_speaker: int = 1
    """Ordinary (designed to be kept) clips per speaker, besides the designed special clips."""
    min_seconds: float = 3.0
    """Shortest clip duration, seconds."""
    max_seconds: float = 5.0
    """Longest clip duration, seconds."""
    photos_dir: str | None = "../shared/realdata/images"
    """Folder with extra face photos `portrait_*.png|jpg` (used when it exists; never copied)."""
    hand_photo: str | None = "../shared/realdata/images/hand_on_cheek.jpg"
    """Photo of a face with a hand on it: the `hands` clip's speaker (left out when absent)."""
    only: list[str] | None = None
    """Render only these clip ids (None: all); for tests and debugging."""

    def __post_init__(self) -> None:
        if self.speakers_per_corpus < 3:
            raise ValueError(f"speakers_per_corpus must be ≥ 3, got {self.speakers_per_corpus}")
        if self.keep_clips_per_speaker < 0:
            raise ValueError("keep_clips_per_speaker must be ≥ 0")
        if not 2.0 <= self.min_seconds <= self.max_seconds <= 30.0:
            raise ValueError(
                "need 2 ≤ min_seconds ≤ max_seconds ≤ 30, "
                f"got {self.min_seconds}, {self.max_seconds}"
            )


def plan(config: SynthConfig) -> list[ClipSpec]:
    """The clips `build_sample_corpus` writes for `config`, in order (renders nothing)."""
    photos = base_photos(config.photos_dir)
    hand = config.hand_photo is not None and Path(config.hand_photo).is_file()
    specs = plan_corpus(
        config.seed,
        config.speakers_per_corpus,
        config.keep_clips_per_speaker,
        (config.min_seconds, config.max_seconds),
        identity_names(photos, config.speakers_per_corpus + 4),
        with_hands=hand,
    )
    if config.only is not None:
        unknown = sorted(set(config.only) - {s.clip_id for s in specs})
        if unknown:
            raise ValueError(f"synth.only names clips that are not planned: {unknown}")
        specs = [s for s in specs if s.clip_id in config.only]
    return specs


def build_sample_corpus(
    out_dir: str | Path,
    config: SynthConfig,
    on_clip: Callable[[ClipSpec], None] | None = None,
) -> dict[str, dict]:
    """Render the corpus into `out_dir` and return the truth written to `truth.json`.

    `out_dir` must be absent or hold nothing but a previous sample corpus (replaced). `on_clip`
    is called after each clip (progress bars).
    """
    out = Path(out_dir)
    specs = plan(config)
    _prepare(out)
    photos = _photos(config)
    model = _face_mesh_model()
    meshes: dict[str, HeadMesh] = {}
    try:
        for spec in specs:
            for name in filter(None, (spec.identity, spec.other_identity)):
                if name not in meshes:
                    meshes[name] = build_head_mesh(identity_photo(photos, name), model)
    finally:
        model.close()
    truth: dict[str, dict] = {}
    (out / "truth").mkdir(parents=True, exist_ok=True)
    for spec in specs:
        track = _write_clip(out, spec, meshes, photos)
        np.save(out / "truth" / f"{spec.clip_id}.npy", track)
        truth[spec.clip_id] = _record(spec, track)
        if on_clip is not None:
            on_clip(spec)
    (out / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return truth


def _photos(config: SynthConfig) -> dict[str, np.ndarray]:
    """Base photos, plus the hand photo as identity `hand` when there is one."""
    photos = base_photos(config.photos_dir)
    if config.hand_photo is not None and Path(config.hand_photo).is_file():
        photos["hand"] = read_photo(Path(config.hand_photo))
    return photos


def _prepare(out: Path) -> None:
    """Empty `out` of a previous (possibly interrupted) sample corpus; refuse anything else."""
    ours = {*DATASETS, "truth", "truth.json"}
    if out.exists():
        other = sorted(p.name for p in out.iterdir() if p.name not in ours)
        if other:
            raise FileExistsError(
                f"{out} holds more than a sample corpus ({', '.join(other[:5])}): "
                "refusing to write there"
            )
        for name in (*DATASETS, "truth"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "truth.json").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _write_clip(
    out: Path,
    spec: ClipSpec,
    meshes: dict[str, HeadMesh],
    photos: dict[str, np.ndarray],
) -> np.ndarray:
    """Render and encode one clip; returns its (N, 6) truth track (NaN rows: no face)."""
    rng = np.random.default_rng(spec.seed)
    n, fps = spec.n_frames, spec.fps
    f0 = 100.0 + zlib.crc32(spec.speaker.encode()) % 110  # a stable voice per speaker
    audio = synthesize_speech(spec.duration, rng, f0=f0, sung=spec.design == "song")
    mouth = MOUTH_OPEN * mouth_envelope(audio, n, fps) ** 0.8
    track, face = design_track(spec, rng)
    w, h = spec.size
    background = backdrop(identity_photo(photos, spec.identity), w, h, rng)
    faces = [meshes[spec.identity], meshes.get(spec.other_identity or spec.identity)]

    def frames() -> Iterator[np.ndarray]:
        for k in range(n):
            if face[k] < 0:
                yield background
                continue
            yield render(faces[face[k]], track[k], background, mouth[k])

    sound = (
        audio if sample_layout(spec.dataset).video_audio and spec.design != "video_only" else None
    )
    media.write_video(str(out / spec.dataset / spec.relpath), frames(), fps, sound, SAMPLE_RATE)
    if spec.audio_relpath is not None:  # MEAD, CREMA-D: the audio (also) beside the video
        media.write_audio(str(out / spec.dataset / spec.audio_relpath), audio, SAMPLE_RATE)
    return np.where((face >= 0)[:, None], track, np.nan)


def design_track(spec: ClipSpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, 6) pose track and (N,) int face index (0 first face, 1 after the cut, -1 none)."""
    n, fps = spec.n_frames, spec.fps
    layout = sample_layout(spec.dataset)
    w, h, scale = layout.width, layout.height, layout.scale
    centre = (w / 2, h * 0.54)
    shift = 0.02 * w
    face = np.zeros(n, dtype=np.int64)
    d = spec.design
    if d == "moderate":
        track = head_track(n, fps, rng, centre, scale, yaw=30.0, shift=shift)
    elif d in ("left_30", "left_60"):
        view = -30.0 if d == "left_30" else -60.0
        track = head_track(
            n, fps, rng, centre, scale, yaw=5.0 if d == "left_30" else 4.0, shift=shift
        )
        track[:, 0] += view
    elif d == "rotation":
        track = head_track(n, fps, rng, centre, scale, yaw=5.0, shift=shift)
        turn = bump(n, fps, spec.duration / 2, min(1.0, spec.duration / 3), 0.4)
        track[:, 0] += rng.choice([-1.0, 1.0]) * 58.0 * turn
    elif d == "zoom":
        track = head_track(n, fps, rng, centre, scale, shift=shift, zoom=0.0)
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.linspace(0.0, 1.0, n))
        track[:, 5] = scale * (0.7 + 0.8 * ramp)
    elif d == "cut":
        # faces 0.12 w apart: a jump of ~0.5 face sizes, yet close enough that tracking-mode
        # FaceMesh follows it (0.24 w apart it loses the face for a frame: a no_face, not a cut)
        cut = n // 2
        left = (centre[0] - 0.06 * w, centre[1])
        right = (centre[0] + 0.06 * w, centre[1])
        track = head_track(n, fps, rng, left, scale, shift=shift)
        track[cut:] = head_track(n - cut, fps, rng, right, scale, shift=shift)
        face[cut:] = 1
    else:  # keep, no_face, hands, song, video_only: ordinary motion
        track = head_track(n, fps, rng, centre, scale, shift=shift)
    if d == "no_face":
        gone = int(round(fps))
        start = (n - gone) // 2
        face[start : start + gone] = -1
    return track, face


def backdrop(photo: np.ndarray, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) uint8 static background: the photo blurred beyond recognition, tinted, so the
    edge of the rendered head does not jump out."""
    ph, pw = photo.shape[:2]
    f = max(w / pw, h / ph)
    big = cv2.resize(photo, (math.ceil(pw * f), math.ceil(ph * f)), interpolation=cv2.INTER_AREA)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    # blur at 1/16 size: the same look for a fraction of the cost of a 40-px-sigma kernel
    tiny = cv2.resize(
        big[y0 : y0 + h, x0 : x0 + w],
        (max(1, w // 16), max(1, h // 16)),
        interpolation=cv2.INTER_AREA,
    )
    tiny = cv2.GaussianBlur(tiny, (0, 0), max(w, h) / 12 / 16)
    soft = cv2.resize(tiny, (w, h), interpolation=cv2.INTER_CUBIC)
    tint = rng.uniform(60, 200, size=3)
    return np.clip(0.6 * soft + 0.4 * tint, 0, 255).astype(np.uint8)


def _record(spec: ClipSpec, track: np.ndarray) -> dict:
    """The truth.json entry of one clip."""
    shown = ~np.isnan(track[:, 0])
    t = track[shown]
    no_face = np.flatnonzero(~shown)
    return {
        "dataset": spec.dataset,
        "speaker": spec.speaker,
        "path": f"{spec.dataset}/{spec.relpath}",
        "audio_path": f"{spec.dataset}/{spec.audio_relpath}" if spec.audio_relpath else None,
        "identity": spec.identity,
        "other_identity": spec.other_identity,
        "design": spec.design,
        "outcome": spec.outcome,
        "stage": spec.stage,
        "fps": spec.fps,
        "duration": spec.duration,
        "n_frames": spec.n_frames,
        "max_abs_yaw": float(np.abs(t[:, 0]).max()),
        "max_abs_pitch": float(np.abs(t[:, 1]).max()),
        "max_abs_roll": float(np.abs(t[:, 2]).max()),
        "scale_range": float(np.ptp(t[:, 5]) / np.median(t[:, 5])),
        "no_face_frames": [int(no_face[0]), int(no_face[-1]) + 1] if no_face.size else None,
        "cut_frame": spec.n_frames // 2 if spec.design == "cut" else None,
        "angles_relative_to": ANGLES_RELATIVE_TO,
    }
