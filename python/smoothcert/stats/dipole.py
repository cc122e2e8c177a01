"""Gaussian dipole smoothing certificates (Levine et al., "Tight Second-Order Certificates for
Randomized Smoothing", §4 and App. A.4).

With antithetic pairs ``x + eps`` / ``x - eps``: ``C_S = P(both vote a)``,
``C_N = P(only the + side votes a)``. Theorem 3: for ``||x' - x|| < rho``,
``p(x') >= D(rho) = Phi(Phi^-1(C_N) - t) + Phi(k - t) - Phi(-k - t)``, ``t = rho/sigma``,
``k = Phi^-1((1 + C_S)/2)``. D increases in both C_S and C_N (so lower bounds are
valid) and decreases in rho. The radius solves ``D = 1/2`` by bisection on float64
that keeps the lower end and moves it only when ``D(mid) > 1/2 + L_MARGIN``
(see :mod:`.second_order` for the tolerance), starting from the first-order radius
at ``C_S + C_N`` (valid under the same two bounds, and never above the dipole one).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from ._arrays import _alpha, _bad, _ints, _to_numpy
from .binomial import clopper_pearson_lower
from .l2 import gaussian_radius
from .second_order import BISECTION_STEPS, L_MARGIN

__all__ = ["dipole_bound", "dipole_radius", "dipole_certify"]


def _check_c(c, name):
    a = _to_numpy(c, name).astype(np.float64)
    bad = ~((a >= 0) & (a <= 1))
    if np.any(bad):
        raise ValueError(f"{name} must lie in [0, 1], got {_bad(a, bad)!r}")
    return a


def _prepare(cs, cn, sigma):
    cs, cn = _check_c(cs, "C_S"), _check_c(cn, "C_N")
    s = _to_numpy(sigma, "sigma").astype(np.float64)
    if np.any(~(np.isfinite(s) & (s > 0))):
        raise ValueError(f"sigma must be finite and > 0, got {_bad(s, ~(np.isfinite(s) & (s > 0)))!r}")
    cs, cn, s = np.broadcast_arrays(cs, cn, s)
    # No clamp to C_S + 2 C_N <= 1: the true values satisfy it, so lower bounds that hold
    # do too, and the formula stays Theorem 3's (Eq. 9) elsewhere ((0, .8) -> .8416).
    with np.errstate(divide="ignore"):
        c = special.ndtri(cn)  # -inf at C_N = 0
        k = -special.ndtri((1.0 - cs) / 2.0)  # +inf at C_S = 1
    return cs, cn, s, c, k


def _value(t, c, k):
    with np.errstate(invalid="ignore"):
        sym = np.where(np.isinf(k), 1.0, special.ndtr(k - t) - special.ndtr(-k - t))
    return special.ndtr(c - t) + sym


def dipole_bound(rho, cs, cn, sigma):
    """Theorem 3's lower bound ``D(rho)`` (float64, broadcast shape)."""
    r = _to_numpy(rho, "rho").astype(np.float64)
    if np.any(~(r >= 0)):
        raise ValueError(f"rho must be >= 0, got {_bad(r, ~(r >= 0))!r}")
    cs, cn, s, c, k = _prepare(cs, cn, sigma)
    cs, c, k, s, r = np.broadcast_arrays(cs, c, k, s, r)
    return _value(r / s, c, k)


def dipole_radius(cs, cn, sigma):
    """The dipole certified L2 radius: 0 (abstain) where ``C_S + C_N <= 1/2``, else the
    rho with ``D(rho) = 1/2``, rounded down. Shapes broadcast; float64."""
    cs, cn, s, c, k = _prepare(cs, cn, sigma)
    p = cs + cn
    ok = p > 0.5
    first = np.asarray(gaussian_radius(np.clip(p, 0.5, 1.0), s), dtype=np.float64)
    lo = np.where(ok, first / s, 0.0)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.maximum(1.0, 2.0 * lo)
    live = ok & np.isfinite(k)
    for _ in range(64):  # D -> C_N... -> 0 as t grows: double until D(hi) <= 1/2
        grow = live & (_value(hi, c, k) > 0.5)
        if not grow.any():
            break
        hi = np.where(grow, 2.0 * hi, hi)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        up = live & (_value(mid, c, k) > 0.5 + L_MARGIN)
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    r = s * lo
    r = np.where(r > 0, np.nextafter(r, 0.0), 0.0)
    r = np.maximum(r, np.where(ok, first, 0.0))
    r = np.where(ok & np.isinf(k), np.inf, r)  # C_S = 1: population level only
    return np.where(ok, r, 0.0)


def dipole_certify(count_s, count_n, count_x, n_pairs, alpha, sigma, *, symmetric: bool = False):
    """The empirical dipole certificate from ``n_pairs`` antithetic pairs (§4, Theorem 3).

    Args:
        count_s: ``[B]`` pairs where both sides vote for the selected class.
        count_n: ``[B]`` pairs where only the + side does (the paper's count).
        count_x: ``[B]`` pairs where exactly one side does; used when ``symmetric``
            (it is ``Bin(n_pairs, 2 C_N)``: a valid, tighter option that is not the paper's).
        alpha: one-sided failure probability, split evenly over the two bounds.

    Returns:
        dict of float64/bool arrays ``[B]``: ``cs_lower``, ``cn_lower``, ``radius`` (0 on
        abstain) and ``abstain``.
    """
    a = _alpha(alpha)
    s_ = _ints(count_s, "count_s", 0)
    n_ = _ints(count_n, "count_n", 0)
    x_ = _ints(count_x, "count_x", 0)
    if np.any(s_ + np.maximum(n_, x_) > n_pairs) or np.any(n_ > x_):
        raise ValueError("dipole counts are inconsistent: need count_n <= count_x and "
                         "count_s + count_x <= n_pairs")
    cs = np.asarray(clopper_pearson_lower(s_, n_pairs, a / 2.0), dtype=np.float64)
    if symmetric:
        cn = np.asarray(clopper_pearson_lower(x_, n_pairs, a / 2.0), dtype=np.float64) / 2.0
    else:
        cn = np.asarray(clopper_pearson_lower(n_, n_pairs, a / 2.0), dtype=np.float64)
    radius = np.asarray(dipole_radius(cs, cn, sigma), dtype=np.float64)
    radius = np.where(np.isfinite(radius), radius, 0.0)
    abstain = ~(radius > 0)
    return {"cs_lower": cs, "cn_lower": cn, "radius": np.where(abstain, 0.0, radius), "abstain": abstain}
