"""WebDataset loader over `data/shards`: random windows of N frames, batched with masks.

Each shard sample is one clip (members from `ClipFeatures.shard_members()`); a window is N
consecutive frames of the 30 fps timeline, so frame k of every member (MFCC row, landmarks,
pose, keypoints) belongs to the same time t = (start + k) / 30 s. A window starts on a frame
with a face (S2L and L2L feed that frame back as the known first frame); later frames without
a face stay in and are masked out of the loss.

Training reads resampled shards (each rank and worker draws shards at random with replacement,
so DDP needs no even split of shards), decodes only the members it needs, shuffles in a buffer,
cuts one random window per clip and, with `augment`, picks a random MFCC row (row 0 clean,
rows 1..A augmented). All randomness is seeded from (seed, rank, worker), so a stream is
reproducible (resume replays it, see train.py).

Emotion conditioning (paper Sec. 3.5), per frame (W, E): the corpus label as one-hot × intensity
on every frame when the clip has one (MEAD, RAVDESS, CREMA-D); otherwise the record's
`emotion_pred`, the classifier's per-frame distribution (VoxCeleb2, HDTF), zeros on frames
without a face; zeros when a record has neither (shards from before `emotion_pred`).
"""

from __future__ import annotations

import functools
import io
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from space_data import storage
from space_data.clip import EMOTIONS
from space_data.record import read_meta_json
from space_data.shards import INDEX_NAME, shard_urls, webdataset_fsspec
from space_models.l2l import posed_landmarks

FRAME_MEMBERS = ("lm_norm", "eyes_norm", "pose", "scale", "face", "mfcc")
"""Members every window is cut from (cut_window); a model's spec may ask for more (kp)."""
CLIP_MEMBERS = ("kp_source",)
"""Members with one value per clip; every other member has one row per 30 fps frame."""
EMOTION_MEMBER = "emotion_pred"
"""Decoded when present; unlabelled clips are conditioned on it."""


class DataError(RuntimeError):
    """Missing or unusable shards; the message names the path and the fix."""


@dataclass
class DataConfig:
    """How training windows are cut from the shards."""

    shards: str = "data/shards"
    """Folder with `{split}-NNNNNN.tar` and `index.json` (the pack stage's output); a path or
    a URL (`s3://...`, read through fsspec)."""
    window: int = 64
    """Frames per training window (30 fps)."""
    shuffle_buffer: int = 1000
    """Clips held in the shuffle buffer."""
    augment: bool = True
    """Draw a random MFCC row (clean or augmented) per window; False uses the clean row 0."""
    num_workers: int = 0
    """DataLoader worker processes (0 reads in the training process)."""

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError("data.window must be >= 2 (velocity needs two frames)")
        if self.shuffle_buffer < 1 or self.num_workers < 0:
            raise ValueError("data.shuffle_buffer must be >= 1 and data.num_workers >= 0")


def _urls(shards: str | Path, split: str) -> list[str]:
    """A split's shard paths (or URLs) in index order; DataError when there is no index or no
    shard."""
    try:
        urls = shard_urls(shards, split)
    except FileNotFoundError as e:
        raise DataError(str(e)) from None
    if not urls:
        raise DataError(f"{storage.join(str(shards), INDEX_NAME)} lists no {split} shards")
    webdataset_fsspec()  # the pipelines built from these URLs may open s3://...
    return urls


def missing_members(shards: str | Path, members: tuple[str, ...], split: str = "train") -> list:
    """The `members` that no sample of `split` carries as `<member>.npy` (streams shard by
    shard, each up to the point where every member was seen)."""
    missing = list(members)
    for url in _urls(shards, split):
        if not missing:
            break
        with storage.open_file(url) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            for entry in tar:
                missing = [m for m in missing if not entry.name.endswith(f".{m}.npy")]
                if not missing:
                    break
    return missing


