#!/usr/bin/env python3
"""Times PyTorch eager training steps of a torchvision model, for runtime/benches/train_step.rs.

One step: zero the gradients, forward in train mode, cross-entropy, backward, SGD (momentum 0.9,
weight decay 5e-4, PyTorch's default implementation for the device), and read the loss
(``loss.item()``, which waits for the device). ``--precision bf16`` runs the forward pass and the
loss under ``torch.autocast(dtype=torch.bfloat16)``, PyTorch's mixed precision. Prints one JSON
object: the median and minimum milliseconds per step over ``--repeat`` timed steps after
``--warmup`` untimed ones, and the device's name.

``--serve`` keeps four models ready (fp32 and bf16, each also in channels-last memory order)
and answers, for each line ``fp32``, ``bf16``, ``fp32-cl`` or ``bf16-cl`` read from stdin, with the milliseconds of one such step: the benchmark alternates its
own steps with these, step by step, so that a change of the machine's speed hits both sides.
It first prints one JSON line with the device's name.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

sys.dont_write_bytecode = True

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnext50_32x4d")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--serve", action="store_true")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, a.size, a.size, device=device)
    y = torch.randint(0, 1000, (a.batch,), device=device)

    def make(bf16, cl=False):
        model = getattr(torchvision.models, a.model)(weights=None).train().to(device)
        xs = x
        if cl:
            model = model.to(memory_format=torch.channels_last)
            xs = x.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(xs), y)
            loss.backward()
            opt.step()
            return loss.item()

        return step

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    if a.serve:
        steps = {
            "fp32": make(False), "bf16": make(True),
            "fp32-cl": make(False, True), "bf16-cl": make(True, True),
        }
        print(json.dumps({"device_name": name, "threads": torch.get_num_threads()}), flush=True)
        for line in sys.stdin:
            t = time.perf_counter()
            steps[line.strip()]()
            print(f"{(time.perf_counter() - t) * 1e3:.4f}", flush=True)
        return 0
    step = make(a.precision == "bf16")
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.repeat):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    print(json.dumps({
        "model": a.model, "batch": a.batch, "size": a.size, "precision": a.precision,
        "device": a.device, "device_name": name, "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
