#!/usr/bin/env bash
# ONNX export benchmark, one run (BENCHMARKS.md, "ONNX export"):
# - how long `archc export onnx` takes for resnext101_64x4d with a torchvision checkpoint
#   (seeded torchvision weights written as safetensors, 83.5M parameters), whole process;
# - ONNX Runtime's forward time (CPU) on that file, next to archc-run's inference mode
#   (`--mode fast`: batch-norm folded, channels-last) at the same batch and threads.
# Usage: scripts/bench-onnx.sh [BATCH [THREADS [RUNS]]]   (default 4 2 5)
# Prints a Markdown table to paste into BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH="${1:-4}"
THREADS="${2:-2}"
RUNS="${3:-5}"
NAME=resnext101_64x4d
SPEC=specs/resnext/$NAME.arch
OUT=target/bench-onnx
scripts/setup-venv.sh
. scripts/torch-env.sh
cargo build -q --release -p archc --bin archc
cargo build -q --release -p archc-runtime --bin archc-run
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$OUT"
PY=.venv/bin/python3

if [ ! -f "$OUT/$NAME.safetensors" ]; then
  "$PY" - "$OUT/$NAME.safetensors" <<'EOF'
import sys, torch, torchvision
from safetensors.torch import save_file
torch.manual_seed(0)
m = torchvision.models.resnext101_64x4d(weights=None).eval()
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, sys.argv[1])
EOF
fi

now() { date +%s.%N; }
t0=$(now)
"$TARGET/release/archc" export onnx "$SPEC" --weights "$OUT/$NAME.safetensors" -o "$OUT/$NAME.onnx" 2> "$OUT/export.log"
t1=$(now)
"$TARGET/release/archc" export onnx "$SPEC" --weights "$OUT/$NAME.safetensors" --fold-bn -o "$OUT/$NAME.folded.onnx" 2>> "$OUT/export.log"
t2=$(now)
export_s=$(echo "$t1 - $t0" | bc -l)
fold_s=$(echo "$t2 - $t1" | bc -l)
size_mb=$(stat -c %s "$OUT/$NAME.onnx" | awk '{printf "%.1f", $1/1e6}')

ort=$("$PY" scripts/onnx_check.py "$OUT/$NAME.onnx" --time "$RUNS" --batch "$BATCH" --threads "$THREADS")
ort_fold=$("$PY" scripts/onnx_check.py "$OUT/$NAME.folded.onnx" --time "$RUNS" --batch "$BATCH" --threads "$THREADS")
ms() { echo "$1" | "$PY" -c 'import json,sys; r = json.load(sys.stdin); print("%.0f ms (min %.0f)" % (r["ms"], r["ms_min"]))'; }
ort_ms=$(ms "$ort")
ort_fold_ms=$(ms "$ort_fold")
ort_version=$(echo "$ort" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["ort_version"])')

run=$("$TARGET/release/archc-run" "$SPEC" --device cpu --batch "$BATCH" --mode fast --threads "$THREADS" \
  --warmup 1 --repeat "$RUNS" --weights "$OUT/$NAME.safetensors")
fast_ms=$(echo "$run" | sed -n 's/.*median \([0-9.]*\) ms over .* (min \([0-9.]*\) ms).*/\1 \2/p' | awk '{printf "%.0f ms (min %.0f)", $1, $2}')

echo "$(cat "$OUT/export.log")" >&2
echo "$run" >&2
cat <<EOF
| what ($NAME, CPU, batch $BATCH, $THREADS threads) | time |
|---|---:|
| \`archc export onnx --weights\` (whole process, release; $size_mb MB written) | $(printf %.2f "$export_s") s |
| \`archc export onnx --weights --fold-bn\` (whole process) | $(printf %.2f "$fold_s") s |
| ONNX Runtime $ort_version forward, batch-norm kept in the file (median of $RUNS) | $ort_ms |
| ONNX Runtime $ort_version forward, \`--fold-bn\` file (median of $RUNS) | $ort_fold_ms |
| \`archc-run --mode fast\` forward (libtorch 2.11, folded, channels-last, median of $RUNS) | $fast_ms |

One run on $(nproc) cores, $(date -u +%Y-%m-%d); load average (1 min) at the end: $(cut -d' ' -f1 /proc/loadavg).
EOF
