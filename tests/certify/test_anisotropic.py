"""Non-uniform (per-element sigma) smoothing: reduction to Cohen, the per-element noise,
the ellipsoid certificate against the linear-classifier oracle, its derived radii and
the errors of bad input (Tecot et al.'s Theorem 3.1; the checks are this library's choice, not
the paper's)."""
import math

import numpy as np
import pytest
import torch
from scipy import special, stats as sps

from smoothcert import ops
from smoothcert.certify import AnisotropicSmooth, Smooth
from smoothcert.stats import ellipsoid

from helpers import LinearClassifier, cpu_and_cuda, gen

S = (2, 3, 4)
D = 24


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(D, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 3)).eval()


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("s", [0.12, 0.5, 1.7])
def test_constant_sigma_equals_isotropic(s, device):
    net = _net().to(device)
    X = torch.rand(6, *S, generator=gen(1)).to(device)
    iso = Smooth(net, 3, s, seed=7).certify_batch(X, 30, 400, 0.01, 256, indices=torch.arange(6) * 5)
    an = AnisotropicSmooth(net, 3, torch.full(S, s), seed=7).certify_batch(X, 30, 400, 0.01, 256,
                                                                             indices=torch.arange(6) * 5)
    assert torch.equal(iso.selection_counts, an.base.selection_counts) and torch.equal(iso.counts, an.base.counts)
    assert torch.equal(iso.prediction, an.prediction) and torch.equal(iso.radius, an.radius)
    s32 = float(torch.tensor(s))  # sigma as the kernel reads it
    ok = an.prediction >= 0
    assert ok.any()
    # R * sigma is Cohen's radius up to the one-ulp step each takes down.
    torch.testing.assert_close(an.normalized_radius[ok] * s32, iso.radius[ok], rtol=1e-14, atol=0)
    # O_CA = D log(Cohen radius), never above it.
    exact = D * np.log(an.normalized_radius[ok].numpy()) + D * math.log(s32)
    assert np.all(an.o_ca[ok].numpy() <= exact) and np.allclose(an.o_ca[ok].numpy(), exact, rtol=1e-12)
    assert torch.all(an.o_ca[~ok] == -math.inf)
    torch.testing.assert_close(an.r_geo[ok], iso.radius[ok], rtol=1e-13, atol=0)
    torch.testing.assert_close(an.r_linf[ok], iso.radius[ok] / math.sqrt(D), rtol=1e-13, atol=0)
    pi = Smooth(net, 3, s, seed=7).predict_batch(X, 200, 0.01, 256)
    pa = AnisotropicSmooth(net, 3, torch.full(S, s), seed=7).predict_batch(X, 200, 0.01, 256)
    assert torch.equal(pi.counts, pa.counts) and torch.equal(pi.prediction, pa.prediction)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_per_element_noise_mean_and_std(device):
    sigma = torch.linspace(0.05, 2.0, D).view(S)
    x = (torch.rand(1, *S, generator=gen(2)) * 3 - 1).to(device)
    m = 40000
    out = ops.sample_noise(x, sigma.to(device), m, seed=3).double().cpu().view(m, D)
    mean, std = out.mean(0), out.std(0)
    sig = sigma.double().view(D)
    # mean: 5 standard errors; std: its standard error is about sigma / sqrt(2 m).
    assert torch.all((mean - x.double().cpu().view(D)).abs() < 5 * sig / math.sqrt(m))
    assert torch.all((std - sig).abs() < 5 * sig / math.sqrt(2 * m))
    # elements are independent: off-diagonal correlations are at the 1/sqrt(m) level
    c = torch.corrcoef(out.T)
    assert (c - torch.eye(D, dtype=c.dtype)).abs().max() < 6 / math.sqrt(m)


def test_gradcheck_float64_through_the_fused_op():
    x = torch.rand(3, 5, generator=gen(4))
    w = torch.randn(5, 4, generator=gen(5), dtype=torch.float64)

    def f(sig64):
        out = ops.sample_noise(x, sig64.float(), 6, seed=9, validate=False)  # float32 inside the op
        return torch.tanh(out.double() @ w).sum(dim=0)

    sigma = (torch.rand(5, generator=gen(6), dtype=torch.float64) + 0.3).requires_grad_()
    # f is smooth and the op's only float32 step is x + sigma * eps; a wide step keeps its
    # rounding (1e-7 relative) below the tolerance.
    assert torch.autograd.gradcheck(f, (sigma,), eps=1e-3, atol=2e-3, rtol=2e-3)


