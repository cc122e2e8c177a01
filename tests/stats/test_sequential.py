"""Tests for smoothcert.stats.sequential (anytime-valid confidence sequences, stopping rules).

* Coverage by simulation. For true p values spread over (0, 1), next to 1 (where
  certification happens) and just either side of the decide thresholds, 10^5 independent
  binomial streams per p (counts at the checkpoints are cumulative sums of binomial
  increments, fixed seeds) are run through each confidence sequence (grid Clopper-Pearson
  with linear and uniform spending, beta-binomial mixture) under several stopping rules:
  *decide* with a Gaussian radius map, *estimate* at two tolerances and an adversarial
  *peek* rule that stops at the first checkpoint where the lower bound exceeds p (so its
  violation rate is the rate of EVER exceeding p: the simultaneous guarantee itself). For the
  mixture the peek rule also looks after every single sample (Bernoulli streams, n = 1..300).
  Each violation rate must have its 99% one-sided Clopper-Pearson upper bound at most alpha
  (a large alpha, so the check has power). As a check that this can fail, a naive fixed-n
  Clopper-Pearson bound at level alpha used at every checkpoint must break it.
* Closed forms and brute force: the grid sequence is Clopper-Pearson at the spent levels
  (which sum to at most alpha), refuses off-grid n; the mixture's lower/upper bounds are
  checked against log M computed here with scipy.special.betaln (rejected at the bound,
  not rejected just inside, a dense scan and a root finder agree with them).
* The rules' definitions (decide, estimate) and geometric_grid, including bad arguments.

The simulated tables are built once per confidence sequence (a bound depends on (k, n) only),
so every stream costs a table look-up.
"""
import functools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy import optimize, special
from scipy import stats as sps

from smoothcert import stats
from smoothcert.stats import clopper_pearson_lower, clopper_pearson_upper
from smoothcert.stats.sequential import (CERTIFIED, CONFIDENCE_SEQUENCES, CONTINUE, FUTILE, BetaBinomialMixture,
                                         GridClopperPearson, confidence_sequence, decide, estimate,
                                         geometric_grid)

ALPHA = 0.1  # large, so that the coverage checks have power
GRID = geometric_grid(10, 2000, 2.0)  # [10, 20, 40, 80, 160, 320, 640, 1280, 2000]
J = len(GRID)
N_MAX = int(GRID[-1])
SIGMA = 0.25
THRESHOLDS = (0.9, 0.99)  # decide proves r = sigma Phi^-1(threshold)
RADII = {t: SIGMA * float(special.ndtri(t)) for t in THRESHOLDS}
TOLS = (0.01, 0.05)
P_TRUE = (0.3, 0.5, 0.9, 0.97, 0.99, 0.999) + tuple(t + d for t in THRESHOLDS for d in (-0.005, 0.005))
N_STREAMS = 100_000
SEED = 20240917

CS_NAMES = ("grid-cp-linear", "grid-cp-uniform", "grid-cp-final", "mixture")


def _make_cs(name, alpha=ALPHA, checkpoints=GRID):
    if name == "grid-cp-linear":
        return GridClopperPearson(alpha, checkpoints, "linear")
    if name == "grid-cp-uniform":
        return GridClopperPearson(alpha, checkpoints, "uniform")
    if name == "grid-cp-final":  # the estimate rule's kind: most of alpha kept for n_max
        return GridClopperPearson(alpha, checkpoints, "linear", final=0.7)
    return BetaBinomialMixture(alpha, checkpoints)


def _radius(pl):
    return stats.gaussian_radius(pl, SIGMA)


def _per_checkpoint_table(f, dtype=np.float64, fill=np.nan):
    """``[J, N_MAX + 1]``: ``f(arange(n_j + 1), n_j)`` in row j (``fill`` beyond n_j)."""
    out = np.full((J, N_MAX + 1), fill, dtype=dtype)
    for j, n in enumerate(GRID):
        out[j, :n + 1] = f(np.arange(n + 1), int(n))
    return out


