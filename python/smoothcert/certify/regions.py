"""Robust regions of sample-wise smoothing (Wang et al., "Pretrain-to-Finetune
Adversarial Training via Sample-wise Randomized Smoothing", Sec. 4.2, Alg. 2, Eqs. 6-8).

Cohen's theorem needs one sigma over the whole certified ball, so a per-input
sigma is certified by splitting the input space into pairwise-disjoint open
balls ("robust regions") B_i = B(c_i, rho_i), each with its own sigma; the
classifier is G(x) = g(x, sigma_i) on B_i. Two allocators of the known test set:

* :func:`greedy_regions` (Alg. 2): points in a fixed order; a point inside an
  earlier region inherits its sigma and gets ``min(R, rho_i - d)`` (Eq. 6); any
  other point gets ``min(R, min_i d_i - rho_i)`` (Eq. 8) and founds a region of
  that radius;
* :func:`lp_regions` (Eq. 10): every point keeps its own sigma and the radii
  maximise their sum subject to ``r_i + r_j <= D_ij``, solved by SciPy's HiGHS.

Only pairs closer than the sum of their radius bounds can interact, so both run
on the edge list of :func:`conflict_graph` (exact fp64 distances from
:func:`smoothcert.ops.pair_edges`). Every distance enters a radius through its
rigorous lower (``lo``) or upper (``hi``) bound and every subtraction is rounded
down, so rounding can only shrink a radius. **Labels never enter allocation**:
no function here takes them. :func:`check_regions` verifies the result with
exact distances.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch

from .. import ops
from ..ops import reference

ORDERS = ("ascending", "descending", "index")
_U64 = 2.0 ** -53


@dataclass
class Graph:
    """Undirected graph over n points: edge ``(i[e], j[e])``, ``i < j``, with the canonical
    fp64 distance ``d[e]`` and the real distance's bounds ``lo[e] <= D <= hi[e]``; CSR
    adjacency for the scans."""

    n: int
    i: np.ndarray
    j: np.ndarray
    d: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    degree: np.ndarray = field(init=False)
    indptr: np.ndarray = field(init=False)
    nbr: np.ndarray = field(init=False)
    nbr_lo: np.ndarray = field(init=False)
    nbr_hi: np.ndarray = field(init=False)

    def __post_init__(self):
        src = np.concatenate([self.i, self.j])
        dst = np.concatenate([self.j, self.i])
        lo, hi = np.concatenate([self.lo, self.lo]), np.concatenate([self.hi, self.hi])
        order = np.lexsort((dst, src))
        self.degree = np.bincount(src, minlength=self.n).astype(np.int64)
        self.indptr = np.concatenate([[0], np.cumsum(self.degree)]).astype(np.int64)
        self.nbr, self.nbr_lo, self.nbr_hi = dst[order], lo[order], hi[order]

    @property
    def edges(self) -> int:
        return int(self.i.size)

    def subgraph(self, keep: np.ndarray) -> "Graph":
        """The edges where ``keep`` ``[E]`` is true."""
        return Graph(self.n, self.i[keep], self.j[keep], self.d[keep], self.lo[keep], self.hi[keep])

    def stats(self) -> Dict[str, int]:
        return {"points": self.n, "edges": self.edges, "points_with_degree_ge_1": int((self.degree >= 1).sum()),
                "max_degree": int(self.degree.max()) if self.n else 0}


def distance_bounds(d: np.ndarray, dim: int):
    """``(lo, hi)`` bounds of the real distance of float32 points from the canonical fp64
    one (relative error below ``(dim + 4) 2^-53``, ``csrc/common/ball_math.h``), widened so
    that a sum of two radii compared with ``lo`` in fp64 stays sound too."""
    rel = (dim + 16) * 2.0 * _U64
    lo = np.nextafter(d * (1.0 - rel), -np.inf)
    return np.maximum(lo, 0.0), np.nextafter(d * (1.0 + rel), np.inf)


def conflict_graph(x: torch.Tensor, reach, *, tile_rows: Optional[int] = None) -> Graph:
    """Every pair of ``x`` ``[n, *S]`` whose real distance may be below ``reach_i + reach_j``
    (``reach`` ``[n]``): the kernel's threshold is widened by the distance error bound, so
    the list also holds the pairs that only rounding would separate. Filter it with
    :meth:`Graph.subgraph` (e.g. ``d < reach_i + reach_j`` for the ordering graph of
    App. C.2, ``lo < R_i + R_j`` for the allocators)."""
    n = x.shape[0]
    dim = int(np.prod(x.shape[1:])) if x.dim() > 1 else 1
    reach = np.asarray(reach, dtype=np.float64)
    widened = np.nextafter(reach * (1.0 + 4.0 * (dim + 16) * _U64), np.inf)
    i, j, d = ops.pair_edges(x, torch.from_numpy(widened), tile_rows=tile_rows)
    lo, hi = distance_bounds(d.numpy(), dim)
    return Graph(n, i.numpy(), j.numpy(), d.numpy(), lo, hi)


def within(graph: Graph, reach, *, bound: str = "d") -> np.ndarray:
    """``[E]`` bool: edges with ``bound < reach_i + reach_j`` (``bound`` "d": the canonical
    distance, the graph's definition; "lo": its lower bound, every pair that can bind)."""
    reach = np.asarray(reach, dtype=np.float64)
    dist = graph.d if bound == "d" else graph.lo
    return dist < reach[graph.i] + reach[graph.j]


def allocation_order(degree: np.ndarray, order: str) -> np.ndarray:
    """Positions in allocation order: by degree ascending (default of the paper) or
    descending, ties by position; or ``"index"`` (the given order)."""
    if order not in ORDERS:
        raise ValueError(f"region order must be one of {ORDERS}, got {order!r}")
    pos = np.arange(degree.size)
    if order == "index":
        return pos
    key = degree if order == "ascending" else -degree
    return np.lexsort((pos, key))


def _down(v: float) -> float:
    return math.nextafter(v, -math.inf) if v > 0 else 0.0


# Cases of a point after allocation.
NEW, CAPPED, INHERITED, ABSTAIN, BOUNDARY = "new", "capped", "inherited", "abstain", "boundary"


@dataclass
class Allocation:
    """Result of an allocator over n points (numpy arrays of length n, by position).

    Attributes:
        method: ``"greedy"`` or ``"lp"``; order: the order name; rank: position in the order.
        region: position of the point whose region holds the point (itself for a founder, -1 none).
        rho: the radius of the region a point founded (0 if none; LP: its own radius).
        case: one of new / capped / inherited / abstain / boundary.
        radius_cap: the bound the regions put on the point's radius (``inf`` = none):
            ``rho_i - d_hi`` when inherited, the cap of Eq. 8 for a founder; LP: its r_j.
        inherit_from: position of the founder whose sigma an inherited point uses (-1 otherwise).
        seconds: allocation time; info: solver statistics (LP).
    """

    method: str
    order: str
    rank: np.ndarray
    region: np.ndarray
    rho: np.ndarray
    case: List[str]
    radius_cap: np.ndarray
    inherit_from: np.ndarray
    seconds: float
    info: Dict[str, float] = field(default_factory=dict)


def greedy_regions(radius: np.ndarray, abstain: np.ndarray, graph: Graph, order: np.ndarray,
                   order_name: str = "ascending") -> Allocation:
    """Algorithm 2 over the points in ``order``.

    Args:
        radius: ``[n]`` float64 certified radius of each point at its own sigma (R_j).
        abstain: ``[n]`` bool, the point's own certificate abstained (R_j = 0, no claim).
        graph: :func:`conflict_graph` with reach ``radius`` (any superset of its edges works).
        order: ``[n]`` positions, a permutation.

    A founder's region is its certified ball ``B(x_j, r_j)`` (possibly of radius 0:
    a non-abstaining point still protects its own centre, so a later region never
    swallows a point whose prediction is already given). An abstaining point founds
    nothing. ``boundary``: the point lies within rounding of a region's surface; it
    is reported as an abstention, since its sigma cannot be decided.
    """
    t0 = time.perf_counter()
    n = radius.size
    if sorted(np.asarray(order).tolist()) != list(range(n)):
        raise ValueError("order must be a permutation of the point positions")
    rho = np.full(n, -1.0)  # -1: no region (not yet processed, or abstained)
    region = np.full(n, -1, dtype=np.int64)
    inherit = np.full(n, -1, dtype=np.int64)
    cap = np.full(n, np.inf)
    case = [""] * n
    rank = np.empty(n, dtype=np.int64)
    for r_k, k in enumerate(order):
        rank[k] = r_k
        a, b = graph.indptr[k], graph.indptr[k + 1]
        nb, lo, hi = graph.nbr[a:b], graph.nbr_lo[a:b], graph.nbr_hi[a:b]
        live = rho[nb] >= 0
        nb, lo, hi, rr = nb[live], lo[live], hi[live], rho[nb[live]]
        inside = hi < rr
        if inside.any():
            if inside.sum() > 1:  # impossible for disjoint regions: a bug, never a certificate
                raise AssertionError(f"point {k} lies inside {int(inside.sum())} disjoint regions")
            m = int(np.flatnonzero(inside)[0])
            i = int(nb[m])
            region[k], inherit[k], case[k] = region[i], i, INHERITED
            cap[k] = _down(float(rr[m] - hi[m]))
            continue
        if (lo < rr).any():
            case[k] = BOUNDARY
            continue
        if abstain[k]:
            case[k] = ABSTAIN
            continue
        bound = float(np.min(lo - rr)) if nb.size else math.inf
        bound = _down(bound) if math.isfinite(bound) else bound
        cap[k] = bound
        r = min(float(radius[k]), bound)
        rho[k], region[k] = r, k
        case[k] = CAPPED if r < radius[k] else NEW
    return Allocation("greedy", order_name, rank, region, np.maximum(rho, 0.0), case, cap, inherit,
                      time.perf_counter() - t0)


def lp_regions(radius: np.ndarray, abstain: np.ndarray, graph: Graph, *,
               time_limit: Optional[float] = None) -> Allocation:
    """The transductive LP (Eq. 10): maximise sum r_j, ``0 <= r_j <= R_j``,
    ``r_i + r_j <= D_ij`` (``lo`` bound) on the edges of ``graph``, which must hold
    every pair with ``D_ij < R_i + R_j`` (:func:`conflict_graph` with reach ``radius``).

    HiGHS (``scipy.optimize.linprog``, sparse constraints) solves it over the points
    that have an edge; its answer is then made exactly feasible (clipped, and every
    pair over its distance shrunk by the excess, rounded down) so that solver
    tolerances never produce overlapping regions."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix

    t0 = time.perf_counter()
    n = radius.size
    R = np.where(abstain, 0.0, np.asarray(radius, dtype=np.float64))
    r = R.copy()
    info: Dict[str, float] = {"variables": 0, "constraints": 0}
    act_e = (R[graph.i] > 0) & (R[graph.j] > 0) & (R[graph.i] + R[graph.j] > graph.lo)
    ei, ej, elo = graph.i[act_e], graph.j[act_e], graph.lo[act_e]
    if ei.size:
        var = np.unique(np.concatenate([ei, ej]))
        col = np.full(n, -1, dtype=np.int64)
        col[var] = np.arange(var.size)
        E = ei.size
        A = csr_matrix((np.ones(2 * E), (np.repeat(np.arange(E), 2), np.stack([col[ei], col[ej]], 1).ravel())),
                       shape=(E, var.size))
        options = {"presolve": True}
        if time_limit is not None:
            options["time_limit"] = float(time_limit)
        t1 = time.perf_counter()
        res = linprog(-np.ones(var.size), A_ub=A, b_ub=elo, bounds=np.stack([np.zeros(var.size), R[var]], 1),
                      method="highs", options=options)
        info.update(variables=int(var.size), constraints=int(E), solve_seconds=time.perf_counter() - t1,
                    status=int(res.status), objective=float(-res.fun) if res.x is not None else float("nan"))
        if res.x is None:
            raise RuntimeError(f"HiGHS found no solution of the region LP ({var.size} variables, {E} "
                               f"constraints): {res.message}")
        r[var] = np.clip(res.x, 0.0, R[var])
        r = _repair(r, ei, ej, elo)
    # Capped: below R by more than the solver's tolerance (HiGHS returns bounds to ~1e-9).
    case = [ABSTAIN if abstain[k] else (CAPPED if r[k] < R[k] - 1e-9 * max(1.0, R[k]) else NEW) for k in range(n)]
    pos = np.arange(n)
    return Allocation("lp", "none", pos.copy(), np.where(abstain, -1, pos), r, case,
                      np.where(abstain, np.inf, r), np.full(n, -1, dtype=np.int64), time.perf_counter() - t0, info)


def _repair(r: np.ndarray, ei: np.ndarray, ej: np.ndarray, elo: np.ndarray) -> np.ndarray:
    """Radii with ``fl(r_i + r_j) <= lo_ij`` on every edge: an entry on a violated edge is
    lowered by the largest excess of its edges, rounded down (which never adds a violation)."""
    for _ in range(64):
        excess = r[ei] + r[ej] - elo
        bad = excess > 0
        if not bad.any():
            return r
        need = np.zeros_like(r)
        np.maximum.at(need, ei[bad], excess[bad])
        np.maximum.at(need, ej[bad], excess[bad])
        r = np.maximum(np.nextafter(r - need, -np.inf), 0.0)
    raise AssertionError("could not make the LP radii feasible")


def check_regions(x: torch.Tensor, alloc: Allocation, radius: np.ndarray) -> None:
    """Raises AssertionError unless the regions are pairwise disjoint and every point's
    certified ball ``B(x_k, radius_k)`` lies inside its region, with exact distances.

    Args:
        x: ``[n, *S]`` the points; alloc: the allocation; radius: ``[n]`` final radii.
    """
    n = x.shape[0]
    xf = x.reshape(n, -1).float().cpu()
    dim = xf.shape[1]
    founders = np.flatnonzero((alloc.region == np.arange(n)) & (alloc.rho > 0))
    if founders.size > 1:
        rho = torch.from_numpy(alloc.rho[founders]).double()
        i, j, d = ops.pair_edges(xf[founders], rho)
        if i.numel():
            lo, _ = distance_bounds(d.numpy(), dim)
            s = alloc.rho[founders[i.numpy()]] + alloc.rho[founders[j.numpy()]]
            bad = np.flatnonzero(s > lo)
            if bad.size:
                b = bad[0]
                raise AssertionError(f"regions of points {founders[int(i[b])]} and {founders[int(j[b])]} overlap: "
                                     f"radii sum {s[b]!r} > distance {float(d[b])!r}")
    for k in range(n):
        rk, g = float(radius[k]), int(alloc.region[k])
        if rk <= 0:
            continue
        if g < 0:
            raise AssertionError(f"point {k} has radius {rk!r} but no region")
        if g == k:
            if rk > alloc.rho[k]:
                raise AssertionError(f"point {k}'s radius {rk!r} exceeds its region's {alloc.rho[k]!r}")
            continue
        d = float(reference.exact_distances(xf[k:k + 1], xf[g:g + 1])[0])
        _, hi = distance_bounds(np.array([d]), dim)
        if not hi[0] + rk <= alloc.rho[g]:
            raise AssertionError(f"point {k}'s ball (radius {rk!r}, {d!r} from the centre) leaves region {g} "
                                 f"(radius {alloc.rho[g]!r})")


def radius_stats(r: np.ndarray, radii=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)) -> Dict[str, float]:
    """Table-6-style statistics ignoring correctness: fraction of points with ``r > 0``
    (the 0 column, strict), ``r >= rho`` for the other radii, and the mean r."""
    r = np.asarray(r, dtype=np.float64)
    out = {f"frac_r>{x:g}" if x == 0 else f"frac_r>={x:g}": float(((r > 0) if x == 0 else (r >= x)).mean())
           if r.size else float("nan") for x in radii}
    out["mean_r"] = float(r.mean()) if r.size else float("nan")
    return out
