"""Second-order smoothing (SoS) certificates of Levine, Kumar, Goldstein & Feizi ("Tight
Second-Order Certificates for Randomized Smoothing", §3-§3.2, Theorems 1-2), vectorised in float64.

With ``p = P(f(x + eps) = a)`` and ``G = ||grad p(x)||`` (eps ~ N(0, sigma^2 I)),
Theorem 1 gives ``p(x') >= L(rho) = Phi(Phi^-1(a' + p) - rho/sigma) -
Phi(Phi^-1(a') - rho/sigma)`` for ``||x' - x|| < rho``, where ``a'`` in
``[0, (1-p)/2]`` solves ``h(a) = phi(Phi^-1(a)) - phi(Phi^-1(a + p)) + sigma G = 0``.
The radius is the rho where ``L = 1/2``.

Soundness of the numerics. Both roots are found by bisection on float64 with a
fixed number of steps (:data:`BISECTION_STEPS`), and a bracket end moves only
when the computed predicate holds with a margin larger than its rounding error:
``a'`` keeps the *lower* end (``L`` increases in ``a``, so any ``a <= a'`` gives a
valid, smaller bound) and ``rho`` keeps the lower end, starting from the
first-order radius (which Theorem 1 never goes below). The returned radius is
therefore below the exact solution by at most the final bracket width
(``<= 2^-60`` of the initial bracket, relative) plus the margins
(:data:`H_MARGIN`, :data:`L_MARGIN`), then stepped down one ulp. Differences of
normal CDFs near 1 are evaluated through the complementary form with
``q = 1 - p`` (exact in float64 for ``p >= 1/2``): a numerical choice of this library, not the paper's.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from ._arrays import _alpha, _bad, _to_numpy
from .binomial import clopper_pearson_lower
from .l2 import gaussian_radius

__all__ = ["BISECTION_STEPS", "g_max", "a_prime", "sos_bound", "sos_radius", "sos_upper_bound",
           "sos_multiclass_radius", "grad_sq_margin", "sos_certify", "DOT_SCALE_BITS", "dot_rounding_slack"]

BISECTION_STEPS = 64
H_MARGIN = 1e-11  # relative to the terms of h
L_MARGIN = 1e-12  # absolute, on a probability
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
DOT_SCALE_BITS = 24  # pair dot products are summed as integers, ceil(dot * 2^24)
Z_SQ_MAX = 44.4  # (Box-Muller radius)^2 <= -2 ln(2^-32) = 44.36 for the fused sampler


def _phi_ndtri(y: np.ndarray) -> np.ndarray:
    """phi(Phi^-1(y)), 0 at y in {0, 1} (y <= 1/2 here, where ndtri is accurate)."""
    z = special.ndtri(y)
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    return np.where((y <= 0) | (y >= 1), 0.0, out)


def _check_p(p, name="p"):
    a = _to_numpy(p, name).astype(np.float64)
    bad = ~((a >= 0) & (a <= 1))
    if np.any(bad):
        raise ValueError(f"{name} must lie in [0, 1], got {_bad(a, bad)!r}")
    return a


def _check_pos(s, name):
    a = _to_numpy(s, name).astype(np.float64)
    bad = ~(np.isfinite(a) & (a > 0))
    if np.any(bad):
        raise ValueError(f"{name} must be finite and > 0, got {_bad(a, bad)!r}")
    return a


def _check_grad(G):
    a = _to_numpy(G, "G").astype(np.float64)
    bad = np.isnan(a) | (a < 0)
    if np.any(bad):
        raise ValueError(f"the gradient-norm bound G must be >= 0 (not NaN), got {_bad(a, bad)!r}")
    return a


def g_max(p, sigma):
    """The largest gradient norm any [0, 1]-valued f with smoothed value ``p`` can have,
    ``phi(Phi^-1(p)) / sigma`` (attained by a half-space), float64 of the broadcast shape."""
    p = _check_p(p)
    s = _check_pos(sigma, "sigma")
    return _phi_ndtri(np.minimum(p, 1.0 - p)) / s


def _h(a, q, sG):
    """h(a) and a bound on its rounding error, with q = 1 - p (the second term is
    phi(Phi^-1(a + p)) = phi(Phi^-1(q - a)))."""
    fa, fb = _phi_ndtri(a), _phi_ndtri(q - a)
    return fa - fb + sG, H_MARGIN * (fa + fb + sG)


def a_prime(p, G, sigma):
    """The root a' of h on ``[0, (1 - p)/2]`` (Theorem 1, Eq. 3), rounded down: a conservative
    lower bracket end. ``G`` is clipped to ``[0, g_max(p, sigma)]``; ``G >= g_max`` gives 0
    (the half-space). Shapes broadcast; float64."""
    p, G, s = np.broadcast_arrays(_check_p(p), _check_grad(G), _check_pos(sigma, "sigma"))
    q = 1.0 - p
    gm = _phi_ndtri(np.minimum(p, q)) / s
    lo = np.zeros(p.shape)
    hi = q / 2.0
    sG = s * np.minimum(G, gm)
    live = (G < gm) & (q > 0)
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        h, err = _h(mid, q, sG)
        up = live & (h < -err)  # h(mid) < 0 for sure: mid is below a'
        lo = np.where(up, mid, lo)
        hi = np.where(live & ~up, mid, hi)
    return lo


def _deficit(t, u, v):
    """1 - L at rho = sigma t, for the slab [u, v] in units of sigma:
    Phi(t - v) + Phi(u - t)."""
    return special.ndtr(t - v) + special.ndtr(u - t)


def _slab(p, ap):
    q = 1.0 - p
    with np.errstate(divide="ignore"):
        u = special.ndtri(ap)  # -inf at a' = 0
    v = -special.ndtri(q - ap)
    return u, v


def sos_bound(rho, p, G, sigma):
    """Theorem 1's lower bound ``L(rho)`` on the smoothed probability at distance
    ``rho`` (float64, broadcast shape), with a' from :func:`a_prime`."""
    r = _to_numpy(rho, "rho").astype(np.float64)
    if np.any(~(r >= 0)):
        raise ValueError(f"rho must be >= 0, got {_bad(r, ~(r >= 0))!r}")
    p, G, s, r = np.broadcast_arrays(_check_p(p), _check_grad(G), _check_pos(sigma, "sigma"), r)
    u, v = _slab(p, a_prime(p, G, s))
    return 1.0 - _deficit(r / s, u, v)