@functools.lru_cache(maxsize=None)
def _tables(name):
    """Lower bounds, decide outcomes and estimate stops of one sequence at every (k, checkpoint)."""
    if name == "naive":
        return {"lower": _per_checkpoint_table(lambda k, n: clopper_pearson_lower(k, n, ALPHA))}
    cs = _make_cs(name)
    out = {"lower": _per_checkpoint_table(cs.lower)}
    for t in THRESHOLDS:
        out["decide", t] = _per_checkpoint_table(lambda k, n: decide(cs, k, n, _radius, RADII[t]),
                                                 np.int8, 99)
    for tol in TOLS:
        out["estimate", tol] = _per_checkpoint_table(lambda k, n: estimate(cs, k, n, _radius, tol), bool, True)
    return out


@functools.lru_cache(maxsize=None)
def _counts(p):
    """``[N_STREAMS, J]`` top-class counts at the checkpoints of independent streams."""
    rng = np.random.default_rng([SEED, round(p * 10**6)])
    inc = rng.binomial(np.diff(GRID, prepend=0), p, size=(N_STREAMS, J))
    return np.cumsum(inc, axis=1)


def _lookup(table, counts):
    return table[np.arange(counts.shape[1]), counts]


def _assert_rate_at_most_alpha(violations, what):
    k, n = int(np.count_nonzero(violations)), int(violations.size)
    ub = clopper_pearson_upper(k, n, 0.01)
    assert ub <= ALPHA, (f"{what}: {k}/{n} = {k / n:.5f} violations, 99% upper bound {ub:.5f} > "
                         f"alpha = {ALPHA}")


def _stopped(table, counts):
    """Index of the first checkpoint where the rule stops (``table`` True or != CONTINUE)."""
    stops = _lookup(table, counts)
    stops = stops if stops.dtype == bool else stops != CONTINUE
    assert np.all(stops[:, -1]), "a rule did not stop at n_max"
    return np.argmax(stops, axis=1)


# ---------------------------------------------------------------------------------------------
# 1. Coverage by simulation
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", P_TRUE)
@pytest.mark.parametrize("name", CS_NAMES)
def test_coverage_peek_at_every_checkpoint(name, p):
    """The adversarial rule stopping at the first checkpoint with lower > p: the rate of ever
    exceeding p over the grid (the confidence sequence's own guarantee)."""
    lower = _lookup(_tables(name)["lower"], _counts(p))
    assert np.all(np.isfinite(lower))
    _assert_rate_at_most_alpha((lower > p).any(axis=1), f"{name}, peek, p={p}")


@pytest.mark.parametrize("p", P_TRUE)
@pytest.mark.parametrize("name", CS_NAMES)
def test_coverage_decide(name, p):
    counts = _counts(p)
    lower = _lookup(_tables(name)["lower"], counts)
    rows = np.arange(N_STREAMS)
    for t in THRESHOLDS:
        table = _tables(name)["decide", t]
        stop = _stopped(table, counts)
        _assert_rate_at_most_alpha(lower[rows, stop] > p, f"{name}, decide r(Phi={t}), p={p}")
        if p < t:  # the true radius is below r: certifying it is a false certificate
            certified = _lookup(table, counts)[rows, stop] == CERTIFIED
            _assert_rate_at_most_alpha(certified, f"{name}, decide false certificates at Phi={t}, p={p}")


@pytest.mark.parametrize("p", P_TRUE)
@pytest.mark.parametrize("name", CS_NAMES)
def test_coverage_estimate(name, p):
    counts = _counts(p)
    lower = _lookup(_tables(name)["lower"], counts)
    for tol in TOLS:
        stop = _stopped(_tables(name)["estimate", tol], counts)
        _assert_rate_at_most_alpha(lower[np.arange(N_STREAMS), stop] > p, f"{name}, estimate tol={tol}, p={p}")


