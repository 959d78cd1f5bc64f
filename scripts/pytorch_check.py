#!/usr/bin/env python3
"""Checks the PyTorch modules that `archc codegen --target pytorch` generates.

runtime/tests/pytorch.rs generates one module per shipped spec and form, writes a manifest and
runs this script; it then runs the Rust runtime on the files written here. For each case of the
manifest (a JSON list of objects: ``module``, ``class``, ``spec``, ``form``, ``reference``,
``params``, ``buffers``, ``input``, ``vars``), in eval mode on the CPU:

1. the module compiles (``compile``) and imports with only torch;
2. its ``state_dict`` (without ``num_batches_tracked``) has exactly the runtime's variable names
   and shapes (``vars``, from ``Network::new``), and the parameter and buffer counts equal
   archc's (``params``, ``buffers``) and the class constants ``PARAMS`` and ``BUFFERS``;
3. where ``reference`` names a torchvision model (or the CIFAR reference of
   ``scripts/reference.py``), the grouped form's ``state_dict`` keys, order and shapes equal the
   reference's, ``load_state_dict(reference.state_dict(), strict=True)`` succeeds, one forward
   pass calls the same aten operations as many times each (PyTorch's profiler), and the logits
   equal the reference's (relative L2 error <= 1e-5); the concat and split forms load the same
   weights through :func:`paths_state_dict` and give the same logits (<= 1e-5);
4. it writes ``OUT/CASE.weights.safetensors`` (the module's own ``state_dict``, with torchvision's
   names and ``num_batches_tracked``) and ``OUT/CASE.io.safetensors`` (``input``, ``logits``) for
   the Rust side.

Weights are seeded and random, batch-norm statistics included, so that no batch-norm is an
identity. Inputs are small (a quarter of the spec's height and width, at least 8): the networks
end in a global average pool, so any size that survives the strides checks the same code.

Usage: ``python3 scripts/pytorch_check.py --manifest M.json --out DIR``

With ``--module M.py --class C --weights W.safetensors --io IO.safetensors`` it checks one
checkpoint instead (one saved by the Rust runtime's ``weights::save``): it loads into the
generated module with ``strict=True``, and the logits on ``input`` equal ``logits`` (<= 1e-5).
With ``--ranks DIR`` it checks that the files ``DIR/rank*.safetensors`` that
``ddp_train.py --dump-ranks`` writes are identical to each other and to ``DIR/last.safetensors``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference
import torch
from parity import randomize_batch_norms
from safetensors.torch import save_file

TOLERANCE = 1e-5


def load_module(path: str, name: str):
    with open(path) as f:
        compile(f.read(), path, "exec")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Seeded random batch-norm affine parameters and statistics (scripts/parity.py's rule);
    convolutions and the fc keep their seeded initialisation."""
    randomize_batch_norms(model, torch.Generator().manual_seed(seed))


def paths_state_dict(grouped: dict, paths: dict) -> dict:
    """A grouped-form state (torchvision's) for a concat- or split-form module whose state is
    ``paths``: ``layer{i}.{j}.paths.{p}.{leaf}`` is slice ``p`` of ``layer{i}.{j}.{leaf}``
    along the one dimension where the shapes differ; a tensor of equal shape goes to path 0
    whole (a bias of the summed conv) and the other paths get zeros. The same rule as
    archc-runtime's ``weights::load``."""
    out = {}
    for name, want in paths.items():
        if name in grouped:
            out[name] = grouped[name]
            continue
        block, rest = name.split(".paths.", 1)
        index, leaf = rest.split(".", 1)
        p = int(index)
        src = grouped[f"{block}.{leaf}"]
        diff = [k for k in range(src.dim()) if src.shape[k] != want.shape[k]]
        if not diff:
            out[name] = src.clone() if p == 0 else torch.zeros_like(src)
        else:
            (k,) = diff
            n = want.shape[k]
            out[name] = src.narrow(k, p * n, n).clone()
    return out


