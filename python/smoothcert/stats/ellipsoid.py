"""Certificates of non-uniform (diagonal-Gaussian) smoothing (Tecot et al., "Robustness Verification
with Non-Uniform Randomized Smoothing", §3-§4.1).

With noise ``N(0, diag(sigma^2))`` and ``pA_lower`` the one-sided (1 - alpha)
bound of the top class, the smoothed classifier is constant on the open
ellipsoid ``{delta : ||delta / sigma||_2 < R}``, ``R = Phi^-1(pA_lower)``
(Theorem 3.1 with ``pB_upper = 1 - pA_lower``). Everything here is derived from
``R`` and the sigma vector, in float64:

* ``O_CA = sum_i log sigma_i + D log R``, the log volume of the ellipsoid up to
  a constant of D (the paper's "certified area"; ``-inf`` when nothing is
  certified);
* extras the paper does not report: ``r_geo = exp(O_CA / D)``, the inscribed
  L2 (and L1) ball ``R min_i sigma_i`` and the inscribed L-inf box of half-width
  ``R / ||1 / sigma||_2``;
* the two-sided bound ``(Phi^-1(pA_lower) - Phi^-1(pB_upper)) / 2`` with a
  union bound over the classes (:func:`two_sided_radius`).

Every certified quantity is stepped down by a margin that covers its rounding
errors: it may come out a few ulps small, never large.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from ._arrays import _alpha, _to_numpy
from .binomial import clopper_pearson_lower, clopper_pearson_upper
from .l2 import gaussian_radius

__all__ = ["SigmaSummary", "normalized_radius", "log_volume", "geometric_radius", "linf_halfwidth",
           "two_sided_radius", "ellipsoid_margin"]

_EPS = np.finfo(np.float64).eps


def _down(x: np.ndarray, rel: float) -> np.ndarray:
    """``x`` lowered by ``rel * |x|`` and one more ulp (toward -inf), for a result whose
    relative rounding error is at most ``rel``."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        y = x - np.abs(x) * rel
    return np.where(np.isfinite(x), np.nextafter(y, -np.inf), x)


class SigmaSummary:
    """The float64 statistics of one sigma vector that the certificates need.

    Args:
        sigma: any shape, ``D`` elements, finite and > 0 (float32 values are read exactly).

    Attributes:
        dim: D; log_sum: ``sum log sigma_i`` (math.fsum, correctly rounded);
        minimum, mean, geomean: of sigma; inv_norm: ``||1 / sigma||_2``.
    """

    def __init__(self, sigma):
        s = _to_numpy(sigma, "sigma").astype(np.float64).ravel()
        if s.size == 0 or not np.all(np.isfinite(s) & (s > 0)):
            raise ValueError("sigma must be non-empty, finite and > 0 everywhere")
        self.dim = int(s.size)
        self.log_sum = math.fsum(np.log(s).tolist())
        self.minimum = float(s.min())
        self.mean = math.fsum(s.tolist()) / s.size
        self.geomean = math.exp(self.log_sum / s.size)
        self.inv_norm = math.sqrt(math.fsum((1.0 / s) ** 2))


def normalized_radius(pa_lower):
    """``R = Phi^-1(pa_lower)`` (0 where ``pa_lower < 1/2``), one ulp down: the radius of
    the certified ellipsoid in units of sigma."""
    return gaussian_radius(pa_lower, 1.0)


def log_volume(R, s: SigmaSummary) -> np.ndarray:
    """``O_CA = sum log sigma_i + D log R`` ``[B]`` float64; ``-inf`` where ``R <= 0``.

    Lowered by ``8 eps (|sum log sigma| + |D log R|)``, which bounds the rounding of
    the logarithm, the product and the sum."""
    R = np.asarray(R, dtype=np.float64)
    with np.errstate(divide="ignore"):
        dlog = s.dim * np.log(np.where(R > 0, R, 0.0))
    total = s.log_sum + dlog
    margin = 8 * _EPS * (abs(s.log_sum) + np.abs(np.where(np.isfinite(dlog), dlog, 0.0)))
    with np.errstate(invalid="ignore"):
        out = np.nextafter(total - margin, -np.inf)
    return np.where(R > 0, out, -np.inf)