def test_stopping_rules_are_exercised():
    """The simulations above stop before n_max for a good share of streams (so they test
    optional stopping, not only the fixed-n bound), and decide certifies when p is well above
    its threshold."""
    for name in CS_NAMES:
        counts = _counts(0.97)
        early = _stopped(_tables(name)["decide", 0.9], counts) < J - 1
        assert early.mean() > 0.5, name
        certified = _lookup(_tables(name)["decide", 0.9], counts)[np.arange(N_STREAMS),
                                                                _stopped(_tables(name)["decide", 0.9], counts)]
        assert (certified == CERTIFIED).mean() > 0.9, name
        early = _stopped(_tables(name)["decide", 0.99], _counts(0.3)) < J - 1  # futile early
        assert early.mean() > 0.99, name
        early = _stopped(_tables(name)["estimate", 0.05], _counts(0.97)) < J - 1
        assert early.mean() > 0.5, name


def test_naive_fixed_n_cp_fails_the_peek_rule():
    """Fixed-n Clopper-Pearson at level alpha at every checkpoint is NOT a confidence
    sequence: the peek rule breaks it (the check above can fail)."""
    rates = {}
    for p in P_TRUE:
        viol = (_lookup(_tables("naive")["lower"], _counts(p)) > p).any(axis=1)
        k = int(np.count_nonzero(viol))
        rates[p] = k / N_STREAMS
    broken = [p for p in P_TRUE
              if clopper_pearson_lower(int(round(rates[p] * N_STREAMS)), N_STREAMS, 0.01) > ALPHA]
    assert broken and max(rates.values()) > ALPHA, rates
    assert max(rates.values()) > 2 * ALPHA, rates


# --- the mixture, peeking after every sample --------------------------------------------------

N_EVERY = 300
CHUNK = 25_000


@functools.lru_cache(maxsize=None)
def _every_sample_table(kind):
    """``[N_EVERY, N_EVERY + 1]``: row n - 1 holds the lower bounds at n for k = 0..N_EVERY
    (NaN for k > n)."""
    n = np.arange(1, N_EVERY + 1)[:, None]
    k = np.arange(N_EVERY + 1)[None, :]
    kk = np.minimum(k, n)
    nn = np.broadcast_to(n, kk.shape)
    if kind == "mixture":
        low = BetaBinomialMixture(ALPHA, np.array([N_EVERY])).lower(kk, nn)
    else:
        low = clopper_pearson_lower(kk, nn, ALPHA)
    return np.where(k <= n, low, np.nan)


def _every_sample_violations(kind, p, streams):
    table = _every_sample_table(kind)
    rng = np.random.default_rng([SEED, 1, round(p * 10**6)])
    cols = np.arange(N_EVERY)
    out = []
    for start in range(0, streams, CHUNK):
        m = min(CHUNK, streams - start)
        counts = np.cumsum(rng.random((m, N_EVERY)) < p, axis=1, dtype=np.int16)
        out.append((table[cols, counts] > p).any(axis=1))
    return np.concatenate(out)


@pytest.mark.parametrize("p", P_TRUE)
def test_mixture_coverage_peek_after_every_sample(p):
    viol = _every_sample_violations("mixture", p, N_STREAMS)
    _assert_rate_at_most_alpha(viol, f"mixture, peek after every sample up to {N_EVERY}, p={p}")


def test_mixture_every_sample_table_is_sane():
    table = _every_sample_table("mixture")
    n = np.arange(1, N_EVERY + 1)[:, None]
    k = np.arange(N_EVERY + 1)[None, :]
    inside = k <= n
    assert np.all(np.isfinite(table[inside]))
    assert np.all(table[:, 0] == 0.0)
    assert np.all((table[inside] >= 0) & (table[inside] <= np.broadcast_to(k / n, inside.shape)[inside]))
    # non-decreasing in k at every n
    d = np.diff(np.where(inside, table, 2.0), axis=1)
    assert np.all(d >= 0)


