#!/usr/bin/env bash
# Runtime benchmarks: archc-runtime against PyTorch eager on resnext50_32x4d, the forward pass
# (runtime/benches/forward.rs) and the training step with the data loader's rate
# (runtime/benches/train_step.rs); each writes its table into BENCHMARKS.md.
# `scripts/bench-runtime.sh -- --device cpu|cuda|auto` picks the device (default auto);
# ARCHC_BENCHES="train_step" (or "forward") runs one of them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
. scripts/torch-env.sh
python3 scripts/digits.py
benches=()
for b in ${ARCHC_BENCHES:-forward train_step}; do benches+=(--bench "$b"); done
cargo bench -p archc-runtime "${benches[@]}" "$@"
