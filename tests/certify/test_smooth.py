"""End-to-end tests of Smooth on an analytic linear classifier, whose smoothed
classifier has the exact robust radius |w.x+b|/||w|| and top-class probability
pA = Phi(|w.x+b| / (sigma ||w||)) (see helpers.LinearClassifier)."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import special
from scipy import stats as sps

from smoothcert import Smooth, ops, stats
from helpers import LinearClassifier, gen, inputs_at_radii


def linear(d=20, b=0.3, seed=0):
    return LinearClassifier(torch.randn(d, generator=gen(seed), dtype=torch.float64), b)


def points_at_pa(clf, sigma, pas, seed=1):
    """Inputs whose true pA under noise sigma are ``pas``, on alternating sides."""
    pas = np.asarray(pas, dtype=np.float64)
    signs = np.where(np.arange(len(pas)) % 2 == 0, 1.0, -1.0)
    return inputs_at_radii(clf, sigma * special.ndtri(pas) * signs, seed=seed)


def votes(clf, X, sigma, num, stream, seed, ids=None, **kw):
    """Counts recomputed by hand from the public ops (what Smooth must reproduce)."""
    counts = torch.zeros(X.shape[0], 2, dtype=torch.long)
    if num:
        batch = ops.sample_noise(X, sigma, num, ids=ids, seed=seed, stream=stream, **kw)
        ops.count_votes_(clf(batch), num, counts)
    return counts


def assert_same_result(a, b):
    for name in ("prediction", "radius", "count_a", "pa_lower", "sigma", "samples", "selection_counts", "counts"):
        assert torch.equal(getattr(a, name).cpu(), getattr(b, name).cpu()), name


# ---------------------------------------------------------------- soundness

@pytest.mark.parametrize("sigma", [0.25, 0.5, 1.0])
def test_certified_radius_never_exceeds_true_radius(sigma):
    clf = linear(d=30)
    pas = np.linspace(0.5, 0.9999, 40)
    X = points_at_pa(clf, sigma, pas)
    res = Smooth(clf, 2, sigma, seed=11).certify_batch(X, 100, 2000, 0.001, 5000)
    true_r, true_pa = clf.true_radius(X), clf.true_pa(X, sigma)
    assert torch.allclose(true_pa, torch.as_tensor(pas), atol=1e-5)
    assert bool((res.radius <= true_r).all()), (res.radius - true_r).max()
    assert bool((res.pa_lower <= true_pa).all())
    ok = res.prediction != Smooth.ABSTAIN
    assert int(ok.sum()) >= 30  # pA well above 1/2 certifies with n = 2000
    assert torch.equal(res.prediction[ok], clf.true_class(X)[ok])
    assert bool((res.radius[ok] > 0).all())


def test_radius_converges_from_below_as_n_grows():
    sigma = 0.5
    clf = linear(d=20)
    X = points_at_pa(clf, sigma, [0.7, 0.8, 0.9, 0.95, 0.99, 0.7, 0.85, 0.97], seed=2)
    true_r = clf.true_radius(X)
    smooth = Smooth(clf, 2, sigma, seed=3)
    mean_ratio = []
    for n in (1000, 10_000, 100_000):
        res = smooth.certify_batch(X, 100, n, 0.001, 20_000)
        assert torch.equal(res.prediction, clf.true_class(X))
        ratio = res.radius / true_r
        assert bool((ratio <= 1).all()), ratio
        mean_ratio.append(float(ratio.mean()))
    assert mean_ratio[0] < mean_ratio[1] < mean_ratio[2], mean_ratio
    assert bool((ratio >= 0.9).all()), ratio  # n = 1e5: within 10% of the exact radius


@pytest.mark.parametrize("pa, n, alpha", [(0.9, 200, 0.1), (0.8, 400, 0.1), (0.7, 300, 0.05)])
def test_coverage_of_pa_lower(pa, n, alpha):
    """Over T independent trials (one input index each), the one-sided bound fails
    (pA_lower > true P(selected class)) in at most about alpha of them, and in
    fact at the exact Clopper-Pearson miscoverage rate q of Binomial(n, pA)."""
    T, sigma = 2000, 0.5
    clf = linear(d=10, seed=4)
    x = points_at_pa(clf, sigma, [pa], seed=5)
    res = Smooth(clf, 2, sigma, seed=6).certify_batch(x.expand(T, -1), 50, n, alpha, 50_000)
    p_true = float(clf.true_pa(x, sigma)[0])
    top = res.selection_counts.argmax(dim=1)
    p_sel = torch.where(top == clf.true_class(x)[0], p_true, 1 - p_true)
    failures = int((res.pa_lower > p_sel).sum())
    k = np.arange(n + 1)
    q = float(sps.binom.pmf(k[stats.clopper_pearson_lower(k, n, alpha) > p_true], n, p_true).sum())
    assert alpha / 3 < q <= alpha  # the test has power, and the bound is valid
    assert failures / T <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / T)
    assert sps.binomtest(failures, T, q).pvalue > 1e-3, (failures, T, q)
    # and the estimation votes follow Binomial(n, pA) (mean and spread)
    ca = res.count_a[top == clf.true_class(x)[0]].double()
    assert abs(float(ca.mean()) - n * p_true) < 4.5 * math.sqrt(n * p_true * (1 - p_true) / ca.numel())
    assert float(ca.var()) == pytest.approx(n * p_true * (1 - p_true), rel=0.15)


# ---------------------------------------------------------------- noise plumbing

def test_selection_and_estimation_streams():
    sigma, seed = 0.5, 21
    clf = linear(d=12)
    X = points_at_pa(clf, sigma, [0.6, 0.7, 0.55, 0.8, 0.65], seed=7)
    ids = torch.tensor([4, 0, 99, 7, 2 ** 32 - 1])
    res = Smooth(clf, 2, sigma, seed=seed).certify_batch(X, 64, 300, 0.01, 128, indices=ids)
    sel = votes(clf, X, sigma, 64, ops.SELECTION_STREAM, seed, ids=ids)
    est = votes(clf, X, sigma, 300, ops.ESTIMATION_STREAM, seed, ids=ids)
    assert torch.equal(res.selection_counts, sel)
    assert torch.equal(res.counts, est)
    assert torch.equal(res.count_a, est.gather(1, sel.argmax(1, keepdim=True)).view(-1))
    assert not torch.equal(votes(clf, X, sigma, 64, ops.ESTIMATION_STREAM, seed, ids=ids), sel)
    abstain, pa_lower, radius = stats.certify_from_counts(res.count_a.numpy(), 300, 0.01, sigma)
    assert np.array_equal(res.pa_lower.numpy(), pa_lower)
    assert np.array_equal(res.radius.numpy(), radius)
    assert np.array_equal((res.prediction == Smooth.ABSTAIN).numpy(), abstain)
    pred = Smooth(clf, 2, sigma, seed=seed).predict_batch(X, 300, 0.01, 128, indices=ids)
    assert torch.equal(pred.counts, votes(clf, X, sigma, 300, ops.PREDICT_STREAM, seed, ids=ids))


def test_options_reach_the_sampler():
    sigma, seed = 0.5, 5
    clf = linear(d=16)
    X = points_at_pa(clf, sigma, [0.6, 0.9, 0.75], seed=8).view(3, 1, 4, 4)
    kw = dict(clamp=(-0.4, 0.6), out_dtype=torch.bfloat16, channels_last=True)
    res = Smooth(clf, 2, sigma, seed=seed, **kw).certify_batch(X, 20, 200, 0.01, 64)
    assert torch.equal(res.counts, votes(clf, X, sigma, 200, ops.ESTIMATION_STREAM, seed, **kw))
    plain = Smooth(clf, 2, sigma, seed=seed).certify_batch(X, 20, 200, 0.01, 64)
    assert not torch.equal(res.counts, plain.counts)


def test_results_independent_of_batch_size():
    sigma = 0.5
    clf = linear(d=10)
    X = points_at_pa(clf, sigma, [0.6, 0.8, 0.95, 0.55, 0.7], seed=9)
    smooth = Smooth(clf, 2, sigma, seed=12)
    ref = smooth.certify_batch(X, 30, 100, 0.01, 10_000)
    pref = smooth.predict_batch(X, 100, 0.01, 10_000)
    for bs in (1, 7, 100):
        assert_same_result(smooth.certify_batch(X, 30, 100, 0.01, bs), ref)
        p = smooth.predict_batch(X, 100, 0.01, bs)
        assert torch.equal(p.counts, pref.counts) and torch.equal(p.prediction, pref.prediction)


def test_results_independent_of_order_and_grouping():
    sigma = 0.25
    clf = linear(d=10)
    X = points_at_pa(clf, sigma, np.linspace(0.55, 0.99, 9), seed=10)
    smooth = Smooth(clf, 2, sigma, seed=13)
    ids = torch.arange(100, 109)
    ref = smooth.certify_batch(X, 40, 200, 0.01, 450, indices=100)  # int start index
    assert_same_result(smooth.certify_batch(X, 40, 200, 0.01, 450, indices=ids), ref)
    perm = torch.randperm(9, generator=gen(1))
    shuffled = smooth.certify_batch(X[perm], 40, 200, 0.01, 450, indices=ids[perm])
    for name in ("prediction", "radius", "pa_lower", "selection_counts", "counts"):
        assert torch.equal(getattr(shuffled, name), getattr(ref, name)[perm]), name
    parts = [smooth.certify_batch(X[a:b], 40, 200, 0.01, 450, indices=ids[a:b]) for a, b in [(0, 2), (2, 3), (3, 9)]]
    assert torch.equal(torch.cat([p.counts for p in parts]), ref.counts)
    assert torch.equal(torch.cat([p.radius for p in parts]), ref.radius)
    # a different seed gives different votes
    other = Smooth(clf, 2, sigma, seed=14).certify_batch(X, 40, 200, 0.01, 450, indices=100)
    assert not torch.equal(other.counts, ref.counts)


# ---------------------------------------------------------------- single-input API

def test_single_input_certify_and_predict():
    sigma = 0.5
    clf = linear(d=8)
    X = points_at_pa(clf, sigma, [0.9, 0.95], seed=11)
    smooth = Smooth(clf, 2, sigma, seed=2)
    batch = smooth.certify_batch(X, 50, 500, 0.001, 1000, indices=torch.tensor([7, 8]))
    c, r = smooth.certify(X[0], 50, 500, 0.001, 1000, index=7)
    assert isinstance(c, int) and isinstance(r, float)
    assert (c, r) == (int(batch.prediction[0]), float(batch.radius[0]))
    assert c == int(clf.true_class(X[:1])[0]) and 0 < r <= float(clf.true_radius(X[:1])[0])
    # default indices count up from 0 with every single-input call
    s2 = Smooth(clf, 2, sigma, seed=2)
    both = s2.certify_batch(X, 50, 500, 0.001, 1000)
    assert s2.certify(X[0], 50, 500, 0.001, 1000) == (int(both.prediction[0]), float(both.radius[0]))
    assert s2.certify(X[1], 50, 500, 0.001, 1000) == (int(both.prediction[1]), float(both.radius[1]))
    assert s2.next_index == 2
    p = smooth.predict(X[1], 500, 0.001, 1000, index=3)
    assert p == int(smooth.predict_batch(X[1:], 500, 0.001, 1000, indices=3).prediction[0])
    assert p == int(clf.true_class(X[1:])[0])


def test_abstain_at_the_decision_boundary():
    assert Smooth.ABSTAIN == -1
    clf = LinearClassifier(torch.randn(10, generator=gen(3), dtype=torch.float64), 0.0)
    x = torch.zeros(10)  # w.x + b == 0 exactly: pA = 1/2 for both classes
    smooth = Smooth(clf, 2, 0.5, seed=4)
    c, r = smooth.certify(x, 100, 1000, 0.001, 1000)
    assert c == Smooth.ABSTAIN and r == 0.0 and isinstance(r, float)
    X = torch.zeros(20, 10)
    res = smooth.certify_batch(X, 100, 1000, 0.001, 1000)
    assert bool((res.prediction == Smooth.ABSTAIN).all())
    assert bool((res.radius == 0.0).all()) and bool((res.pa_lower < 0.5).all())
    pred = smooth.predict_batch(X, 1000, 0.001, 1000)
    assert int((pred.prediction != Smooth.ABSTAIN).sum()) <= 1
    assert smooth.predict(x, 1000, 0.001, 1000) == Smooth.ABSTAIN
    top2 = pred.counts.sort(dim=1, descending=True).values
    want = [sps.binomtest(int(a), int(a + b), 0.5).pvalue for a, b in top2.tolist()]
    np.testing.assert_allclose(pred.pvalue.numpy(), want, rtol=1e-12)


def test_radius_exactly_zero_on_abstain_and_positive_otherwise():
    sigma = 1.0
    clf = linear(d=10)
    X = points_at_pa(clf, sigma, np.linspace(0.5, 0.7, 30), seed=12)
    res = Smooth(clf, 2, sigma, seed=1).certify_batch(X, 50, 400, 0.01, 5000)
    ab = res.prediction == Smooth.ABSTAIN
    assert 0 < int(ab.sum()) < 30
    assert bool((res.radius[ab] == 0.0).all())
    assert bool((res.radius[~ab] > 0).all())
    assert res.radius.dtype == torch.float64 and res.prediction.dtype == torch.int64
    assert torch.equal(res.samples, torch.full((30,), 450)) and (res.n0, res.n, res.alpha) == (50, 400, 0.01)


def test_empty_batch_and_single_class():
    clf = linear(d=4)
    smooth = Smooth(clf, 2, 0.5)
    res = smooth.certify_batch(torch.zeros(0, 4), 10, 100, 0.01, 100)
    assert res.prediction.shape == res.radius.shape == (0,) and res.counts.shape == (0, 2)
    pred = smooth.predict_batch(torch.zeros(0, 4), 100, 0.01, 100)
    assert pred.prediction.shape == (0,) and pred.counts.shape == (0, 2)
    one = Smooth(lambda z: torch.zeros(z.shape[0], 1), 1, 0.5)  # every vote for class 0
    res = one.certify_batch(torch.zeros(2, 4), 10, 100, 0.01, 100)
    assert res.prediction.tolist() == [0, 0] and bool((res.count_a == 100).all())
    assert np.allclose(res.radius.numpy(), 0.5 * special.ndtri(0.01 ** (1 / 100)))


def test_too_few_samples_warns_and_abstains():
    clf = linear(d=5)
    X = points_at_pa(clf, 0.25, [0.999999] * 3, seed=13)
    with pytest.warns(UserWarning, match="never certify"):
        res = Smooth(clf, 2, 0.25).certify_batch(X, 5, 5, 0.001, 100)
    assert bool((res.prediction == Smooth.ABSTAIN).all()) and bool((res.radius == 0).all())
    assert bool((res.count_a == 5).all())  # unanimous, and still no certificate
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = Smooth(clf, 2, 0.25).certify_batch(X, 5, 10, 0.001, 100)  # 10 is enough
    assert bool((res.prediction != Smooth.ABSTAIN).all())


def test_training_mode_warns():
    clf = linear(d=5).train()
    with pytest.warns(UserWarning, match="training mode"):
        Smooth(clf, 2, 0.25).certify_batch(torch.zeros(1, 5), 5, 20, 0.01, 100)


# ---------------------------------------------------------------- sigma shapes

def test_per_input_sigma_scales_radius_per_input():
    clf = linear(d=10)
    sigmas = torch.tensor([0.25, 0.5, 1.0, 0.5])
    X = points_at_pa(clf, 1.0, [0.8, 0.8, 0.8, 0.9], seed=14)
    ids = torch.arange(4)
    res = Smooth(clf, 2, sigmas, seed=3).certify_batch(X, 50, 1000, 0.001, 2000, indices=ids)
    assert torch.equal(res.sigma, sigmas.double())
    for i in range(4):
        one = Smooth(clf, 2, float(sigmas[i]), seed=3).certify_batch(X[i:i + 1], 50, 1000, 0.001, 2000,
                                                                      indices=ids[i:i + 1])
        assert torch.equal(one.counts[0], res.counts[i]) and float(one.radius[0]) == float(res.radius[i])
    expect = stats.gaussian_radius(res.pa_lower.numpy(), sigmas.double().numpy())
    assert np.array_equal(res.radius.numpy(), np.where(res.prediction.numpy() < 0, 0.0, expect))
    assert bool((res.radius <= clf.true_radius(X)).all())


def test_per_element_sigma_certifies_with_smallest_sigma():
    clf = linear(d=12)
    sigma = torch.linspace(0.3, 0.9, 12)
    X = points_at_pa(clf, 0.6, [0.8, 0.9, 0.95], seed=15)
    res = Smooth(clf, 2, sigma, seed=8).certify_batch(X, 50, 2000, 0.001, 4000)
    assert torch.equal(res.sigma, torch.full((3,), float(sigma.min()), dtype=torch.float64))
    assert torch.equal(res.counts, votes(clf, X, sigma, 2000, ops.ESTIMATION_STREAM, 8))
    expect = stats.gaussian_radius(res.pa_lower.numpy(), float(sigma.min()))
    assert np.array_equal(res.radius.numpy(), np.where(res.prediction.numpy() < 0, 0.0, expect))
    assert bool((res.radius <= clf.true_radius(X)).all())
    assert bool((res.prediction == clf.true_class(X)).all())


# ---------------------------------------------------------------- errors

class _Wrong(torch.nn.Module):
    def __init__(self, what):
        super().__init__()
        self.what = what
        self.eval()

    def forward(self, x):
        n = x.shape[0]
        if self.what == "extra_class":
            return torch.zeros(n, 3)
        if self.what == "one_d":
            return torch.zeros(n)
        if self.what == "three_d":
            return torch.zeros(n, 2, 1)
        if self.what == "wrong_rows":
            return torch.zeros(n + 1, 2)
        if self.what == "not_tensor":
            return [0] * n
        logits = torch.zeros(n, 2)
        logits[-1, 1] = float("nan") if self.what == "nan" else float("inf")
        return logits


@pytest.mark.parametrize("what", ["extra_class", "one_d", "three_d", "wrong_rows", "not_tensor"])
def test_model_with_wrong_output_shape(what):
    smooth = Smooth(_Wrong(what), 2, 0.5)
    with pytest.raises(ValueError, match=r"must return logits of shape \[\d+, 2\]"):
        smooth.certify_batch(torch.zeros(3, 4), 10, 20, 0.01, 100)
    with pytest.raises(ValueError, match="must return logits of shape"):
        smooth.predict_batch(torch.zeros(3, 4), 20, 0.01, 100)


@pytest.mark.parametrize("what", ["nan", "inf"])
def test_model_with_nonfinite_logits(what):
    with pytest.raises(ValueError, match="NaN/inf logits"):
        Smooth(_Wrong(what), 2, 0.5).certify_batch(torch.zeros(3, 4), 10, 20, 0.01, 100)


@pytest.mark.parametrize("sigma", [0.0, -0.5, float("nan"), float("inf"), "0.5", None])
def test_bad_sigma_in_constructor(sigma):
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        Smooth(linear(d=4), 2, sigma)


@pytest.mark.parametrize("sigma", [torch.tensor([0.5, 0.0]), torch.tensor(-1.0), torch.tensor([0.5, float("nan")])],
                         ids=str)
def test_bad_sigma_tensor(sigma):
    smooth = Smooth(linear(d=4), 2, sigma)
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        smooth.certify_batch(torch.zeros(2, 4), 10, 20, 0.01, 100)


def test_sigma_tensor_of_wrong_shape():
    with pytest.raises(ValueError, match="sigma must be a number or have shape"):
        Smooth(linear(d=4), 2, torch.ones(3)).certify_batch(torch.zeros(2, 4), 10, 20, 0.01, 100)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_input(bad):
    X = torch.zeros(2, 4)
    X[1, 1] = bad
    smooth = Smooth(linear(d=4), 2, 0.5)
    with pytest.raises(ValueError, match="input contains 1 NaN/inf"):
        smooth.certify_batch(X, 10, 20, 0.01, 100)
    with pytest.raises(ValueError, match="NaN/inf"):
        smooth.predict(X[1], 20, 0.01, 100)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(n0=0), "n0 must be an integer >= 1"),
    (dict(n0=-1), "n0 must be an integer >= 1"),
    (dict(n=0), "n must be an integer >= 1"),
    (dict(n=100.0), "n must be an integer >= 1"),
    (dict(n=True), "n must be an integer >= 1"),
    (dict(alpha=0.0), r"alpha must lie in \(0, 1\)"),
    (dict(alpha=1.0), r"alpha must lie in \(0, 1\)"),
    (dict(alpha=1.5), r"alpha must lie in \(0, 1\)"),
    (dict(alpha=-0.01), r"alpha must lie in \(0, 1\)"),
    (dict(alpha=float("nan")), r"alpha must lie in \(0, 1\)"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
], ids=str)
def test_bad_certify_arguments(kwargs, msg):
    args = dict(n0=10, n=100, alpha=0.01, batch_size=100)
    args.update(kwargs)
    smooth = Smooth(linear(d=4), 2, 0.5)
    with pytest.raises(ValueError, match=msg):
        smooth.certify_batch(torch.zeros(2, 4), args["n0"], args["n"], args["alpha"], args["batch_size"])
    if "n0" not in kwargs:
        with pytest.raises(ValueError, match=msg):
            smooth.predict_batch(torch.zeros(2, 4), args["n"], args["alpha"], args["batch_size"])


def test_bad_inputs_and_indices():
    smooth = Smooth(linear(d=4), 2, 0.5)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        smooth.certify_batch([[0.0] * 4] * 2, 10, 20, 0.01, 100)  # arrays are taken, lists are not
    with pytest.raises(ValueError, match="batch dimension"):
        smooth.certify_batch(torch.tensor(1.0), 10, 20, 0.01, 100)
    with pytest.raises(ValueError, match="floating point"):
        smooth.certify_batch(torch.zeros(2, 4, dtype=torch.long), 10, 20, 0.01, 100)
    with pytest.raises(ValueError, match="one entry per input"):
        smooth.certify_batch(torch.zeros(2, 4), 10, 20, 0.01, 100, indices=torch.arange(3))
    with pytest.raises(ValueError, match=r"input indices must lie in \[0, 2\^32\)"):
        smooth.certify_batch(torch.zeros(2, 4), 10, 20, 0.01, 100, indices=torch.tensor([0, -1]))
    with pytest.raises(ValueError, match=r"input indices must lie in \[0, 2\^32\)"):
        smooth.certify_batch(torch.zeros(2, 4), 10, 20, 0.01, 100, indices=2 ** 32 - 1)
    with pytest.raises(ValueError, match="index must be an integer >= 0"):
        smooth.certify(torch.zeros(4), 10, 20, 0.01, 100, index=-1)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        Smooth(linear(d=4), 0, 0.5)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        Smooth(linear(d=4), 2, 0.5, seed=-1)


def test_model_and_input_on_different_devices():
    clf = linear(d=4).to("meta")
    with pytest.raises(ValueError, match=r"input is on cpu but the base classifier's parameters are on meta"):
        Smooth(clf, 2, 0.5).certify_batch(torch.zeros(2, 4), 10, 20, 0.01, 100)
    with pytest.raises(ValueError, match="on cpu but .* on meta"):
        Smooth(clf, 2, 0.5).predict(torch.zeros(4), 20, 0.01, 100)


class _LooksLikeCuda(torch.Tensor):
    """A CPU tensor claiming to live on CUDA, to reach the CPU-only-build guard
    on machines without a GPU (a real CUDA tensor is tested when one exists)."""

    @property
    def is_cuda(self):
        return True


def test_cuda_input_to_cpu_only_build_is_rejected(monkeypatch):
    monkeypatch.setattr(ops, "cuda_version", lambda: -1)
    X = torch.zeros(2, 4).as_subclass(_LooksLikeCuda)
    with pytest.raises(RuntimeError, match="built without CUDA"):
        Smooth(linear(d=4), 2, 0.5).certify_batch(X, 10, 20, 0.01, 100)


@pytest.mark.skipif(not torch.cuda.is_available() or ops.cuda_version() >= 0,
                    reason="needs a visible GPU and a CPU-only smoothcert build")
def test_real_cuda_input_to_cpu_only_build_is_rejected():
    with pytest.raises(RuntimeError, match="built without CUDA"):
        Smooth(linear(d=4), 2, 0.5).certify_batch(torch.zeros(2, 4, device="cuda"), 10, 20, 0.01, 100)
    with pytest.raises((RuntimeError, NotImplementedError), match="CUDA"):
        ops.sample_noise(torch.zeros(2, 4, device="cuda"), 0.5, 3)


@pytest.mark.needs_cuda
def test_cuda_matches_cpu_end_to_end():
    sigma = 0.5
    clf = linear(d=16)
    X = points_at_pa(clf, sigma, [0.6, 0.8, 0.95], seed=16)
    # Batches first, so that a mismatch points at the sampler rather than at the model.
    for stream in (ops.SELECTION_STREAM, ops.ESTIMATION_STREAM):
        batch = ops.sample_noise(X, sigma, 1000, seed=1, stream=stream)
        assert torch.equal(ops.sample_noise(X.cuda(), sigma, 1000, seed=1, stream=stream).cpu(), batch)
    # LinearClassifier's logits are elementwise float64 mul/add in a fixed order (no matmul or
    # reduction), each one IEEE-rounded alike on both devices, so equal noise gives equal votes.
    assert torch.equal(linear(d=16).cuda()(batch.cuda()).cpu(), clf(batch))
    cpu = Smooth(clf, 2, sigma, seed=1).certify_batch(X, 50, 1000, 0.001, 512)
    gpu = Smooth(linear(d=16).cuda(), 2, sigma, seed=1).certify_batch(X.cuda(), 50, 1000, 0.001, 512)
    assert_same_result(gpu, cpu)
    assert bool((gpu.radius.cpu() <= clf.true_radius(X)).all())
    with pytest.raises(ValueError, match="on cuda:0 but .* on cpu"):
        Smooth(clf, 2, sigma).certify_batch(X.cuda(), 10, 20, 0.01, 100)