def test_naive_cp_fails_peeking_after_every_sample():
    for p in (0.3, 0.5, 0.9):
        viol = _every_sample_violations("naive", p, 20_000)
        assert clopper_pearson_lower(int(viol.sum()), viol.size, 0.01) > ALPHA, (p, viol.mean())


# ---------------------------------------------------------------------------------------------
# 2. Closed forms and brute force
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spend", ["linear", "uniform", "sqrt"])
@pytest.mark.parametrize("grid", [GRID, geometric_grid(1, 10**6, 1.05), np.array([7])])
def test_grid_cp_levels_spend_at_most_alpha(spend, grid):
    cs = GridClopperPearson(ALPHA, grid, spend)
    assert cs.levels.shape == grid.shape and np.all(cs.levels > 0)
    w = {"linear": grid.astype(np.float64), "uniform": np.ones(len(grid)), "sqrt": np.sqrt(grid.astype(np.float64))}[spend]
    wf = [Fraction(float(x)) for x in w]
    exact = [Fraction(ALPHA) * x / sum(wf) for x in wf]  # the stated shares, in exact arithmetic
    for lev, ex in zip(cs.levels, exact):
        assert abs(Fraction(float(lev)) - ex) <= Fraction(1, 2**50) * ex
    assert sum(Fraction(float(x)) for x in cs.levels) <= Fraction(ALPHA)
    assert math.fsum(cs.levels) <= ALPHA
    if spend == "uniform":
        np.testing.assert_allclose(cs.levels, ALPHA / len(grid), rtol=1e-15)
    if spend == "linear" and len(grid) > 1:
        np.testing.assert_allclose(cs.levels / cs.levels[0], grid / grid[0], rtol=1e-13)
    np.testing.assert_array_equal(cs.level(grid), cs.levels)
    assert cs.config() == {"cs": "grid-cp", "alpha": ALPHA, "checkpoints": [int(c) for c in grid], "spend": spend}


@pytest.mark.parametrize("final", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("grid", [GRID, geometric_grid(1, 10**6, 1.05), np.array([7])])
def test_grid_cp_final_share(final, grid):
    cs = GridClopperPearson(ALPHA, grid, "linear", final=final)
    assert sum(Fraction(float(x)) for x in cs.levels) <= Fraction(ALPHA) and np.all(cs.levels > 0)
    if len(grid) == 1:  # nothing to share with
        np.testing.assert_allclose(cs.levels, [ALPHA], rtol=1e-15)
        return
    np.testing.assert_allclose(cs.levels[-1], final * ALPHA, rtol=1e-14)
    early = grid[:-1].astype(np.float64)
    np.testing.assert_allclose(cs.levels[:-1], (1 - final) * ALPHA * early / early.sum(), rtol=1e-13)
    assert cs.config()["final_share"] == final


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, float("nan"), "0.9"])
def test_grid_cp_final_share_refused(bad):
    with pytest.raises(ValueError, match="share of alpha"):
        GridClopperPearson(ALPHA, GRID, final=bad)


@pytest.mark.parametrize("spend", ["linear", "uniform", "sqrt"])
def test_grid_cp_is_clopper_pearson_at_its_level(spend):
    cs = GridClopperPearson(ALPHA, GRID, spend)
    for j, n in enumerate(GRID):
        k = np.arange(n + 1)
        lo, up = cs.lower(k, n), cs.upper(k, n)
        assert lo.dtype == np.float64 and lo.shape == k.shape
        np.testing.assert_array_equal(lo, clopper_pearson_lower(k, int(n), float(cs.levels[j])))
        np.testing.assert_array_equal(up, clopper_pearson_upper(k, int(n), float(cs.levels[j])))
        mid = k[(k > 0) & (k < n)]  # and against scipy directly
        np.testing.assert_allclose(lo[mid], sps.beta.ppf(cs.levels[j], mid, n - mid + 1), rtol=1e-10)
        np.testing.assert_allclose(up[mid], sps.beta.ppf(1 - cs.levels[j], mid + 1, n - mid), rtol=1e-10)
        assert lo[0] == 0.0 and up[n] == 1.0
        assert lo[n] == pytest.approx(cs.levels[j] ** (1.0 / n), rel=1e-15, abs=0)
    # mixed checkpoints in one call broadcast elementwise
    k = np.array([[3], [9]])
    got = cs.lower(k, GRID)
    for j, n in enumerate(GRID):
        np.testing.assert_array_equal(got[:, j], clopper_pearson_lower(k[:, 0], int(n), float(cs.levels[j])))


