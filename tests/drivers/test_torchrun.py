"""``torchrun -m smoothcert certify`` end to end (gloo, CPU): the file K ranks write equals one
process's, and a rank killed with SIGKILL mid-run is restarted by torchrun's elastic agent
(``--max-restarts``) and the run resumes with no row lost or written twice."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from helpers import rows_without_time
from smoothcert import cli

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


def certify_args(ckpt, out, n=300, extra=()):
    return ["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--n0", "20", "--n", str(n),
            "--batch", "256", "--skip", "3", "--max", "30", "--out", out, "--no-progress", *extra]


def torchrun(nproc, args, *, restarts=0):
    """Starts ``torchrun --standalone --nproc_per_node=nproc -m smoothcert -- args`` (one thread per
    rank; without ``--`` torchrun's parser refuses --n and --max as ambiguous abbreviations)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           f"--max-restarts={restarts}", "--monitor-interval=0.5", "-m", "smoothcert", "--", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=240):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"torchrun did not finish in {timeout} s:\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    return out


def data_rows(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return max(0, sum(1 for line in f if line.endswith("\n")) - 1)


def workers(agent_pid):
    """``{rank: pid}`` of the torchrun agent's worker processes."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != agent_pid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except (OSError, IndexError, ValueError):
            continue
        if b"RANK" in env:
            out[int(env[b"RANK"])] = int(pid)
    return out


def test_torchrun_writes_the_one_process_file(digits_checkpoint, tmp_path):
    one = str(tmp_path / "one.tsv")
    assert cli.main(certify_args(digits_checkpoint, one)) == 0
    out = str(tmp_path / "k2.tsv")
    log = finish(torchrun(2, certify_args(digits_checkpoint, out, extra=("--dist-round", "4"))))
    assert rows_without_time(out) == rows_without_time(one)
    assert "[rank 1/2]" in log and log.count("smoothcert certify: model:") == 1  # rank 0 alone reports
    split = str(tmp_path / "split.tsv")
    finish(torchrun(2, certify_args(digits_checkpoint, split, extra=("--split-samples",))))
    assert rows_without_time(split) == rows_without_time(one)


def test_a_killed_rank_is_restarted_and_the_run_resumes(digits_checkpoint, tmp_path):
    args = dict(n=4000, extra=("--dist-round", "1", "--dist-timeout", "20"))
    one = str(tmp_path / "one.tsv")
    assert cli.main(certify_args(digits_checkpoint, one, **args)) == 0
    out = str(tmp_path / "k2.tsv")
    # The restarted group joins at once (distributed._attempt_store); the spare restarts only
    # keep a loaded CI machine from failing the test on a slow start.
    proc = torchrun(2, certify_args(digits_checkpoint, out, **args), restarts=3)
    deadline = time.monotonic() + 180
    while data_rows(out) < 4:  # some rounds written, most to come
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before a rank could be killed"
        time.sleep(0.05)
    ranks = workers(proc.pid)
    assert 1 in ranks, ranks
    os.kill(ranks[1], signal.SIGKILL)
    before = data_rows(out)
    log = finish(proc)
    assert before < 30, "the run was over before the kill"
    assert rows_without_time(out) == rows_without_time(one)
    assert "already in" in log  # the restarted rank 0 resumed from the file
