"""Robust-region allocation (Wang et al., sample-wise smoothing, §4.2 Algorithm 2 and App. C):
the greedy scan against an independent dense brute force, disjointness and containment as a
property over random points (ties, duplicates, abstentions), the LP's feasibility and optimum
against a dense brute-force LP, ordering, and bad input."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from smoothcert.certify import regions as rg
from smoothcert.ops import reference
from helpers import gen


def dense(x):
    n = x.shape[0]
    return reference.exact_distances(x.repeat_interleave(n, 0), x.repeat(n, 1)).view(n, n).numpy()


def brute_greedy(x, R, abstain, order):
    """Alg. 2 straight from the paper (§4.2, Eqs. 6 and 8) with the full distance matrix (no graph), in exact
    arithmetic up to the same rounding rules."""
    n = x.shape[0]
    D = dense(x)
    dim = x[0].numel()
    lo, hi = rg.distance_bounds(D, dim)
    rho = {}
    case, cap, inherit = [""] * n, [math.inf] * n, [-1] * n
    for k in order:
        inside = [i for i in rho if hi[k, i] < rho[i]]
        if inside:
            i = inside[0]
            case[k], inherit[k], cap[k] = "inherited", i, rg._down(rho[i] - hi[k, i])
            continue
        if any(lo[k, i] < rho[i] for i in rho):
            case[k] = "boundary"
            continue
        if abstain[k]:
            case[k] = "abstain"
            continue
        b = min((lo[k, i] - rho[i] for i in rho), default=math.inf)
        b = rg._down(b) if math.isfinite(b) else b
        cap[k] = b
        rho[k] = min(R[k], b)
        case[k] = "capped" if rho[k] < R[k] else "new"
    return case, cap, inherit, rho


def random_case(n, dim, seed, clusters=True):
    g = gen(seed)
    if clusters:  # clusters make conflicts, duplicates make ties at distance 0
        centres = torch.rand(4, dim, generator=g)
        x = centres[torch.randint(0, 4, (n,), generator=g)] + 0.15 * torch.rand(n, dim, generator=g)
        x[n // 2] = x[0]
        x[n // 3] = x[1]
    else:
        x = torch.rand(n, dim, generator=g)
    R = torch.rand(n, generator=g, dtype=torch.float64).numpy() * 0.6
    R[torch.randint(0, n, (3,), generator=g).numpy()] = 0.25  # equal radii: ties in degree
    abstain = torch.rand(n, generator=g).numpy() < 0.1
    R[abstain] = 0.0
    return x, R, abstain


def alloc_radius(alloc, R):
    """Final radii as the family computes them when every inheriting point's own
    certificate at the inherited sigma is R (the caps decide)."""
    r = np.zeros(len(alloc.case))
    for k, c in enumerate(alloc.case):
        if c == "inherited":
            r[k] = min(R[k], alloc.radius_cap[k]) if R[k] > 0 else 0.0
        elif c in ("new", "capped"):
            r[k] = alloc.rho[k]
    return r


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("order_name", rg.ORDERS)
def test_greedy_matches_brute_force_and_keeps_regions_disjoint(seed, order_name):
    x, R, abstain = random_case(40, 5, seed, clusters=seed % 3 != 0)
    graph = rg.conflict_graph(x, R)
    fin = graph.subgraph(rg.within(graph, R, bound="lo"))
    sel = graph.subgraph(rg.within(graph, R))
    order = rg.allocation_order(sel.degree, order_name)
    alloc = rg.greedy_regions(R, abstain, fin, order, order_name)
    case, cap, inherit, rho = brute_greedy(x, R, abstain, order)
    assert alloc.case == case
    # Far regions are pruned by the graph: a founder's cap agrees wherever it binds.
    assert np.array_equal(np.minimum(alloc.radius_cap, R), np.minimum(np.array(cap), R))
    inh = np.array([c == "inherited" for c in case])
    assert np.array_equal(alloc.radius_cap[inh], np.array(cap)[inh])
    assert np.array_equal(alloc.inherit_from, np.array(inherit))
    for k, v in rho.items():
        assert alloc.rho[k] == v and alloc.region[k] == k
    assert np.array_equal(alloc.rank[order], np.arange(len(order)))
    r = alloc_radius(alloc, R)
    rg.check_regions(x, alloc, r)
    # Brute-force disjointness of every pair of regions with a positive radius.
    D = dense(x)
    ks = [k for k in rho if rho[k] > 0]
    for a in ks:
        for b in ks:
            if a < b:
                assert rho[a] + rho[b] <= D[a, b]
    assert all(c != "inherited" or alloc.region[k] >= 0 for k, c in enumerate(alloc.case))


def test_duplicates_inherit_and_get_the_region_radius_at_most():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    R = np.array([1.0, 2.0, 2.5])
    graph = rg.conflict_graph(x, R)
    alloc = rg.greedy_regions(R, np.zeros(3, bool), graph, np.array([0, 1, 2]), "index")
    assert alloc.case == ["new", "inherited", "capped"]
    assert alloc.inherit_from[1] == 0 and alloc.radius_cap[1] <= 1.0 and alloc.radius_cap[1] > 1.0 - 1e-12
    assert alloc.rho[2] < 2.0 and alloc.rho[2] > 2.0 - 1e-12  # capped at 3 - 1
    rg.check_regions(x, alloc, alloc_radius(alloc, R))


def test_abstaining_point_founds_nothing_and_zero_radius_founder_protects_its_centre():
    x = torch.tensor([[0.0], [0.5], [1.0]])
    R = np.array([0.0, 0.5, 0.8])
    abstain = np.array([True, False, False])
    alloc = rg.greedy_regions(R, abstain, rg.conflict_graph(x, R), np.array([0, 1, 2]), "index")
    assert alloc.case[0] == "abstain" and alloc.region[0] == -1
    assert alloc.case[1] == "new" and alloc.rho[1] == 0.5
    # Point 2 sits on region 1's surface (distance 0.5 = rho): boundary, not inside.
    assert alloc.case[2] == "boundary"


def test_check_regions_catches_overlap_and_escaping_balls():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    alloc = rg.Allocation("greedy", "index", np.arange(2), np.array([0, 1]), np.array([0.6, 0.6]), ["new", "new"],
                          np.array([math.inf, math.inf]), np.array([-1, -1]), 0.0)
    with pytest.raises(AssertionError, match="overlap"):
        rg.check_regions(x, alloc, np.array([0.6, 0.6]))
    alloc.rho[:] = 0.5
    alloc.region[1] = 0
    alloc.case[1] = "inherited"
    with pytest.raises(AssertionError, match="leaves region"):
        rg.check_regions(x, alloc, np.array([0.5, 0.1]))
    with pytest.raises(AssertionError, match="exceeds"):
        rg.check_regions(x, alloc, np.array([0.7, 0.0]))


def brute_lp(x, R):
    """Eq. 10 over every pair of claiming points (R > 0), dense."""
    n = x.shape[0]
    D = dense(x)
    rows, rhs = [], []
    for i in range(n):
        for j in range(i + 1, n):
            if R[i] == 0 or R[j] == 0:
                continue
            a = np.zeros(n)
            a[i] = a[j] = 1.0
            rows.append(a)
            rhs.append(D[i, j])
    res = linprog(-np.ones(n), A_ub=np.array(rows), b_ub=np.array(rhs), bounds=list(zip(np.zeros(n), R)),
                  method="highs")
    return -res.fun


@pytest.mark.parametrize("seed", range(8))
def test_lp_is_feasible_and_optimal(seed):
    x, R, abstain = random_case(30, 4, 100 + seed)
    graph = rg.conflict_graph(x, R)
    alloc = rg.lp_regions(R, abstain, graph.subgraph(rg.within(graph, R, bound="lo")))
    r = alloc.rho
    D = dense(x)
    n = len(R)
    assert np.all(r >= 0) and np.all(r <= R)
    for i in range(n):
        for j in range(i + 1, n):
            # Every pair, not only the graph's (an abstention claims nothing: its
            # centre may lie in another region).
            assert abstain[i] or abstain[j] or r[i] + r[j] <= D[i, j]
    assert math.isclose(r.sum(), brute_lp(x, R), rel_tol=1e-7, abs_tol=1e-7)
    rg.check_regions(x, alloc, r)
    assert alloc.info["variables"] <= n


def test_lp_two_points_closed_form():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    R = np.array([0.8, 0.8])
    alloc = rg.lp_regions(R, np.zeros(2, bool), rg.conflict_graph(x, R))
    assert alloc.rho.sum() <= 1.0 and alloc.rho.sum() > 1.0 - 1e-9
    assert alloc.info == {"variables": 2, "constraints": 1, **{k: alloc.info[k] for k in
                                                                ("solve_seconds", "status", "objective")}}


def test_order_ascending_descending_ties_by_index():
    deg = np.array([2, 0, 2, 1, 0])
    assert rg.allocation_order(deg, "ascending").tolist() == [1, 4, 3, 0, 2]
    assert rg.allocation_order(deg, "descending").tolist() == [0, 2, 3, 1, 4]
    assert rg.allocation_order(deg, "index").tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="region order"):
        rg.allocation_order(deg, "random")


def test_bad_order_and_stats():
    x = torch.rand(3, 2)
    R = np.ones(3) * 0.1
    with pytest.raises(ValueError, match="permutation"):
        rg.greedy_regions(R, np.zeros(3, bool), rg.conflict_graph(x, R), np.array([0, 0, 1]))
    s = rg.radius_stats(np.array([0.0, 0.3, 1.0, 2.5]))
    assert s["frac_r>0"] == 0.75 and s["frac_r>=0.25"] == 0.75 and s["frac_r>=1"] == 0.5 and s["mean_r"] == 0.95