def test_grid_cp_off_grid_raises():
    cs = GridClopperPearson(ALPHA, GRID)
    for f in (cs.lower, cs.upper):
        with pytest.raises(ValueError, match=r"n=15 is not a checkpoint"):
            f(3, 15)
        with pytest.raises(ValueError, match=r"n=21 is not a checkpoint"):
            f(np.array([3, 3, 3]), np.array([10, 21, 40]))
        with pytest.raises(ValueError, match=r"n=2001 is not a checkpoint"):
            f(0, 2001)
        with pytest.raises(ValueError, match="k"):
            f(11, 10)
    with pytest.raises(ValueError, match=r"n=15 is not a checkpoint"):
        decide(cs, 3, 15, _radius, 0.1)
    with pytest.raises(ValueError, match=r"n=15 is not a checkpoint"):
        estimate(cs, 3, 15, _radius, 0.05)


def _log_m(k, n, p, a=0.5, b=0.5):
    """log of Robbins' beta-binomial mixture martingale, written here from its definition."""
    k, n, p = (np.asarray(x, dtype=np.float64) for x in (k, n, p))
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.where(k > 0, k * np.log(p), 0.0) + np.where(n > k, (n - k) * np.log1p(-p), 0.0)
    return special.betaln(a + k, b + n - k) - special.betaln(a, b) - ll


MIX_CASES = [(1, 1), (1, 10), (5, 10), (9, 10), (10, 10), (19, 20), (1, 300), (150, 300), (299, 300),
             (3, 2000), (1000, 2000), (1990, 2000), (2000, 2000), (99_990, 100_000), (10**6, 10**6)]


@pytest.mark.parametrize("a,b", [(0.5, 0.5), (1.0, 1.0), (2.0, 0.5)])
@pytest.mark.parametrize("alpha", [ALPHA, 0.001])
def test_mixture_lower_against_brute_force(alpha, a, b):
    cs = BetaBinomialMixture(alpha, GRID, a, b)
    thr = math.log(1 / alpha)
    assert cs.threshold == thr
    for k, n in MIX_CASES:
        L = float(cs.lower(k, n))
        phat = k / n
        assert 0 < L < phat
        # rejected at L (also by the class's own log M with its error bar)
        assert _log_m(k, n, L, a, b) >= thr
        val, err = cs.log_martingale(np.float64(k), np.float64(n), np.float64(L))
        assert val - err >= thr
        np.testing.assert_allclose(val, _log_m(k, n, L, a, b), rtol=1e-12, atol=1e-12)
        # not rejected just inside
        assert _log_m(k, n, L + 1e-6 * (phat - L), a, b) < thr, (k, n, L)
        # a dense (log-spaced) scan over (0, k/n): the rejected points form a prefix, its end
        # brackets L
        grid = np.union1d(phat * np.geomspace(1e-30, 1e-4, 100_000), np.linspace(0, phat, 200_001)[1:-1])
        rej = _log_m(k, n, grid, a, b) >= thr
        i = int(np.argmin(rej))  # first non-rejected
        assert i > 0 and rej[:i].all() and not rej[i:].any(), (k, n)
        # (L may sit a hair below the exact end: the class rounds against itself)
        assert grid[i - 1] * (1 - 1e-9) <= L < grid[i], (k, n, L, grid[i - 1], grid[i])
        # and a root finder on log M - thr
        root = optimize.brentq(lambda x: _log_m(k, n, x, a, b) - thr, grid[i - 1], grid[i],
                               xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)
        assert L <= root * (1 + 1e-12) and L >= root * (1 - 1e-9), (k, n, L, root)