def emotion_vector(emotion: str | None, intensity: float | None) -> np.ndarray:
    """(len(EMOTIONS),) float32: one-hot × intensity; zeros when unlabelled (VoxCeleb2, HDTF)."""
    vec = np.zeros(len(EMOTIONS), np.float32)
    if emotion is not None and intensity is not None:
        vec[EMOTIONS.index(emotion)] = intensity
    return vec


def window_emotion(clip: dict, frames: slice) -> np.ndarray:
    """(W, E) float32 FiLM condition of a window: the label (one-hot × intensity) on every frame
    when the clip is labelled, else its `emotion_pred` rows (NaN → 0), else zeros."""
    meta = clip["meta"]
    n = len(clip["face"][frames])
    if meta.emotion is not None or EMOTION_MEMBER not in clip:
        vec = emotion_vector(meta.emotion, meta.intensity)
        return np.repeat(vec[None], n, axis=0)
    return np.nan_to_num(clip[EMOTION_MEMBER][frames].astype(np.float32))


def _needed(members: tuple[str, ...]) -> tuple[str, ...]:
    return FRAME_MEMBERS + tuple(m for m in members if m not in FRAME_MEMBERS)


def decode(sample: dict, members: tuple[str, ...] = ()) -> dict:
    """A raw WebDataset sample (member → bytes) → {"key", "meta" (`ClipMeta`), member name →
    array} with FRAME_MEMBERS, EMOTION_MEMBER and `members` (those the sample carries); a
    `meta.json` without exactly ClipMeta's fields raises MetaError."""
    names = _needed(members) + (EMOTION_MEMBER,)
    out = {"key": sample["__key__"], "meta": read_meta_json(sample["meta.json"])[0]}
    for name in names:
        raw = sample.get(f"{name}.npy")
        if raw is not None:
            out[name] = np.load(io.BytesIO(raw), allow_pickle=False)
    return out


def window_starts(clip: dict, window: int, members: tuple[str, ...] = ()) -> np.ndarray:
    """Frames where a window of `window` frames can start: a face there, the clip long enough,
    and every per-frame member of `members` (besides FRAME_MEMBERS) finite there."""
    if any(name not in clip for name in _needed(members)):
        return np.zeros(0, np.int64)
    n = min(len(clip["face"]), clip["mfcc"].shape[1]) - window + 1  # candidate starts
    if n <= 0:
        return np.zeros(0, np.int64)
    ok = (clip["face"][:n] > 0) & np.isfinite(clip["lm_norm"][:n]).all((1, 2))
    for name in members:
        if name not in FRAME_MEMBERS + CLIP_MEMBERS:
            ok &= np.isfinite(clip[name][:n].reshape(n, -1)).all(1)
    return np.flatnonzero(ok)


