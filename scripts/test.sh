#!/usr/bin/env bash
# The project's test command (README.md; .ci/run calls it). On a fresh machine it installs what
# the tests need (the Python venv with PyTorch for the reference figures), then checks formatting,
# lints, and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== setup: Python venv with torch/torchvision (scripts/setup-venv.sh)"
scripts/setup-venv.sh

echo "== reference: PyTorch's own counts must equal tests/reference/torchvision.json"
mkdir -p target
.venv/bin/python3 scripts/reference.py --out target/reference.json
if ! diff -u tests/reference/torchvision.json target/reference.json; then
  echo "PyTorch's figures differ from tests/reference/torchvision.json" >&2
  exit 1
fi

echo "== format and lints"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== tests"
INSTA_UPDATE=no cargo test --workspace