def operations(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """How many times one forward pass calls each aten operation, an in-place variant counted
    as its operation (the CIFAR reference adds out of place, torchvision and we in place)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(x)
    counts = {}
    for e in prof.key_averages():
        if e.key.startswith("aten::"):
            key = e.key.rstrip("_")
            counts[key] = counts.get(key, 0) + e.count
    return counts


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def shapes(state: dict) -> list:
    return [
        (k, list(v.shape))
        for k, v in state.items()
        if not k.endswith("num_batches_tracked")
    ]


def check(case: dict, out: str, grouped_cache: dict) -> list:
    errors = []
    module = load_module(
        case["module"], os.path.splitext(os.path.basename(case["module"]))[0]
    )
    cls = getattr(module, case["class"])
    torch.manual_seed(0)
    model = cls().eval()
    label = f"{case['spec']} ({case['form']})"

    params = sum(p.numel() for p in model.parameters())
    buffers = sum(
        b.numel()
        for n, b in model.named_buffers()
        if not n.endswith("num_batches_tracked")
    )
    for what, got, want in (
        ("parameters", params, case["params"]),
        ("PARAMS", cls.PARAMS, case["params"]),
        ("buffers", buffers, case["buffers"]),
        ("BUFFERS", cls.BUFFERS, case["buffers"]),
    ):
        if got != want:
            errors.append(f"{label}: {what} {got} != archc's {want}")
    ours = dict(shapes(model.state_dict()))
    runtime = {k: list(v) for k, v in case["vars"].items()}
    if ours != runtime:
        only_ours = sorted(set(ours) - set(runtime))[:5]
        only_rt = sorted(set(runtime) - set(ours))[:5]
        bad = sorted(k for k in set(ours) & set(runtime) if ours[k] != runtime[k])[:5]
        errors.append(
            f"{label}: state_dict != runtime's: only here {only_ours}, only in the runtime {only_rt}, shapes differ {bad}"
        )

    c, h, w = case["input"]
    size = (2, c, max(h // 4, min(h, 8)), max(w // 4, min(w, 8)))
    x = torch.randn(*size, generator=torch.Generator().manual_seed(2))
    key = case["spec"]
    if case["form"] == "grouped":
        ref_name = case["reference"]
        if ref_name:
            ref, _ = reference.build(ref_name)
            randomize(ref, 1)
            ref_state = ref.state_dict()
            if shapes(ref_state) != shapes(model.state_dict()):
                errors.append(
                    f"{label}: state_dict keys, order or shapes differ from {ref_name}'s"
                )
            model.load_state_dict(ref_state, strict=True)
            with torch.no_grad():
                want = ref(x)
            # The same computation: the same PyTorch operations, as many times each.
            if operations(model, x) != operations(ref, x):
                errors.append(f"{label}: other operations than {ref_name}'s")
            del ref
        else:
            randomize(model, 1)
            want = None
        with torch.no_grad():
            logits = model(x)
        if want is not None:
            err = rel_l2(logits, want)
            print(f"  {label}: logits vs reference {ref_name}: relative L2 {err:.2e}")
            if not err <= TOLERANCE:
                errors.append(f"{label}: logits differ from {ref_name}'s: {err:.3e}")
        grouped_cache[key] = (
            {k: v.clone() for k, v in model.state_dict().items()},
            logits,
        )
    else:
        grouped_state, grouped_logits = grouped_cache[key]
        model.load_state_dict(
            paths_state_dict(grouped_state, model.state_dict()), strict=True
        )
        with torch.no_grad():
            logits = model(x)
        err = rel_l2(logits, grouped_logits)
        print(f"  {label}: logits vs the grouped form: relative L2 {err:.2e}")
        if not err <= TOLERANCE:
            errors.append(f"{label}: logits differ from the grouped form's: {err:.3e}")

    name = case["name"]
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(out, f"{name}.weights.safetensors"))
    save_file(
        {"input": x, "logits": logits.contiguous()},
        os.path.join(out, f"{name}.io.safetensors"),
    )
    return errors


def check_checkpoint(args) -> None:
    from safetensors.torch import load_file

    module = load_module(args.module, "checked")
    model = getattr(module, args.cls)().eval()
    model.load_state_dict(load_file(args.weights), strict=True)
    io = load_file(args.io)
    with torch.no_grad():
        logits = model(io["input"])
    err = rel_l2(logits, io["logits"])
    print(
        f"{args.weights}: loads with strict=True; logits vs the file's: relative L2 {err:.2e}"
    )
    if not err <= TOLERANCE:
        sys.exit(f"FAIL logits differ: {err:.3e}")


def check_ranks(folder: str) -> None:
    from safetensors.torch import load_file

    last = load_file(os.path.join(folder, "last.safetensors"))
    ranks = sorted(f for f in os.listdir(folder) if f.startswith("rank"))
    if not ranks:
        sys.exit(f"FAIL no rank*.safetensors in {folder}")
    for name in ranks:
        theirs = load_file(os.path.join(folder, name))
        if theirs.keys() != last.keys():
            sys.exit(f"FAIL {name}: other tensor names than last.safetensors")
        differ = [k for k in last if not torch.equal(last[k], theirs[k])]
        if differ:
            sys.exit(f"FAIL {name} differs from last.safetensors: {differ[:5]}")
    print(f"{len(ranks)} ranks hold the checkpoint's {len(last)} tensors exactly")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest")
    ap.add_argument("--out")
    ap.add_argument("--module")
    ap.add_argument("--class", dest="cls")
    ap.add_argument("--weights")
    ap.add_argument("--io")
    ap.add_argument("--ranks")
    args = ap.parse_args()
    if args.ranks:
        return check_ranks(args.ranks)
    if args.weights:
        return check_checkpoint(args)
    if not (args.manifest and args.out):
        ap.error("--manifest and --out, or --module, --class, --weights and --io")
    with open(args.manifest) as f:
        cases = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    # One thread: these are many small forward passes on a shared machine, where a thread pool
    # that waits for busy cores costs more than it gains.
    torch.set_num_threads(1)
    errors, grouped_cache = [], {}
    start = time.perf_counter()
    # Grouped forms first: the path forms load their weights.
    for case in sorted(cases, key=lambda c: c["form"] != "grouped"):
        errors += check(case, args.out, grouped_cache)
    print(f"{len(cases)} modules checked in {time.perf_counter() - start:.1f} s")
    for e in errors:
        print("FAIL", e, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
