"""scripts/gpu_check.py on CPU: its dry run (environment check, deadline, summary after every
step) and the NVCC_FLAGS guard of setup.py, all without a GPU or a build."""
import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import gpu_check  # noqa: E402
from tools.nvcc_flags import checked_nvcc_flags  # noqa: E402


def test_dry_run_deadline_summary_and_env(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), GPU_CHECK_DRY_RUN="1", GPU_CHECK_DEADLINE="20",
               GPU_CHECK_DRY_STEP_S="0.1")
    t = time.monotonic()
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu_check.sh")], env=env,
                       capture_output=True, text=True, timeout=30)
    assert time.monotonic() - t < 15
    s = json.load(open(tmp_path / "gpu_check.json"))
    steps = {row["name"]: row for row in s["steps"]}
    assert list(steps) == ["env", "build", "tests", "bench_memory", "bench_never"]
    assert steps["bench_memory"]["limit_s"] < 300  # shortened to what the deadline leaves
    assert steps["bench_never"]["status"] == "skipped"
    for name in ("build", "tests", "bench_memory"):
        assert steps[name]["status"] == "pass"
        assert os.path.exists(steps[name]["log"])
    if not gpu_check.env_problems(sys.executable):
        pytest.skip("this machine has a CUDA environment")
    assert s["env_problems"] and r.returncode == 1 and s["ok"] is False
    assert any("CUDA" in p for p in s["env_problems"])


def test_summary_rewritten_after_every_step(tmp_path):
    s = gpu_check.Summary(str(tmp_path), 10, True)
    for i in range(3):
        s.add(name=f"s{i}", status="pass", seconds=0.0, log=None, limit_s=1)
        assert len(json.load(open(tmp_path / "gpu_check.json"))["steps"]) == i + 1


def test_step_limit_and_timeout(tmp_path):
    assert gpu_check.step_limit(270, 480) == 270
    assert gpu_check.step_limit(270, 100) == 90
    assert gpu_check.step_limit(270, 5) == 0
    status, _ = gpu_check.run_step([sys.executable, "-c", "import time; time.sleep(5)"], 0.3,
                                   str(tmp_path / "x.log"))
    assert status == "timeout"


@pytest.mark.parametrize("flags", ["--use_fast_math", "-use_fast_math", "--fmad=true", "-fmad=true",
                                   "--ftz=true", "--prec-div=false", "--prec-sqrt=false", "-O3 --fmad true"])
def test_nvcc_flags_guard_refuses(flags):
    with pytest.raises(ValueError, match="bit identity"):
        checked_nvcc_flags(flags)


def test_nvcc_flags_guard_keeps_safe_flags():
    assert checked_nvcc_flags("-lineinfo --fmad=false") == ["-lineinfo", "--fmad=false"]
    assert checked_nvcc_flags("") == []
