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
from scipy import stats as _sps

from ._arrays import _alpha, _bad, _kn, _scalar_out, _to_numpy

__all__ = ["clopper_pearson_lower", "clopper_pearson_upper", "binom_test_pvalue", "min_samples_to_certify"]


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
