"""Small talking-face records and shards for the model tests and the training benchmark
(lhotse-style dummies shipped in the package).

The motion is a known function of the audio features, so a model can learn it: the mouth
opens with MFCC coefficient 0 of the same frame, the eyelids follow coefficient 1, and the
head yaws with coefficient 2. Not extraction output: shapes and units follow ARRAY_MEMBERS.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from space_data.clip import EMOTIONS, Clip
from space_data.record import ClipFeatures, ClipMeta
from space_data.shards import PackConfig, sample_members, write_shards
from space_models.l2l import posed_landmarks
from space_models.s2l import MOUTH

N_KEYPOINTS = 15
_rng0 = np.random.default_rng(0)
_jaw = np.linspace(np.pi, 0, 17)
FACE = np.concatenate(
    [
        np.stack([np.cos(_jaw), 0.6 * np.sin(_jaw) - 0.2, np.zeros(17)], 1),
        _rng0.uniform([-0.6, -0.8, 0.0], [0.6, 0.5, 0.3], (51, 3)),
    ]
).astype(np.float32)
"""(68, 3) still face in lm_norm units: jaw from (−1, −0.2) to (1, −0.2), other points inside."""
EYES = _rng0.uniform([-0.6, -0.6, 0.0], [0.6, -0.3, 0.2], (52, 3)).astype(np.float32)
KP_MAP = _rng0.normal(0, 1 / np.sqrt(68), (N_KEYPOINTS, 68)).astype(np.float32)
"""Keypoints are a fixed linear map of the posed landmarks (a stand-in for face-vid2vid)."""


def make_talking_record(
    clip_id: str,
    n_frames: int = 60,
    split: str = "train",
    emotion: str | None = "happy",
    keypoints: bool = False,
    augmentations: int = 2,
    missing: tuple[int, ...] = (),
) -> ClipFeatures:
    """A record seeded by `clip_id`; frames in `missing` have no face (NaN arrays, face 0)."""
    rng = np.random.default_rng(zlib.crc32(clip_id.encode()))
    clean = rng.normal(0, 1, (n_frames, 40)).astype(np.float32)
    # rows 1..A: the same speech "augmented" (perturbed), as the extractor's pitch/EQ/gain rows
    noise = rng.normal(0, 0.1, (augmentations, n_frames, 40)).astype(np.float32)
    mfcc = np.concatenate([clean[None], clean[None] + noise])
    opening = 0.15 * np.tanh(clean[:, 0])  # (T,)
    lm = np.repeat(FACE[None], n_frames, 0)
    lm[:, MOUTH, 1] += opening[:, None] * np.where(np.arange(68)[MOUTH] < 55, -1.0, 1.0)
    eyes = np.repeat(EYES[None], n_frames, 0)
    eyes[:, :, 1] += 0.05 * np.tanh(clean[:, 1])[:, None]
    pose = np.zeros((n_frames, 6), np.float32)
    pose[:, 0] = 10 * np.tanh(clean[:, 2])
    pose[:, 1] = 3 * np.sin(np.arange(n_frames) / 10 + rng.uniform(0, 6))
    pose[:, 3:5] = 256 + 5 * np.cumsum(rng.normal(0, 1, (n_frames, 2)), 0)  # crop pixels
    scale = np.full(n_frames, 120.0, np.float32)  # crop pixels per half ear-to-ear distance
    face = np.ones(n_frames, np.uint8)
    arrays = {
        "lm_norm": lm,
        "eyes_norm": eyes,
        "pose": pose,
        "scale": scale,
        "face": face,
        "mfcc": mfcc,
        # the classifier's per-frame distributions (every record has them)
        "emotion_pred": rng.dirichlet(np.ones(len(EMOTIONS)), n_frames).astype(np.float32),
    }
    if keypoints:
        posed = posed_landmarks(lm, pose, scale)
        arrays["kp"] = np.einsum("kn,tnc->tkc", KP_MAP, posed).astype(np.float32)
        arrays["kp_source"] = arrays["kp"][0].copy()
    for k in missing:
        face[k] = 0
        for name in (
            "lm_norm",
            "eyes_norm",
            "pose",
            "scale",
            "emotion_pred",
            *(("kp",) if keypoints else ()),
        ):
            arrays[name][k] = np.nan
    intensity = None if emotion is None else (0.0 if emotion == "neutral" else 1.0)
    dataset = "mead" if emotion else "voxceleb2"
    clip = Clip(clip_id, dataset, "S01", f"/corpus/{clip_id}.mp4", emotion=emotion,
                intensity=intensity, split=split)  # fmt: skip
    return ClipFeatures(ClipMeta.of(clip, params_hash="test"), arrays=arrays)


def write_talking_shards(
    out_dir: str | Path,
    n_train: int = 8,
    n_val: int = 2,
    n_frames: int = 60,
    keypoints: bool = False,
    max_shard_samples: int = 4,
    records: list[ClipFeatures] | None = None,
) -> Path:
    """Shards + index.json of talking records (or of `records`, split from their meta) through
    the project's shard writer; clip 1 of each split has no face in its middle frame. Returns
    `out_dir`."""
    if records is None:
        records = [
            make_talking_record(
                f"{split}-{i:03d}",
                n_frames,
                split,
                EMOTIONS[i % len(EMOTIONS)] if i % 3 else None,
                keypoints,
            )
            for split, n in (("train", n_train), ("val", n_val), ("test", n_val))
            for i in range(n)
        ]
    config = PackConfig(max_shard_samples=max_shard_samples)
    samples = sorted(
        ((r.meta.split, r.clip_id, sample_members(r, config)) for r in records),
        key=lambda s: (("train", "val", "test").index(s[0]), s[1]),
    )
    write_shards(samples, out_dir, config)
    return Path(out_dir)
