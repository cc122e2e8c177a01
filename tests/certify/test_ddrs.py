"""Data-dependent sigma: OptimizeSigma against closed forms and finite differences,
its independence of the certification draws and of batching, and the DDRS family
(fixed-sigma, data-dependent and memory certificates side by side, CLI, resume)."""
import json
import math
import os

import pytest
import torch
from scipy import special

from smoothcert import cli, data, models, ops
from smoothcert.analysis import summarize
from smoothcert.certify import DataDependentSmooth, Memory, Smooth, SplitSmooth, UniformSmooth
from smoothcert.sigma import OptimizeSigma
from smoothcert.train import train_gaussian
from helpers import gen, rows_without_time


class SoftLinear(torch.nn.Module):
    """Logits ``scale * (W x)`` in float64 (rows independent of each other)."""

    def __init__(self, d, k, scale=1.0, seed=0):
        super().__init__()
        self.W = torch.nn.Parameter(torch.randn(k, d, generator=gen(seed), dtype=torch.float64), requires_grad=False)
        self.scale = scale

    def forward(self, x):
        return self.scale * x.flatten(1).double() @ self.W.T


def test_confident_classifier_moves_sigma_by_lr_times_phi_inverse_of_the_clamp():
    # Both probabilities saturate the clamp: dR/dsigma = (Phi^-1(.98) - Phi^-1(.02)) / 2 = Phi^-1(.98).
    model = SoftLinear(8, 3, scale=1e4)
    X = torch.rand(4, 8, generator=gen(1)) + 1.0
    res = OptimizeSigma(steps=25, lr=1e-3)(model, X, 0.3, ids=torch.arange(4), seed=0)
    want = 0.3 + 25 * 1e-3 * special.ndtri(0.98)
    assert torch.allclose(res.sigma.double(), torch.full((4,), want, dtype=torch.float64), atol=1e-5)


def soft_radius_at(model, X, sigma, ids, seed, step, n):
    """R(sigma) with the optimiser's noise of one step (common random numbers), float64."""
    u = ops.sample_noise(torch.zeros_like(X), 1.0, n, ids=ids, sample_start=step * n, seed=seed,
                         stream=ops.SIGMA_OPT_STREAM).double()
    x = X.double().repeat_interleave(n, 0) + sigma.double().repeat_interleave(n).view(-1, 1) * u
    psi = torch.softmax(model(x), 1).view(X.shape[0], n, -1).mean(1)
    top = psi.topk(2, 1).values.clamp(0.02, 0.98)
    return sigma.double() / 2 * (torch.special.ndtri(top[:, 0]) - torch.special.ndtri(top[:, 1]))


def test_one_step_follows_the_finite_difference_gradient():
    model = SoftLinear(10, 4, scale=3.0, seed=2)
    X = torch.rand(5, 10, generator=gen(3))
    ids, s0, lr, n = torch.arange(5) * 7, torch.full((5,), 0.4), 0.05, 16
    res = OptimizeSigma(steps=1, lr=lr, samples=n)(model, X, s0, ids=ids, seed=9)
    h = 1e-4
    fd = (soft_radius_at(model, X, s0.double() + h, ids, 9, 0, n)
          - soft_radius_at(model, X, s0.double() - h, ids, 9, 0, n)) / (2 * h)
    assert torch.allclose(res.sigma.double(), s0.double() + lr * fd, atol=2e-5, rtol=0)
    assert not torch.allclose(res.sigma, s0)


