#!/usr/bin/env bash
# The project's test command (README.md; .ci/run calls it). On a fresh machine it installs what
# the tests need, then checks formatting and lints and runs every test of the workspace:
# - the Python venv (.venv: torch 2.11.0, torchvision 0.26.0, fvcore, safetensors, onnx,
#   onnxruntime), which gives the reference figures, the parity fixtures and the libtorch that the
#   runtime links;
# - the compiler's tests need no libtorch, but its ONNX export tests (compiler/tests/onnx.rs) run
#   the venv's onnx checker and ONNX Runtime on the parity fixtures; the runtime's use libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== setup: Python venv with torch/torchvision (scripts/setup-venv.sh)"
scripts/setup-venv.sh
. scripts/torch-env.sh

echo "== reference: PyTorch's own counts must equal tests/reference/torchvision.json"
mkdir -p target
python3 scripts/reference.py --out target/reference.json
if ! diff -u tests/reference/torchvision.json target/reference.json; then
  echo "PyTorch's figures differ from tests/reference/torchvision.json" >&2
  exit 1
fi

echo "== training data: scikit-learn's digits as an ImageFolder tree (scripts/digits.py)"
python3 scripts/digits.py --out data/digits

echo "== parity fixtures: torchvision outputs on seeded weights (scripts/parity.py)"
python3 scripts/parity.py --out target/parity

echo "== the compiler builds without libtorch"
if cargo tree -p archc -e normal,build | grep -E 'tch|torch-sys'; then
  echo "archc (the compiler) must not depend on tch or libtorch" >&2
  exit 1
fi

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
INSTA_UPDATE=no cargo test --workspace

echo "== PyTorch target scripts (ruff)"
py_scripts="scripts/ddp_train.py scripts/pytorch_check.py scripts/bench_pytorch.py"
.venv/bin/ruff check --no-cache --isolated $py_scripts
.venv/bin/ruff format --no-cache --isolated --check $py_scripts

echo "== the VS Code extension's grammar (scripts/test-grammar.sh: npm, vscode-tmgrammar-test)"
scripts/test-grammar.sh

echo "== the example crate, as a user runs it (resnext! model, torchvision-layout weights)"
cargo run -q -p classify -- --weights target/parity/resnext50_32x4d.weights.safetensors \
  --input target/parity/resnext50_32x4d.io.safetensors --device cpu
