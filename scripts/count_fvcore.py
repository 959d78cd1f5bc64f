#!/usr/bin/env python3
"""Build ONE named model and print its fvcore FlopCountAnalysis total.

fvcore counts one fused multiply-add as one "flop" (and also counts batch_norm
and adaptive_avg_pool2d).  Used by a benchmark that times the whole Python
process (imports + model construction + tracing + counting).

Usage: python3 scripts/count_fvcore.py resnext50_32x4d
Model names and inputs are those of scripts/reference.py.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import MODELS, build, count_fvcore  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} MODEL  (one of: {', '.join(sorted(MODELS))})", file=sys.stderr)
        return 2
    model, x = build(sys.argv[1])
    print(int(count_fvcore(model, x).total()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
