#!/usr/bin/env python3
"""Parity fixtures for archc-runtime's tests (runtime/tests/parity.rs).

For each model it writes, into the output folder (default ``target/parity``):

``NAME.weights.safetensors``
    the model's ``state_dict``: seeded random weights (the models' own initialisation under
    ``torch.manual_seed(0)``), with the batch-norm affine parameters and running statistics also
    seeded and random, so that no batch-norm is an identity;
``NAME.io.safetensors``
    ``input`` (a seeded random batch), the output of every stage (``stem``, ``layer1``…) and
    ``head`` (the logits), computed in eval mode in fp32 under ``torch.no_grad()``.

Models: torchvision's ``resnet50`` and ``resnext50_32x4d`` at 224x224, and our PyTorch
ResNeXt-29 (8x64d) for CIFAR (``scripts/reference.py``) at 32x32; batch 2.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import reference  # noqa: E402

MODELS = {
    "resnet50": (lambda: torchvision.models.resnet50(weights=None), (2, 3, 224, 224)),
    "resnext50_32x4d": (lambda: torchvision.models.resnext50_32x4d(weights=None), (2, 3, 224, 224)),
    "resnext29_8x64d": (reference.resnext29_8x64d, (2, 3, 32, 32)),
}


def randomize_batch_norms(model: torch.nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)


@torch.no_grad()
def fixture(name: str, out: str) -> None:
    build, shape = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    gen = torch.Generator().manual_seed(1)
    randomize_batch_norms(model, gen)
    x = torch.randn(*shape, generator=gen)

    outputs: dict[str, torch.Tensor] = {}
    stem = model.maxpool if hasattr(model, "maxpool") else model.relu
    hooks = [stem.register_forward_hook(lambda m, i, o: outputs.__setitem__("stem", o.clone()))]
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        if hasattr(model, stage):
            hooks.append(getattr(model, stage).register_forward_hook(
                lambda m, i, o, s=stage: outputs.__setitem__(s, o.clone())))
    outputs["head"] = model(x)
    for h in hooks:
        h.remove()
    outputs["input"] = x

    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, f"{name}.weights.safetensors"))
    save_file({k: v.contiguous() for k, v in outputs.items()},
              os.path.join(out, f"{name}.io.safetensors"))
    print(f"{name}: {len(state)} tensors, logits {tuple(outputs['head'].shape)}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="target/parity")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    for name in args.models.split(","):
        fixture(name, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
