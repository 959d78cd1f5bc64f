#!/usr/bin/env bash
# The PyTorch target's figures for BENCHMARKS.md ("PyTorch target"), printed as Markdown:
# 1. the module `archc codegen --target pytorch` generates for ResNeXt-50 (32x4d) against
#    torchvision's resnext50_32x4d on the same weights: eval forward and one train step, same
#    batch, one thread each (on this shared 2-core machine two libtorch threads wait for a busy
#    core and run several times slower, with a spread that swamps any difference;
#    scripts/bench_pytorch.py);
# 2. DDP on the CPU: scripts/ddp_train.py under torchrun with 1 and then 2 processes (gloo over
#    the loopback), one epoch of the digits each, the same global batch: one process with all
#    cores' threads, one process with one thread, and two processes splitting the cores.
# Usage: scripts/bench-pytorch.sh [batch (default 4)]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh
batch="${1:-4}"
out=target/pytorch-bench
mkdir -p "$out"
cargo build -q -p archc --bin archc
archc=target/debug/archc
[ -x "$archc" ] || archc="${CARGO_TARGET_DIR:-target}/debug/archc"
"$archc" codegen --target pytorch specs/resnext/resnext50_32x4d.arch -o "$out/resnext50_32x4d.py"
cores=$(nproc)
echo "## generated module vs torchvision"
.venv/bin/python3 scripts/bench_pytorch.py --module "$out/resnext50_32x4d.py" \
  --class Resnext50_32x4d --model resnext50_32x4d --batch "$batch" --threads 1 --reps 9

# The digits network of archc-runtime's trainer.
"$archc" codegen --target pytorch specs/digits/resnext_digits.arch -o "$out/resnext_digits.py"
echo
echo "## DDP on the CPU: one epoch of the digits (1,437 images, global batch 64)"
echo
echo "| processes | threads each | images/s | test accuracy after 1 epoch |"
echo "|---:|---:|---:|---|"
for run in "1 $cores" "1 1" "2 $((cores / 2))"; do
  set -- $run
  n=$1 threads=$2
  log="$out/ddp-$n-$threads.log"
  GLOO_SOCKET_IFNAME=lo OMP_NUM_THREADS=$threads .venv/bin/torchrun --standalone \
    --nproc_per_node="$n" scripts/ddp_train.py --module "$out/resnext_digits.py" \
    --out "$out/ddp-$n-$threads" --epochs 1 --log-every 1000 > "$log" 2>&1
  rate=$(grep -oE 'epoch 1: [0-9]+ images/s' "$log" | grep -oE '[0-9]+ images' | cut -d' ' -f1)
  acc=$(grep -oE 'test accuracy [0-9/]+ = [0-9.]+' "$log" | sed 's/test accuracy //')
  echo "| $n | $threads | $rate | $acc |"
done
