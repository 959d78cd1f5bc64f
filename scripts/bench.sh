#!/usr/bin/env bash
# Benchmarks the whole archc pipeline over every shipped spec (criterion, group `pipeline`)
# and, in the same run, times whole processes of `archc check`, the torchvision hook counter
# and fvcore (Python from .venv) for the same models. The results are written into
# BENCHMARKS.md between <!-- pipeline:begin --> and <!-- pipeline:end -->.
#
# Usage: scripts/bench.sh [criterion arguments, e.g. a benchmark filter]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
cargo build --release --bin archc
cargo bench -p archc --bench pipeline -- "$@"
