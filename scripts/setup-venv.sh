#!/usr/bin/env bash
# Creates (or reuses) the project's Python virtual environment in .venv with the pinned
# PyTorch stack. Used for the reference figures (torchvision), the fvcore comparison in
# benchmarks and, later, for libtorch (tch builds against it with LIBTORCH_USE_PYTORCH=1).
# scikit-learn provides the handwritten digits that scripts/digits.py exports for training.
# Idempotent: a venv that already has the pinned versions is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
TORCH=2.11.0
TORCHVISION=0.26.0
want="torch==$TORCH torchvision==$TORCHVISION fvcore==0.1.5.post20221221 safetensors numpy scikit-learn"
stamp="$VENV/.archc-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
"$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check $want
echo "$want" > "$stamp"
