"""smoothcert.compat.art.RandomizedSmoothing: ART 1.20's PyTorchRandomizedSmoothing interface.

The cases marked by the ``art_cls`` fixture run ART itself on the same model (skipped
without it): equal shapes, dtypes and abstain encoding, and radii that agree with ART's
and with their exact expectation within binomial error. The others need only smoothcert.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import special
from scipy import stats as sps

import helpers
from smoothcert import NormalizeLayer, Smooth
from smoothcert.compat.art import ABSTAIN, RandomizedSmoothing

LOSS = torch.nn.CrossEntropyLoss()
SHAPE = (1, 4, 4)


@pytest.fixture
def art_cls():
    mod = pytest.importorskip("art.estimators.certification.randomized_smoothing")
    return mod.PyTorchRandomizedSmoothing


def art_estimator(art_cls, model, input_shape, nb_classes, **kw):
    """ART's estimator on the CPU. ART's certify bounds pA with statsmodels'
    ``proportion_confint(k, n, 2 alpha, "beta")[0]``, and ART does not install statsmodels:
    without it the same Clopper-Pearson bound ``Beta(alpha; k, n - k + 1)`` quantile stands in
    (the two agree exactly for n <= 1000 and alpha in {0.001, 0.01, 0.05})."""
    est = art_cls(model, LOSS, input_shape, nb_classes, device_type="cpu", **kw)
    try:
        import statsmodels  # noqa: F401
    except ImportError:
        est._lower_confidence_bound = (
            lambda k, n: float(sps.beta.ppf(est.alpha, k, n - k + 1)) if k > 0 else 0.0)
    return est


def linear3(seed=0):
    """A fixed 3-class linear classifier on 4x4 inputs."""
    g = helpers.gen(seed)
    lin = torch.nn.Linear(16, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 16, generator=g))
        lin.bias.copy_(torch.randn(3, generator=g))
    return torch.nn.Sequential(torch.nn.Flatten(), lin).eval()


def exact_radius_moments(p, n0, n, alpha, sigma):
    """Exact mean and variance of CERTIFY's radius for a 2-class input whose class 1 has
    probability ``p`` under the noise: selection picks class 1 when it has more than n0/2
    of n0 votes (a tie goes to class 0), then k of n estimation votes certify
    ``sigma Phi^-1(Beta(alpha; k, n - k + 1))`` (0 below 1/2)."""
    k = np.arange(n + 1)
    lower = np.where(k > 0, sps.beta.ppf(alpha, np.maximum(k, 1), n - k + 1), 0.0)
    r = np.where(lower >= 0.5, sigma * special.ndtri(np.maximum(lower, 0.5)), 0.0)
    s = sps.binom.sf(n0 // 2, n0, p)
    pmf_top, pmf_other = sps.binom.pmf(k, n, p), sps.binom.pmf(k, n, 1 - p)
    m1 = s * (pmf_top @ r) + (1 - s) * (pmf_other @ r)
    m2 = s * (pmf_top @ r ** 2) + (1 - s) * (pmf_other @ r ** 2)
    return m1, m2 - m1 ** 2


# ----------------------------------------------------------------------------- against ART


def test_certify_and_predict_shapes_match_art(art_cls):
    model = linear3()
    kw = dict(sample_size=20, scale=0.5, alpha=0.001, clip_values=(0.0, 1.0))
    x = torch.rand(6, *SHAPE, generator=helpers.gen(1)).numpy()
    np.random.seed(0)
    art = art_estimator(art_cls, model, SHAPE, 3, **kw)
    ours = RandomizedSmoothing(model, LOSS, SHAPE, 3, device_type="cpu", **kw)
    assert ours.input_shape == art.input_shape and ours.nb_classes == art.nb_classes
    assert ours.clip_values.dtype == art.clip_values.dtype and np.array_equal(ours.clip_values, art.clip_values)
    for est in (art, ours):
        pred, radius = est.certify(x, n=60, batch_size=32)
        assert isinstance(pred, np.ndarray) and isinstance(radius, np.ndarray)
        assert pred.dtype == np.int64 and radius.dtype == np.float64
        assert pred.shape == radius.shape == (6,)
        assert set(pred.tolist()) <= {-1, 0, 1, 2}
        assert np.all(radius[pred == -1] == 0.0) and np.all(radius[pred != -1] > 0)
        for abstain in (True, False):
            out = est.predict(x, batch_size=32, is_abstain=abstain)
            assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (6, 3)
            assert set(np.unique(out).tolist()) <= {0.0, 1.0}
            assert set(out.sum(axis=1).tolist()) <= ({0.0, 1.0} if abstain else {1.0})


def test_abstain_encoding_matches_art(art_cls):
    """An input on the decision boundary (pA = 1/2) abstains in both: certify gives (-1, 0.0)
    and predict an all-zero row (a one-hot row with is_abstain=False); an input far
    from it is certified by both."""
    clf = helpers.LinearClassifier(torch.ones(16))
    x = helpers.inputs_at_radii(clf, [0.0, 3.0], seed=2).reshape(2, *SHAPE).numpy()
    kw = dict(sample_size=32, scale=0.25, alpha=0.001)
    np.random.seed(0)
    art = art_estimator(art_cls, clf, SHAPE, 2, **kw)
    ours = RandomizedSmoothing(clf, LOSS, SHAPE, 2, device_type="cpu", **kw)
    for est in (art, ours):
        pred, radius = est.certify(x, n=200, batch_size=100)
        assert pred.tolist() == [ABSTAIN, 1] and radius[0] == 0.0 and radius[1] > 0.4
        assert est.predict(x, batch_size=100).tolist() == [[0.0, 0.0], [0.0, 1.0]]
        assert est.predict(x, batch_size=100, is_abstain=False).sum(axis=1).tolist() == [1.0, 1.0]


def test_radii_agree_with_art_statistically(art_cls):
    """Mean certified radius over 20 inputs of a linear model behind a (mean, std)
    preprocessing: smoothcert's and ART's both lie within 4.5 standard errors of the exact
    expectation, and of each other. Noise added after the preprocessing (std = 0.5) would
    certify about 0.026 on average against the 0.147 expected, 30 standard errors away."""
    n0, n, alpha, sigma, N = 32, 400, 0.001, 0.25, 20
    w, b, mean, std = torch.linspace(-1, 1, 16) + 0.3, 0.2, 0.5, 0.5
    model = helpers.LinearClassifier(w, b)
    raw = helpers.LinearClassifier(w / std, b - mean * float(w.sum()) / std)  # the same map on raw x
    pa = np.linspace(0.6, 0.95, N)
    x = helpers.inputs_at_radii(raw, sigma * special.ndtri(pa), seed=3)
    assert np.allclose(raw.true_pa(x, sigma).numpy(), pa, atol=1e-5)
    x = x.reshape(N, *SHAPE).numpy()
    moments = [exact_radius_moments(p, n0, n, alpha, sigma) for p in pa]
    expected = np.mean([m for m, _ in moments])
    se = np.sqrt(sum(v for _, v in moments)) / N
    kw = dict(sample_size=n0, scale=sigma, alpha=alpha, preprocessing=(mean, std))
    np.random.seed(0)
    art_pred, art_r = art_estimator(art_cls, model, SHAPE, 2, **kw).certify(x, n=n, batch_size=500)
    our_pred, our_r = RandomizedSmoothing(model, LOSS, SHAPE, 2, device_type="cpu", seed=5, **kw).certify(
        x, n=n, batch_size=500)
    assert abs(our_r.mean() - expected) <= 4.5 * se, (our_r.mean(), expected, se)
    assert abs(art_r.mean() - expected) <= 4.5 * se, (art_r.mean(), expected, se)
    assert abs(our_r.mean() - art_r.mean()) <= 4.5 * np.sqrt(2) * se
    assert set(our_pred.tolist()) <= {ABSTAIN, 1} and set(art_pred.tolist()) <= {ABSTAIN, 1}


# ----------------------------------------------------------------------------- smoothcert only


def test_noise_before_preprocessing_equals_smooth_on_normalised_model():
    """(mean, std) becomes a layer in front of the model, so the results are exactly
    smoothcert's Smooth on NormalizeLayer + model, keyed by the same indices."""
    model = linear3()
    x = torch.rand(5, *SHAPE, generator=helpers.gen(4))
    ours = RandomizedSmoothing(model, LOSS, SHAPE, 3, device_type="cpu", preprocessing=(0.4, 0.3),
                               sample_size=20, scale=0.5, seed=7)
    smooth = Smooth(torch.nn.Sequential(NormalizeLayer([0.4], [0.3]), model).eval(), 3, 0.5, seed=7)
    pred, radius = ours.certify(x.numpy(), 100, batch_size=64, indices=10)
    ref = smooth.certify_batch(x, 20, 100, 0.001, 64, indices=10)
    assert pred.tolist() == ref.prediction.tolist() and radius.tolist() == ref.radius.tolist()
    out = ours.predict(x.numpy(), indices=10)
    ref = smooth.predict_batch(x, 20, 0.001, 128, indices=10)
    assert out.argmax(axis=1)[out.sum(axis=1) == 1].tolist() == ref.prediction[ref.prediction >= 0].tolist()
    assert (out.sum(axis=1) == 0).tolist() == (ref.prediction == Smooth.ABSTAIN).tolist()