@pytest.mark.parametrize("a,b", [(0.5, 0.5), (2.0, 0.5)])
def test_mixture_upper_against_brute_force(a, b):
    cs = BetaBinomialMixture(ALPHA, GRID, a, b)
    thr = math.log(1 / ALPHA)
    for k, n in [(0, 1), (0, 10), (1, 10), (5, 10), (9, 10), (0, 2000), (1000, 2000), (1990, 2000)]:
        U = float(cs.upper(k, n))
        phat = k / n
        assert phat < U < 1
        assert _log_m(k, n, U, a, b) >= thr - 1e-12 * max(1.0, abs(thr))
        assert _log_m(k, n, U - 1e-6 * (U - phat), a, b) < thr
        grid = np.union1d(1 - (1 - phat) * np.geomspace(1e-4, 1e-30, 100_000), np.linspace(phat, 1, 200_001)[1:-1])
        rej = _log_m(k, n, grid, a, b) >= thr
        i = int(np.argmax(rej))  # first rejected
        assert i > 0 and rej[i:].all() and not rej[:i].any()
        assert grid[i - 1] < U <= grid[i] + 1e-9 * (1 - grid[i])  # (conservative by a hair)
        # by symmetry it is 1 - lower of the mirrored counts with the mirrored prior
        np.testing.assert_allclose(U, 1 - BetaBinomialMixture(ALPHA, GRID, b, a).lower(n - k, n), rtol=1e-15)
    assert cs.upper(10, 10) == 1.0


