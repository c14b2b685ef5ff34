"""Training throughput: samples/s of the shard loader alone and of optimizer steps.

    .venv/bin/python benchmarks/train.py                  # CPU, paper-size models, small batch
    .venv/bin/python benchmarks/train.py --device cuda --batch 64 --window 64

The loader reads small generated talking-face shards (space_models.testing) through the real
WebDataset pipeline; the step benchmark runs `train.train_step` (Adam, bf16 autocast on GPU)
on paper-size S2L, PoseGen and L2L. A sample is one window of `--window` frames.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from space_models.data import DataConfig, train_batches
from space_models.layers import parameter_count
from space_models.models import MODELS
from space_models.testing import write_talking_shards
from space_models.train import train_step


def loader_rate(shards: str, window: int, batch: int, n_batches: int, workers: int) -> float:
    config = DataConfig(shards, window=window, shuffle_buffer=64, num_workers=workers)
    batches = iter(train_batches(config, batch, members=MODELS["l2l"].members))
    next(batches)  # start-up (workers, first shard) is not throughput
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(batches)
    return n_batches * batch / (time.perf_counter() - t0)


def step_rate(name: str, shards: str, window: int, batch: int, steps: int, device: str) -> dict:
    torch.manual_seed(0)
    spec = MODELS[name]
    model = spec.model(spec.config()).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)
    batches = iter(train_batches(DataConfig(shards, window=window), batch, members=spec.members))
    data = [{k: v.to(device) for k, v in next(batches).items()} for _ in range(steps + 1)]
    train_step(model, optimizer, data[0], 1e-4, 1.0)  # warm-up (allocations, cuDNN plans)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in data[1:]:
        train_step(model, optimizer, b, 1e-4, 1.0)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / steps
    return {
        "parameters": parameter_count(model),
        "s_per_step": seconds,
        "samples_per_s": batch / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4, help="windows per step")
    parser.add_argument("--window", type=int, default=32, help="frames per window")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model")
    parser.add_argument("--workers", type=int, default=0, help="loader worker processes")
    parser.add_argument("--models", default="s2l,posegen,l2l")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results: dict = {
        "device": args.device,
        "batch": args.batch,
        "window": args.window,
        "threads": torch.get_num_threads(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        shards = str(
            write_talking_shards(
                tmp, n_train=48, n_val=1, n_frames=150, keypoints=True, max_shard_samples=16
            )
        )
        results["loader_samples_per_s"] = loader_rate(shards, args.window, 32, 20, args.workers)
        print(
            f"loader ({args.workers} workers): "
            f"{results['loader_samples_per_s']:.0f} windows/s of {args.window} frames"
        )
        for name in args.models.split(","):
            r = step_rate(name, shards, args.window, args.batch, args.steps, args.device)
            results[name] = r
            print(
                f"{name} paper size ({r['parameters'] / 1e6:.1f} M parameters) on "
                f"{args.device}: {r['s_per_step']:.3f} s/step, {r['samples_per_s']:.3g} "
                f"samples/s (batch {args.batch}, window {args.window})"
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
