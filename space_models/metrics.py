"""Evaluation on the val/test shards: `space evaluate` → `reports/train/eval.json`.

S2L (SPACE's landmark metrics, lower is better):
- M-P, M-V: mouth landmarks (iBUG 48–67, x and y) normalized per frame by the similarity that
  puts the mouth corners (48, 54) at (−1, 0) and (1, 0); mean absolute error of positions and
  of velocities (first differences, per 30 fps frame).
- F-P, F-V: all 68 landmarks in the lm_norm normalization (x, y, z); MAE of positions and
  velocities.
PoseGen: MAE of yaw/pitch/roll (degrees) of one sampled motion per clip (z ~ N(0, 1) with a
fixed seed; a sample is one plausible motion, so this measures scale rather than match).
L2L: MAE of keypoints. Each clip is run once without teacher forcing from its first frame with
a face, for at most `max_frames` frames; errors are averaged over valid frames of all clips.

Each model declares its own metrics (`evaluate` in its ModelSpec, space_models/spec.py; the
functions above live in s2l.py, posegen.py and l2l.py); this module loops over the registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click
import torch
from tqdm import tqdm

from space_data import storage
from space_data.params import DEFAULT_PARAMS, load_section, params_option
from space_data.shards import data_version
from space_models.data import DataError, collate, cut_window, eval_clips, window_starts
from space_models.models import MODELS
from space_models.spec import ModelSpec
from space_models.train import CheckpointError, load_model, load_train_config


@dataclass
class EvalConfig:
    """The `evaluate:` section."""

    splits: tuple[str, ...] = ("val", "test")
    """Shard splits to evaluate on."""
    max_frames: int = 300
    """Frames per clip (10 s at 30 fps), from the first frame with a face."""
    seed: int = 0
    """Seed of PoseGen's z samples."""

    def __post_init__(self) -> None:
        self.splits = tuple(self.splits)
        if not self.splits or any(s not in ("train", "val", "test") for s in self.splits):
            raise ValueError("evaluate.splits must be a non-empty subset of train/val/test")
        if self.max_frames < 2:
            raise ValueError("evaluate.max_frames must be >= 2")


def _example(clip: dict, max_frames: int, spec: ModelSpec) -> dict[str, torch.Tensor] | None:
    """One clip as a batch of 1: from its first usable frame, at most `max_frames` frames."""
    starts = window_starts(clip, 2, spec.members)
    if len(starts) == 0:
        return None
    start = int(starts[0])
    length = min(max_frames, clip["mfcc"].shape[1] - start, len(clip["face"]) - start)
    return collate([cut_window(clip, start, length)])


def evaluate_model(spec: ModelSpec, model, shards: str, split: str, config: EvalConfig) -> dict:
    """Mean errors of one model over one split (`spec.evaluate` per clip, summed per frame)."""
    sums: dict[str, list] = {}
    generator = torch.Generator().manual_seed(config.seed)
    clips = 0
    progress = tqdm(eval_clips(shards, split, spec.members), desc=f"{spec.name} {split}")
    for clip in progress:
        b = _example(clip, config.max_frames, spec)
        if b is None:  # lacks a member the model reads, or no usable frame
            continue
        clips += 1
        for k, (total, count) in spec.evaluate(model, b, generator).items():
            acc = sums.setdefault(k, [0.0, 0])
            acc[0] += total
            acc[1] += count
    result = {k: (total / count if count else None) for k, (total, count) in sums.items()}
    return {"clips": clips, **result}


def evaluate(params: str | Path = DEFAULT_PARAMS) -> dict:
    """Evaluate every trained model on the configured splits; writes reports/train/eval.json."""
    train_config = load_train_config(params)
    config = load_section("evaluate", EvalConfig, params)
    if train_config.cpu_threads is not None:
        torch.set_num_threads(train_config.cpu_threads)
    shards = train_config.data.shards
    report: dict = {"data_version": data_version(shards), "models": {}}
    for name, spec in MODELS.items():
        path = storage.join(train_config.checkpoints, f"{name}.pt")
        try:
            model, ckpt = load_model(path, name)
        except CheckpointError as e:
            report["models"][name] = {"skipped": str(e)}
            print(f"evaluate {name}: skipped: {e}")
            continue
        entry = {"checkpoint_data_version": ckpt["data_version"], "step": ckpt["step"]}
        if ckpt["data_version"] != report["data_version"]:
            print(
                f"evaluate {name}: warning: trained on data {ckpt['data_version'][:12]}, "
                f"evaluated on {report['data_version'][:12]}"
            )
        for split in config.splits:
            try:
                entry[split] = evaluate_model(spec, model, shards, split, config)
            except DataError as e:
                entry[split] = {"skipped": str(e)}
            print(f"evaluate {name} {split}: {json.dumps(entry[split])}")
        report["models"][name] = entry
    storage.write_text(
        storage.join(train_config.reports, "eval.json"), json.dumps(report, indent=2) + "\n"
    )
    return report


@click.command("evaluate")
@params_option("train", "evaluate")
def cli(params: str) -> None:
    """Evaluate the trained models on the val/test shards → reports/train/eval.json.

    S2L: M-P, M-V (mouth, corners normalized to (∓1, 0)) and F-P, F-V (face, lm_norm units);
    PoseGen: angle MAE of a sampled motion; L2L: keypoint MAE. Models without a checkpoint
    are listed as skipped.
    """
    try:
        evaluate(params)
    except (DataError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
