"""The one command of a session lent a GPU: environment check, CUDA build, every CUDA test and
the benches (one repeat, ``--quick``), under one overall deadline.

Writes under ``$OUT`` (default ``./gpu_check_out``):
  gpu_check.json   the summary, rewritten after every step: each step's name, status
                   (pass / fail / skipped / timeout), seconds, log path and limit
  logs/<step>.log  each step's stdout and stderr

A GPU command may run 600 s and a session has 15 minutes of device time in all (machine start
included), so the whole run has a deadline (``GPU_CHECK_DEADLINE``, default 480 s): each step gets
``min(its limit, time left - reserve)`` seconds and is skipped when that is under its minimum.
``GPU_CHECK_DRY_RUN=1`` runs the environment check (which reports what is missing, without
failing the run) and the deadline logic with stub steps that only sleep: a CPU check of the script.

    bash scripts/gpu_check.sh            (or: python3 scripts/gpu_check.py)
"""
import json
import os
import shutil
import subprocess
import sys
import time

RESERVE_S = 10  # left for writing the summary and for the machine's own overhead
ENV_LIMIT_S = 10


def env_problems(py: str) -> list:
    """What keeps this machine from building and testing the CUDA kernels (empty when ready)."""
    probe = (
        "import importlib.util as u, json, torch\n"
        "out = {'torch_cuda': torch.version.cuda, 'gpu': torch.cuda.is_available(),\n"
        "       'missing': [m for m in ('ninja', 'pytest', 'scipy') if u.find_spec(m) is None]}\n"
        "print(json.dumps(out))\n"
    )
    problems = []
    try:
        r = subprocess.run([py, "-c", probe], capture_output=True, text=True, timeout=ENV_LIMIT_S - 3)
        info = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        info = None
    if info is None:
        return ["torch cannot be imported (or the probe timed out)"]
    if info["torch_cuda"] is None:
        problems.append("torch is not a CUDA build (torch.version.cuda is None)")
    if not info["gpu"]:
        problems.append("no CUDA GPU visible (torch.cuda.is_available() is False)")
    for m in info["missing"]:
        problems.append(f"python module {m} is not importable")
    nvcc_major = _nvcc_major()
    if nvcc_major is None:
        problems.append("nvcc not found on PATH (or CUDA_HOME/bin)")
    elif info["torch_cuda"] is not None and str(nvcc_major) != info["torch_cuda"].split(".")[0]:
        problems.append(f"nvcc major version {nvcc_major} != torch.version.cuda {info['torch_cuda']}")
    if shutil.which("ninja") is None and "ninja" not in info["missing"]:
        problems.append("ninja executable not on PATH")
    return problems


def _nvcc_major():
    nvcc = shutil.which("nvcc") or os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")
    try:
        text = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=3).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for word in text.replace(",", " ").split():
        if word.startswith("V") and word[1:2].isdigit():
            return int(word[1:].split(".")[0])
    return None


def plan(py: str, out: str, dry: bool) -> list:
    """(name, limit_s, min_s, argv) of every step after the environment check, in order."""
    if dry:
        nap = float(os.environ.get("GPU_CHECK_DRY_STEP_S", "0.2"))
        stub = [py, "-c", f"import time; time.sleep({nap})"]
        # the last stub needs more time than any deadline leaves: it must be skipped
        return [("build", 1, 0, stub), ("tests", 1, 0, stub), ("bench_memory", 300, 0, stub),
                ("bench_never", 1e6, 1e6, stub)]
    build = (f"TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=$(nproc) '{py}' -m pip install --no-build-isolation"
             f" --no-deps -e . && '{py}' -c 'import smoothcert; v = smoothcert.ops.cuda_version();"
             f" print(\"cuda_version\", v); assert v > 0'")
    steps = [("build", 270, 60, ["bash", "-c", build]),
             ("tests", 150, 30, [py, "-m", "pytest", "-q", "-m", "needs_cuda", "-p", "no:cacheprovider",
                                 "tests"])]
    benches = [("memory", []), ("certify", []), ("dssn", ["--cases", "lenet,resnet20"]),
               ("anisotropic", []), ("second_order", []), ("regions", [])]
    for name, extra in benches:
        steps.append((f"bench_{name}", 40, 10,
                      [py, f"bench/{name}.py", "--device", "cuda", "--quick", "--repeat", "1", *extra,
                       "--json", os.path.join(out, f"bench_{name}.json")]))
    return steps