class Recorder(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.inner(x)


def test_noise_is_drawn_at_the_current_sigma_every_step():
    # The published listing (Alfarra et al., App. A) froze the noise scale at sigma0; here step k uses sigma_k.
    model = Recorder(SoftLinear(6, 3, scale=2.0))
    X = torch.rand(2, 6, generator=gen(4))
    opt = OptimizeSigma(steps=3, lr=0.5, samples=4)
    res = opt(model, X, 0.2, ids=torch.arange(2), seed=1)
    sig = torch.full((2,), 0.2)
    for step, batch in enumerate(model.seen):
        u = ops.sample_noise(torch.zeros_like(X), 1.0, 4, ids=torch.arange(2), sample_start=4 * step, seed=1,
                             stream=ops.SIGMA_OPT_STREAM)
        assert torch.allclose(batch, X.repeat_interleave(4, 0) + sig.repeat_interleave(4).view(-1, 1) * u,
                              atol=1e-6)
        sig = OptimizeSigma(steps=step + 1, lr=0.5, samples=4)(SoftLinear(6, 3, scale=2.0), X, 0.2,
                                                              ids=torch.arange(2), seed=1).sigma
    assert torch.equal(sig, res.sigma)


def test_sigma_star_depends_on_the_input_index_not_on_batching():
    model = SoftLinear(12, 5, scale=4.0)
    X = torch.rand(9, 12, generator=gen(5))
    ids = torch.tensor([3, 1, 4, 15, 9, 2, 6, 5, 35])
    opt = OptimizeSigma(steps=5, lr=0.02, samples=3)
    whole = opt(model, X, 0.3, ids=ids, seed=2, batch_size=1000).sigma
    one_by_one = torch.cat([opt(model, X[i:i + 1], 0.3, ids=ids[i:i + 1], seed=2, batch_size=3).sigma
                            for i in range(9)])
    assert torch.equal(whole, one_by_one)
    assert not torch.equal(whole, opt(model, X, 0.3, ids=ids + 1, seed=2).sigma)


class Bump(torch.nn.Module):
    """Class 0 near the centre c, class 1 elsewhere: logits (a - b |x - c|^2, 0); more noise
    moves mass to class 1, so at sigma 0.3 (d = 6) the soft radius falls as sigma grows."""

    def __init__(self, c, a=3.0, b=4.0):
        super().__init__()
        self.c, self.a, self.b = c, a, b

    def forward(self, x):
        z = self.a - self.b * ((x.flatten(1) - self.c.flatten()) ** 2).sum(1)
        return torch.stack([z, torch.zeros_like(z)], 1)


def test_min_sigma_floor_is_counted():
    c = torch.full((6,), 0.5)
    X = c.expand(3, 6).clone()
    res = OptimizeSigma(steps=3, lr=1.0, samples=64, min_sigma=0.05)(Bump(c), X, 0.3, ids=torch.arange(3), seed=0)
    assert (res.sigma >= 0.05).all() and int(res.clipped.sum()) > 0


def test_optimizer_rejects_bad_settings():
    for kw, msg in [(dict(steps=-1), "steps"), (dict(samples=0), "samples"), (dict(lr=0.0), "lr"),
                    (dict(clamp=(0.5, 0.4)), "clamp"), (dict(min_sigma=0.0), "min_sigma")]:
        with pytest.raises(ValueError, match=msg):
            OptimizeSigma(**kw)
    with pytest.raises(ValueError, match="differentiable"):
        OptimizeSigma(steps=1)(SoftLinear(4, 2), torch.rand(1, 4), 0.5, ids=torch.arange(1), seed=0, noise="ssn")


@pytest.fixture(scope="module")
def digits_model():
    torch.manual_seed(0)
    model = models.build_model("mlp", "digits")
    train_gaussian(model, data.load_dataset("digits", "train"), 0.25, epochs=3, progress=False)
    return model.eval()


def test_family_certificates_side_by_side(digits_model):
    X = data.load_dataset("digits", "test").x[:12]
    ids = torch.arange(12) * 2
    opt = OptimizeSigma(steps=8, lr=5e-3)
    fam = DataDependentSmooth(Smooth(digits_model, 10, 0.25, seed=4), opt)
    res = fam.certify_batch(X, 20, 500, 0.001, 400, indices=ids)
    plain = Smooth(digits_model, 10, 0.25, seed=4).certify_batch(X, 20, 500, 0.001, 400, indices=ids)
    for a, b in [(res.fixed.prediction, plain.prediction), (res.fixed.radius, plain.radius),
                 (res.fixed.count_a, plain.count_a), (res.fixed.pa_lower, plain.pa_lower)]:
        assert torch.equal(a, b)  # the fixed-sigma columns are the plain certificate, same draws
    star = opt(digits_model, X, 0.25, ids=ids, seed=4).sigma
    assert torch.equal(res.sigma_star, star)
    per_input = Smooth(digits_model, 10, star, seed=4).certify_batch(X, 20, 500, 0.001, 400, indices=ids)
    assert torch.equal(res.data_dependent.radius, per_input.radius)
    assert res.certificate == "memory" and res.fixed.certificate == "fixed-sigma"
    # Far-apart digits: the memory changed nothing unless it reports a case.
    unchanged = torch.tensor([c == "none" for c in res.memory.case])
    assert torch.equal(res.radius[unchanged], res.data_dependent.radius[unchanged])
    assert len(fam.memory) == int(sum(c not in ("duplicate", "abstain") for c in res.memory.case))


def test_family_refuses_noise_without_a_sigma_gradient(digits_model):
    with pytest.raises(ValueError, match="differentiable in sigma"):
        DataDependentSmooth(SplitSmooth(digits_model, 10, 0.5, deterministic=False))
    with pytest.raises(ValueError, match="differentiable in sigma"):
        DataDependentSmooth(SplitSmooth(digits_model, 10, 0.5))


def test_uniform_noise_gives_l1_memory_certificates(digits_model):
    X = data.load_dataset("digits", "test").x[:4]
    fam = DataDependentSmooth(UniformSmooth(digits_model, 10, 0.5), OptimizeSigma(steps=3, lr=1e-3))
    res = fam.certify_batch(X, 10, 200, 0.01, 400)
    assert res.norm == "l1" and fam.memory.norm == "l1"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, digits_model):
    path = str(tmp_path_factory.mktemp("ckpt") / "mlp.pt")
    models.save_checkpoint(path, digits_model, arch="mlp", dataset="digits", meta={"method": "gaussian"})
    return path


