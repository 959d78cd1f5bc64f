#!/usr/bin/env bash
# Runtime benchmark: archc-runtime against PyTorch eager on resnext50_32x4d (runtime/benches/
# forward.rs); writes its table into BENCHMARKS.md. `scripts/bench-runtime.sh -- --device cpu|cuda|auto`
# picks the device (default auto).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
. scripts/torch-env.sh
cargo bench -p archc-runtime --bench forward "$@"
