"""Gaussian (L2) certificates of Cohen, Rosenfeld & Kolter (2019) from vote counts.

CERTIFY: ``pA_lower`` is the one-sided (1 - alpha) Clopper-Pearson bound of the
estimation votes for the selected class and the radius is ``sigma Phi^-1(pA_lower)``
(abstain below 1/2). PREDICT: the top class if a two-sided binomial test of top-1
against top-2 rejects at alpha. Argument conventions as :mod:`smoothcert.stats`.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from ._arrays import _alpha, _bad, _ints, _scalar_out, _to_numpy
from .binomial import binom_test_pvalue, clopper_pearson_lower

__all__ = ["ABSTAIN", "gaussian_radius", "certify_from_counts", "predict_from_counts"]

ABSTAIN = -1
"""Class index returned by :func:`predict_from_counts` when abstaining."""


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
