"""Sequential sample sizes beyond the plain families: per-element sigma (ellipsoids),
data-dependent sigma before its memory step, sample-wise sigma before its regions, and decide
radii per input index (``--radius-file``)."""
import json

import numpy as np
import pytest
import torch

from smoothcert import Decide, Estimate, Sequential, Smooth, cli
from smoothcert.analysis import load_results
from smoothcert.certify import AnisotropicSmooth, DataDependentSmooth, SequentialFamily
from smoothcert.certify.sequential import read_radii
from smoothcert.drivers import certify_dataset
from smoothcert.sigma import OptimizeSigma

from helpers import LinearClassifier


def linear_case(B=10, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(D, generator=g, dtype=torch.float64)
    return LinearClassifier(w, -float(w.sum()) / 2), torch.rand(B, D, generator=g)


SPEC = Sequential(Estimate(0.02), first=50)


def test_anisotropic_with_a_constant_sigma_is_the_gaussian_sequential_run():
    model, X = linear_case()
    iso = Smooth(model, 2, 0.4, seed=5).certify_batch(X, 50, 6400, 0.01, 500, sequential=SPEC)
    an = AnisotropicSmooth(model, 2, torch.full((8,), 0.4), seed=5).certify_batch(X, 50, 6400, 0.01, 500,
                                                                                 sequential=SPEC)
    assert torch.equal(an.radius, iso.radius) and torch.equal(an.base.n_used, iso.n_used)
    assert torch.allclose(an.normalized_radius * 0.4, iso.radius.double(), rtol=1e-6)
    assert an.certificate == "anisotropic-sequential-estimate"
    fam = AnisotropicSmooth(model, 2, torch.full((8,), 0.4), seed=5)
    cols = fam.sequential_column_types()
    for k in range(X.shape[0]):
        row = dict(zip(cols, an.fields(k)))
        assert row["n"] == int(iso.n_used[k]) and row["n_max"] == 6400 and row["stop"] == iso.stop[k]
    # Fixed n keeps its rows and label.
    fixed = fam.certify_batch(X, 50, 6400, 0.01, 500)
    assert fixed.certificate == "anisotropic" and len(fixed.fields(0)) == len(fam.column_types())


def test_anisotropic_dataset_run_and_refusals(tmp_path):
    model, X = linear_case(B=12, seed=1)
    sigma = torch.linspace(0.2, 0.6, 8)
    y = (model.score(X) > 0).long()
    out = str(tmp_path / "an.tsv")
    fam = AnisotropicSmooth(model, 2, sigma, seed=2).with_sequential(Sequential(Decide(0.05), first=50))
    certify_dataset(fam, X, y, list(range(12)), out=out, config={}, progress=False, n0=50, n=6400, alpha=0.01,
                    batch_size=256)
    d = load_results(out)
    assert set(d["certificate"]) == {"anisotropic-sequential-decide"}
    assert np.all(d["n"] <= 6400) and set(d["stop"]) <= {"certified", "futile"}
    ref = AnisotropicSmooth(model, 2, sigma, seed=2).certify_batch(X, 50, 6400, 0.01, 256,
                                                                   sequential=Sequential(Decide(0.05), first=50))
    assert np.array_equal(d["radius"], ref.radius.numpy()) and np.array_equal(d["o_ca"], ref.o_ca.numpy())
    with pytest.raises(ValueError, match="two-sided"):
        AnisotropicSmooth(model, 2, sigma, two_sided=True).with_sequential(SPEC)


def ddrs(model, seq=None):
    return DataDependentSmooth(Smooth(model, 2, 0.4, seed=7), OptimizeSigma(steps=3, lr=0.01), sequential=seq)


def test_ddrs_sequential_certifies_both_sigmas_sequentially_then_applies_the_memory():
    model, X = linear_case(B=6, seed=3)  # B != D: a [B] sigma is per input
    res = ddrs(model).certify_batch(X, 50, 6400, 0.01, 500, sequential=SPEC)
    # The fixed-sigma view is the plain sequential run at sigma0.
    plain = Smooth(model, 2, 0.4, seed=7).certify_batch(X, 50, 6400, 0.01, 500, sequential=SPEC)
    assert torch.equal(res.fixed.radius, plain.radius) and torch.equal(res.fixed.n_used, plain.n_used)
    # The data-dependent view is the sequential run at sigma*.
    at_star = Smooth(model, 2, res.sigma_star.view(-1), seed=7).certify_batch(X, 50, 6400, 0.01, 500,
                                                                              sequential=SPEC)
    assert torch.equal(res.data_dependent.radius, at_star.radius)
    cols = type(res).column_types(SPEC)
    row = dict(zip(cols, res.fields(0)))
    assert len(res.fields(0)) == len(cols)
    assert row["dd_certificate"] == "data-dependent-sequential-estimate"
    assert row["fixed_certificate"] == "fixed-sigma-sequential-estimate"
    assert row["certificate"] == "memory" and row["n"] == int(res.data_dependent.n_used[0])
    assert row["fixed_n"] == int(plain.n_used[0]) and row["n_max"] == 6400
    # The memory step takes the sequential radii: a fresh memory only shrinks them.
    assert torch.all(res.radius <= res.data_dependent.radius + 1e-12)


def test_ddrs_dataset_run_resumes_and_matches_the_batch_call(tmp_path):
    model, X = linear_case(B=10, seed=4)
    y = (model.score(X) > 0).long()
    out = str(tmp_path / "dd.tsv")
    run = lambda ids: certify_dataset(ddrs(model).with_sequential(SPEC), X, y, ids, out=out, config={},  # noqa: E731
                                      progress=False, n0=50, n=6400, alpha=0.01, batch_size=256)
    run(list(range(4)))
    run(list(range(10)))
    d = load_results(out)
    ref = ddrs(model, SPEC).certify_batch(X, 50, 6400, 0.01, 256)
    assert np.array_equal(d["radius"], ref.radius.numpy())
    assert np.array_equal(d["n"], ref.data_dependent.n_used.numpy())
    side = json.load(open(out + ".json"))
    assert side["config"]["sequential"]["rule"] == "estimate" and "mean_samples" in side["summary"]


def test_samplewise_cli_sequential(digits_checkpoint, tmp_path):
    out = str(tmp_path / "sw.tsv")
    argv = ["certify", "--model", digits_checkpoint, "--dataset", "digits", "--sigma", "0.25", "--sigma-mode",
            "samplewise", "--sigma-min", "0.1", "--sigma-max", "0.4", "--select-samples", "32", "--n0", "32",
            "--n", "3200", "--batch", "500", "--max", "24", "--out", out, "--no-progress",
            "--sequential", "estimate", "--tol", "0.05", "--first-checkpoint", "100"]
    assert cli.main(argv) == 0
    d = load_results(out)
    assert set(d["certificate"]) == {"transductive-greedy-sequential-estimate"}
    assert set(d["fixed_certificate"]) == {"fixed-sigma-sequential-estimate"}
    assert np.all(d["n"] <= 3200) and np.all(d["used_n"] <= 3200) and np.all(d["n_max"] == 3200)
    assert d["n"].min() < 3200  # some inputs stopped early
    stage = load_results(out + ".stage.tsv")
    assert np.array_equal(stage["n"], d["n"]) and "fixed_stop" in stage


def test_ddrs_cli_sequential_and_radius_file(digits_checkpoint, tmp_path, capsys):
    first = str(tmp_path / "a.tsv")
    base = ["certify", "--model", digits_checkpoint, "--dataset", "digits", "--sigma", "0.25", "--n0", "32",
            "--n", "3200", "--batch", "500", "--skip", "5", "--max", "16", "--no-progress"]
    assert cli.main(base + ["--out", first]) == 0
    # Decide, per input, whether a sequential run keeps the fixed-n run's radius.
    d0 = load_results(first)
    keep = d0["radius"] > 0  # abstentions (radius 0) cannot be a decide target
    keep[0] = False  # and one input is left out on purpose
    path = str(tmp_path / "radii.tsv")
    with open(path, "w") as f:
        f.write("idx\tradius\n" + "".join(f"{int(i)}\t{float(r)!r}\n" for i, r in zip(d0["idx"][keep], d0["radius"][keep])))
    out = str(tmp_path / "b.tsv")
    assert cli.main(base + ["--out", out, "--sequential", "decide", "--radius-file", path]) == 2
    assert "no radius for input index" in capsys.readouterr().err
    for i in d0["idx"][~keep]:
        with open(path, "a") as f:
            f.write(f"{i}\t0.1\n")
    assert cli.main(base + ["--out", out, "--sequential", "decide", "--radius-file", path]) == 0
    d = load_results(out)
    want = {int(i): r for i, r in zip(d0["idx"], np.where(keep, d0["radius"], 0.1))}
    assert all(d["target"][k] == want[int(i)] for k, i in enumerate(d["idx"]))
    assert set(d["stop"]) <= {"certified", "futile"}
    # A certified row proves at least its target.
    ok = d["stop"] == "certified"
    assert np.all(d["radius"][ok] >= d["target"][ok])
    ddrs_out = str(tmp_path / "c.tsv")
    assert cli.main(base + ["--out", ddrs_out, "--sigma-mode", "ddrs", "--ddrs-steps", "2", "--sequential",
                            "estimate", "--tol", "0.05"]) == 0
    dd = load_results(ddrs_out)
    assert set(dd["certificate"]) == {"memory"} and np.all(dd["fixed_n"] <= 3200)


@pytest.mark.parametrize("text, msg", [("i\tr\n1\t2\n", "'idx' and 'radius'"), ("idx\tradius\n1\tx\n", ":2:"),
                                       ("idx\tradius\n1\t-1\n", "finite and > 0"),
                                       ("idx\tradius\n1\t1\n1\t2\n", "two radii"), ("idx\tradius\n", "no radii")])
def test_bad_radius_files(tmp_path, text, msg):
    p = tmp_path / "r.tsv"
    p.write_text(text)
    with pytest.raises(ValueError, match=msg):
        read_radii(str(p))
    with pytest.raises(ValueError, match="cannot read"):
        read_radii(str(tmp_path / "missing.tsv"))


def test_per_position_radii_are_refused_for_dataset_runs():
    model, _ = linear_case()
    spec = Sequential(Decide(np.ones(3)))
    for fam in (Smooth(model, 2, 0.4), ddrs(model)):
        with pytest.raises(ValueError, match="keyed by input index"):
            fam.with_sequential(spec)
    fam = SequentialFamily(Smooth(model, 2, 0.4), Sequential(Decide({0: 0.1})))
    assert fam.sequential.rule.target(5, 0) == 0.1
    with pytest.raises(ValueError, match="no radius for input index 3"):
        fam.sequential.rule.target(0, 3)
