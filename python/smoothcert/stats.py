"""Exact binomial statistics for randomized-smoothing certification.

Alpha convention
----------------
``alpha`` is always the ONE-SIDED failure probability, as in Cohen, Rosenfeld &
Kolter (2019): the lower confidence bound ``pA_lower`` satisfies
``P(pA < pA_lower) <= alpha``. Cohen et al.'s reference code computes it as
``statsmodels proportion_confint(nA, n, alpha=2*alpha, method="beta")[0]``,
which equals ``scipy.stats.beta.ppf(alpha, nA, n - nA + 1)``, the Clopper-Pearson
bound used here. Note that rs4a (Yang et al. 2020) passes ``alpha`` straight to
the two-sided interval, i.e. uses ``alpha/2`` per side, which is more
conservative (smaller bounds and radii) for the same nominal ``alpha``.

Inputs and outputs
------------------
Every function accepts Python numbers, numpy arrays of any shape, or torch
tensors (converted with ``.detach().cpu().numpy()``); arguments broadcast
against each other. Return rule: if every argument is a scalar (Python number,
numpy scalar, or 0-d array/tensor), a Python ``float``/``int``/``bool`` is
returned; otherwise a numpy array of the broadcast shape (float64 for bounds and
radii, int64 for class indices, bool for abstain flags).

Invalid inputs raise ``ValueError`` naming the argument and offending value.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special, stats as _sps

__all__ = ["ABSTAIN", "clopper_pearson_lower", "clopper_pearson_upper",
           "binom_test_pvalue", "gaussian_radius", "certify_from_counts",
           "predict_from_counts", "min_samples_to_certify"]

ABSTAIN = -1
"""Class index returned by :func:`predict_from_counts` when abstaining."""


def _to_numpy(x, name):
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, no hard torch dep
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if np.iscomplexobj(a):
        raise ValueError(f"{name} must be real-valued, got {x!r}")
    return a


def _bad(a, mask):  # first offending value, for error messages
    return a[mask].flat[0] if a.ndim else a.item()


def _ints(x, name, minimum):
    a = _to_numpy(x, name).astype(np.float64)
    bad = ~np.isfinite(a) | (a != np.floor(a)) | (a < minimum)
    if np.any(bad):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_bad(a, bad):g}")
    return a.astype(np.int64)


def _alpha(x):
    a = _to_numpy(x, "alpha").astype(np.float64)
    bad = ~((a > 0) & (a < 1))  # also catches NaN
    if np.any(bad):
        raise ValueError(f"alpha must satisfy 0 < alpha < 1, got {_bad(a, bad)!r}")
    return a


def _scalar_out(inputs, arr, kind=float):
    """Return a Python scalar if all inputs are 0-d, else an ndarray."""
    if all(np.ndim(_to_numpy(v, "input")) == 0 for v in inputs):
        return kind(np.asarray(arr).reshape(()))
    return np.asarray(arr)


def _kn(k, n):
    k, n = _ints(k, "k", 0), _ints(n, "n", 1)
    if np.any(k > n):
        kb, nb = np.broadcast_arrays(k, n)
        i = np.argmax(kb > nb)
        raise ValueError(f"k must satisfy k <= n, got k={kb.flat[i]} > n={nb.flat[i]}")
    return k, n


def clopper_pearson_lower(k, n, alpha):
    """One-sided (1 - alpha) Clopper-Pearson lower bound on a binomial proportion.

    Computes ``beta.ppf(alpha, k, n - k + 1)``; exactly ``0.0`` when ``k == 0`` and
    the closed form ``alpha ** (1 / n)`` when ``k == n``.

    Args:
        k: successes, integer-valued, shape broadcastable with ``n``, ``alpha``.
        n: trials, integer-valued, ``n >= 1``.
        alpha: one-sided failure probability, ``0 < alpha < 1``.

    Returns:
        float64 array of the broadcast shape (Python float for scalar inputs).
    """
    kk, nn = _kn(k, n)
    a = _alpha(alpha)
    kk, nn, a = np.broadcast_arrays(kk, nn, a)
    with np.errstate(all="ignore"):
        out = _sps.beta.ppf(a, np.maximum(kk, 1), nn - kk + 1)
        out = np.where(kk == nn, np.power(a, 1.0 / nn), out)  # same op as min_samples
    out = np.where(kk == 0, 0.0, out).astype(np.float64)
    return _scalar_out((k, n, alpha), out)


def clopper_pearson_upper(k, n, alpha):
    """One-sided (1 - alpha) Clopper-Pearson upper bound on a binomial proportion.

    Computes ``beta.ppf(1 - alpha, k + 1, n - k)``; exactly ``1.0`` when ``k == n``
    and the closed form ``1 - alpha ** (1 / n)`` when ``k == 0``. Arguments and
    return value as in :func:`clopper_pearson_lower`.
    """
    kk, nn = _kn(k, n)
    a = _alpha(alpha)
    kk, nn, a = np.broadcast_arrays(kk, nn, a)
    with np.errstate(all="ignore"):
        out = _sps.beta.ppf(1.0 - a, kk + 1, np.maximum(nn - kk, 1))
        out = np.where(kk == 0, -np.expm1(np.log(a) / nn), out)
    out = np.where(kk == nn, 1.0, out).astype(np.float64)
    return _scalar_out((k, n, alpha), out)


def binom_test_pvalue(k, n, p=0.5):
    """Two-sided exact binomial test p-value, elementwise ``scipy.stats.binomtest``.

    Args:
        k: successes, integer-valued, broadcastable with ``n`` and ``p``.
        n: trials, ``n >= 1``.
        p: hypothesised success probability, ``0 <= p <= 1``.

    Returns:
        float64 array of the broadcast shape (Python float for scalar inputs).
    """
    kk, nn = _kn(k, n)
    pp = _to_numpy(p, "p").astype(np.float64)
    bad = ~((pp >= 0) & (pp <= 1))
    if np.any(bad):
        raise ValueError(f"p must satisfy 0 <= p <= 1, got {_bad(pp, bad)!r}")
    kk, nn, pp = np.broadcast_arrays(kk, nn, pp)
    out = np.empty(kk.shape, dtype=np.float64)
    for idx in np.ndindex(kk.shape):
        out[idx] = _sps.binomtest(int(kk[idx]), int(nn[idx]), float(pp[idx])).pvalue
    return _scalar_out((k, n, p), out)


def gaussian_radius(pa_lower, sigma):
    """Certified L2 radius ``sigma * Phi^{-1}(pa_lower)`` (Cohen et al. 2019).

    Returns ``0.0`` where ``pa_lower < 0.5`` (abstain). Soundness margin: a
    certified radius must never be rounded up, so every positive result is
    stepped down by one ulp (``np.nextafter(r, 0)``) to absorb rounding in the
    inverse normal CDF and the product.

    Args:
        pa_lower: lower bound on the top-class probability, in ``[0, 1]``.
        sigma: noise level(s), finite and ``> 0``, broadcastable with ``pa_lower``.

    Returns:
        float64 array of the broadcast shape (Python float for scalar inputs).
    """
    pa = _to_numpy(pa_lower, "pa_lower").astype(np.float64)
    bad = ~((pa >= 0) & (pa <= 1))
    if np.any(bad):
        raise ValueError(f"pa_lower must lie in [0, 1], got {_bad(pa, bad)!r}")
    s = _to_numpy(sigma, "sigma").astype(np.float64)
    bad = ~(np.isfinite(s) & (s > 0))
    if np.any(bad):
        raise ValueError(f"sigma must be finite and > 0, got {_bad(s, bad)!r}")
    pa, s = np.broadcast_arrays(pa, s)
    r = s * special.ndtri(np.maximum(pa, 0.5))
    r = np.where(r > 0, np.nextafter(r, 0.0), 0.0)
    r = np.where(pa < 0.5, 0.0, r).astype(np.float64)
    return _scalar_out((pa_lower, sigma), r)


def certify_from_counts(count_a, n, alpha, sigma):
    """Cohen et al.'s CERTIFY step from the top-class count of the estimation pass.

    Args:
        count_a: votes for the guessed top class, integer-valued, shape ``[B]`` or any.
        n: number of noise samples, ``n >= 1``.
        alpha: one-sided failure probability.
        sigma: Gaussian noise level (scalar or broadcastable).

    Returns:
        ``(abstain, pa_lower, radius)``: bool, float64 and float64 arrays of the
        broadcast shape (Python scalars for scalar inputs). ``abstain`` is True
        iff ``pa_lower < 0.5``; ``radius`` is 0.0 there.
    """
    pa = np.asarray(clopper_pearson_lower(count_a, n, alpha), dtype=np.float64)
    radius = np.asarray(gaussian_radius(pa, sigma), dtype=np.float64)
    pa, radius = np.broadcast_arrays(pa, radius)
    abstain = pa < 0.5
    ins = (count_a, n, alpha, sigma)
    return (_scalar_out(ins, abstain, bool), _scalar_out(ins, pa.copy()),
            _scalar_out(ins, radius.copy()))


def predict_from_counts(counts, alpha):
    """Cohen et al.'s PREDICT: top class if a binomial test beats the runner-up.

    Ties go to the lowest class index (as ``np.argmax``); the runner-up is the
    best remaining class. Returns the top class when
    ``binom_test_pvalue(nA, nA + nB, 0.5) <= alpha``, else :data:`ABSTAIN`
    (also when ``nA + nB == 0``).

    Args:
        counts: non-negative integer vote counts, shape ``[B, K]`` or ``[K]``.
        alpha: significance level, scalar in ``(0, 1)``.

    Returns:
        int64 array ``[B]`` (Python int for a 1-D input).
    """
    c = _ints(counts, "counts", 0)
    if c.ndim not in (1, 2) or c.shape[-1] < 1:
        raise ValueError(f"counts must have shape [B, K] or [K] with K >= 1, got {c.shape}")
    if np.ndim(_to_numpy(alpha, "alpha")) != 0:
        raise ValueError(f"alpha must be a scalar, got shape {np.shape(alpha)}")
    a = float(_alpha(alpha))
    c2 = c.reshape(-1, c.shape[-1])
    rows = np.arange(c2.shape[0])
    top = np.argmax(c2, axis=1)
    n_a = c2[rows, top]
    rest = c2.copy()
    rest[rows, top] = -1
    n_b = rest.max(axis=1) if c2.shape[1] > 1 else np.zeros_like(n_a)
    out = np.full(c2.shape[0], ABSTAIN, dtype=np.int64)
    ok = (n_a + n_b) > 0
    if np.any(ok):
        pv = np.asarray(binom_test_pvalue(n_a[ok], (n_a + n_b)[ok], 0.5))
        out[ok] = np.where(pv <= a, top[ok], ABSTAIN)
    return int(out[0]) if c.ndim == 1 else out


def min_samples_to_certify(alpha):
    """Smallest ``n`` for which certification is possible at all.

    That is the smallest ``n`` with ``alpha ** (1 / n) > 0.5`` (the lower bound
    when all ``n`` votes agree); with fewer samples CERTIFY always abstains.
    E.g. ``min_samples_to_certify(0.001) == 10``.

    Args:
        alpha: one-sided failure probability(ies), ``0 < alpha < 1``, any shape.

    Returns:
        int64 array of alpha's shape (Python int for scalar input).
    """
    a = _alpha(alpha)
    out = np.empty(a.shape, dtype=np.int64)
    for idx in np.ndindex(a.shape):
        al = float(a[idx])
        n = max(1, int(math.floor(-math.log2(al))) + 1)
        while al ** (1.0 / n) <= 0.5:  # guard against log2 rounding
            n += 1
        while n > 1 and al ** (1.0 / (n - 1)) > 0.5:
            n -= 1
        out[idx] = n
    return _scalar_out((alpha,), out, int)
