"""Certification sharded over torch.distributed (gloo, CPU): K = 1, 2, 3 processes write the
same TSV as one process, byte for byte apart from the time column, whether they share the
inputs or split each input's samples; errors reach every rank. (Every K runs all its cases in
one process group, so each K starts its processes once.)"""
import json
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

import dist_cases
from helpers import rows_without_time
from smoothcert.drivers import certify_dataset

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")

# (case, split): inputs sharded across the ranks, or each input's samples split.
RUNS = [("gaussian", False), ("sequential", False), ("decide", False), ("anisotropic", False), ("dssn", False),
        ("samplewise", False), ("ddrs", False), ("one-input", True), ("gaussian", True), ("ddrs", True)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_world(world, runs, round_per_rank=3, timeout=240):
    """Runs ``world`` ranks over ``runs`` (``(case, out, split)``); the first rank's exception
    text, or None."""
    ctx = mp.start_processes(dist_cases.run_rank, args=(world, free_port(), runs, round_per_rank),
                             nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise AssertionError(f"{world} ranks of {runs} did not finish in {timeout} s")
    except mp.ProcessRaisedException as e:
        return str(e)
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return None


def one_process(name, out):
    fam, X, y, idx, budget = dist_cases.case(name)
    certify_dataset(fam, X, y, idx, budget=budget, out=out, config={"case": name}, progress=False)
    return rows_without_time(out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process's file of every case (path, rows without time)."""
    d = tmp_path_factory.mktemp("one")
    out = {}
    for name in sorted({name for name, _ in RUNS}):
        path = str(d / f"{name}.tsv")
        out[name] = (path, one_process(name, path))
    return out


@pytest.mark.parametrize("world", [1, 2, 3])
def test_k_processes_write_the_one_process_file(world, reference, tmp_path):
    runs = [(name, str(tmp_path / f"{name}{'-split' if split else ''}.tsv"), split) for name, split in RUNS]
    assert run_world(world, runs) is None
    for name, out, split in runs:
        path, want = reference[name]
        assert rows_without_time(out) == want, (name, world, split)
        side = json.load(open(out + ".json"))
        assert side["summary"]["processes"] == world
        assert side["summary"].get("split_samples", False) == split
        assert side["config"] == json.load(open(path + ".json"))["config"]
        if name == "decide":  # the samples summary covers every rank
            ref = json.load(open(path + ".json"))["summary"]
            for k in ("mean_samples", "median_samples", "p90_samples", "stops"):
                assert side["summary"][k] == ref[k], k


def test_resume_after_a_partial_file(reference, tmp_path):
    want = reference["gaussian"][1]
    out = str(tmp_path / "k2.tsv")
    assert run_world(2, [("gaussian", out, False)]) is None
    with open(out) as f:
        lines = f.readlines()
    with open(out, "w") as f:  # 9 complete rows and half of the tenth: an interrupted run
        f.writelines(lines[:10])
        f.write(lines[10][:7])
    assert run_world(3, [("gaussian", out, False)]) is None
    assert rows_without_time(out) == want


def test_refusals_reach_every_rank(reference, tmp_path):
    err = run_world(2, [("sequential", str(tmp_path / "s.tsv"), True)])
    assert err is not None and "not split across processes" in err
    assert not os.path.exists(tmp_path / "s.tsv")
    err = run_world(2, [("mismatch", str(tmp_path / "m.tsv"), False)])
    assert err is not None and "rank 1 was started with another configuration" in err and "given" in err
    # A file of another run: rank 0 refuses, the other rank stops with the same message.
    err = run_world(2, [("anisotropic", reference["gaussian"][0], False)])
    assert err is not None and "not a smoothcert result of this kind" in err
