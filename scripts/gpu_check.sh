#!/usr/bin/env bash
# The one command of a session lent a GPU: environment check (10 s), CUDA build, every CUDA test
# (pytest -m needs_cuda) and the benches (--quick, one repeat), under one deadline
# (GPU_CHECK_DEADLINE, default 480 s: 8 minutes of the session's 15, build included).
# Writes $OUT/gpu_check.json after every step and $OUT/logs/<step>.log; see scripts/gpu_check.py.
#   device run: bash scripts/gpu_check.sh          (OUT defaults to ./gpu_check_out here)
#   CPU check:  GPU_CHECK_DRY_RUN=1 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" scripts/gpu_check.py
