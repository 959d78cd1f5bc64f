#!/usr/bin/env python3
"""Build ONE named model and print one counter's total; benchmarks time the whole process.

  python3 scripts/count.py macs MODEL     multiply-adds from Conv2d/Linear forward hooks:
                                          sum of C_out*H_out*W_out*(C_in/groups)*kh*kw over Conv2d
                                          plus in_features*out_features over Linear (batch 1; no
                                          bias, BN, pool, activation or add)
  python3 scripts/count.py fvcore MODEL   fvcore's FlopCountAnalysis total (one fused multiply-add
                                          is one "flop"; it also counts batch_norm and
                                          adaptive_avg_pool2d)

Model names and inputs are those of scripts/reference.py.
"""
import os
import sys

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import MODELS, build, count_conv_linear, count_fvcore  # noqa: E402

COUNTERS = {
    "macs": lambda model, x: count_conv_linear(model, x)["macs"],
    "fvcore": lambda model, x: int(count_fvcore(model, x).total()),
}


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in COUNTERS or sys.argv[2] not in MODELS:
        print(
            f"usage: {sys.argv[0]} {{{'|'.join(COUNTERS)}}} MODEL  (one of: {', '.join(sorted(MODELS))})",
            file=sys.stderr,
        )
        return 2
    model, x = build(sys.argv[2])
    print(COUNTERS[sys.argv[1]](model, x))
    return 0


if __name__ == "__main__":
    sys.exit(main())