def test_calls_draw_fresh_noise_and_a_seed_repeats_them():
    model = linear3()
    x = torch.rand(3, *SHAPE, generator=helpers.gen(5)).numpy()
    est = RandomizedSmoothing(model, LOSS, SHAPE, 3, device_type="cpu", scale=1.0, seed=11)
    est.certify(x, 200)
    first = est.last_result.counts.clone()
    est.certify(x, 200)
    assert not torch.equal(first, est.last_result.counts)  # inputs 3..5 of the running index
    again = RandomizedSmoothing(model, LOSS, SHAPE, 3, device_type="cpu", scale=1.0, seed=11)
    again.certify(x, 200)
    assert torch.equal(first, again.last_result.counts)
    est.certify(x, 200, indices=0)
    assert torch.equal(first, est.last_result.counts)


@pytest.mark.parametrize("shape,axis", [((3, 2, 2), 0), ((2, 2, 3), 2)])
def test_channel_vector_preprocessing_lies_on_the_channel_axis(shape, axis):
    """A per-channel (mean, std) broadcasts on the first axis, or on the last when its
    length matches that one (channels last), as in ART; the model sees (x - mean) / std."""
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, z):
            seen.append(z.clone())
            return torch.zeros(z.shape[0], 2)

    mean, std = np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.0, 2.0])
    est = RandomizedSmoothing(Probe(), LOSS, shape, 2, device_type="cpu", channels_first=axis == 0,
                              preprocessing=(mean, std))
    x = torch.rand(1, *shape, generator=helpers.gen(6))
    est._classifier(x)
    view = [1] * 4
    view[axis + 1] = 3
    want = (x - torch.tensor(mean, dtype=torch.float32).view(view)) / torch.tensor(std, dtype=torch.float32).view(view)
    assert torch.allclose(seen[0], want)