@pytest.mark.parametrize("name", CS_NAMES)
def test_bounds_edge_cases(name):
    cs = _make_cs(name)
    for n in GRID:
        n = int(n)
        k = np.arange(n + 1)
        lo, up = cs.lower(k, n), cs.upper(k, n)
        assert lo[0] == 0.0 and up[n] == 1.0
        assert float(cs.lower(0, n)) == 0.0 and float(cs.upper(n, n)) == 1.0
        assert np.all((0 <= lo) & (lo <= k / n) & (k / n <= up) & (up <= 1))
        assert np.all(lo[1:] > 0) and np.all(up[:-1] < 1)
        assert np.all(np.diff(lo) >= 0) and np.all(np.diff(up) >= 0)
    # at equal frequency the bound at n_max is tighter than at the first checkpoint
    assert cs.lower(N_MAX // 2, N_MAX) > cs.lower(int(GRID[0]) // 2, int(GRID[0]))


def test_mixture_any_n_and_broadcasting():
    cs = BetaBinomialMixture(ALPHA, GRID)
    n = np.arange(1, 60)[:, None]
    k = np.arange(60)[None, :]
    kk = np.minimum(k, n)
    lo, up = cs.lower(kk, n), cs.upper(kk, n)
    assert lo.shape == up.shape == kk.shape
    assert np.all((0 <= lo) & (lo <= kk / n) & (kk / n <= up) & (up <= 1))
    assert np.all(lo[:, 0] == 0) and np.all(up[np.arange(59), np.arange(1, 60)] == 1)
    # the mixture's bound at a count equals that count's bound computed alone
    assert lo[29, 17] == float(cs.lower(17, 30))
    assert cs.config() == {"cs": "mixture", "alpha": ALPHA, "checkpoints": GRID.tolist(), "prior": [0.5, 0.5]}


def test_constructors_and_registry():
    assert set(CONFIDENCE_SEQUENCES) == {"grid-cp", "mixture"}
    cs = confidence_sequence("grid-cp", 0.01, GRID)
    assert isinstance(cs, GridClopperPearson) and cs.spend == "linear" and cs.n_max == N_MAX and cs.alpha == 0.01
    assert isinstance(confidence_sequence("mixture", 0.01, GRID), BetaBinomialMixture)
    with pytest.raises(ValueError, match="unknown confidence sequence"):
        confidence_sequence("hoeffding", 0.01, GRID)
    with pytest.raises(ValueError, match="unknown alpha spending"):
        GridClopperPearson(0.01, GRID, "quadratic")
    for a, b in [(0.0, 1.0), (1.0, -1.0), (float("nan"), 1.0)]:
        with pytest.raises(ValueError, match="Beta prior"):
            BetaBinomialMixture(0.01, GRID, a, b)
    for alpha in (0.0, 1.0, -0.1, float("nan")):
        for cls in (GridClopperPearson, BetaBinomialMixture):
            with pytest.raises(ValueError, match="alpha"):
                cls(alpha, GRID)
    for cs in (GridClopperPearson(0.01, GRID), BetaBinomialMixture(0.01, GRID)):
        with pytest.raises(ValueError, match="k"):
            cs.lower(-1, 10)
        with pytest.raises(ValueError, match="k"):
            cs.lower(2.5, 10)
        with pytest.raises(ValueError, match="k <= n"):
            cs.upper(np.array([5, 11]), 10)


# ---------------------------------------------------------------------------------------------
# 3. Stopping rules and the grid
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CS_NAMES)
@pytest.mark.parametrize("t", THRESHOLDS)
def test_decide_definition(name, t):
    cs = _make_cs(name)
    r = RADII[t]
    seen = set()
    for n in GRID:
        n = int(n)
        k = np.arange(n + 1)
        d = decide(cs, k, n, _radius, r)
        assert d.dtype == np.int8 and d.shape == k.shape
        assert set(np.unique(d)) <= {CERTIFIED, CONTINUE, FUTILE}
        proven = np.asarray(_radius(cs.lower(k, n))) >= r
        np.testing.assert_array_equal(d == CERTIFIED, proven)  # CERTIFIED exactly when proven
        # monotone in k: more votes never move the outcome from certified towards futile
        assert np.all(np.diff(d.astype(int)) >= 0)
        if n == N_MAX:
            np.testing.assert_array_equal(d == FUTILE, ~proven)  # no proof at n_max: futile
        else:
            # FUTILE early only when even the optimistic frequency upper(k, n) kept up to n_max
            # could not prove r; CONTINUE when it could
            kopt = np.floor(cs.upper(k, n) * N_MAX + 1e-9).astype(np.int64)
            reach = np.asarray(_radius(cs.lower(kopt, N_MAX))) >= r
            np.testing.assert_array_equal(d[~proven] == CONTINUE, reach[~proven])
            seen |= set(np.unique(d).tolist())
    assert seen == {CERTIFIED, CONTINUE, FUTILE}  # all three outcomes occur before n_max


def test_decide_cases_and_broadcasting():
    cs = GridClopperPearson(ALPHA, GRID)
    r = RADII[0.9]
    # 10/10 votes at the first checkpoint: lower = level^(1/10) ~ 0.43 proves nothing yet, but
    # 2000/2000 at n_max would
    assert float(cs.lower(10, 10)) < 0.9 < float(cs.lower(N_MAX, N_MAX))
    assert int(decide(cs, 10, 10, _radius, r)) == CONTINUE
    assert int(decide(cs, 0, 10, _radius, r)) == FUTILE  # hopeless
    assert int(decide(cs, N_MAX, N_MAX, _radius, r)) == CERTIFIED
    assert int(decide(cs, int(0.8 * N_MAX), N_MAX, _radius, r)) == FUTILE
    k = int(np.argmax(np.asarray(_radius(cs.lower(np.arange(161), 160))) >= r))  # first proving count
    assert int(decide(cs, k, 160, _radius, r)) == CERTIFIED and int(decide(cs, k - 1, 160, _radius, r)) != CERTIFIED
    # an unreachable radius is futile at once
    assert int(decide(cs, 10, 10, _radius, 100.0)) == FUTILE
    # r per input broadcasts like the scalar calls
    ks = np.array([0, 9, 10, 160, 150])
    ns = np.array([10, 10, 10, 160, 160])
    rs = np.array([r, r, RADII[0.99], r, 0.0])
    got = decide(cs, ks, ns, _radius, rs)
    want = [int(decide(cs, int(a), int(b), _radius, float(c))) for a, b, c in zip(ks, ns, rs)]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", CS_NAMES)