def _oracle(seed=0, d=D):
    w = torch.randn(d, generator=gen(seed), dtype=torch.float64)
    clf = LinearClassifier(w.view(-1), b=0.3)
    sigma = (torch.rand(d, generator=gen(seed + 1)) * 1.5 + 0.1).view(S)
    return clf, sigma


def _true_normalized_radius(clf, x, sigma):
    """Exact R of the linear classifier: |w.x + b| / ||sigma * w||."""
    sw = torch.linalg.vector_norm(sigma.double().view(-1) * clf.w)
    return clf.score(x).abs() / sw


def test_linear_oracle_tight_along_the_worst_direction():
    clf, sigma = _oracle()
    x = torch.rand(4, *S, generator=gen(8)) * 2 - 1
    s = sigma.double().view(-1)
    R = _true_normalized_radius(clf, x, sigma)
    m = clf.score(x)
    sw = torch.linalg.vector_norm(s * clf.w)
    delta = -torch.sign(m)[:, None] * R[:, None] * (s ** 2 * clf.w) / sw  # the worst direction
    torch.testing.assert_close(torch.linalg.vector_norm(delta / s, dim=1), R)
    torch.testing.assert_close(clf.score((x.double().view(4, -1) + delta)), torch.zeros(4, dtype=torch.float64),
                               atol=1e-12, rtol=0)
    fam = AnisotropicSmooth(clf, 2, sigma)
    assert fam.contains((0.999 * delta).view(4, *S), R).all()
    assert not fam.contains((1.001 * delta).view(4, *S), R).any()
    assert not fam.contains(delta.view(4, *S), R).any()  # the surface is not inside (open set)
    flipped = clf.true_class((x.double().view(4, -1) + 1.001 * delta)) != clf.true_class(x)
    assert flipped.all()


def test_linear_oracle_no_flip_inside_the_certified_ellipsoid():
    clf, sigma = _oracle(seed=3)
    x = torch.rand(8, *S, generator=gen(9)) * 2 - 1
    res = AnisotropicSmooth(clf, 2, sigma, seed=1).certify_batch(x.float(), 50, 2000, 0.001, 4000)
    ok = res.prediction >= 0
    assert ok.sum() >= 4
    R_true = _true_normalized_radius(clf, x, sigma)
    assert torch.all(res.normalized_radius[ok] <= R_true[ok])
    s = sigma.double().view(-1)
    u = torch.randn(8, 500, D, generator=gen(10), dtype=torch.float64)
    u = u / torch.linalg.vector_norm(u, dim=2, keepdim=True)
    scale = torch.rand(8, 500, 1, generator=gen(11), dtype=torch.float64) ** (1 / D) * 0.999
    delta = u * scale * s * res.normalized_radius.view(8, 1, 1)  # strictly inside the ellipsoid
    for b in range(8):
        if ok[b]:
            assert AnisotropicSmooth(clf, 2, sigma).contains(delta[b].view(500, *S), res.normalized_radius[b]).all()
            moved = clf.true_class(x[b].double().view(1, -1) + delta[b])
            assert torch.all(moved == res.prediction[b])


def test_false_certificate_rate_is_at_most_alpha():
    """alpha = 0.1 over 600 independent certificates of one input: a certificate is false when
    its R exceeds the exact one (the class is always right here). Cohen's protocol with a
    one-sided bound makes the rate <= alpha; a point estimate would give about 50%."""
    clf, sigma = _oracle(seed=5)
    x = torch.rand(1, *S, generator=gen(12)) * 2 - 1
    trials, alpha = 600, 0.1
    X = x.expand(trials, *S).contiguous().float()
    res = AnisotropicSmooth(clf, 2, sigma, seed=2).certify_batch(X, 10, 100, alpha, 20000)
    R_true = float(_true_normalized_radius(clf, x, sigma)[0])
    pa = float(special.ndtr(R_true))
    assert 0.6 < pa < 0.99  # a regime where the bound matters
    false = int(((res.normalized_radius > R_true) | ((res.prediction >= 0) &
                                                      (res.prediction != clf.true_class(x)[0]))).sum())
    assert false <= sps.binom.ppf(0.999, trials, alpha)
    assert false >= 1  # the bound is not vacuous: at alpha = 0.1 some certificates come close


