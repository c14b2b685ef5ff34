"""Rendering speed of the face-vid2vid generator: seconds per 256×256 frame.

    .venv/bin/python benchmarks/generator.py                      # CPU, batches of 1 and 4
    .venv/bin/python benchmarks/generator.py --device cuda --batch 1 8 32

Runs space_models.generator.OcclusionAwareSPADEGenerator at the public Vox-256 size with
random weights (the cost does not depend on the weights; nothing here is an image-quality
result): the source is encoded once, then `render` runs per batch of driving keypoints, as
`space animate` does. Prints one JSON line per batch size.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from space_data.keypoints import torch_device
from space_models.generator import OcclusionAwareSPADEGenerator


def seconds_per_frame(generator, device, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    source = torch.rand(1, 3, 256, 256, device=device)
    kp_source = torch.rand(1, 15, 3, device=device) * 1.6 - 0.8
    kp_driving = kp_source + 0.05 * torch.randn(batch, 15, 3, device=device)
    with torch.no_grad():
        t0 = time.perf_counter()
        feature = generator.encode(source)
        encode = time.perf_counter() - t0
        generator.render(feature, kp_source.expand(batch, -1, -1), kp_driving)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            generator.render(feature, kp_source.expand(batch, -1, -1), kp_driving)
        if device.type == "cuda":
            torch.cuda.synchronize()
        per_frame = (time.perf_counter() - t0) / (repeats * batch)
    return {"batch": batch, "s_per_frame": round(per_frame, 4), "encode_s": round(encode, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch_device(args.device)
    generator = OcclusionAwareSPADEGenerator().eval().to(device)
    info = {"device": str(device), "threads": torch.get_num_threads()}
    for batch in args.batch:
        print(json.dumps({**info, **seconds_per_frame(generator, device, batch, args.repeats)}))


if __name__ == "__main__":
    main()
