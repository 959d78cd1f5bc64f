#!/usr/bin/env python3
"""The torch.compile side of runtime/benches/compiled.rs: a torchvision model compiled once with
inductor and ``freezing=True`` (batch-norm folded, oneDNN weights pre-packed, convolutions fused
with ReLU and the residual add), then timed on request.

It takes the same input the inference mode takes (float32 NCHW) and returns float32 logits: the
cast to ``--dtype`` and the channels-last transpose are part of the compiled graph, as they are
part of our plan. After compiling it prints one JSON line ``{"compile_s": …}``; then each line
``time N`` on standard input runs N timed passes and prints ``{"ms": [...]}``; ``quit`` or the end
of input stops it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

sys.dont_write_bytecode = True

import torch  # noqa: E402
import torch._inductor.config as inductor_config  # noqa: E402
import torchvision  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnext50_32x4d")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtype", choices=["fp32", "bf16"], default="bf16")
    p.add_argument(
        "--mode",
        default="default",
        help="torch.compile mode (the benchmark uses reduce-overhead on CUDA)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    inductor_config.freezing = True
    device = torch.device(a.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.manual_seed(0)
    model = getattr(torchvision.models, a.model)(weights=None).eval().to(device)
    model = model.to(dtype).to(memory_format=torch.channels_last)

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = x.to(dtype).contiguous(memory_format=torch.channels_last)
        return model(x).float()

    mode = None if a.mode == "default" else a.mode
    compiled = torch.compile(forward, mode=mode)
    x = torch.randn(a.batch, 3, 224, 224, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        t = time.perf_counter()
        compiled(x)
        sync()
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        print(
            json.dumps(
                {
                    "compile_s": time.perf_counter() - t,
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "device_name": name,
                }
            ),
            flush=True,
        )
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] != "time" or len(words) != 2 or not words[1].isdigit():
                print(json.dumps({"error": f"expected `time N` or `quit`, got {line.strip()!r}"}),
                      flush=True)
                continue
            ms = []
            for _ in range(int(words[1])):
                t = time.perf_counter()
                compiled(x)
                sync()
                ms.append((time.perf_counter() - t) * 1e3)
            print(json.dumps({"ms": ms}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
