"""Sequential certification end to end: anytime-valid radii on linear classifiers (whose exact
radius is known), the same rows for any batch size or number of inputs in flight, the fixed-n
draws underneath, refusals of families whose certificate is not one count, and the CLI."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from smoothcert import Decide, Estimate, Sequential, Smooth, SplitSmooth, UniformSmooth
from smoothcert.certify import DipoleSmooth, SecondOrderSmooth, SequentialFamily
from smoothcert.drivers import certify_dataset
from smoothcert.stats import clopper_pearson_upper

from helpers import LinearClassifier


def linear_case(B=12, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    X = torch.rand(B, D, generator=g)
    return LinearClassifier(w, -float(w.sum()) / 2), X


def true_radius(model, X):
    return (model.score(X).abs() / model.w.norm()).numpy()


@pytest.mark.parametrize("rule", [Decide(0.15), Estimate(0.01), Estimate(0.05)])
def test_same_rows_for_any_batch_size_and_slots(rule):
    model, X = linear_case()
    sm = Smooth(model, 2, 0.4, seed=5)
    a = sm.certify_batch(X, 64, 6400, 0.01, 1000, sequential=Sequential(rule, first=50))
    b = sm.certify_batch(X, 64, 6400, 0.01, 37, sequential=Sequential(rule, first=50, in_flight=1))
    c = sm.certify_batch(X, 64, 6400, 0.01, 4096, sequential=Sequential(rule, first=50, in_flight=40))
    for r in (b, c):
        for name in ("prediction", "radius", "count_a", "pa_lower", "n_used", "counts", "selection_counts"):
            assert torch.equal(getattr(a, name), getattr(r, name)), name
        assert a.stop == r.stop
    # The draws underneath are the fixed-n run's: its selection votes, and at n_max its votes.
    fixed = sm.certify_batch(X, 64, 6400, 0.01, 1000)
    assert torch.equal(a.selection_counts, fixed.selection_counts)
    full = a.n_used == 6400
    assert torch.equal(a.counts[full], fixed.counts[full])
    # The confidence sequence never proves more than Clopper-Pearson at the same count.
    assert bool((a.radius[full] <= fixed.radius[full]).all())
    assert a.certificate == f"sequential-{rule.name}"
    assert torch.equal(a.samples, a.n_used + 64)


def test_decide_certifies_at_least_r_when_certified():
    model, X = linear_case(B=30, seed=1)
    sm = Smooth(model, 2, 0.5, seed=2)
    r = 0.2
    res = sm.certify_batch(X, 100, 20000, 0.001, 1000, sequential=Sequential(Decide(r)))
    cert = np.array([s == "certified" for s in res.stop])
    assert cert.any() and (~cert).any()
    assert bool((res.radius.numpy()[cert] >= r).all())
    assert bool((res.radius.numpy()[~cert] < r).all())
    # Easy inputs stop long before n_max.
    assert res.n_used.float().mean() < 20000 / 4


@pytest.mark.parametrize("rule", ["decide", "estimate"])
def test_radii_beyond_the_true_distance_at_most_alpha(rule):
    """Many seeds, inputs near the decide threshold: the rate of radii above the exact radius
    stays below alpha (checked with a 99% Clopper-Pearson upper bound)."""
    alpha, sigma = 0.1, 0.5
    model, X = linear_case(B=40, D=4, seed=3)
    truth = true_radius(model, X)
    bad = total = 0
    for seed in range(25):
        sm = Smooth(model, 2, sigma, seed=seed)
        spec = Sequential(Decide(float(np.median(truth))) if rule == "decide" else Estimate(0.02), first=20)
        res = sm.certify_batch(X, 20, 2000, alpha, 2000, sequential=spec)
        right = (res.prediction.numpy() == (model.score(X) > 0).long().numpy())
        over = (res.prediction.numpy() >= 0) & ((~right) | (res.radius.numpy() > truth))
        bad += int(over.sum())
        total += X.shape[0]
    assert clopper_pearson_upper(bad, total, 0.01) <= alpha


def test_uniform_l1_sequential_matches_its_fixed_draws():
    model, X = linear_case(B=6)
    fam = UniformSmooth(model, 2, 0.5, seed=1)
    res = fam.certify_batch(X, 50, 3200, 0.01, 500, sequential=Sequential(Estimate(0.02), first=50))
    fixed = fam.certify_batch(X, 50, 3200, 0.01, 500)
    assert torch.equal(res.selection_counts, fixed.selection_counts)
    assert res.norm == "l1" and bool((res.radius >= 0).all())


def test_refusals():
    model, X = linear_case(B=2)
    seq = Sequential(Estimate(0.01))
    for fam in (SecondOrderSmooth(model, 2, 0.5), DipoleSmooth(model, 2, 0.5)):
        with pytest.raises(ValueError, match="cannot certify sequentially"):
            fam.certify_batch(X, 10, 100, 0.01, 100, sequential=seq)
    with pytest.raises(ValueError, match="exact"):
        SplitSmooth(model, 2, 0.5, deterministic=True).certify_batch(X, sequential=seq)
    with pytest.raises(ValueError, match="radii > 0"):
        Decide(0.0)
    with pytest.raises(ValueError, match="0 < tol < 1"):
        Estimate(1.5)
    with pytest.raises(ValueError, match="stopping rule"):
        Sequential("decide")
    with pytest.raises(ValueError, match="confidence sequence"):
        Sequential(Estimate(0.1), cs="nope")
    with pytest.raises(ValueError, match="keyed by input index"):
        SequentialFamily(Smooth(model, 2, 0.5), Sequential(Decide(torch.ones(2))))
    with pytest.raises(ValueError, match="needs one"):
        Smooth(model, 2, 0.5).certify_batch(X, 10, 100, 0.01, 100, sequential=Sequential(Decide(torch.ones(1))))


def test_dataset_run_refills_slots_and_resumes(tmp_path):
    model, X = linear_case(B=20, seed=4)
    y = (model.score(X) > 0).long()
    out = str(tmp_path / "seq.tsv")
    spec = Sequential(Decide(0.1), first=50)
    fam = SequentialFamily(Smooth(model, 2, 0.5, seed=3), spec)
    certify_dataset(fam, X, y, list(range(20)), out=out, config={}, progress=False, n0=50, n=6400, alpha=0.01,
                    batch_size=256)
    whole = open(out).read().splitlines()
    side = json.load(open(out + ".json"))
    assert side["config"]["sequential"]["rule"] == "decide"
    assert side["columns"]["stop"] == "str" and side["summary"]["batch_occupancy"] > 0
    # The same rows as the batched API, in dataset order.
    ref = Smooth(model, 2, 0.5, seed=3).certify_batch(X, 50, 6400, 0.01, 1000, sequential=spec)
    rows = [line.split("\t") for line in whole[1:]]
    assert [int(r[0]) for r in rows] == list(range(20))
    assert [float(r[3]) for r in rows] == ref.radius.tolist()
    assert [int(r[7]) for r in rows] == ref.n_used.tolist()
    # Cut after 7 rows (and half a line): the rerun completes the same file.
    with open(out, "w") as f:
        f.write("\n".join(whole[:8]) + "\n" + whole[8][:5])
    fam2 = SequentialFamily(Smooth(model, 2, 0.5, seed=3), spec)
    certify_dataset(fam2, X, y, list(range(20)), out=out, config={}, progress=False, n0=50, n=6400, alpha=0.01,
                    batch_size=64)
    again = open(out).read().splitlines()
    strip = lambda lines: [l.split("\t")[:5] + l.split("\t")[6:] for l in lines]  # noqa: E731 (time differs)
    assert strip(again) == strip(whole)
    # Another rule is another configuration: refused, file untouched.
    with pytest.raises(ValueError, match="different configuration"):
        certify_dataset(SequentialFamily(Smooth(model, 2, 0.5, seed=3), Sequential(Estimate(0.01))), X, y,
                        list(range(20)), out=out, config={}, progress=False, n0=50, n=6400, alpha=0.01)


def test_cli_runs_and_checks_options(digits_checkpoint, tmp_path, capsys):
    from smoothcert.cli.main import main

    out = str(tmp_path / "o.tsv")
    base = ["certify", "--model", digits_checkpoint, "--dataset", "digits", "--sigma", "0.25", "--n0", "20",
            "--n", "1600", "--batch", "256", "--skip", "3", "--max", "30", "--out", out, "--no-progress"]
    for extra, msg in [(["--radius", "0.5"], "only with --sequential"),
                       (["--sequential", "decide"], "needs --radius"),
                       (["--sequential", "estimate"], "needs --tol"),
                       (["--sequential", "decide", "--radius", "0.5", "--tol", "0.1"], "belongs to --sequential estimate"),
                       (["--sequential", "estimate", "--tol", "0.1", "--certificate", "sos"], "cannot certify sequentially"),
                       (["--sequential", "estimate", "--tol", "0.1", "--noise", "dssn"], "Monte-Carlo")]:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert msg in err, (extra, err)
    assert not os.path.exists(out)
    assert main(base + ["--sequential", "decide", "--radius", "0.25", "--first-checkpoint", "50"]) == 0
    with open(out) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f]
    assert header[:6] == ["idx", "label", "predict", "radius", "correct", "time"]
    assert {r["certificate"] for r in rows} == {"sequential-decide"}
    assert {r["stop"] for r in rows} <= {"certified", "futile"}
    assert all(int(r["n"]) <= 1600 and r["n_max"] == "1600" for r in rows)
    assert "mean_samples" in capsys.readouterr().err
    assert main(["analyze", out]) == 0
    printed = capsys.readouterr().out
    assert "Estimation samples per input" in printed and "| 1600 |" in printed


def test_final_share_defaults_and_overrides():
    for tol, share in [(0.005, 0.95), (0.01, 0.9), (0.02, 0.8), (0.05, 0.5), (0.3, 0.5), (1e-4, 0.99)]:
        cs = Sequential(Estimate(tol)).sequence(100_000, 0.001)
        assert math.isclose(cs.levels[-1], share * 0.001, rel_tol=1e-12) and cs.config()["final_share"] == share
    plain = Sequential(Decide(1.0)).sequence(100_000, 0.001)
    assert "final_share" not in plain.config() and plain.levels[-1] < 0.5 * 0.001
    assert math.isclose(Sequential(Decide(1.0), final=0.8).sequence(1000, 0.01).levels[-1], 0.008, rel_tol=1e-12)
    assert "final_share" not in Sequential(Estimate(0.01), cs="mixture").config(1000, 0.01)
    with pytest.raises(ValueError, match="no option final"):
        Sequential(Estimate(0.01), cs="mixture", final=0.9)
    with pytest.raises(ValueError, match="share of alpha"):
        Sequential(Estimate(0.01), final=1.0)