def sos_radius(p, G, sigma):
    """The second-order certified L2 radius (Theorem 1: Eq. 2 set to 1/2, §3): 0 where
    ``p <= 1/2``, else the rho with ``L(rho) = 1/2`` rounded down (never below the
    first-order radius ``sigma Phi^-1(p)``, never above the exact solution).
    Shapes broadcast; float64."""
    p, G, s = np.broadcast_arrays(_check_p(p), _check_grad(G), _check_pos(sigma, "sigma"))
    ok = p > 0.5
    pc = np.where(ok, p, 0.75)  # placeholder lanes, masked at the end
    qc = 1.0 - pc
    u, v = _slab(pc, a_prime(pc, G, s))
    lo = -special.ndtri(qc)  # first order: Phi^-1(p)
    hi = -special.ndtri(qc / 2.0)  # first order at (1 + p)/2: never reached
    half_space = np.isneginf(u)  # a' = 0: exactly the first-order certificate
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        up = ~half_space & (_deficit(mid, u, v) < 0.5 - L_MARGIN)
        lo = np.where(up, mid, lo)
        hi = np.where(up, hi, mid)
    first = np.asarray(gaussian_radius(np.where(ok, p, 0.5), s), dtype=np.float64)
    r = s * lo
    r = np.where(r > 0, np.nextafter(r, 0.0), 0.0)
    r = np.maximum(r, first)  # ulp-level ties with the first-order value
    return np.where(ok, r, 0.0)


def sos_upper_bound(rho, p_upper, G_upper, sigma):
    """§3.2 of the paper: ``p_c(x') <= U_c(rho) = 1 - L(rho; 1 - p_c, G_c)`` for ``||x' - x|| < rho``
    (Theorem 1 applied to ``1 - f``, which has the same gradient norm). U increases in p_c
    and G_c, so pass *upper* bounds of both. float64, broadcast shape."""
    pu = _check_p(p_upper, "p_upper")
    return 1.0 - sos_bound(rho, 1.0 - pu, G_upper, sigma)


