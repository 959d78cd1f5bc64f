#!/usr/bin/env bash
# Where the time goes: one pass of the inference mode next to one of torch.compile (inductor,
# frozen), both broken down from oneDNN's own log by scripts/onednn_profile.py.
#   scripts/profile-inference.sh [bf16|fp32] [BATCH] [MODEL]   (default: bf16 8 resnext50_32x4d)
# Run it on a quiet machine: both sides use every core libtorch sees.
set -euo pipefail
cd "$(dirname "$0")/.."
dtype=${1:-bf16}
batch=${2:-8}
model=${3:-resnext50_32x4d}
case $dtype in bf16 | fp32) ;; *) echo "usage: $0 [bf16|fp32] [BATCH] [MODEL]" >&2; exit 2 ;; esac
[[ $batch =~ ^[1-9][0-9]*$ ]] || { echo "error: BATCH must be a positive number, got '$batch'" >&2; exit 2; }
family=resnet
[[ $model == resnext* ]] && family=resnext
[[ -f specs/$family/$model.arch ]] || { echo "error: no spec specs/$family/$model.arch" >&2; exit 2; }
scripts/setup-venv.sh >/dev/null
. scripts/torch-env.sh
cargo build --release -q -p archc-runtime --bin archc-run
run=target/release/archc-run
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ours_dtype=$([[ $dtype == fp32 ]] && echo f32 || echo bf16)
bench() {
  "$run" bench "specs/$family/$model.arch" --device cpu --mode fast --dtype "$ours_dtype" \
    --batch "$batch" "$@"
}
ours_ms=$(bench --repeat 20 | sed -n 's/.*median \([0-9.]*\) ms.*/\1/p')
ONEDNN_VERBOSE=1 bench --warmup 3 --repeat 1 >"$out/ours.log"
compiled() {
  python3 scripts/torch_compiled.py --model "$model" --dtype "$dtype" --batch "$batch"
}
theirs_ms=$(printf 'time 20\n' | compiled | python3 -c '
import json, statistics, sys
lines = sys.stdin.read().splitlines()
print(statistics.median(json.loads(lines[-1])["ms"]))')
printf 'time 1\n' | ONEDNN_VERBOSE=1 compiled >"$out/theirs.log"
echo "$model, $dtype, batch $batch, $(nproc) cores; ours $ours_ms ms, inductor $theirs_ms ms (medians of 20)"
python3 scripts/onednn_profile.py "$out/ours.log" "$out/theirs.log" \
  --ours-ms "$ours_ms" --theirs-ms "$theirs_ms"
