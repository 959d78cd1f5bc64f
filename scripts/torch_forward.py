#!/usr/bin/env python3
"""Times PyTorch eager inference of a torchvision model, for runtime/benches/forward.rs.

Modes: ``fp32`` (plain eager, NCHW), ``fp32-cl`` (channels-last), ``bf16-cl`` (bf16 autocast
with channels-last: PyTorch's best eager configuration on a CPU with AMX-bf16). Prints one JSON
object: the median and minimum milliseconds per batch over ``--repeat`` timed passes, after
``--warmup`` untimed ones, under ``torch.inference_mode()``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

sys.dont_write_bytecode = True

import torch  # noqa: E402
import torchvision  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnext50_32x4d")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--mode", choices=["fp32", "fp32-cl", "bf16-cl"], default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.model)(weights=None).eval().to(device)
    x = torch.randn(a.batch, 3, 224, 224, device=device)
    if a.mode.endswith("-cl"):
        model = model.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)

    def forward():
        if a.mode == "bf16-cl":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                return model(x)
        return model(x)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    with torch.inference_mode():
        for _ in range(a.warmup):
            forward()
        sync()
        for _ in range(a.repeat):
            t = time.perf_counter()
            forward()
            sync()
            times.append(time.perf_counter() - t)
    print(json.dumps({
        "model": a.model, "batch": a.batch, "mode": a.mode, "device": a.device,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
