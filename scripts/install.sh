#!/usr/bin/env bash
# Installs smoothcert (editable, building the C++/CUDA extension) on a fresh machine.
#   bash scripts/install.sh         # the package and its runtime dependencies
#   bash scripts/install.sh test    # ... plus the test dependencies
#   bash scripts/install.sh --fresh # only says "fresh" or "stale" (is a rebuild needed?)
# Supported torch: TORCH_MIN to TORCH_TESTED in python/smoothcert/_version.py.
# An installed torch in that range is kept and built against; one outside it
# stops the install. Without torch, 2.13.0 is installed: the local CPU wheel in
# /opt/wheels when present (an unpinned torch from PyPI is a multi-GB CUDA build).
# The extension is rebuilt only when it is stale: pip's editable install
# compiles in a fresh temporary folder, so ninja cannot skip anything itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STAMP=build/install.stamp  # torch and python the installed _C was built with

# fresh: _C exists, is newer than every build input, was built by this script
# with the torch now installed, and smoothcert is importable from this tree.
extension_fresh() {
  local so
  so=$(ls python/smoothcert/_C*.so 2>/dev/null | head -n 1 || true)
  [ -n "$so" ] && [ -f "$STAMP" ] || return 1
  [ -z "$(find csrc setup.py CMakeLists.txt pyproject.toml -newer "$so" -type f 2>/dev/null | head -n 1)" ] || return 1
  [ "$(cat "$STAMP")" = "$(build_id)" ] || return 1
  [ "$("$PY" -c 'import importlib.util as u; s = u.find_spec("smoothcert"); print(s.origin if s else "")' 2>/dev/null)" \
    = "$PWD/python/smoothcert/__init__.py" ]
}
build_id() {
  "$PY" -c 'import sys, torch; print("torch", torch.__version__, "python", sys.version.split()[0])' 2>/dev/null
}

if [ "${1:-}" = "--fresh" ]; then
  if extension_fresh; then echo fresh; else echo stale; fi
  exit 0
fi

if "$PY" -c "import torch" 2>/dev/null; then
  # exec, not import: the package's extension may not be built yet.
  if ! msg=$("$PY" -c '
import torch
v = {}
exec(open("python/smoothcert/_version.py").read(), v)
w = v["check_torch"](torch.__version__)
print("warning: " + w if w else "torch %s (supported: %s to %s)" % (torch.__version__, v["TORCH_MIN"], v["TORCH_TESTED"]))
' 2>&1); then
    echo "install.sh: ${msg##*ValueError: }; install a supported torch (or use a fresh venv) and rerun" >&2
    exit 1
  fi
  echo "install.sh: building against the installed $msg"
else
  wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)
  if [ -n "$wheel" ]; then
    "$PY" -m pip install -q "$wheel"
  else
    "$PY" -m pip install -q "torch==2.13.0"
  fi
fi
"$PY" -m pip install -q setuptools wheel ninja numpy "scipy>=1.11" tqdm matplotlib scikit-learn
if [ "${1:-}" = "test" ]; then
  "$PY" -m pip install -q pytest adversarial-robustness-toolbox
fi
if extension_fresh; then
  echo "install.sh: the extension is up to date; not rebuilding (touch setup.py to force)"
else
  "$PY" -m pip install -q --no-build-isolation -e .
  mkdir -p build && build_id > "$STAMP"
fi
"$PY" -c "import smoothcert; print('smoothcert', smoothcert.__version__, 'installed; CUDA build:', smoothcert.ops.cuda_version())"
