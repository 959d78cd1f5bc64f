#!/usr/bin/env python3
"""Build ONE named model and print its multiply-adds from Conv2d/Linear forward hooks.

MACs = sum over Conv2d of C_out*H_out*W_out*(C_in/groups)*kh*kw plus, over Linear,
in_features*out_features (batch 1; no bias/BN/pool/activation/add).  Used by a
benchmark that times the whole Python process (imports + construction + forward).

Usage: python3 scripts/count_torchvision.py resnext50_32x4d
Model names and inputs are those of scripts/reference.py.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import MODELS, build, count_conv_linear  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} MODEL  (one of: {', '.join(sorted(MODELS))})", file=sys.stderr)
        return 2
    model, x = build(sys.argv[1])
    print(count_conv_linear(model, x)["macs"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
