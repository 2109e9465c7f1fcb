#!/usr/bin/env bash
# The GPU path on one GPU in at most 8 minutes; prints one table (benchmarks/gpu_check.py says what each row is).
#
#   benchmarks/gpu_check.sh [--steps 8] [--workers 4] [--compile] [--json OUT.json] ...   # args go to gpu_check.py
#   PYTHON=/path/to/venv/bin/python benchmarks/gpu_check.sh
#
# Self-contained: synthetic clips in a temporary folder, random weights, nothing downloaded. Refuses (exit 2)
# where there is no CUDA GPU. Exit 0: every row passed; 1: a row failed; 124: the 8-minute limit was hit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
limit_s="${GPU_CHECK_LIMIT_S:-480}"          # the hard limit (the script skips stages past --budget-s first)
budget_s=$(( limit_s > 60 ? limit_s - 60 : limit_s / 2 ))

if ! command -v "$py" >/dev/null 2>&1; then
    echo "gpu_check: no Python interpreter '$py' (set PYTHON=...)" >&2
    exit 2
fi
if ! "$py" -c "import slsdk, torch" 2>/dev/null; then
    echo "gpu_check: '$py' cannot import slsdk and torch (pip install -e '.[train,runtime,export]')" >&2
    exit 2
fi
if ! "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$py" -c "import torch; print(f'gpu_check: no CUDA GPU here (torch {torch.__version__}, CUDA build: '
               f'{torch.version.cuda}); this check needs one NVIDIA GPU', flush=True)" >&2
    command -v nvidia-smi >/dev/null 2>&1 || echo "gpu_check: (nvidia-smi is not on PATH either)" >&2
    exit 2
fi

export PYTHONUNBUFFERED=1
exec timeout --signal=TERM --kill-after=15 "$limit_s" \
    "$py" "$here/gpu_check.py" --device cuda --budget-s "$budget_s" "$@"
