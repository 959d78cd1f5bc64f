#!/usr/bin/env python3
"""Where an inference pass spends its time, from oneDNN's own log (``ONEDNN_VERBOSE=1``).

Reads one log per side (ours: ``archc-run bench --mode fast``; inductor:
``scripts/torch_compiled.py``), keeps the primitives of the last pass (from the last stem
convolution on), and groups them by kind: 1×1 convolutions, grouped 3×3 convolutions by channels
per group, the 7×7 stem, everything else oneDNN ran (matmul, reorders, pooling). Each row gives
milliseconds, the share of the pass, and GFLOP/s (2 FLOPs per multiply-add). "outside oneDNN" is
the pass's measured time (``--ours-ms``/``--theirs-ms``, timed without logging) minus the logged
sum: for us, pooling, the input cast and our own grouped kernel; for inductor, its generated C++
kernels and its Python wrapper. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys


def last_pass(path: str) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("onednn_verbose") and ",exec," in line:
                rows.append(line.rstrip("\n").split(","))
    starts = [
        i for i, r in enumerate(rows) if "convolution" in r and "ic3oc64" in r[-2]
    ]
    return rows[starts[-1] :] if starts else rows


def dims(desc: str) -> dict[str, int]:
    out = {"g": 1}
    for key in ["mb", "g", "ic", "oc", "oh", "ow", "kh", "kw"]:
        m = re.search(rf"(?<![a-z]){key}(\d+)", desc)
        if m:
            out[key] = int(m.group(1))
    return out


def profile(path: str) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0])
    for r in last_pass(path):
        kind, ms = r[r.index("exec") + 2], float(r[-1])
        if kind == "convolution":
            d = dims(r[-2])
            macs = (
                d["mb"]
                * d["oh"]
                * d["ow"]
                * d["oc"]
                * (d["ic"] // d["g"])
                * d["kh"]
                * d["kw"]
            )
            if d["g"] > 1:
                name = f"grouped {d['kh']}×{d['kw']}, {d['ic'] // d['g']} channels per group"
            else:
                name = f"{d['kh']}×{d['kw']} convolutions"
        else:
            name, macs = f"oneDNN {kind}", 0
        g = groups[name]
        g[0] += ms
        g[1] += macs
        g[2] += 1
    return groups


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("ours")
    p.add_argument("theirs")
    p.add_argument("--ours-ms", type=float, required=True)
    p.add_argument("--theirs-ms", type=float, required=True)
    a = p.parse_args()
    sides = [(profile(a.ours), a.ours_ms), (profile(a.theirs), a.theirs_ms)]
    names = sorted(
        {n for s, _ in sides for n in s}, key=lambda n: -sides[0][0].get(n, [0])[0]
    )

    def cell(groups, total, name):
        if name not in groups:
            return "–"
        ms, macs, n = groups[name]
        rate = f", {2 * macs / ms / 1e6:.0f} GFLOP/s" if macs else ""
        return f"{ms:.1f} ms ({100 * ms / total:.0f}%, {n} calls{rate})"

    print("| where | inference mode | torch.compile (inductor, frozen) |")
    print("|---|---:|---:|")
    for name in names:
        print(f"| {name} | {cell(*sides[0], name)} | {cell(*sides[1], name)} |")
    outside = [t - sum(v[0] for v in g.values()) for g, t in sides]
    print(
        f"| outside oneDNN | {outside[0]:.1f} ms ({100 * outside[0] / sides[0][1]:.0f}%) "
        f"| {outside[1]:.1f} ms ({100 * outside[1] / sides[1][1]:.0f}%) |"
    )
    print(f"| **the pass** | **{sides[0][1]:.1f} ms** | **{sides[1][1]:.1f} ms** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