def test_empty_input_gives_empty_arrays():
    est = RandomizedSmoothing(linear3(), LOSS, SHAPE, 3, device_type="cpu")
    pred, radius = est.certify(np.zeros((0, *SHAPE), np.float32), 100)
    assert pred.shape == radius.shape == (0,) and pred.dtype == np.int64 and radius.dtype == np.float64
    assert est.predict(np.zeros((0, *SHAPE), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("kwargs,message", [
    (dict(preprocessing_defences=[object()]), "preprocessing_defences"),
    (dict(device_type="tpu"), "device_type"),
    (dict(scale=0.0), "scale"),
    (dict(alpha=1.0), "alpha"),
    (dict(sample_size=0), "sample_size"),
    (dict(clip_values=(1.0, 0.0)), "clip_values"),
    (dict(preprocessing=(np.zeros(2), np.ones(3))), "same shape"),
    (dict(preprocessing=(0.0, 0.0)), "std must be > 0"),
    (dict(preprocessing=(np.full(5, 0.1), np.ones(5))), "channels"),
    (dict(input_shape=(1, 0, 4)), "input_shape"),
])
def test_bad_arguments_are_refused_in_one_line(kwargs, message):
    args = dict(model=linear3(), loss=LOSS, input_shape=SHAPE, nb_classes=3, device_type="cpu")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        RandomizedSmoothing(**args)


def test_bad_calls_are_refused_in_one_line():
    est = RandomizedSmoothing(linear3(), LOSS, SHAPE, 3, device_type="cpu")
    x = np.zeros((2, *SHAPE), np.float32)
    with pytest.raises(ValueError, match=r"x has shape \(1, 4, 4\).*\(N, 1, 4, 4\)"):
        est.certify(x[0], 100)
    with pytest.raises(ValueError, match="real numeric"):
        est.predict(x.astype(object))
    with pytest.raises(ValueError, match="unsupported keyword arguments: nb_samples"):
        est.predict(x, nb_samples=3)
    with pytest.raises(ValueError, match="is_abstain must be a bool"):
        est.predict(x, is_abstain=1)
    with pytest.raises(ValueError, match="n must be an integer"):
        est.certify(x, 0)
    est.scale = -1.0  # attributes stay settable, as in ART, and are checked at each call
    with pytest.raises(ValueError, match="scale must be finite"):
        est.certify(x, 100)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        RandomizedSmoothing(lambda z: z, LOSS, SHAPE, 3)
    with pytest.raises(NotImplementedError, match="train_gaussian"):
        est.fit(x, np.zeros(2))


@pytest.mark.slow
def test_bench_compat_quick_runs(tmp_path, art_cls):
    """bench/compat.py's smoke run: both estimators certify and a ratio is reported."""
    out = str(tmp_path / "compat.json")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run([sys.executable, os.path.join(root, "bench", "compat.py"), "--quick", "--device", "cpu",
                           "--json", out], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        res = json.load(f)["results"]
    assert {r["case"] for r in res} == {"tiny-mlp-8x8", "lenet-mnist"}
    assert all(r["smoothcert_over_art"] > 0 and r["threads"] == 1 for r in res)