def ddrs_args(ckpt, out, extra=()):
    return ["certify", "--model", ckpt, "--dataset", "digits", "--sigma", "0.25", "--sigma-mode", "ddrs",
            "--ddrs-steps", "6", "--ddrs-lr", "0.005", "--n0", "20", "--n", "300", "--batch", "256", "--skip", "2",
            "--max", "40", "--out", out, "--no-progress", *extra]


def test_cli_ddrs_tsv_resume_and_memory_file(checkpoint, tmp_path):
    full, part, mem = str(tmp_path / "full.tsv"), str(tmp_path / "part.tsv"), str(tmp_path / "mem.pt")
    assert cli.main(ddrs_args(checkpoint, full, ["--memory-out", mem])) == 0
    rows = rows_without_time(full)
    head = rows[0]
    assert head[:5] == ["idx", "label", "predict", "radius", "correct"]
    h = {k: i for i, k in enumerate(head)}
    assert all(r[h["certificate"]] == "memory" and r[h["fixed_certificate"]] == "fixed-sigma"
               and r[h["dd_certificate"]] == "data-dependent" for r in rows[1:])
    # Interrupted after 8 inputs (and half of the 9th row), then resumed: the same file
    # (the memory is rebuilt from the rows already written).
    assert cli.main(ddrs_args(checkpoint, part)) == 0
    with open(part) as f:
        lines = f.readlines()
    with open(part, "w") as f:
        f.writelines(lines[:9])
        f.write(lines[9][:11])
    assert cli.main(ddrs_args(checkpoint, part)) == 0
    assert rows_without_time(part) == rows
    with open(full + ".json") as f:
        side = json.load(f)
    assert side["config"]["sigma_mode"] == "ddrs" and side["summary"]["memory_none"] + \
        side["summary"]["memory_A"] + side["summary"]["memory_B"] + side["summary"]["memory_duplicate"] + \
        side["summary"]["memory_abstain"] == 20
    loaded = Memory.load(mem)
    assert len(loaded) == side["summary"]["stored"]
    views = summarize([full])
    assert [v["label"] for v in views] == ["full [memory]", "full [data-dependent]", "full [fixed-sigma]"]
    # A second run starting from the saved memory: every input is now a duplicate of a stored one.
    again = str(tmp_path / "again.tsv")
    assert cli.main(ddrs_args(checkpoint, again, ["--memory-in", mem])) == 0
    a = rows_without_time(again)
    assert {r[h["memory_case"]] for r in a[1:]} <= {"duplicate", "abstain"}
    assert cli.main(ddrs_args(checkpoint, str(tmp_path / "tol.tsv"), ["--memory-in", mem, "--memory-tol", "1e-3"])) == 2
    stored = {int(r[0]): (r[2], r[3]) for r in rows[1:] if r[h["memory_case"]] not in ("duplicate", "abstain")}
    for r in a[1:]:
        if r[h["memory_case"]] == "duplicate":
            assert (r[2], r[3]) == stored[int(r[0])]


