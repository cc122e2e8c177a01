"""L1 certificates of uniform, splitting (SSN) and deterministic splitting (DSSN) noise.

Levine & Feizi (ICML 2021; Theorem 1, Theorem 2 and Corollary 1): with uniform
noise U(-lambda, lambda)^d or splitting noise of period 2 lambda, every class
probability is ``1/(2 lambda)``-Lipschitz in L1, so

* Monte-Carlo (uniform, SSN): the selected class keeps the prediction within
  ``2 lambda (pA_lower - 1/2)``; ``lambda = sqrt(3) sigma`` (sigma is the RMS);
* DSSN (exact, grid inputs): from the integer votes ``n_c`` over all L split
  offsets, ``K = floor((n_A - n_B - [B < A]) / 2)`` and every grid point within
  L1 distance ``K / q`` (inclusive) keeps prediction A.

``alpha`` is one-sided, as everywhere in smoothcert. The authors' code passes
``alpha`` to a two-sided interval (one-sided ``alpha / 2``); pass
``alpha = 0.0005`` to reproduce its bounds.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Dict

import numpy as np

SQRT3 = math.sqrt(3.0)

def ssn_slack(dim: int, sigma) -> np.ndarray:
    """Extra probability, over all ``dim`` elements, that the float32 splitting-noise
    sampler changes the noisy input between x and x' beyond the continuous bound
    ``||x - x'||_1 / (2 lambda)``: ``dim * (6 + 1 / lambda) * 2^-23``.

    Per element: the split value takes 2^23 equally spaced values ``h = 2 lambda
    2^-23`` apart, so an interval holds at most one more of them than its length
    allows; rounding ``s = lambda + lambda u`` moves each by at most ``h`` (two
    more at the ends); rounding in ``ceil((x - s) / (2 lambda))`` moves a cut by
    at most ``2^-23 max(1, 2 lambda)`` in x, i.e. ``max(1, 1 / (2 lambda))``
    points at each end; one point of room is added. Given the cut index m, the
    noisy value depends on s and m only, so x and x' agree when m does.
    """
    lam = l1_lambda(sigma)
    return dim * (6.0 + 1.0 / lam) * 2.0 ** -23


def l1_lambda(sigma) -> np.ndarray:
    """Half-width / half-period ``lambda = sqrt(3) sigma`` (float64) of uniform and splitting noise."""
    s = np.asarray(sigma, dtype=np.float64)
    if np.any(~np.isfinite(s) | (s <= 0)):
        raise ValueError(f"sigma must be finite and > 0, got {s[~np.isfinite(s) | (s <= 0)].flat[0]!r}")
    return s * SQRT3


def l1_radius(pa_lower, sigma, *, slack=0.0) -> np.ndarray:
    """``2 lambda (pA_lower - 1/2 - slack)``, never rounded up; negative means not certified.

    Args:
        pa_lower: ``[B]`` lower bounds on the selected class's probability.
        sigma: RMS of the noise (scalar or ``[B]``); lambda = sqrt(3) sigma.
        slack: subtracted from ``pa_lower`` (the SSN sampler's discretisation,
            :func:`ssn_slack`).

    Returns:
        float64 array; positive entries are stepped down one ulp to absorb rounding.
    """
    pa = np.asarray(pa_lower, dtype=np.float64)
    if np.any(~((pa >= 0) & (pa <= 1))):
        raise ValueError(f"pa_lower must lie in [0, 1], got {pa[~((pa >= 0) & (pa <= 1))].flat[0]!r}")
    lam = l1_lambda(sigma)
    r = 2.0 * lam * (pa - 0.5 - slack)
    return np.where(r > 0, np.nextafter(r, 0.0), r).astype(np.float64)


def dssn_levels(sigma: float, q: int = 255) -> int:
    """Number of split offsets ``L = int(2 lambda q)`` with ``lambda = sigma * sqrt(3)`` in float64,
    exactly the authors' rule (lambda is rounded down to ``L / (2q)``)."""
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 1:
        raise ValueError(f"q (grid steps) must be an integer >= 1, got {q!r}")
    if not (isinstance(sigma, (int, float, np.floating)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
    lam = float(sigma) * SQRT3
    levels = int(2 * lam * int(q))
    if levels < 1:
        raise ValueError(f"sigma={sigma} gives L = int(2 sqrt(3) sigma q) = 0 split offsets at q={q}; "
                         f"DSSN needs sigma >= {1 / (2 * SQRT3 * q):.3g}")
    return levels


def _radius_down(K: int, q: int) -> float:
    """``K / q`` as the largest float64 not above the exact rational."""
    r = K / q
    if Fraction(r) > Fraction(K, q):
        r = math.nextafter(r, 0.0)
    return r


def dssn_certificate(counts, q: int) -> Dict[str, np.ndarray]:
    """Exact DSSN prediction and certificate from integer votes (Levine & Feizi 2021, Corollary 1
    with §4.1's exact evaluation of p; the integer form and its tie-breaks are this library's, matching
    the authors' released code rather than the paper's text).

    Args:
        counts: ``[B, K]`` non-negative integer votes over all L offsets.
        q: grid steps.

    Returns:
        dict of ``[B]`` arrays: ``prediction`` A (ties to the lowest index),
        ``runner_up`` B (ties to the lowest index among the rest; -1 for one
        class), ``count_a``, ``count_b``, ``grid_radius`` K (int64) and ``radius``
        K / q (float64, never above K / q).
    """
    c = np.asarray(counts)
    if c.ndim != 2 or c.shape[1] < 1:
        raise ValueError(f"counts must have shape [B, K] with K >= 1, got {c.shape}")
    if not np.issubdtype(c.dtype, np.integer) or (c.size and c.min() < 0):
        raise ValueError("counts must be non-negative integers")
    c = c.astype(np.int64)
    rows = np.arange(c.shape[0])
    a = np.argmax(c, axis=1)  # first maximum: lowest index
    n_a = c[rows, a]
    if c.shape[1] > 1:
        rest = c.copy()
        rest[rows, a] = -1
        b = np.argmax(rest, axis=1)
        n_b = c[rows, b]
    else:
        b = np.full(c.shape[0], -1, dtype=np.int64)
        n_b = np.zeros_like(n_a)
    tie = ((b >= 0) & (b < a)).astype(np.int64)
    K = (n_a - n_b - tie) // 2
    radius = np.array([_radius_down(int(k), int(q)) for k in K], dtype=np.float64)
    return {"prediction": a.astype(np.int64), "runner_up": b.astype(np.int64), "count_a": n_a,
            "count_b": n_b, "grid_radius": K.astype(np.int64), "radius": radius}