def cut_window(clip: dict, start: int, window: int, mfcc_row: int = 0) -> dict:
    """One training example: frames [start, start + window) of every member.

    mfcc (W, 40), lm (W, 68, 3), eyes (W, 52, 3), pose (W, 6), scale (W,), face (W,) uint8,
    emotion (W, E) (see `window_emotion`); with keypoints also kp (W, K, 3), kp_source (K, 3)
    and the posed landmarks (W, 68, 3) relative to the window's first frame (l2l.posed_landmarks).
    """
    sl = slice(start, start + window)
    ex = {
        "mfcc": clip["mfcc"][mfcc_row, sl],
        "lm": clip["lm_norm"][sl],
        "eyes": clip["eyes_norm"][sl],
        "pose": clip["pose"][sl],
        "scale": clip["scale"][sl],
        "face": clip["face"][sl],
        "emotion": window_emotion(clip, sl),
    }
    if "kp" in clip:
        ex["kp"], ex["kp_source"] = clip["kp"][sl], clip["kp_source"]
        ex["posed"] = posed_landmarks(ex["lm"], ex["pose"], ex["scale"])
    return ex


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack examples; NaN → 0 with masks: `mask` (B, T) face present, `lm_ok` (B, T, 68) and
    `eyes_ok` (B, T, 52) point present (a backend may lack some eye points)."""
    batch = {k: np.stack([ex[k] for ex in examples]) for k in examples[0]}
    mask = batch.pop("face") > 0
    out = {"mask": torch.from_numpy(mask)}
    out["lm_ok"] = torch.from_numpy(mask[..., None] & np.isfinite(batch["lm"]).all(-1))
    out["eyes_ok"] = torch.from_numpy(mask[..., None] & np.isfinite(batch["eyes"]).all(-1))
    for k, v in batch.items():
        out[k] = torch.from_numpy(np.nan_to_num(v.astype(np.float32)))
    return out


MAX_CONSECUTIVE_SKIPS = 1000
"""Clips in a row without a usable window before the loader gives up (else it would spin)."""


def _random_windows(
    src: Iterator[dict], window: int, seed: int, augment: bool, members: tuple[str, ...]
) -> Iterator[dict]:
    _, _, worker, _ = wds.utils.pytorch_worker_info()
    rng = random.Random(seed * 1000 + worker)
    skipped = 0
    for clip in src:
        starts = window_starts(clip, window, members)
        if len(starts) == 0:  # too short, no face, or missing members: nothing to learn from
            skipped += 1
            if skipped >= MAX_CONSECUTIVE_SKIPS:
                raise DataError(
                    f"{skipped} clips in a row have no window of {window} frames starting on a "
                    f"face with {', '.join(_needed(members))}: clips too short for "
                    "train.data.window, or members missing from the shards"
                )
            continue
        skipped = 0
        row = rng.randrange(clip["mfcc"].shape[0]) if augment else 0
        yield cut_window(clip, int(starts[rng.randrange(len(starts))]), window, row)


def train_batches(
    config: DataConfig,
    batch_size: int,
    seed: int = 0,
    rank: int = 0,
    members: tuple[str, ...] = (),
) -> torch.utils.data.DataLoader:
    """Endless batches (dicts of tensors, see `collate`) of random train windows.

    The stream depends only on (seed, rank, num_workers): the same arguments give the same
    batches. `members` (a model spec's) keeps only clips that carry them all (with kp:
    kp / kp_source / posed in the batch).
    """
    seed = seed + 7919 * rank
    pipeline = wds.DataPipeline(
        wds.ResampledShards(_urls(config.shards, "train"), seed=seed, deterministic=True),
        wds.tarfile_to_samples(),
        wds.shuffle(config.shuffle_buffer, initial=min(100, config.shuffle_buffer), seed=seed),
        wds.map(functools.partial(decode, members=members)),
        wds.pipelinefilter(_random_windows)(config.window, seed, config.augment, members),
        wds.batched(batch_size, collation_fn=collate, partial=False),
    )
    # its own generator: creating the iterator must not draw from the global torch RNG, which
    # drives teacher forcing and is restored on resume
    return torch.utils.data.DataLoader(
        pipeline,
        batch_size=None,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )


def clip_dataset(shards: str | Path, split: str, members: tuple[str, ...] = ()) -> wds.DataPipeline:
    """Every decoded clip of `split` (FRAME_MEMBERS and `members`, see `decode`), each once:
    in shard order in one process; in a DataLoader, worker w reads shards w, w + n, ... of n."""
    return wds.DataPipeline(
        wds.SimpleShardList(_urls(shards, split)),
        wds.split_by_worker,
        wds.tarfile_to_samples(),
        wds.map(functools.partial(decode, members=members)),
    )


def _as_is(clip: dict) -> dict:
    return clip  # numpy arrays and the ClipMeta stay as decoded (default_convert makes tensors)


def clip_loader(
    shards: str | Path, split: str, members: tuple[str, ...] = (), num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader over `clip_dataset`: every clip of `split` once, decoded in `num_workers`
    worker processes (the order interleaves the workers' shards)."""
    return torch.utils.data.DataLoader(
        clip_dataset(shards, split, members),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_as_is,
    )


def eval_clips(shards: str | Path, split: str, members: tuple[str, ...] = ()) -> Iterator[dict]:
    """Every decoded clip of `split` (FRAME_MEMBERS and `members`), in shard order."""
    yield from clip_dataset(shards, split, members)
