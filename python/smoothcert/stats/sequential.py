"""Anytime-valid confidence sequences for a binomial proportion, and the stopping rules of
sequential certification.

A *confidence sequence* (Darling & Robbins 1967; Howard, Ramdas, McAuliffe & Sekhon, Ann.
Statist. 2021) is a sequence of bounds ``L_n`` with ``P(exists n: p < L_n) <= alpha``: the
bound holds *simultaneously* at every sample count, so it holds at any stopping time, however
the decision to stop depends on the votes seen so far (optional stopping). ``alpha`` stays the
one-sided failure probability of :mod:`smoothcert.stats.binomial`; a bound is never rounded up
(the lower bounds below are computed so that the float returned is at most the exact one).

Two sequences, both functions of the count ``k`` after ``n`` samples only (not of the order of
the votes, so they do not depend on how samples were packed into forward batches):

* :class:`GridClopperPearson` -- Clopper-Pearson bounds at a fixed geometric grid of
  checkpoints ``n_1 < ... < n_J = n_max`` with alpha spent over the grid (a union bound:
  checkpoint j gets ``alpha_j``, ``sum_j alpha_j <= alpha``; by default ``alpha_j`` is
  proportional to ``n_j``, so the last checkpoint keeps about alpha/2 and a run that goes to
  ``n_max`` loses little radius against a fixed-n run). Its bounds exist only at checkpoints
  (elsewhere they raise), so decisions are only taken there. Exact binomial tails.
* :class:`BetaBinomialMixture` -- Robbins' (1970) conjugate mixture martingale
  ``M_n(p) = B(a + k, b + n - k) / (B(a, b) p^k (1 - p)^(n - k))``; by Ville's inequality
  ``{p : M_n(p) < 1/alpha}`` covers p at every n at once with probability ``>= 1 - alpha``. A
  closed form in ``(k, n)`` with exact numerics: ``log M_n`` is convex in p, so the set is an
  interval and its ends are found by bisection. It holds after *every* sample (no grid), at
  the price of a two-sided set used for a one-sided claim. Jeffreys' prior ``a = b = 1/2``
  by default, which keeps mass near p = 1 where certification lives.

:class:`GridClopperPearson` is the default: on the vote distributions of certification (most
inputs near p = 1) it is the tighter of the two at the grid's checkpoints (measured in
``bench/sequential.py``; ``docs/soundness.md``).

Stopping rules (Cohen et al.'s selection draw comes first and is independent of all of this):

* :func:`decide` -- stop once the lower bound proves ``radius >= r`` or the upper bound shows
  that even ``n_max`` samples at the optimistic frequency could not;
* :func:`estimate` -- stop once the radius reachable at ``n_max`` (at the observed frequency)
  exceeds the radius proven now by less than ``tol`` of itself.

Both only choose *when* to stop. Soundness rests on the lower bound alone, valid at every
stopping time; the futility and estimate rules may cost radius, never validity.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, ClassVar, Dict

import numpy as np
from scipy import special

from ._arrays import _alpha, _ints
from .binomial import clopper_pearson_lower, clopper_pearson_upper

__all__ = ["ConfidenceSequence", "GridClopperPearson", "BetaBinomialMixture", "CONFIDENCE_SEQUENCES",
           "confidence_sequence", "geometric_grid", "decide", "estimate", "CONTINUE", "CERTIFIED", "FUTILE"]

CONTINUE, CERTIFIED, FUTILE = 0, 1, -1


def geometric_grid(first: int, n_max: int, ratio: float = 2.0) -> np.ndarray:
    """``[J]`` int64 checkpoints ``ceil(first ratio^j)`` below ``n_max``, then ``n_max``.

    The grid is fixed before any sample is drawn (it must not depend on the votes)."""
    if int(first) != first or int(n_max) != n_max:
        raise ValueError(f"the checkpoint grid needs integer first and n_max, got first={first}, n_max={n_max}")
    first, n_max = int(first), int(n_max)
    if first < 1 or n_max < first:
        raise ValueError(f"the checkpoint grid needs 1 <= first <= n_max, got first={first}, n_max={n_max}")
    if not (math.isfinite(ratio) and ratio >= 1.01):
        raise ValueError(f"the checkpoint grid's ratio must be >= 1.01, got {ratio!r}")
    out, j = [], 0
    while True:
        v = int(math.ceil(first * ratio ** j - 1e-9))
        if v >= n_max:
            break
        if not out or v > out[-1]:
            out.append(v)
        j += 1
    out.append(n_max)
    return np.asarray(out, dtype=np.int64)


class ConfidenceSequence:
    """Lower and upper bounds on a binomial p valid at every checkpoint simultaneously.

    Attributes:
        alpha: one-sided failure probability of each bound (lower and upper separately).
        checkpoints: ``[J]`` int64 sample counts at which a stopping rule may look.
        n_max: the last checkpoint.
    """

    name: ClassVar[str] = ""

    def __init__(self, alpha: float, checkpoints: np.ndarray):
        self.alpha = float(_alpha(alpha))
        c = np.asarray(checkpoints)
        if c.ndim != 1 or c.size == 0 or not np.issubdtype(c.dtype, np.integer) or c[0] < 1 or np.any(np.diff(c) <= 0):
            raise ValueError(f"checkpoints must be a non-empty 1-D array of strictly increasing integers >= 1, "
                             f"got {checkpoints!r}")
        self.checkpoints = c.astype(np.int64)
        self.n_max = int(self.checkpoints[-1])

    def lower(self, k, n) -> np.ndarray:
        """``P(exists checkpoint n: p < lower(k_n, n)) <= alpha``; ``k``, ``n`` broadcast."""
        raise NotImplementedError

    def upper(self, k, n) -> np.ndarray:
        """``P(exists checkpoint n: p > upper(k_n, n)) <= alpha``."""
        raise NotImplementedError

    def config(self) -> Dict:
        """What determines the bounds (for result sidecars)."""
        return {"cs": self.name, "alpha": self.alpha, "checkpoints": [int(c) for c in self.checkpoints]}

    def _kn(self, k, n):
        kk = _ints(k, "k", 0)
        nn = _ints(n, "n", 1)
        kk, nn = np.broadcast_arrays(kk, nn)
        if np.any(kk > nn):
            raise ValueError("k must satisfy k <= n")
        return kk, nn


# How alpha is shared among the checkpoints (weights ``[J]`` from the checkpoints, normalised).
SPENDING: Dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "uniform": lambda n: np.ones_like(n),
    "sqrt": np.sqrt,
    "linear": lambda n: n,
}


class GridClopperPearson(ConfidenceSequence):
    """Clopper-Pearson at checkpoint j at level ``alpha_j``, ``sum_j alpha_j <= alpha`` (module docstring).

    Args:
        alpha: one-sided failure probability over the whole sequence.
        checkpoints: the fixed grid (:func:`geometric_grid`).
        spend: how alpha is shared: ``"linear"`` (``alpha_j`` proportional to ``n_j``),
            ``"sqrt"`` or ``"uniform"`` (:data:`SPENDING`).
        final: the share of alpha kept for the last checkpoint ``n_max``, in (0, 1) (the
            others share the rest by ``spend``); None: ``n_max`` is weighted like the others.
            A large share makes a run that goes to ``n_max`` nearly a fixed-n run there.
    """

    name = "grid-cp"
    FINAL_SHARE: ClassVar[bool] = True  # takes ``final=`` (a stopping rule may ask for a share)

    def __init__(self, alpha: float, checkpoints: np.ndarray, spend: str = "linear", final=None):
        super().__init__(alpha, checkpoints)
        if spend not in SPENDING:
            raise ValueError(f"unknown alpha spending {spend!r}; choose one of {', '.join(SPENDING)}")
        if final is not None and not (isinstance(final, (int, float)) and 0 < final < 1):
            raise ValueError(f"the final checkpoint's share of alpha must be in (0, 1), got {final!r}")
        self.spend, self.final = spend, None if final is None else float(final)
        w = SPENDING[spend](self.checkpoints.astype(np.float64))
        if self.final is not None and w.size > 1:
            w = np.append((1.0 - self.final) * w[:-1] / w[:-1].sum(), self.final)
        # Shares stepped down until their exact sum is at most alpha (float rounding of the
        # division must not spend more than alpha).
        levels = np.nextafter(self.alpha * w / w.sum(), 0.0)
        while sum(Fraction(float(v)) for v in levels) > Fraction(self.alpha):
            levels = np.nextafter(levels, 0.0)
        self.levels = levels

    def config(self):
        out = {**super().config(), "spend": self.spend}
        if self.final is not None:
            out["final_share"] = self.final
        return out

    def level(self, n: np.ndarray) -> np.ndarray:
        """The Clopper-Pearson level of checkpoint(s) ``n``."""
        return self.levels[np.searchsorted(self.checkpoints, n)]

    def _on_grid(self, nn: np.ndarray) -> None:
        off = ~np.isin(nn, self.checkpoints)
        if np.any(off):
            raise ValueError(f"n={int(nn[off].flat[0])} is not a checkpoint of this confidence sequence "
                             f"({self.checkpoints.tolist()}): its bounds hold only there")

    def lower(self, k, n):
        kk, nn = self._kn(k, n)
        self._on_grid(nn)
        return np.asarray(clopper_pearson_lower(kk, nn, self.level(nn)), dtype=np.float64)

    def upper(self, k, n):
        kk, nn = self._kn(k, n)
        self._on_grid(nn)
        return np.asarray(clopper_pearson_upper(kk, nn, self.level(nn)), dtype=np.float64)


class BetaBinomialMixture(ConfidenceSequence):
    """Robbins' beta-binomial mixture confidence sequence (module docstring), valid at every n.

    Args:
        alpha: failure probability of the two-sided set (so of each one-sided bound).
        checkpoints: where the stopping rules look (any n is valid).
        a, b: the Beta prior.
    """

    name = "mixture"

    def __init__(self, alpha: float, checkpoints: np.ndarray, a: float = 0.5, b: float = 0.5):
        super().__init__(alpha, checkpoints)
        if not (a > 0 and b > 0):
            raise ValueError(f"the Beta prior needs a, b > 0, got a={a}, b={b}")
        self.a, self.b = float(a), float(b)
        self.threshold = math.log(1.0 / self.alpha)

    def config(self):
        return {**super().config(), "prior": [self.a, self.b]}

    def log_martingale(self, k, n, p) -> np.ndarray:
        """``log M_n(p)`` and a bound on its float error (both ``[...]``)."""
        lb1 = special.betaln(self.a + k, self.b + n - k)
        lb0 = special.betaln(self.a, self.b)
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = np.where(k > 0, k * np.log(p), 0.0)
            t2 = np.where(n - k > 0, (n - k) * np.log1p(-p), 0.0)
        val = lb1 - lb0 - t1 - t2
        err = 1e-12 * (np.abs(lb1) + abs(lb0) + np.abs(t1) + np.abs(t2) + 1.0)
        return val, err

    def lower(self, k, n):
        kk, nn = self._kn(k, n)
        return self._lower(kk.astype(np.float64), nn.astype(np.float64))

    def upper(self, k, n):
        kk, nn = self._kn(k, n)
        # Symmetric in (p, k) <-> (1 - p, n - k) once the prior is swapped.
        swapped = BetaBinomialMixture(self.alpha, self.checkpoints, self.b, self.a)
        return 1.0 - swapped._lower((nn - kk).astype(np.float64), nn.astype(np.float64))

    def _lower(self, k: np.ndarray, n: np.ndarray) -> np.ndarray:
        # log M is convex in p with its minimum (<= 0) at k/n: on (0, k/n] it decreases, so every
        # p below a point that is rejected (log M >= threshold, float error included) is rejected
        # too. Bisection keeps `lo` rejected and returns it: never above the exact bound.
        k, n = np.broadcast_arrays(k, n)
        lo = np.zeros(k.shape)
        hi = np.where(n > 0, k / np.maximum(n, 1), 0.0)
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            val, err = self.log_martingale(k, n, mid)
            rejected = (val - err >= self.threshold) & (mid > 0)
            lo = np.where(rejected, mid, lo)
            hi = np.where(rejected, hi, mid)
            if np.all(hi - lo <= 4e-16 * np.maximum(hi, 1e-300)):
                break
        return np.where(k == 0, 0.0, lo)


CONFIDENCE_SEQUENCES: Dict[str, type] = {"grid-cp": GridClopperPearson, "mixture": BetaBinomialMixture}


def confidence_sequence(name: str, alpha: float, checkpoints: np.ndarray, **options) -> ConfidenceSequence:
    """A registered confidence sequence by name (``"grid-cp"``, ``"mixture"``); ``options`` go to
    its constructor (e.g. grid-cp's ``final``)."""
    cls = CONFIDENCE_SEQUENCES.get(name)
    if cls is None:
        raise ValueError(f"unknown confidence sequence {name!r}; choose one of {', '.join(CONFIDENCE_SEQUENCES)}")
    try:
        return cls(alpha, checkpoints, **options)
    except TypeError:
        raise ValueError(f"confidence sequence {name!r} takes no option {', '.join(options)}") from None


Radius = Callable[[np.ndarray], np.ndarray]


def _reachable(cs: ConfidenceSequence, p: np.ndarray, radius: Radius) -> np.ndarray:
    """The radius proven at ``n_max`` if a fraction ``p`` of the votes were for the top class."""
    k_max = np.floor(np.clip(p, 0.0, 1.0) * cs.n_max + 1e-9).astype(np.int64)
    return np.asarray(radius(cs.lower(k_max, cs.n_max)), dtype=np.float64)


def decide(cs: ConfidenceSequence, k, n, radius: Radius, r) -> np.ndarray:
    """The *decide* rule at a checkpoint: ``[...]`` int8 :data:`CERTIFIED` (the lower bound
    proves ``radius >= r``), :data:`FUTILE` (even the upper bound's frequency held up to
    ``n_max`` would not prove ``r``; also at ``n_max`` without proof) or :data:`CONTINUE`.

    Args:
        k, n: top-class votes after n estimation samples (``n`` a checkpoint).
        radius: maps lower bounds ``pA_lower`` to certified radii (0 when none).
        r: the radius to decide (scalar or per input).
    """
    k = np.asarray(k)
    n = np.asarray(n)
    r = np.asarray(r, dtype=np.float64)
    proven = np.asarray(radius(cs.lower(k, n)), dtype=np.float64) >= r
    futile = _reachable(cs, cs.upper(k, n), radius) < r
    out = np.where(proven, CERTIFIED, np.where(futile | (n >= cs.n_max), FUTILE, CONTINUE))
    return out.astype(np.int8)


def estimate(cs: ConfidenceSequence, k, n, radius: Radius, tol: float) -> np.ndarray:
    """The *estimate* rule at a checkpoint: ``[...]`` bool, stop when ``R_max - R_n <=
    tol R_max`` where ``R_n`` is the radius proven now and ``R_max`` the one reachable at
    ``n_max`` at the observed frequency ``k / n`` (also stop when ``R_max == 0`` or at ``n_max``)."""
    k = np.asarray(k)
    n = np.asarray(n)
    if not (0 < tol < 1):
        raise ValueError(f"tol must satisfy 0 < tol < 1, got {tol!r}")
    now = np.asarray(radius(cs.lower(k, n)), dtype=np.float64)
    best = _reachable(cs, k / n, radius)
    return (best - now <= tol * best) | (best <= 0) | (n >= cs.n_max)
