#!/usr/bin/env bash
# Installs smoothcert (editable, building the C++/CUDA extension) on a fresh machine.
#   bash scripts/install.sh         # the package and its runtime dependencies
#   bash scripts/install.sh test    # ... plus the test dependencies
# torch is pinned to 2.13.0; a local CPU wheel in /opt/wheels is used when present
# (an unpinned torch from PyPI is a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)
  if [ -n "$wheel" ]; then
    "$PY" -m pip install -q "$wheel"
  else
    "$PY" -m pip install -q "torch==2.13.0"
  fi
fi
"$PY" -m pip install -q setuptools wheel ninja numpy "scipy>=1.11" tqdm matplotlib scikit-learn
if [ "${1:-}" = "test" ]; then
  "$PY" -m pip install -q pytest
fi
"$PY" -m pip install -q --no-build-isolation -e .
"$PY" -c "import smoothcert; print('smoothcert', smoothcert.__version__, 'installed; CUDA build:', smoothcert.ops.cuda_version())"
