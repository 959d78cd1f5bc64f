# Source this file (`. scripts/torch-env.sh`) to build crates that use tch: it makes the project's
# venv (scripts/setup-venv.sh) the libtorch that torch-sys links against.
# torch-sys runs `python3` to find torch when LIBTORCH_USE_PYTORCH=1.
_archc_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_archc_root/.venv/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
unset _archc_root