def test_cli_ddrs_refuses_splitting_noise(checkpoint, tmp_path, capsys):
    assert cli.main(ddrs_args(checkpoint, str(tmp_path / "x.tsv"), ["--noise", "ssn"])) == 2
    assert "differentiable in sigma" in capsys.readouterr().err
    assert not os.path.exists(str(tmp_path / "x.tsv"))


class Wavy(torch.nn.Module):
    """Two classes in stripes: sigma* varies a lot between nearby points, so their
    per-input balls meet and the memory's case A fires."""

    def forward(self, x):
        z = 6 * torch.sin(4 * x[:, 0].double()) + 3 * torch.cos(3 * x[:, 1].double())
        return torch.stack([z, -z], 1)


def test_resumed_run_rebuilds_the_memory_when_its_cases_fired(tmp_path):
    from smoothcert.drivers import certify_dataset
    from smoothcert.drivers.dataset import header_of, read_rows

    X = torch.rand(60, 2, generator=gen(0)) * 3
    X[30:35] = X[0:5]  # duplicates
    y = (torch.sin(4 * X[:, 0]) * 6 + 3 * torch.cos(3 * X[:, 1]) < 0).long()

    def run(out, indices):
        fam = DataDependentSmooth(Smooth(Wavy().eval(), 2, 0.6, seed=1),
                                  OptimizeSigma(steps=10, lr=0.2, samples=8))
        certify_dataset(fam, X, y, indices, n0=20, n=2000, alpha=0.01, batch_size=4000, out=out,
                        config={"test": 1}, progress=False)
        return fam

    full = str(tmp_path / "full.tsv")
    fam = run(full, list(range(60)))
    cases = [r["memory_case"] for r in read_rows(full, header_of(fam))]
    assert cases.count("A") >= 2 and cases.count("duplicate") >= 1
    fam.memory.check_invariant()
    part = str(tmp_path / "part.tsv")
    run(part, list(range(60)))
    with open(part) as f:
        lines = f.readlines()
    with open(part, "w") as f:
        f.writelines(lines[:41])  # 40 rows survive the "crash"
    resumed = run(part, list(range(60)))
    assert rows_without_time(part) == rows_without_time(full)
    assert torch.equal(resumed.memory.x, fam.memory.x) and torch.equal(resumed.memory.radii, fam.memory.radii)
    assert resumed.memory.counts == fam.memory.counts


def test_sigma_is_per_input_even_when_the_batch_size_equals_the_dimension():
    # A 1-D sigma of length B reads as per-element when B == D; the optimiser must not.
    X = torch.rand(6, 3, generator=gen(8)) * 3
    opt = OptimizeSigma(steps=2, lr=0.2, samples=8)
    whole = opt(Wavy(), X, 0.6, ids=torch.arange(6), seed=1).sigma
    threes = torch.cat([opt(Wavy(), X[i:i + 3], 0.6, ids=torch.arange(i, i + 3), seed=1).sigma for i in (0, 3)])
    assert torch.equal(whole, threes)


def test_cli_refuses_ddrs_options_without_the_mode(checkpoint, tmp_path, capsys):
    args = ["certify", "--model", checkpoint, "--dataset", "digits", "--sigma", "0.25", "--n", "100", "--max", "2",
            "--ddrs-steps", "5", "--memory-out", str(tmp_path / "m.pt"), "--out", str(tmp_path / "x.tsv"),
            "--no-progress"]
    assert cli.main(args) == 2
    assert "--ddrs-steps, --memory-out belong to --sigma-mode ddrs" in capsys.readouterr().err