def geometric_radius(o_ca, s: SigmaSummary) -> np.ndarray:
    """``exp(O_CA / D) = R geomean(sigma)`` ``[B]`` (0 where nothing is certified)."""
    o = np.asarray(o_ca, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        r = np.exp(np.where(np.isfinite(o), o, -np.inf) / s.dim)
    return np.maximum(_down(r, 4 * _EPS), 0.0)


def linf_halfwidth(R, s: SigmaSummary) -> np.ndarray:
    """Half-width ``R / ||1 / sigma||_2`` ``[B]`` of the largest L-inf box inside the ellipsoid."""
    R = np.asarray(R, dtype=np.float64)
    r = R / s.inv_norm
    # 1/sigma, its square, the correctly rounded sum, sqrt and the division: < 8 eps in all.
    return np.where(R > 0, np.maximum(_down(r, 8 * _EPS), 0.0), 0.0)


def two_sided_radius(counts, top, n: int, alpha: float) -> np.ndarray:
    """Theorem 3.1 with both bounds: ``(Phi^-1(pA_lower) - Phi^-1(pB_upper)) / 2`` ``[B]``.

    ``pA_lower`` is the one-sided bound at ``alpha / 2`` on the selected class's
    count; ``pB_upper`` the largest one-sided upper bound at ``alpha / (2 (K - 1))``
    over the other K - 1 classes, capped at ``1 - pA_lower``. By the union bound
    all K bounds hold together with probability >= 1 - alpha, so the radius is
    certified at the same alpha as :func:`normalized_radius` (each on its own).

    Args:
        counts: ``[B, K]`` estimation votes; top: ``[B]`` selected class (from the
            independent selection draws); n: estimation samples; alpha: one-sided failure probability.

    Returns:
        ``[B]`` float64 radius in units of sigma (0 where it certifies nothing).
    """
    c = _to_numpy(counts, "counts").astype(np.int64)
    t = _to_numpy(top, "top").astype(np.int64).ravel()
    a = float(_alpha(alpha))
    B, K = c.shape
    rows = np.arange(B)
    pa = np.asarray(clopper_pearson_lower(c[rows, t], n, a / 2), dtype=np.float64).reshape(B)
    if K > 1:
        others = c.copy()
        others[rows, t] = -1
        kb = others.max(axis=1)
        pb = np.asarray(clopper_pearson_upper(kb, n, a / (2 * (K - 1))), dtype=np.float64).reshape(B)
    else:
        pb = np.zeros(B)
    pb = np.minimum(pb, 1.0 - pa)  # > 0: the upper bound of 0 votes is 1 - (alpha')^(1/n)
    ok = (pa > pb) & (pa > 0)
    za = special.ndtri(np.where(ok, pa, 0.75))
    zb = special.ndtri(np.where(ok, pb, 0.25))
    r = 0.5 * (za - zb)
    # two ndtri, the difference and the halving: within 8 eps of |za| + |zb|.
    r = np.nextafter(r - 8 * _EPS * (np.abs(za) + np.abs(zb)), 0.0)
    return np.where(ok & (r > 0), r, 0.0)


def ellipsoid_margin(delta, sigma, R) -> np.ndarray:
    """``R^2 - ||delta / sigma||_2^2`` ``[B]`` float64, lowered by a bound on its rounding
    error: a positive value proves ``delta`` lies strictly inside the certified ellipsoid.

    Args:
        delta: ``[B, *S]`` perturbations; sigma: ``S``; R: ``[B]`` normalised radii.
    """
    d = _to_numpy(delta, "delta").astype(np.float64)
    s = _to_numpy(sigma, "sigma").astype(np.float64)
    R = np.asarray(_to_numpy(R, "R"), dtype=np.float64).reshape(-1)
    if d.shape[1:] != s.shape:
        raise ValueError(f"delta must be [B, *S] with S = sigma's shape {list(s.shape)}, got {list(d.shape)}")
    q = ((d / s) ** 2).reshape(d.shape[0], -1)
    total = np.array([math.fsum(row) for row in q.tolist()])
    # each term is within 2 eps relative (division, square), so their sum within 2 eps of the
    # total; fsum rounds once, R^2 and the difference once each.
    err = 4 * _EPS * (total + R * R)
    return R * R - total - err
