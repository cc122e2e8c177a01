#!/usr/bin/env bash
# The one command of a session lent a GPU (DEVELOPERS.md): builds the extension with CUDA,
# runs every CUDA test (CPU-vs-CUDA equality included) and the benches, and writes under $OUT:
#   env.txt          GPU, driver, torch and nvcc versions
#   build.log        the pip build
#   pytest.log       the CUDA tests (pytest -m needs_cuda)
#   bench_*.json     bench/memory.py, bench/certify.py, bench/dssn.py, bench/anisotropic.py,
#                    bench/second_order.py and bench/regions.py on cuda
#   gpu_check.json   a summary: build ok, test counts, each step's exit code and seconds
# Every step has its own timeout (build 300 s, tests 200 s, each bench 60 s: 14.5 minutes at worst).
#   device run: bash scripts/gpu_check.sh          (OUT defaults to ./gpu_check_out here)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
start=$(date +%s)
declare -A rc secs

step() {  # step NAME TIMEOUT_S COMMAND... (output to $OUT/NAME.log unless the command redirects)
  local name=$1 limit=$2 t0
  shift 2
  t0=$(date +%s)
  timeout "$limit" "$@"
  rc[$name]=$?
  secs[$name]=$(( $(date +%s) - t0 ))
  echo "gpu_check: $name exit ${rc[$name]} in ${secs[$name]} s"
}

{ nvidia-smi; "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"; nvcc --version; } > "$OUT/env.txt" 2>&1

step build 300 bash -c "TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=\$(nproc) '$PY' -m pip install --no-build-isolation --no-deps -e . > '$OUT/build.log' 2>&1 && '$PY' -c 'import smoothcert; v = smoothcert.ops.cuda_version(); print(\"cuda_version\", v); assert v > 0' >> '$OUT/build.log' 2>&1"
if [[ ${rc[build]} -ne 0 ]]; then
  tail -40 "$OUT/build.log"
else
  step tests 200 bash -c "'$PY' -m pytest -q -m needs_cuda -p no:cacheprovider tests > '$OUT/pytest.log' 2>&1"
  tail -25 "$OUT/pytest.log"
  step bench_memory 60 "$PY" bench/memory.py --device cuda --json "$OUT/bench_memory.json"
  step bench_certify 60 "$PY" bench/certify.py --device cuda --json "$OUT/bench_certify.json"
  step bench_dssn 60 "$PY" bench/dssn.py --device cuda --cases lenet,resnet20 --n 20000 --json "$OUT/bench_dssn.json"
  step bench_anisotropic 60 "$PY" bench/anisotropic.py --device cuda --json "$OUT/bench_anisotropic.json"
  step bench_second_order 60 "$PY" bench/second_order.py --device cuda --json "$OUT/bench_second_order.json"
  step bench_regions 60 "$PY" bench/regions.py --device cuda --json "$OUT/bench_regions.json"
fi

"$PY" - "$OUT" <<'PYEOF' "$(declare -p rc)" "$(declare -p secs)" "$(( $(date +%s) - start ))"
import json, os, re, sys
out, rc_decl, secs_decl, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
parse = lambda decl: {k: int(v) for k, v in re.findall(r'\[(\w+)\]="?(-?\d+)"?', decl)}
summary = {"exit_codes": parse(rc_decl), "seconds": parse(secs_decl), "total_seconds": total}
log = os.path.join(out, "pytest.log")
if os.path.exists(log):
    tail = open(log).read().splitlines()[-1:] or [""]
    summary["pytest"] = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail[0])}
    summary["pytest_summary"] = tail[0]
for name in ("bench_memory", "bench_certify", "bench_dssn", "bench_anisotropic", "bench_second_order", "bench_regions"):
    p = os.path.join(out, name + ".json")
    if os.path.exists(p):
        summary[name] = json.load(open(p))["results"]
json.dump(summary, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
print(json.dumps({k: summary[k] for k in ("exit_codes", "seconds", "total_seconds") if k in summary}))
PYEOF
[[ ${rc[build]} -eq 0 && ${rc[tests]:-1} -eq 0 ]]