def sos_multiclass_radius(p_lower, G_a, p_upper, G_upper, sigma):
    """The paper's larger (valid, not tight) certificate of §3.2: the largest rho with
    ``L_a(rho) >= max_c U_c(rho)``, the max over **every** other class c.

    Args:
        p_lower, G_a: lower bound on the top class's probability and upper bound on its
            gradient norm (scalars).
        p_upper, G_upper: ``[K - 1]`` upper bounds on each other class's probability and
            gradient norm.
        sigma: noise level.

    Returns:
        The radius (float, rounded down; 0.0 when ``L_a(0) <= max_c U_c(0)``). Bisection as
        :func:`sos_radius` (64 steps, the lower end, a margin of :data:`L_MARGIN`).
    """
    pu = np.atleast_1d(_check_p(p_upper, "p_upper")).astype(np.float64)
    gu = np.atleast_1d(_check_grad(G_upper)).astype(np.float64)

    def gap(rho):
        return float(sos_bound(rho, p_lower, G_a, sigma)) - float(np.max(sos_upper_bound(rho, pu, gu, sigma)))

    if not gap(0.0) > L_MARGIN:
        return 0.0
    lo, hi = 0.0, float(sigma)
    for _ in range(64):
        if not gap(hi) > L_MARGIN:
            break
        lo, hi = hi, 2.0 * hi
    for _ in range(BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > L_MARGIN else (lo, mid)
    return math.nextafter(lo, 0.0) if lo > 0 else 0.0


def grad_sq_margin(n_pairs, dim, alpha_g):
    """Theorem 2's one-sided margin on the mean of ``f f' (z . z')`` over ``n_pairs``
    disjoint pairs of unit-noise vectors in ``dim`` dimensions (z = eps / sigma): with
    probability >= 1 - alpha_g, ``E[f f' z.z'] <= mean + margin``. Rounded up. In units of
    ``G^2`` it is ``margin / sigma^2``."""
    n = _to_numpy(n_pairs, "n_pairs").astype(np.float64)
    d = _to_numpy(dim, "dim").astype(np.float64)
    if np.any(~(n >= 1)) or np.any(~(d >= 1)):
        raise ValueError(f"n_pairs and dim must be >= 1, got {n_pairs!r} and {dim!r}")
    lg = np.log(1.0 / _alpha(alpha_g))
    small = 2.0 * lg <= d * n
    with np.errstate(invalid="ignore"):
        m = np.where(small, 4.0 * np.sqrt(d * lg / n), 4.0 * math.sqrt(2.0) * lg / n)
    return np.nextafter(np.nextafter(m, np.inf), np.inf)


def dot_rounding_slack(dim) -> float:
    """Bound on the float64 rounding of one pair's dot product of ``dim`` float32 unit-noise
    values (each product is exact; the sequential sum errs by at most
    ``(dim - 1) u sum |z_i z'_i| <= dim^2 u Z_SQ_MAX``)."""
    d = float(dim)
    return 1.01 * d * d * Z_SQ_MAX * 2.0 ** -53


def sos_certify(count_a, n, dot_sum, n_pairs, dim, alpha, sigma):
    """The empirical second-order certificate (§3.1, Theorem 2; App. A.3) from one estimation pass.

    The n samples are i.i.d.; pairs ``(2j, 2j+1)`` are ``n_pairs = n // 2`` disjoint
    independent pairs. alpha is split evenly: ``pA_lower = CP_lower(count_a, n, alpha/2)``
    and the gradient bound holds at ``alpha/2``.

    Args:
        count_a: ``[B]`` votes for the selected class among the n samples.
        n: estimation samples. dot_sum: ``[B]`` an upper bound on
            ``sum_j f_j f'_j (z_j . z'_j)`` (z the unit noise; only pairs where both
            samples vote for the selected class count).
        n_pairs: pairs in ``dot_sum``. dim: input dimension d.
        alpha: one-sided failure probability of the whole certificate.
        sigma: noise level.

    Returns:
        dict of float64/bool arrays ``[B]``: ``pa_lower``, ``grad_sq_raw`` (the unbiased
        estimate of G^2), ``grad_sq_margin``, ``grad_upper`` (G bar, clipped),
        ``g_max`` (at pa_lower), ``vacuous`` (the bound was clipped at g_max),
        ``a_prime``, ``radius`` (0 on abstain) and ``abstain``.
    """
    a = _alpha(alpha)
    s = _check_pos(sigma, "sigma")
    pa = np.asarray(clopper_pearson_lower(count_a, n, a / 2.0), dtype=np.float64)
    mean = np.asarray(_to_numpy(dot_sum, "dot_sum"), dtype=np.float64) / float(n_pairs)
    mean = np.nextafter(mean + dot_rounding_slack(dim), np.inf)
    margin = np.asarray(grad_sq_margin(n_pairs, dim, a / 2.0), dtype=np.float64)
    raw = mean / (s * s)
    g2 = np.nextafter((mean + margin) / (s * s), np.inf)
    pa, g2, s, raw = np.broadcast_arrays(pa, g2, s, raw)
    gm = np.where(pa > 0.5, g_max(np.where(pa > 0.5, pa, 0.5), s), 0.0)
    g = np.where(g2 > 0, np.nextafter(np.sqrt(np.maximum(g2, 0.0)), np.inf), 0.0)
    vacuous = g >= gm
    g = np.minimum(g, gm)
    ap = np.where(pa > 0.5, a_prime(np.where(pa > 0.5, pa, 0.75), g, s), 0.0)
    radius = np.where(vacuous, np.asarray(gaussian_radius(pa, s), dtype=np.float64), sos_radius(pa, g, s))
    abstain = pa <= 0.5
    radius = np.where(abstain, 0.0, radius)
    return {"pa_lower": pa, "grad_sq_raw": raw, "grad_sq_margin": margin / (s * s), "grad_upper": g,
            "g_max": gm, "vacuous": vacuous & ~abstain, "a_prime": ap, "radius": radius, "abstain": abstain}
