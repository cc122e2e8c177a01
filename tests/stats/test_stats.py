"""Tests for smoothcert.stats (exact binomial bounds, radii, predict/certify)."""
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from smoothcert import stats
from smoothcert.stats import (ABSTAIN, binom_test_pvalue, certify_from_counts,
                              clopper_pearson_lower, clopper_pearson_upper,
                              gaussian_radius, min_samples_to_certify,
                              predict_from_counts)

NS = [1, 2, 3, 7, 10, 50, 100, 1000, 100000]
ALPHAS = [1e-6, 0.001, 0.01, 0.05, 0.3]


def _grid():
    for n in NS:
        ks = np.unique(np.linspace(0, n, min(n + 1, 12)).astype(np.int64))
        for alpha in ALPHAS:
            yield ks, n, alpha


def test_bounds_match_beta_ppf_on_grid():
    for ks, n, alpha in _grid():
        lo = clopper_pearson_lower(ks, n, alpha)
        up = clopper_pearson_upper(ks, n, alpha)
        assert isinstance(lo, np.ndarray) and lo.dtype == np.float64 and lo.shape == ks.shape
        mid = (ks > 0) & (ks < n)
        np.testing.assert_allclose(lo[mid], sps.beta.ppf(alpha, ks[mid], n - ks[mid] + 1),
                                   rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(up[mid], sps.beta.ppf(1 - alpha, ks[mid] + 1, n - ks[mid]),
                                   rtol=1e-10)
        assert np.all(lo <= ks / n) and np.all(ks / n <= up)
        assert np.all((lo >= 0) & (up <= 1))


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_edge_cases_closed_forms(n, alpha):
    assert clopper_pearson_lower(0, n, alpha) == 0.0
    assert clopper_pearson_upper(n, n, alpha) == 1.0
    assert clopper_pearson_lower(n, n, alpha) == pytest.approx(alpha ** (1 / n), rel=1e-13)
    assert clopper_pearson_upper(0, n, alpha) == pytest.approx(1 - alpha ** (1 / n), rel=1e-12)


def test_monotone_in_k_and_alpha():
    for n in [1, 5, 37, 500]:
        ks = np.arange(n + 1)
        for alpha in ALPHAS:
            assert np.all(np.diff(clopper_pearson_lower(ks, n, alpha)) > 0)
            assert np.all(np.diff(clopper_pearson_upper(ks, n, alpha)) > 0)
        al = np.array(ALPHAS)  # increasing alpha -> less conservative bounds
        for k in {0, n // 2, n}:
            lo, up = clopper_pearson_lower(k, n, al), clopper_pearson_upper(k, n, al)
            assert np.all(np.diff(lo) >= 0) and np.all(np.diff(up) <= 0)


def test_broadcasting_scalar_rule_and_torch():
    assert isinstance(clopper_pearson_lower(3, 10, 0.05), float)
    assert isinstance(clopper_pearson_lower(np.int64(3), np.array(10), 0.05), float)
    out = clopper_pearson_lower(np.array([[1], [2]]), np.array([10, 20, 30]), 0.01)
    assert out.shape == (2, 3)
    t = torch.tensor([0, 40, 99, 100], dtype=torch.int64)
    np.testing.assert_array_equal(clopper_pearson_lower(t, 100, 0.001),
                                  clopper_pearson_lower(t.numpy(), 100, 0.001))
    assert isinstance(clopper_pearson_lower(torch.tensor(5), 10, 0.1), float)
    assert predict_from_counts(torch.tensor([[0, 100, 3], [1, 1, 1]]), 0.001).tolist() == [1, -1]


def test_binom_test_pvalue_matches_scipy():
    ks, ns, ps = [], [], []
    for n in [1, 2, 3, 4, 5, 10, 17, 60]:
        for k in range(n + 1):
            for p in [0.5, 0.1, 0.73]:
                ks.append(k), ns.append(n), ps.append(p)
    got = binom_test_pvalue(np.array(ks), np.array(ns), np.array(ps))
    want = np.array([sps.binomtest(k, n, p).pvalue for k, n, p in zip(ks, ns, ps)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert binom_test_pvalue(0, 1) == pytest.approx(1.0)
    assert isinstance(binom_test_pvalue(3, 10), float)
    assert binom_test_pvalue(np.array([3, 7]), 10).shape == (2,)


def test_gaussian_radius_vs_norm_ppf():
    pa = np.concatenate([np.linspace(0.5, 0.999999, 2001), [1 - 1e-12, 0.5 + 1e-12]])
    for sigma in [0.12, 0.25, 0.5, 1.0, 3.7]:
        r = gaussian_radius(pa, sigma)
        ref = sigma * sps.norm.ppf(pa)
        assert r.dtype == np.float64
        assert np.all(r <= ref)
        pos = ref > 0
        ulp = np.spacing(ref[pos])
        assert np.all(ref[pos] - r[pos] <= 2 * ulp)
        assert np.all(r[pos] < ref[pos])  # stepped down, never rounded up
    assert gaussian_radius(0.5, 1.0) == 0.0


def test_gaussian_radius_abstain_and_broadcast():
    assert gaussian_radius(0.4999999, 0.5) == 0.0
    r = gaussian_radius(np.array([0.0, 0.2, 0.49, 0.9]), 0.25)
    np.testing.assert_array_equal(r[:3], 0.0)
    assert r[3] > 0
    r2 = gaussian_radius(np.array([0.9, 0.9]), np.array([0.25, 0.5]))
    assert r2[1] == pytest.approx(2 * r2[0], rel=1e-14)
    assert isinstance(gaussian_radius(0.9, 0.25), float)


def test_certify_from_counts():
    counts = np.array([0, 400, 500, 990, 1000])
    abstain, pa, radius = certify_from_counts(counts, 1000, 0.001, 0.5)
    assert abstain.dtype == np.bool_ and pa.dtype == np.float64 and radius.dtype == np.float64
    np.testing.assert_array_equal(abstain, pa < 0.5)
    assert abstain.tolist() == [True, True, True, False, False]
    np.testing.assert_array_equal(radius[abstain], 0.0)
    np.testing.assert_array_equal(pa, clopper_pearson_lower(counts, 1000, 0.001))
    assert pa[-1] == pytest.approx(0.001 ** (1 / 1000))
    np.testing.assert_allclose(radius[3:], 0.5 * sps.norm.ppf(pa[3:]), rtol=1e-14)
    # n = 10, alpha = 0.001: unanimous votes give pa_lower = 0.50119 -> tiny radius
    ab, p10, r10 = certify_from_counts(10, 10, 0.001, 1.0)
    assert ab is False and isinstance(p10, float) and 0 < r10 < 0.01
    assert certify_from_counts(9, 9, 0.001, 1.0) == (True, pytest.approx(0.001 ** (1 / 9)), 0.0)


def test_predict_from_counts():
    assert ABSTAIN == -1 and stats.ABSTAIN == -1
    assert predict_from_counts([100, 0, 0], 0.001) == 0
    assert isinstance(predict_from_counts([100, 0, 0], 0.001), int)
    assert predict_from_counts([50, 50], 0.001) == ABSTAIN
    assert predict_from_counts([5, 5, 0], 0.5) == ABSTAIN  # tie -> p-value 1
    counts = np.array([[5, 5, 0], [100, 0, 0], [50, 50, 0], [0, 0, 30],
                       [0, 0, 0], [3, 60, 3], [20, 7, 7], [12, 0, 0]])
    out = predict_from_counts(counts, 0.001)
    assert out.dtype == np.int64 and out.shape == (8,)
    # [12,0,0]: p = 2 * 0.5**12 = 4.9e-4 <= 0.001; [20,7,7]: p(20, 27) ~ 0.019 > 0.001
    assert out.tolist() == [-1, 0, -1, 2, -1, 1, -1, 0]
    assert predict_from_counts([[20, 7, 7]], 0.05).tolist() == [0]
    # decision threshold is exactly "p-value <= alpha"
    p = binom_test_pvalue(12, 12)
    assert predict_from_counts([0, 12], p) == 1
    assert predict_from_counts([0, 12], np.nextafter(p, 0)) == ABSTAIN
    assert predict_from_counts([7], 0.05) == 0  # single class: runner-up count 0


def test_min_samples_to_certify():
    assert 0.001 ** (1 / 10) > 0.5 > 0.001 ** (1 / 9)
    assert min_samples_to_certify(0.001) == 10
    assert isinstance(min_samples_to_certify(0.001), int)
    assert min_samples_to_certify(0.25) == 3  # 0.25**(1/2) == 0.5 is not > 0.5
    assert min_samples_to_certify(0.5) == 2
    alphas = np.array([1e-10, 1e-6, 0.001, 0.01, 0.05, 0.2, 0.49, 0.9])
    ns = min_samples_to_certify(alphas)
    assert ns.dtype == np.int64
    for a, n in zip(alphas, ns):
        assert a ** (1 / n) > 0.5 and (n == 1 or a ** (1 / (n - 1)) <= 0.5)
        assert certify_from_counts(n, n, a, 1.0)[0] is False
        if n > 1:
            assert certify_from_counts(n - 1, n - 1, a, 1.0)[0] is True


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.8, 0.97])
def test_monte_carlo_coverage(p):
    rng = np.random.default_rng(12345)
    trials, n, alpha = 20000, 100, 0.05
    k = rng.binomial(n, p, size=trials)
    slack = 4 * math.sqrt(alpha * (1 - alpha) / trials)
    assert np.mean(clopper_pearson_lower(k, n, alpha) > p) <= alpha + slack
    assert np.mean(clopper_pearson_upper(k, n, alpha) < p) <= alpha + slack


@pytest.mark.parametrize("args, match", [
    ((11, 10, 0.1), "k <= n"),
    ((1, 0, 0.1), "n must be"),
    ((1, 10, 0.0), "alpha"),
    ((1, 10, 1.0), "alpha"),
    ((-1, 10, 0.1), "k must be"),
    ((2.5, 10, 0.1), "k must be"),
    ((float("nan"), 10, 0.1), "nan"),
    ((1, 10, float("nan")), "alpha"),
    ((np.array([1, 12]), 10, 0.1), "k=12"),
])
def test_bad_inputs_raise(args, match):
    with pytest.raises(ValueError, match=match):
        clopper_pearson_lower(*args)
    with pytest.raises(ValueError, match=match):
        clopper_pearson_upper(*args)


def test_bad_inputs_other_functions():
    with pytest.raises(ValueError, match="sigma"):
        gaussian_radius(0.9, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_radius(0.9, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_radius(0.9, np.array([0.5, np.inf]))
    with pytest.raises(ValueError, match="pa_lower"):
        gaussian_radius(np.nan, 0.5)
    with pytest.raises(ValueError, match="pa_lower"):
        gaussian_radius(1.5, 0.5)
    with pytest.raises(ValueError, match="sigma"):
        certify_from_counts(10, 10, 0.001, 0.0)
    with pytest.raises(ValueError, match="p must"):
        binom_test_pvalue(3, 10, 1.5)
    with pytest.raises(ValueError, match="k <= n"):
        binom_test_pvalue(11, 10)
    with pytest.raises(ValueError, match="counts"):
        predict_from_counts([3, -1], 0.01)
    with pytest.raises(ValueError, match="counts"):
        predict_from_counts(np.zeros((2, 2, 2), dtype=int), 0.01)
    with pytest.raises(ValueError, match="alpha"):
        predict_from_counts([3, 1], 0.0)
    with pytest.raises(ValueError, match="alpha"):
        min_samples_to_certify(1.0)
