#!/usr/bin/env bash
# Builds, on a machine with cargo, everything the GPU check needs into gpu-bundle/ (git-ignored):
# the runtime's test binaries, the forward, train-step and torch.compile benchmarks, archc-run, the specs, the
# recipes, the digits and the Python helpers.
# Copy gpu-bundle/ to a GPU box that has PyTorch 2.11 (but maybe no Rust) and run
# `gpu-bundle/scripts/gpu-run.sh` there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
. scripts/torch-env.sh
out=gpu-bundle
rm -rf "$out"
mkdir -p "$out/bin" "$out/scripts"
# Test binaries: cargo prints each executable it builds as JSON.
cargo test --release -p archc-runtime --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do cp "$exe" "$out/bin/test-$name"; done
cargo bench -p archc-runtime --bench forward --bench train_step --bench compiled --no-run --message-format=json 2>/dev/null \
  | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["bench"]:
        print(m["target"]["name"].replace("_", "-"), m["executable"])
' | while read -r name exe; do cp "$exe" "$out/bin/bench-$name"; done
cargo build --release -p archc-runtime --bin archc-run
cp target/release/archc-run "$out/bin/"
cp -r specs recipes "$out/"
# The digits (scripts/digits.py) for the training smoke test and the loader benchmark.
python3 scripts/digits.py --out data/digits
mkdir -p "$out/data" && cp -r data/digits "$out/data/"
cp scripts/gpu-run.sh scripts/parity.py scripts/reference.py scripts/torch_forward.py \
  scripts/torch_train_step.py scripts/torch_compiled.py "$out/scripts/"
# The DDP check: a generated PyTorch module, the trainer and the checker.
cargo run -q -p archc --bin archc -- codegen --target pytorch \
  runtime/tests/pytorch/digits_tiny.arch -o "$out/digits_tiny.py"
cp scripts/ddp_train.py scripts/pytorch_check.py "$out/scripts/"
cp BENCHMARKS.md "$out/"
# Only the parity tests run there; without debug symbols the bundle fits a 64 MiB transfer.
find "$out/bin" -name 'test-*' ! -name test-parity -delete
strip "$out"/bin/*
ls -la "$out/bin"
du -sh "$out"
