#!/usr/bin/env bash
# Runs on a GPU box from the bundle made by scripts/gpu-bundle.sh (no cargo needed there):
# 1. CUDA parity: PyTorch fixtures (computed by that box's PyTorch on the CPU), then our test
#    binary on CUDA with TF32 off (NVIDIA_TF32_OVERRIDE=0), relative L2 error <= 1e-5 per stage;
# 2. the forward benchmark on CUDA (fp32, and bf16 channels-last), written into BENCHMARKS.md;
# 3. the train-step benchmark on CUDA: our step / PyTorch eager's in fp32 and bf16 (autocast),
#    the achieved TFLOP/s against the GPU's bf16 peak (ARCHC_GPU_PEAK_TFLOPS overrides the
#    table in runtime/benches/train_step.rs), and the loader's images/s; into BENCHMARKS.md;
# 4. the inference mode as one CUDA graph (cuDNN autotuning on) against torch.compile with mode
#    "reduce-overhead" (CUDA graphs), fp32 and bf16, batch 1, 8 and 32, resnext50_32x4d and
#    resnet50;
# 5. archc-run on CUDA as a smoke test: bench, and a short bf16 training run on the digits;
# 6. DDP with NCCL on every GPU of the box: scripts/ddp_train.py under torchrun trains a
#    generated module (digits_tiny.py) for two epochs; every rank must hold exactly the
#    checkpoint's weights, and the checkpoint must load into the module on the CPU
#    (strict=True) with the GPU's logits (relative L2 <= 1e-5, TF32 off).
# Each stage has a time limit and a failed stage does not stop the next (the exit status says
# whether any failed), most important first: a lease that ends early still returns the first
# stages' figures. With ARCHC_GPU_OUT set, BENCHMARKS.md and each stage's log are copied there
# after every stage. ARCHC_GPU_STAGES=cuda-parity,compiled-cuda (say) runs only those stages.
# Set PYTHON to the interpreter that has torch 2.11 and torchvision, and scikit-learn for the
# DDP check (default: python3).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
torch_lib="$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHON ARCHC_ROOT="$PWD" ARCHC_PYTHON="$(command -v "$PYTHON")"
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
nvidia-smi --query-gpu=name,clocks.max.sm,power.limit --format=csv || true
failed=()
out="${ARCHC_GPU_OUT:-}"

# stage NAME SECONDS COMMAND...: runs COMMAND with a time limit, logging to logs/NAME.log.
stage() {
  local name="$1" limit="$2"
  shift 2
  if [ -n "${ARCHC_GPU_STAGES:-}" ] && [[ ",$ARCHC_GPU_STAGES," != *",$name,"* ]]; then
    return 0
  fi
  echo "== $name (at most ${limit}s)"
  mkdir -p logs
  local t0=$SECONDS
  # bash -c, so that the stage may be one of the functions below (exported with export -f);
  # timeout signals the stage's whole process group, the Python servers of a benchmark too.
  if ! timeout --kill-after=10 "$limit" bash -c '"$@"' stage "$@" 2>&1 | tee "logs/$name.log"; then
    echo "!! $name failed or ran out of time"
    failed+=("$name")
  fi
  echo "-- $name took $((SECONDS - t0))s"
  if [ -n "$out" ]; then
    cp BENCHMARKS.md "$out/" 2>/dev/null || true
    tar czf "$out/logs.tgz" logs 2>/dev/null || true
  fi
}

parity() {
  "$PYTHON" scripts/parity.py --out parity &&
    NVIDIA_TF32_OVERRIDE=0 ARCHC_TEST_DEVICE=cuda ARCHC_PARITY_DIR="$PWD/parity" \
      bin/test-parity --test-threads 1 --nocapture
}
export -f parity
stage cuda-parity 120 parity
# Twelve inductor compilations at once: a few compile workers each, not one per core.
stage compiled-cuda 240 env TORCHINDUCTOR_COMPILE_THREADS=4 bin/bench-compiled --bench --device cuda
stage train-cuda 90 env ARCHC_TRAIN_REPEAT="${ARCHC_TRAIN_REPEAT:-20}" bin/bench-train-step --bench --device cuda

ddp() {
  local gpus
  gpus="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')"
  rm -rf ddp
  NVIDIA_TF32_OVERRIDE=0 "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$gpus" \
    scripts/ddp_train.py --module digits_tiny.py --out ddp --epochs 2 --dump-ranks --sample 16 &&
    "$PYTHON" scripts/pytorch_check.py --ranks ddp &&
    NVIDIA_TF32_OVERRIDE=0 "$PYTHON" scripts/pytorch_check.py --module digits_tiny.py \
      --class DigitsTiny --weights ddp/last.safetensors --io ddp/sample.safetensors
}
export -f ddp
stage ddp-nccl 75 ddp

archc_run() {
  for dtype in f32 bf16; do
    mode=$([ "$dtype" = f32 ] && echo eager || echo fast)
    bin/archc-run bench specs/resnext/resnext50_32x4d.arch --device cuda --batch 64 --mode "$mode" --dtype "$dtype" || return 1
  done
  bin/archc-run bench specs/resnext/resnext50_32x4d.arch --device cuda --batch 1 --mode fast --dtype bf16 || return 1
  bin/archc-run bench specs/resnext/resnext50_32x4d.arch --device cuda --batch 1 --mode fast --dtype bf16 --cuda-graph || return 1
  rm -rf runs/gpu-digits
  bin/archc-run train specs/digits/resnext_digits.arch --data data/digits --recipe recipes/digits.toml \
    --device cuda --precision bf16 --epochs 5 --out runs/gpu-digits --plain
}
export -f archc_run
stage archc-run 75 archc_run
stage forward-cuda 60 bin/bench-forward --bench --device cuda

if [ ${#failed[@]} -gt 0 ]; then
  echo "failed stages: ${failed[*]}"
  exit 1
fi
echo "BENCHMARKS.md in $PWD now has the CUDA tables (sections forward-cuda, train-cuda and compiled-cuda)."
