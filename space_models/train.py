"""One flat training loop for S2L, PoseGen and L2L: `space train --model s2l|posegen|l2l`.

Adam; learning rate warms up linearly from `lr_start` to `lr_peak` over `warmup_steps`, then
follows a cosine to 0 at `steps` (paper: 1e-5 → 5e-4 over 10k steps, 0 at 1M, batch 256).
bf16 autocast on GPU only. Under `torchrun` (RANK / WORLD_SIZE set) the model is wrapped in
DDP (NCCL on GPU, gloo on CPU), each rank reads its own resampled shard stream and the global
batch is split evenly; rank 0 logs (its own loss), checkpoints and writes the metrics.

Checkpoints (`checkpoints/<model>.pt`) hold only state dicts, tensors and plain numbers and
strings, so they load with `torch.load(weights_only=True)`: model, optimizer, step, the model
config, the torch RNG state and the data version (sha256 of `data/shards/index.json`), which
also goes into `reports/train/<model>.json`. A rerun resumes from the checkpoint: the loader
stream is a function of the seed, so the loop replays and discards the batches already used
(as the HF Trainer does) and a resumed run equals an uninterrupted one in a single process.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import torch
import yaml
from torch import nn
from tqdm import tqdm

from space_data import storage
from space_data.config import ConfigError, from_mapping, to_mapping
from space_data.params import params_option, read_params
from space_data.shards import data_version
from space_models.data import DataConfig, DataError, missing_members, train_batches
from space_models.l2l import L2LConfig
from space_models.layers import parameter_count
from space_models.models import MODELS
from space_models.posegen import PoseGenConfig
from space_models.s2l import S2LConfig
from space_models.spec import PRESETS


@dataclass
class TrainConfig:
    """The `train:` section: model sizes, schedule, data windows and output folders."""

    preset: str = "paper"
    """Model sizes: `paper` (SPACE appendix) or `tiny` (tests and the CPU demo)."""
    steps: int = 1_000_000
    """Optimizer steps; the cosine schedule reaches 0 here."""
    warmup_steps: int = 10_000
    """Steps of linear warm-up from lr_start to lr_peak."""
    lr_start: float = 1e-5
    """Learning rate at step 0."""
    lr_peak: float = 5e-4
    """Learning rate at the end of warm-up."""
    batch_size: int = 256
    """Global batch (windows per step, split evenly across DDP ranks)."""
    grad_clip: float = 1.0
    """Max global gradient norm (0 disables clipping)."""
    log_every: int = 100
    """Steps between loss log lines (and history entries in the metrics file)."""
    checkpoint_every: int = 5000
    """Steps between checkpoints (one is always written at the end)."""
    seed: int = 0
    """Seeds the weights, the loader stream and teacher forcing."""
    cpu_threads: int | None = None
    """torch intra-op threads on CPU (None: torch's default). Small models on a busy machine
    run faster with 1: idle worker threads spin and compete for the cores."""
    data: DataConfig = field(default_factory=DataConfig)
    """Shards folder and window cutting."""
    s2l: S2LConfig | None = None
    """S2L sizes and loss weights (None: the preset's); params set fields on top of the
    preset (`params_base`), e.g. `s2l: {teacher_forcing: 0.3}`."""
    posegen: PoseGenConfig | None = None
    """PoseGen sizes, pose normalization and loss weights (None: the preset's)."""
    l2l: L2LConfig | None = None
    """L2L sizes (None: the preset's)."""
    checkpoints: str = "checkpoints"
    """Folder for `<model>.pt`; a path or a URL (`s3://...`)."""
    reports: str = "reports/train"
    """Folder for `<model>.json` (metrics, data version, loss history); a path or a URL."""

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"train.preset must be one of {PRESETS}, not {self.preset!r}")
        for name, spec in MODELS.items():  # every registered model has its field here
            if getattr(self, name) is None:
                setattr(self, name, spec.preset(self.preset))
        if self.steps < 1 or self.batch_size < 1 or self.log_every < 1:
            raise ValueError("train.steps, train.batch_size and train.log_every must be >= 1")
        if not 0 <= self.warmup_steps <= self.steps:
            raise ValueError("train.warmup_steps must lie in [0, steps]")
        if not 0 < self.lr_start <= self.lr_peak:
            raise ValueError("train needs 0 < lr_start <= lr_peak")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError("train.cpu_threads must be >= 1 or null")
        if self.checkpoint_every < 1 or self.grad_clip < 0:
            raise ValueError("train.checkpoint_every must be >= 1 and train.grad_clip >= 0")

    @classmethod
    def params_base(cls, mapping: dict) -> TrainConfig:
        """The config that `train:` params override (space_data.config.from_mapping asks for
        it): the defaults with the model sizes of the preset the mapping picks."""
        preset = mapping.get("preset", cls.preset)
        if preset not in PRESETS:
            raise ConfigError(f"train.preset: expected one of {list(PRESETS)}, got {preset!r}")
        return cls(preset=preset, **{name: spec.preset(preset) for name, spec in MODELS.items()})


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up lr_start → lr_peak, then cosine lr_peak → 0 at `steps`."""
    if step < config.warmup_steps:
        return config.lr_start + (config.lr_peak - config.lr_start) * step / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * config.lr_peak * (1 + math.cos(math.pi * min(1.0, progress)))


def train_step(model, optimizer, batch, lr: float, grad_clip: float) -> tuple[float, dict]:
    """One optimizer step on a batch already on the model's device → (loss, loss parts)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    device_type = batch["mfcc"].device.type
    # bf16 autocast on GPU only: CPU autocast is slow here and fp32 is the reference
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda"):
        loss, parts = model(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item(), parts


# ---------------------------------------------------------------- checkpoints


class CheckpointError(RuntimeError):
    """No usable checkpoint; the message says how to make one."""


def save_checkpoint(path: str, payload: dict) -> None:
    """Whole write (local: temporary name, then rename; object storage: one upload when
    complete) so a crash never leaves half a file."""
    with storage.writing(str(path)) as tmp:
        torch.save(payload, tmp)


def _load(path: str) -> dict:
    """A checkpoint file or URL, safe loading (tensors, numbers, strings only)."""
    return torch.load(io.BytesIO(storage.read_bytes(path)), map_location="cpu", weights_only=True)


def read_checkpoint(path: str | Path, name: str) -> dict:
    """The checkpoint dict (safe loading); CheckpointError when absent or a skip marker."""
    path = str(path)
    if not storage.isfile(path):
        raise CheckpointError(
            f"no trained {name} checkpoint at {path}: run `space train --model {name}` "
            f"(or `dvc repro train@{name}`) first"
        )
    ckpt = _load(path)
    if ckpt.get("skipped"):
        raise CheckpointError(f"{path}: {name} training was skipped: {ckpt['skipped']}")
    if ckpt.get("model_name") != name:
        raise CheckpointError(f"{path} holds a {ckpt.get('model_name')!r} model, not {name!r}")
    return ckpt


def load_model(path: str | Path, name: str) -> tuple[nn.Module, dict]:
    """A trained model in eval mode and its checkpoint dict."""
    ckpt = read_checkpoint(path, name)
    spec = MODELS[name]
    model = spec.model(from_mapping(spec.config, ckpt["config"], name))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


# ---------------------------------------------------------------- the loop


def train(name: str, config: TrainConfig, resume: bool = True, device: str = "auto") -> dict:
    """Train `name` to `config.steps`; returns the metrics written to reports/train/<name>.json."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local_rank if dev.index is None else dev.index)
        torch.cuda.set_device(dev)
    if dev.type == "cpu" and config.cpu_threads is not None:
        torch.set_num_threads(config.cpu_threads)
    if config.batch_size % world:
        raise ConfigError(f"train.batch_size {config.batch_size} is not divisible by {world} ranks")
    ckpt_path = storage.join(config.checkpoints, f"{name}.pt")  # a path or a URL (s3://...)
    report_path = storage.join(config.reports, f"{name}.json")
    version = data_version(config.data.shards)
    spec = MODELS[name]
    mcfg = getattr(config, name)

    missing = missing_members(config.data.shards, spec.members)
    if missing:
        files = ", ".join(f"{m}.npy" for m in missing)
        reason = f"the train shards carry no {files}{spec.missing_hint}"
        print(f"train {name}: skipped: {reason}")
        metrics = {"model": name, "skipped": reason, "data_version": version}
        if rank == 0:  # outputs still exist, so DVC records the skip
            save_checkpoint(ckpt_path, {"model_name": name, **metrics})
            _write_json(report_path, metrics)
        return metrics

    if world > 1:
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    torch.manual_seed(config.seed + rank)
    model = spec.model(mcfg).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr_start)
    step, history = 0, []
    if resume and storage.isfile(ckpt_path):
        ckpt = _load(ckpt_path)
        if not ckpt.get("skipped"):
            _check_resumable(ckpt, ckpt_path, mcfg, version)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            step, history = ckpt["step"], ckpt["history"]
            # exact for one process; other ranks reseed from (seed, rank, step)
            if world == 1:
                torch.set_rng_state(ckpt["rng"])
            else:
                torch.manual_seed(config.seed + rank + 1_000_003 * step)
            print(f"train {name}: resuming from {ckpt_path} at step {step}")
    net = model
    if world > 1:
        ids = [dev.index] if dev.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    batches = iter(
        train_batches(
            config.data, config.batch_size // world, config.seed, rank, members=spec.members
        )
    )
    for _ in tqdm(range(step), desc="replaying loader", disable=rank != 0 or step == 0):
        next(batches)  # the stream is deterministic: skip what the resumed steps already saw

    def payload() -> dict:
        return {
            "model_name": name,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "config": to_mapping(mcfg),
            "preset": config.preset,
            "data_version": version,
            "rng": torch.get_rng_state(),
            "world_size": world,
            "history": history,
        }

    if rank == 0:
        n_params = parameter_count(model)
        print(
            f"train {name}: {config.preset} preset, {n_params:,} parameters, data {version[:12]}, "
            f"{world} rank(s) on {dev}, steps {step} → {config.steps}"
        )
    net.train()
    window_loss, window_parts, t0, start = 0.0, {}, time.perf_counter(), step
    bar = tqdm(total=config.steps, initial=step, desc=f"train {name}", disable=rank != 0)
    while step < config.steps:
        batch = {k: v.to(dev, non_blocking=True) for k, v in next(batches).items()}
        loss, parts = train_step(
            net, optimizer, batch, learning_rate(step, config), config.grad_clip
        )
        step += 1
        bar.update(1)
        window_loss += loss
        for k, v in parts.items():
            window_parts[k] = window_parts.get(k, 0.0) + v
        if step % config.log_every == 0 or step == config.steps:
            n = step - (history[-1]["step"] if history else 0)
            entry = {
                "step": step,
                "lr": learning_rate(step - 1, config),
                "loss": window_loss / n,
                **{k: v / n for k, v in window_parts.items()},
            }
            history.append(entry)
            window_loss, window_parts = 0.0, {}
            bar.set_postfix(loss=f"{entry['loss']:.4f}")
            if rank == 0:
                tqdm.write(json.dumps(entry))
        if rank == 0 and (step % config.checkpoint_every == 0 or step == config.steps):
            save_checkpoint(ckpt_path, payload())
    bar.close()
    elapsed = time.perf_counter() - t0
    metrics = {
        "model": name,
        "preset": config.preset,
        "data_version": version,
        "steps": step,
        "batch_size": config.batch_size,
        "world_size": world,
        "parameters": parameter_count(model),
        "final_loss": history[-1]["loss"] if history else None,
        "samples_per_s": (step - start) * config.batch_size / elapsed if step > start else None,
        "history": history,
    }
    if rank == 0:
        _write_json(report_path, metrics)
    if world > 1:
        torch.distributed.destroy_process_group()
    return metrics


def _check_resumable(ckpt: dict, path: str, mcfg: Any, version: str) -> None:
    if ckpt["config"] != to_mapping(mcfg):
        raise CheckpointError(
            f"{path} was trained with another model config; pass --no-resume to start over"
        )
    if ckpt["data_version"] != version:
        raise CheckpointError(
            f"{path} was trained on data {ckpt['data_version'][:12]}, the "
            f"shards are {version[:12]}; pass --no-resume to start over"
        )


def _write_json(path: str, obj: dict) -> None:
    storage.write_text(path, json.dumps(obj, indent=2) + "\n")


# ---------------------------------------------------------------- CLI


def parse_overrides(pairs: tuple[str, ...]) -> dict:
    """`("steps=200", "data.window=32")` → {"steps": 200, "data": {"window": 32}} (YAML values)."""
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="OVERRIDES")
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def load_train_config(params: str | Path, overrides: tuple[str, ...] = ()) -> TrainConfig:
    """The `train:` section of params.yaml with command-line overrides applied."""
    section = read_params(params).get("train") or {}
    return from_mapping(TrainConfig, _merge(section, parse_overrides(overrides)), "train")


@click.command("train")
@click.option(
    "--model",
    "name",
    type=click.Choice(sorted(MODELS)),
    required=True,
    help="Which model to train.",
)
@click.argument("overrides", nargs=-1)
@params_option("train")
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from checkpoints/<model>.pt when it exists.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (cuda when available), cpu, cuda, cuda:N.",
)
def cli(name: str, overrides: tuple[str, ...], params: str, resume: bool, device: str) -> None:
    """Train S2L, PoseGen or L2L on data/shards.

    OVERRIDES are KEY=VALUE pairs on top of params.yaml's `train:` section, e.g.
    `space train --model s2l preset=tiny steps=200 data.window=32 s2l.teacher_forcing=0.3`.
    For DDP: `torchrun --nproc_per_node N -m space_models.train --model s2l ...`.
    """
    try:
        config = load_train_config(params, overrides)
        train(name, config, resume=resume, device=device)
    except (CheckpointError, DataError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e


if __name__ == "__main__":  # torchrun --nproc_per_node N -m space_models.train --model s2l
    cli()
