"""Small, deterministic `ClipFeatures` records for tests of the stages after extraction
(shards, pack, report): real arrays of the documented shapes, a real JPEG and FLAC, and
statistics consistent with the arrays. Not extraction output: the faces are drawn ellipses."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import soundfile

from space_data.clip import EMOTIONS, Clip
from space_data.datasets.manifest import write_manifest
from space_data.record import FPS, SAMPLE_RATE, ClipFeatures, ClipMeta, ClipStats


def make_record(
    clip_id: str,
    *,
    dataset: str = "mead",
    split: str = "train",
    emotion: str | None = "happy",
    n_frames: int = 45,
    max_yaw: float = 20.0,
    with_audio: bool = True,
    crop: int = 128,
) -> ClipFeatures:
    """A record whose head yaws sinusoidally up to `max_yaw` degrees; seeded by `clip_id`."""
    rng = np.random.default_rng(zlib.crc32(clip_id.encode()))
    t = np.arange(n_frames) / FPS
    yaw = max_yaw * np.sin(2 * np.pi * 0.5 * t)
    pitch = 5.0 * np.sin(2 * np.pi * 0.3 * t + 1.0)
    roll = 3.0 * np.sin(2 * np.pi * 0.2 * t + 2.0)
    pose = np.stack([yaw, pitch, roll, np.zeros_like(t), np.zeros_like(t), np.ones_like(t)], 1)
    # 68 points on an ellipse around the crop centre, shifted with yaw, plus small noise
    angle = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    base = np.stack([np.cos(angle) * 0.3, np.sin(angle) * 0.4, np.zeros(68)], 1) * crop
    shift = np.stack([yaw / 90 * 0.1 * crop, np.zeros_like(t), np.zeros_like(t)], 1)
    lm3d = crop / 2 + base[None] + shift[:, None] + rng.normal(0, 0.5, (n_frames, 68, 3))
    lm3d[..., 2] -= crop / 2
    scale = np.full(n_frames, 1.0) + rng.normal(0, 0.01, n_frames)
    arrays = {
        "lm3d": lm3d.astype(np.float32),
        "pose": pose.astype(np.float32),
        "scale": scale.astype(np.float32),
        "face": np.ones(n_frames, np.uint8),
        "lm_norm": np.repeat(base[None] / (0.3 * crop), n_frames, 0).astype(np.float32),
        "hands": np.zeros(n_frames, np.uint8),
        "mfcc": rng.normal(0, 1, (3, n_frames, 40)).astype(np.float32),
        # made (not classifier) distributions leaning to the label: the report has data to draw
        "emotion_pred": _made_emotions(rng, emotion, n_frames),
    }
    if with_audio:
        arrays["speech"] = np.full(n_frames, 0.9, np.float32)
    image = np.full((crop, crop, 3), 90, np.uint8)
    centre = (crop // 2, crop // 2)
    cv2.ellipse(image, centre, (int(0.3 * crop), int(0.4 * crop)), 0, 0, 360, (200, 170, 150), -1)
    frame0 = cv2.imencode(".jpg", image[:, :, ::-1])[1].tobytes()
    audio = None
    if with_audio:
        samples = 0.1 * np.sin(
            2 * np.pi * 220 * np.arange(round(t[-1] * SAMPLE_RATE)) / SAMPLE_RATE
        )
        buf = io.BytesIO()
        soundfile.write(buf, samples.astype(np.float32), SAMPLE_RATE, format="FLAC")
        audio = buf.getvalue()
    duration = n_frames / FPS
    stats = ClipStats(
        n_frames=n_frames,
        duration=duration,
        native_fps=30.0,
        decoded_frames=n_frames,
        max_abs_yaw=float(np.abs(yaw).max()),
        max_abs_pitch=float(np.abs(pitch).max()),
        max_abs_roll=float(np.abs(roll).max()),
        scale_min=float(scale.min()),
        scale_max=float(scale.max()),
        scale_median=float(np.median(scale)),
        max_landmark_jump=0.02,
        max_histogram_jump=0.03,
        has_audio=with_audio,
        audio_duration=duration if with_audio else 0.0,
        speech_fraction=1.0 if with_audio else float("nan"),
    )
    clip = Clip(clip_id, dataset, "S01", f"/corpus/{clip_id}.mp4", emotion=emotion,
                intensity=None if emotion is None else 1.0, split=split)  # fmt: skip
    meta = ClipMeta.of(clip, params_hash="test")
    meta.native_fps = 30.0
    return ClipFeatures(meta, stats=stats, arrays=arrays, frame0=frame0, audio=audio)


def _made_emotions(rng: np.random.Generator, emotion: str | None, n_frames: int) -> np.ndarray:
    """(T, 9) float32 rows summing to 1, half the mass on `emotion` (random rows when None)."""
    rows = rng.dirichlet(np.ones(len(EMOTIONS)), n_frames)
    if emotion is not None:
        rows = 0.5 * rows + 0.5 * np.eye(len(EMOTIONS))[EMOTIONS.index(emotion)]
    return rows.astype(np.float32)


def clip_of(record: ClipFeatures) -> Clip:
    """The manifest row a made record stands for (from its meta)."""
    m = record.meta
    return Clip(m.clip_id, m.dataset, m.speaker, m.source, emotion=m.emotion,
                intensity=m.intensity, split=m.split, fps=m.native_fps,
                duration=record.stats.duration)  # fmt: skip


def write_tables(manifest: list[Clip], records: list[ClipFeatures], root: Path) -> None:
    """Lay out what `index` and `extract` hand to `filter` (layout in the contracts):
    `root/manifest.parquet` (the `manifest` clips), and per record of a manifest clip
    `root/features/units/u0/<clip_id>.npz` + one row of `root/features/clips.parquet`
    (manifest fields, status, reason, unit, record, params_hash, the ClipStats fields)."""
    units = root / "features" / "units" / "u0"
    units.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, str(root / "manifest.parquet"))
    clips = {c.clip_id: c for c in manifest}
    rows = []
    for r in records:
        r.save_npz(units / f"{r.clip_id}.npz")
        row = clips[r.clip_id].to_row()
        for name in ("audio_path", "fps", "duration"):
            del row[name]
        row.update(status=r.status, reason=r.reason, unit="u0",
                   record=f"units/u0/{r.clip_id}.npz", params_hash="test")  # fmt: skip
        rows.append({**row, **r.stats.to_dict()})
    pd.DataFrame(rows).to_parquet(root / "features" / "clips.parquet", index=False)
