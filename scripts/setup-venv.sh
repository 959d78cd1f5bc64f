#!/usr/bin/env bash
# Creates (or reuses) the project's Python virtual environment in .venv with the pinned
# PyTorch stack. Used for the reference figures (torchvision), the fvcore comparison in
# benchmarks and, later, for libtorch (tch builds against it with LIBTORCH_USE_PYTORCH=1).
# onnx and onnxruntime check what `archc export onnx` writes (scripts/onnx_check.py).
# scikit-learn gives scripts/ddp_train.py its digits; ruff lints the generated PyTorch modules
# (runtime/tests/pytorch.rs). nvidia-cuda-crt holds the CUDA runtime headers' crt/ folder, which
# the runtime's CUDA-graph shim (runtime/csrc/cuda_graph.cpp) needs to compile against the wheel's
# headers; its version is torch 2.11's CUDA 13.0.
# Idempotent: a venv that already has the pinned versions is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
TORCH=2.11.0
TORCHVISION=0.26.0
want="torch==$TORCH torchvision==$TORCHVISION fvcore==0.1.5.post20221221 safetensors numpy onnx==1.23.2 onnxruntime==1.32.0 scikit-learn ruff==0.17.5 nvidia-cuda-crt==13.0.88"
stamp="$VENV/.archc-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
"$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check $want
echo "$want" > "$stamp"
