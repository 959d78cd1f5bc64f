#!/usr/bin/env python3
"""Checks ONNX models written by ``archc export onnx`` (compiler/tests/onnx.rs runs it).

For each MODEL it runs ``onnx.checker.check_model(full_check=True)`` (which also runs strict
shape inference) and prints one JSON object per line with what the file holds: opset, IR
version, input and output names and shapes, node count and operator types, and the initializers
added up as ``params`` and ``buffers`` (batch-norm ``running_mean`` and ``running_var``), as
``archc check --json`` counts them.

With ``--io FILE.safetensors`` (from ``scripts/parity.py``) it also runs the model with ONNX
Runtime on the CPU, on ``input`` (and on its first image alone, which exercises the dynamic batch
axis), and reports the relative L2 error against ``head`` (PyTorch's logits) as ``rel_l2`` and
``rel_l2_batch1``. ``--against OTHER.onnx`` runs both models on one seeded random batch of 2 and
reports their relative L2 difference as ``rel_l2_against`` (the same weights in two block forms
must agree). ``--time N`` times N forward passes after one warm-up and reports the median
in ``ms`` (and the fastest in ``ms_min``); ``--threads`` sets ONNX Runtime's intra-op threads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

sys.dont_write_bytecode = True

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import numpy_helper  # noqa: E402


def dims(value_info: onnx.ValueInfoProto) -> list:
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_param if d.HasField("dim_param") else d.dim_value)
    return out


def rel_l2(ours: np.ndarray, theirs: np.ndarray) -> float:
    ours = ours.astype(np.float64)
    theirs = theirs.astype(np.float64)
    return float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))


def check(path: str, args: argparse.Namespace) -> dict:
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path)
    g = model.graph
    params = buffers = 0
    for t in g.initializer:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        assert numpy_helper.to_array(t).size == n, t.name
        if t.name.endswith(".running_mean") or t.name.endswith(".running_var"):
            buffers += n
        else:
            params += n
    report = {
        "model": path,
        "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0],
        "ir_version": model.ir_version,
        "producer": model.producer_name,
        "doc_string": model.doc_string,
        "inputs": [{"name": i.name, "dims": dims(i)} for i in g.input],
        "outputs": [{"name": o.name, "dims": dims(o)} for o in g.output],
        "nodes": len(g.node),
        "node_names": [n.name for n in g.node[:3]],
        "op_types": sorted({n.op_type for n in g.node}),
        "initializers": len(g.initializer),
        "initializer_names": [t.name for t in g.initializer[:3]],
        "params": params,
        "buffers": buffers,
    }
    if args.io or args.time or args.against:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if args.threads:
            opts.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        if args.io:
            from safetensors.numpy import load_file

            io = load_file(args.io)
            x, want = io["input"], io["head"]
            got = sess.run(None, {name: x})[0]
            report["logits_shape"] = list(got.shape)
            report["rel_l2"] = rel_l2(got, want)
            got1 = sess.run(None, {name: x[:1]})[0]
            report["rel_l2_batch1"] = rel_l2(got1, want[:1])
        if args.against:
            other = ort.InferenceSession(args.against, opts, providers=["CPUExecutionProvider"])
            shape = [2] + [d for d in dims(g.input[0])[1:]]
            x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
            theirs = other.run(None, {other.get_inputs()[0].name: x})[0]
            report["rel_l2_against"] = rel_l2(sess.run(None, {name: x})[0], theirs)
        if args.time:
            shape = [args.batch] + [d for d in dims(g.input[0])[1:]]
            x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
            sess.run(None, {name: x})
            times = []
            for _ in range(args.time):
                t0 = time.perf_counter()
                sess.run(None, {name: x})
                times.append((time.perf_counter() - t0) * 1e3)
            report["ms"] = float(np.median(times))
            report["ms_min"] = float(np.min(times))
            report["batch"] = args.batch
            report["ort_version"] = ort.__version__
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--io", help="parity fixture with `input` and `head`")
    parser.add_argument("--against", help="another model to compare outputs with")
    parser.add_argument("--time", type=int, default=0, help="time N forward passes")
    parser.add_argument("--batch", type=int, default=1, help="batch size for --time")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    for m in args.models:
        print(json.dumps(check(m, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