def step_limit(limit: float, left: float, reserve: float = RESERVE_S) -> float:
    """Seconds a step may run: its own limit, cut to what the deadline leaves after the reserve."""
    return max(0.0, min(limit, left - reserve))


class Summary:
    def __init__(self, out: str, deadline: float, dry: bool):
        self.path = os.path.join(out, "gpu_check.json")
        self.data = {"deadline_s": deadline, "dry_run": dry, "steps": [], "ok": None, "total_s": 0.0}
        self.t0 = time.monotonic()

    def add(self, **row):
        self.data["steps"].append(row)
        self.write()

    def write(self, ok=None):
        self.data["total_s"] = round(time.monotonic() - self.t0, 2)
        self.data["ok"] = ok
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=2)
        os.replace(tmp, self.path)  # a reader never sees half a summary


def run_step(argv, limit: float, log: str):
    t = time.monotonic()
    with open(log, "w") as f:
        try:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=limit)
                status = "pass" if rc == 0 else "fail"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)  # the whole group: pip's compilers, pytest's workers
                proc.wait()
                status = "timeout"
        except OSError as e:
            f.write(f"gpu_check: cannot start {argv[0]}: {e}\n")
            status = "fail"
    return status, round(time.monotonic() - t, 2)


def main() -> int:
    out = os.path.abspath(os.environ.get("OUT") or "gpu_check_out")
    logs = os.path.join(out, "logs")
    os.makedirs(logs, exist_ok=True)
    os.environ["PYTHONUNBUFFERED"] = "1"
    py = os.environ.get("PYTHON", sys.executable)
    dry = os.environ.get("GPU_CHECK_DRY_RUN") == "1"
    deadline = float(os.environ.get("GPU_CHECK_DEADLINE", "480"))
    reserve = min(RESERVE_S, deadline / 10)
    summary = Summary(out, deadline, dry)
    start = time.monotonic()

    t = time.monotonic()
    problems = env_problems(py)
    env_log = os.path.join(logs, "env.log")
    with open(env_log, "w") as f:
        f.write("\n".join(problems or ["environment ready"]) + "\n")
    summary.data["env_problems"] = problems
    summary.add(name="env", status="fail" if problems else "pass", seconds=round(time.monotonic() - t, 2),
                log=env_log, limit_s=ENV_LIMIT_S)
    for p in problems:
        print(f"gpu_check: env: {p}", flush=True)
    if problems and not dry:
        summary.write(ok=False)
        return 1

    ok = True
    for name, limit, min_s, argv in plan(py, out, dry):
        log = os.path.join(logs, f"{name}.log")
        left = deadline - (time.monotonic() - start)
        allowed = step_limit(limit, left, reserve)
        if allowed <= 0 or allowed < min_s or (name != "build" and _failed(summary, "build")):
            summary.add(name=name, status="skipped", seconds=0.0, log=None, limit_s=round(allowed, 2))
            print(f"gpu_check: {name} skipped ({allowed:.0f} s left for it)", flush=True)
            ok = ok and name.startswith("bench_")
            continue
        status, secs = run_step(argv, allowed, log)
        summary.add(name=name, status=status, seconds=secs, log=log, limit_s=round(allowed, 2))
        print(f"gpu_check: {name} {status} in {secs} s (limit {allowed:.0f} s)", flush=True)
        ok = ok and status == "pass"
    summary.write(ok=ok and not problems)
    return 0 if ok and not problems else 1


def _failed(summary, name):
    return any(s["name"] == name and s["status"] != "pass" for s in summary.data["steps"])


if __name__ == "__main__":
    sys.exit(main())
