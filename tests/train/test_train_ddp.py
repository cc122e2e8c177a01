"""``torchrun -m smoothcert train`` (DistributedDataParallel on gloo, CPU): two ranks train the
weights one process trains, up to the order of float additions, for a plain loss and for one
whose attack runs forward passes outside DDP's synchronisation; rank 0 alone writes."""
import os
import subprocess
import sys

import pytest
import torch

from smoothcert import cli, models

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


def train_args(out, method, extra=()):
    return ["train", "--arch", "mlp", "--dataset", "digits", "--sigma", "0.25", "--method", method, "--epochs", "2",
            "--max-train", "250", "--batch", "50", "--lr", "0.05", "--out", out, "--no-progress", *extra]


def torchrun(nproc, args, timeout=240):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "smoothcert", "--", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def weights(path):
    model, _ = models.load_checkpoint(path)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method,extra", [("gaussian", ()), ("smoothadv", ("--m", "2", "--pgd-steps", "1"))])
def test_two_ranks_train_the_one_process_weights(method, extra, tmp_path):
    one = str(tmp_path / "one.pt")
    assert cli.main(train_args(one, method, extra)) == 0
    two = str(tmp_path / "two.pt")
    log = torchrun(2, train_args(two, method, extra))
    assert log.count("smoothcert train:") == 1  # rank 0 reports
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, float((a[k] - b[k]).abs().max()))
    # The tolerance is far tighter than what separates two trainings (another seed).
    other = str(tmp_path / "other.pt")
    assert cli.main(train_args(other, method, (*extra, "--seed", "1"))) == 0
    c = weights(other)
    assert any(not torch.allclose(a[k], c[k], rtol=1e-4, atol=1e-5) for k in a)
    ha = models.checkpoint_info(one)["meta"]["history"]
    hb = models.checkpoint_info(two)["meta"]["history"]
    assert [h["epoch"] for h in ha] == [h["epoch"] for h in hb] == [1, 2]
    for x, y in zip(ha, hb):  # the epoch statistics cover every rank's examples
        assert abs(x["loss"] - y["loss"]) < 1e-4 and abs(x["noisy_accuracy"] - y["noisy_accuracy"]) < 1e-9
    # Rerunning the finished command resumes and leaves the checkpoint as it is.
    before = open(two, "rb").read()
    torchrun(2, train_args(two, method, extra))
    assert open(two, "rb").read() == before


def test_a_batch_too_small_for_the_ranks_is_refused(tmp_path):
    out = str(tmp_path / "x.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3", "-m", "smoothcert",
           "--", *train_args(out, "gaussian", ("--max-train", "101"))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0
    assert "cannot give each of the 3 processes one" in proc.stdout + proc.stderr
    assert not os.path.exists(out)
