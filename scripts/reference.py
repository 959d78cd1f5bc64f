#!/usr/bin/env python3
"""Reference complexity figures for ResNet / ResNeXt models, computed with PyTorch.

The output (default ``tests/reference/torchvision.json``) is the ground truth that
archc's own complexity analysis is tested against.  It is a JSON object keyed by
model name (sorted keys, indent 2).  Every figure is an exact integer and is
defined as follows (batch size 1, eval mode, ``torch.no_grad()``):

``params``
    ``sum(p.numel() for p in model.parameters())`` -- weights, biases and the BN
    affine parameters (gamma/beta).

``buffers``
    Number of elements in the BatchNorm ``running_mean`` and ``running_var``
    buffers only (``num_batches_tracked`` is excluded).

``macs``
    Multiply-accumulates of ``nn.Conv2d`` and ``nn.Linear`` modules only, counted
    with forward hooks:

    * conv:   ``C_out * H_out * W_out * (C_in / groups) * kh * kw``
    * linear: ``in_features * out_features``

    Bias additions, BatchNorm, pooling, ReLU and residual additions are NOT counted.

``activations``
    Sum of the output ``numel()`` (without the batch dimension, i.e. batch 1) of
    every ``nn.Conv2d`` and ``nn.Linear`` module.

``conv_linear_layers``
    Number of ``nn.Conv2d`` + ``nn.Linear`` modules.

``output``
    Output shape without the batch dimension, e.g. ``[1000]``.

``fvcore_flops`` / ``fvcore_by_operator``
    ``fvcore.nn.FlopCountAnalysis(model, x).total()`` and ``.by_operator()``,
    recorded as-is.  fvcore counts one fused multiply-add as one "flop" and, unlike
    ``macs`` above, also counts ``batch_norm`` and ``adaptive_avg_pool2d``.

``stages``
    ``{"macs": ..., "params": ...}`` per top-level group of modules:
    ``stem`` (conv1 + bn1 + relu [+ maxpool]), ``layer1`` .. ``layer4``
    (``layer1`` .. ``layer3`` for the CIFAR networks) and ``head``
    (avgpool + fc).  The stage figures sum to the model totals.

Models: the torchvision constructors ``resnet18/34/50/101/152``,
``resnext50_32x4d``, ``resnext101_32x8d``, ``resnext101_64x4d`` and
``wide_resnet50_2`` (``weights=None``, 1000 classes, input 1x3x224x224), plus the
CIFAR ResNeXt-29 networks ``resnext29_8x64d`` and ``resnext29_16x64d`` (10 classes,
input 1x3x32x32) implemented below after Xie et al. 2017, "Aggregated Residual
Transformations for Deep Neural Networks", CIFAR section.

Usage::

    python3 scripts/reference.py [--out PATH] [--models a,b,...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
import torchvision.models as tvm

# ---------------------------------------------------------------------------
# CIFAR ResNeXt-29
# ---------------------------------------------------------------------------


class CifarBottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1 (in->D), grouped 3x3 (D->D, C groups), 1x1 (D->out)."""

    def __init__(self, in_ch: int, width: int, out_ch: int, groups: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class CifarResNeXt(nn.Module):
    """ResNeXt-29 (Cxd) for CIFAR: 3 stages x 3 blocks, outputs 256/512/1024.

    Bottleneck width D = cardinality * base_width in stage 1 and doubles per stage.
    Module names follow torchvision (conv1, bn1, layer1.0.conv1, ..., fc).
    """

    def __init__(self, cardinality: int, base_width: int = 64, num_classes: int = 10,
                 blocks_per_stage: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        in_ch = 64
        for i, out_ch in enumerate((256, 512, 1024)):
            width = cardinality * base_width * (2 ** i)
            stride = 1 if i == 0 else 2
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(CifarBottleneck(in_ch, width, out_ch, cardinality,
                                              stride if b == 0 else 1))
                in_ch = out_ch
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnext29_8x64d() -> nn.Module:
    return CifarResNeXt(cardinality=8)


def resnext29_16x64d() -> nn.Module:
    return CifarResNeXt(cardinality=16)


# ---------------------------------------------------------------------------
# Model registry
# ---------------------------------------------------------------------------

IMAGENET_INPUT = (1, 3, 224, 224)
CIFAR_INPUT = (1, 3, 32, 32)


def _tv(name: str) -> Callable[[], nn.Module]:
    return lambda: getattr(tvm, name)(weights=None, num_classes=1000)


# name -> (constructor, input shape)
MODELS: Dict[str, Tuple[Callable[[], nn.Module], Tuple[int, ...]]] = {
    **{n: (_tv(n), IMAGENET_INPUT) for n in (
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
        "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2",
    )},
    "resnext29_8x64d": (resnext29_8x64d, CIFAR_INPUT),
    "resnext29_16x64d": (resnext29_16x64d, CIFAR_INPUT),
}


def build(name: str) -> Tuple[nn.Module, torch.Tensor]:
    """Build model `name` (eval mode, seeded) and a matching input tensor."""
    if name not in MODELS:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}")
    ctor, shape = MODELS[name]
    torch.manual_seed(0)
    model = ctor().eval()
    x = torch.randn(*shape)
    return model, x


# ---------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------

STEM = ("conv1", "bn1", "relu", "maxpool")
HEAD = ("avgpool", "fc")


def stage_of(qualified_name: str) -> str:
    """Map a module/parameter name to its stage: stem, layerN or head."""
    top = qualified_name.split(".", 1)[0]
    if top in STEM:
        return "stem"
    if top in HEAD:
        return "head"
    return top


def count_conv_linear(model: nn.Module, x: torch.Tensor) -> Dict[str, object]:
    """Run one forward pass, counting MACs/activations of Conv2d and Linear via hooks.

    Returns macs, activations, conv_linear_layers, output (shape without batch),
    and per-module MACs (``per_module``: name -> macs) for stage attribution.
    """
    per_module: Dict[str, int] = {}
    acts = [0]
    handles = []

    def hook(name: str):
        def fn(mod: nn.Module, _inp, out: torch.Tensor) -> None:
            per_elem = out[0]  # batch element 0
            if isinstance(mod, nn.Conv2d):
                c_out, h, w = per_elem.shape
                kh, kw = mod.kernel_size
                macs = c_out * h * w * (mod.in_channels // mod.groups) * kh * kw
            else:
                macs = mod.in_features * mod.out_features
            per_module[name] = per_module.get(name, 0) + macs
            acts[0] += per_elem.numel()
        return fn

    layers = 0
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            layers += 1
            handles.append(mod.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return {
        "macs": sum(per_module.values()),
        "activations": acts[0],
        "conv_linear_layers": layers,
        "output": list(out.shape[1:]),
        "per_module": per_module,
    }


def count_fvcore(model: nn.Module, x: torch.Tensor):
    """fvcore FlopCountAnalysis (one fused multiply-add = one flop); returns the analysis."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with torch.no_grad():
        fca = FlopCountAnalysis(model, x)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        fca.total()  # force the trace inside no_grad
    return fca


def analyse(name: str) -> Dict[str, object]:
    model, x = build(name)
    counted = count_conv_linear(model, x)

    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for n, b in model.named_buffers()
                  if n.endswith("running_mean") or n.endswith("running_var"))

    stages: Dict[str, Dict[str, int]] = {}
    for child, _ in model.named_children():
        stages.setdefault(stage_of(child), {"macs": 0, "params": 0})
    for pname, p in model.named_parameters():
        stages[stage_of(pname)]["params"] += p.numel()
    for mname, macs in counted["per_module"].items():
        stages[stage_of(mname)]["macs"] += macs
    assert sum(s["params"] for s in stages.values()) == params
    assert sum(s["macs"] for s in stages.values()) == counted["macs"]

    fca = count_fvcore(model, x)
    return {
        "input": list(x.shape),
        "params": params,
        "buffers": buffers,
        "macs": counted["macs"],
        "activations": counted["activations"],
        "conv_linear_layers": counted["conv_linear_layers"],
        "output": counted["output"],
        "fvcore_flops": int(fca.total()),
        "fvcore_by_operator": {k: int(v) for k, v in sorted(fca.by_operator().items())},
        "stages": stages,
    }


def main(argv: List[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.join(here, os.pardir, "tests", "reference", "torchvision.json")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.normpath(default_out),
                    help="output JSON path (default: tests/reference/torchvision.json)")
    ap.add_argument("--models", default=None,
                    help="comma-separated subset of: " + ",".join(sorted(MODELS)))
    args = ap.parse_args(argv)

    names = sorted(MODELS) if not args.models else [m.strip() for m in args.models.split(",") if m.strip()]
    result = {}
    for name in names:
        result[name] = analyse(name)
        r = result[name]
        print(f"{name:20s} params={r['params']:>11,} buffers={r['buffers']:>8,} "
              f"macs={r['macs']:>15,} acts={r['activations']:>11,} "
              f"fvcore={r['fvcore_flops']:>15,}", file=sys.stderr)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, sort_keys=True, indent=2)
        f.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