def test_estimate_definition(name):
    cs = _make_cs(name)
    for tol in TOLS:
        k = np.arange(N_MAX + 1)
        assert np.all(estimate(cs, k, N_MAX, _radius, tol))  # always stops at n_max
        assert estimate(cs, k, N_MAX, _radius, tol).dtype == bool
        some_continue = False
        for n in GRID[:-1]:
            n = int(n)
            k = np.arange(n + 1)
            s = estimate(cs, k, n, _radius, tol)
            now = np.asarray(_radius(cs.lower(k, n)))
            best = np.asarray(_radius(cs.lower(np.floor(k / n * N_MAX + 1e-9).astype(np.int64), N_MAX)))
            np.testing.assert_array_equal(s, (best - now <= tol * best) | (best <= 0))
            assert np.all(s[best <= 0])  # nothing to gain: stop (e.g. below half the votes)
            assert np.all(s[: n // 2])
            assert np.all(s <= estimate(cs, k, n, _radius, max(TOLS)))  # looser tol stops sooner
            some_continue |= not s.all()
        assert some_continue
    for tol in (0, 0.0, 1, 1.5, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol"):
            estimate(cs, 5, 10, _radius, tol)


def test_geometric_grid():
    np.testing.assert_array_equal(GRID, [10, 20, 40, 80, 160, 320, 640, 1280, 2000])
    assert GRID.dtype == np.int64
    np.testing.assert_array_equal(geometric_grid(1, 10, 1.5), [1, 2, 3, 4, 6, 8, 10])
    np.testing.assert_array_equal(geometric_grid(5, 5), [5])
    np.testing.assert_array_equal(geometric_grid(100, 1600, 2.0), [100, 200, 400, 800, 1600])
    np.testing.assert_array_equal(geometric_grid(100, 1601, 2.0), [100, 200, 400, 800, 1600, 1601])
    np.testing.assert_array_equal(geometric_grid(1, 10**5, 10.0), [1, 10, 100, 1000, 10**4, 10**5])
    for first, n_max, ratio in [(1, 1000, 1.01), (3, 10**6, 1.3), (10, 11, 2.0), (7, 7000, math.sqrt(2)), (1, 2, 100.0)]:
        g = geometric_grid(first, n_max, ratio)
        assert g.dtype == np.int64 and g[0] == first and g[-1] == n_max
        assert np.all(np.diff(g) > 0)
        # the docstring's definition: the distinct ceil(first ratio^j) below n_max, then n_max
        want, j = set(), 0
        while first * ratio**j < n_max:
            want.add(math.ceil(first * ratio**j - 1e-9))
            j += 1
        want = sorted(v for v in want if v < n_max)
        assert want[0] == first and want[-1] < n_max
        np.testing.assert_array_equal(g, want + [n_max])
        assert g[-2] * ratio >= n_max - 1  # no geometric point was skipped before n_max
    for args in [(0, 10), (-3, 10), (11, 10), (1, 10, 1.0), (1, 10, 0.5), (1, 10, -2.0),
                 (1, 10, float("inf")), (1, 10, float("nan"))]:
        with pytest.raises(ValueError, match="checkpoint grid"):
            geometric_grid(*args)