def test_two_sided_radius_union_bound():
    counts = np.array([[900, 60, 40], [500, 499, 1], [10, 5, 985]])
    top = np.array([0, 0, 2])
    r = ellipsoid.two_sided_radius(counts, top, 1000, 0.01)
    pa = sps.beta.ppf(0.005, counts[[0, 1, 2], top], 1000 - counts[[0, 1, 2], top] + 1)
    pb = np.array([sps.beta.ppf(1 - 0.0025, k + 1, 1000 - k) for k in (60, 499, 10)])
    expect = 0.5 * (special.ndtri(pa) - special.ndtri(np.minimum(pb, 1 - pa)))
    assert np.all(r <= np.maximum(expect, 0)) and np.allclose(r, np.maximum(expect, 0), rtol=1e-12)
    assert r[1] == 0.0  # pA ~ pB: nothing certified
    # with K = 2 the two-sided bound is the one-sided R at alpha / 2 (pB_upper = 1 - pA_lower)
    r2 = ellipsoid.two_sided_radius(np.array([[930, 70]]), np.array([0]), 1000, 0.01)
    one = ellipsoid.normalized_radius(sps.beta.ppf(0.005, 930, 71))
    assert r2[0] <= one and math.isclose(r2[0], one, rel_tol=1e-12)


def test_two_sided_column_and_certify_returns_R():
    clf, sigma = _oracle(seed=6)
    x = torch.rand(3, *S, generator=gen(13)) * 2 - 1
    fam = AnisotropicSmooth(clf, 2, sigma, two_sided=True)
    res = fam.certify_batch(x.float(), 20, 500, 0.01, 1000)
    assert "r_two_sided" in fam.columns() and len(res.fields(0)) == len(fam.columns())
    assert res.r_two_sided is not None and torch.all(res.r_two_sided >= 0)
    c, R = fam.certify(x[0].float(), 20, 500, 0.01, 1000, index=0)
    assert c == int(res.prediction[0]) and R == float(res.normalized_radius[0])


def test_derived_radii_are_inscribed():
    sigma = torch.rand(S, generator=gen(14)) + 0.05
    s = ellipsoid.SigmaSummary(sigma)
    R = np.array([0.0, 0.7, 2.3])
    sig = sigma.double().view(-1).numpy()
    # the L-inf box corner with half-width h lies in the closed ellipsoid, just inside its surface
    h = ellipsoid.linf_halfwidth(R, s)
    corner = np.sqrt(((h[:, None] / sig) ** 2).sum(1))
    assert np.all(corner <= R) and np.allclose(corner[1:], R[1:], rtol=1e-13)
    # the L2 ball of radius R min sigma: its worst point is along the smallest axis
    assert np.isclose(s.minimum, sig.min()) and s.dim == D
    o = ellipsoid.log_volume(R, s)
    assert o[0] == -math.inf and np.all(o[1:] <= np.log(sig).sum() + D * np.log(R[1:]))
    g = ellipsoid.geometric_radius(o, s)
    assert g[0] == 0 and np.allclose(g[1:], R[1:] * np.exp(np.log(sig).mean()), rtol=1e-12)


def test_ellipsoid_margin_closed_form():
    sigma = torch.tensor([[0.5, 2.0]])
    delta = torch.tensor([[[0.3, 1.2]], [[0.3, 1.0]]])
    m = ellipsoid.ellipsoid_margin(delta, sigma, np.array([1.0, 1.0]))
    # (0.6, 0.6): 0.72 < 1; ... both inside; margins ~ 1 - 0.72 and 1 - 0.61
    assert np.allclose(m, [1 - 0.72, 1 - 0.61], atol=1e-12) and np.all(m < [1 - 0.72, 1 - 0.61])
    with pytest.raises(ValueError, match="delta must be"):
        ellipsoid.ellipsoid_margin(torch.zeros(2, 3), sigma, np.ones(2))


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(S), "finite and > 0"),
    (torch.full(S, float("nan")), "finite and > 0"),
    (-torch.ones(S), "finite and > 0"),
    (torch.ones(S, dtype=torch.long), "floating point"),
    (torch.tensor(0.5), "shape of one input"),
])
def test_bad_sigma_is_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        AnisotropicSmooth(_net(), 3, bad)


def test_sigma_of_another_shape_than_the_inputs_is_refused():
    fam = AnisotropicSmooth(_net(), 3, torch.ones(4, 3, 2))  # D matches, the shape does not
    with pytest.raises(ValueError, match="sigma's shape"):
        fam.certify_batch(torch.rand(2, *S), 10, 100, 0.01, 100)
    with pytest.raises(ValueError, match="NaN/inf"):
        AnisotropicSmooth(_net(), 3, torch.ones(S)).certify_batch(torch.full((2, *S), float("nan")), 10, 100, 0.01,
                                                                    100)
