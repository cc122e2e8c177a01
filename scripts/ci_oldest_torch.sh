#!/usr/bin/env bash
# Builds smoothcert against the oldest supported torch (TORCH_MIN in
# python/smoothcert/_version.py) in a throwaway venv and runs a fast subset.
#   bash scripts/ci_oldest_torch.sh [venv-dir]
# .ci/run calls it. It needs PyPI: torch's Linux wheels there are CUDA builds
# that pull the nvidia-* packages (about 3 GB; 3 minutes in all on a 2-core
# machine, build included); TORCH_WHEEL=path uses a local wheel instead. Without
# a GPU the extension is built for the CPU only.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/smoothcert-oldest-torch}
MIN=$(python3 -c 'v = {}; exec(open("python/smoothcert/_version.py").read(), v); print(v["TORCH_MIN"])')
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "${TORCH_WHEEL:-torch==$MIN.*}"
"$VENV/bin/pip" install -q setuptools wheel ninja numpy "scipy>=1.11" tqdm matplotlib scikit-learn pytest
# A copy of the tree: the editable build must not replace this checkout's _C.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work"
cd "$work"
"$VENV/bin/pip" install -q --no-build-isolation -e .
"$VENV/bin/python" -m pytest -q tests/test_build.py tests/ops/test_count_votes.py tests/stats/test_stats.py tests/test_install.py
echo "ci_oldest_torch: torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)') passed"
