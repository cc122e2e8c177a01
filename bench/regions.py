"""Robust-region allocation of sample-wise smoothing (Wang et al., §4.2 Algorithm 2 and App. C):
conflict graph + greedy scan against a straightforward NumPy implementation, and the LP's size
and solve time.

For n points of dimension d (n = 1,000 and 10,000, d = 784: MNIST's raw pixels; the first
n MNIST test images with ``--data-root``, else clustered synthetic images; ``--quick``: 200 8x8 digits) and radii R_j drawn
like a sample-wise run's (uniform in [0, 3.81 * 0.5]: the largest certifiable radius at
sigma 0.5, N = 1e5), times

  (a) smoothcert: ``ops.pair_edges`` (tiled exact distances, only pairs closer than
      R_i + R_j survive) + :func:`smoothcert.certify.regions.greedy_regions` on the edge list;
  (b) NumPy: the dense n x n float64 distance matrix from ||a||^2 + ||b||^2 - 2 a.b, then
      Alg. 2 with a full row of the matrix per point (the obvious implementation);

checks that both allocate the same regions (same cases; radii within 1e-9), and reports
seconds and the ratio (b)/(a); then the LP (Eq. 10) on (a)'s graph: variables,
constraints and HiGHS's time.

    python bench/regions.py [--device cpu|cuda] [--data-root DIR] [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import torch

from timing import sync, write_json
from smoothcert import data
from smoothcert.certify import regions as rg


def numpy_greedy(X: np.ndarray, R: np.ndarray, order: np.ndarray):
    """Alg. 2 with the dense matrix: (cases, radii)."""
    sq = (X * X).sum(1)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (X @ X.T), 0.0))
    n = R.size
    rho = np.full(n, -1.0)
    case, r = [""] * n, np.zeros(n)
    for k in order:
        live = rho >= 0
        d, rr = D[k, live], rho[live]
        inside = d < rr
        if inside.any():
            case[k], r[k] = "inherited", float((rr - d)[inside][0])
            continue
        cap = float((d - rr).min()) if d.size else math.inf
        rho[k] = r[k] = min(R[k], cap)
        case[k] = "capped" if r[k] < R[k] else "new"
    return case, r


def case_run(X: torch.Tensor, R: np.ndarray, device: str, repeat: int):
    n = X.shape[0]
    abstain = np.zeros(n, bool)
    Xd = X.to(device)

    def ours():
        g = rg.conflict_graph(Xd, R)
        order = rg.allocation_order(g.subgraph(rg.within(g, R)).degree, "ascending")
        return g, rg.greedy_regions(R, abstain, g.subgraph(rg.within(g, R, bound="lo")), order), order

    g, alloc, order = ours()
    Xn = X.reshape(n, -1).double().numpy()
    t0 = time.perf_counter()
    cases, radii = numpy_greedy(Xn, R, order)
    t_numpy = time.perf_counter() - t0
    ours_r = np.where(np.array(alloc.case) == "inherited", alloc.radius_cap, alloc.rho)
    assert cases == alloc.case, "smoothcert and NumPy allocate differently"
    assert np.allclose(ours_r, radii, rtol=0, atol=1e-9)
    best = math.inf
    for _ in range(repeat):
        sync(device)
        t0 = time.perf_counter()
        ours()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    t_lp = time.perf_counter()
    lp = rg.lp_regions(R, abstain, g.subgraph(rg.within(g, R, bound="lo")))
    t_lp = time.perf_counter() - t_lp
    st = g.subgraph(rg.within(g, R)).stats()
    return {"n": n, "d": int(Xn.shape[1]), "device": device, "edges": st["edges"],
            "points_with_degree_ge_1": st["points_with_degree_ge_1"], "max_degree": st["max_degree"],
            "smoothcert_s": best, "numpy_s": t_numpy, "numpy_over_smoothcert": t_numpy / best,
            "lp_variables": lp.info.get("variables", 0), "lp_constraints": lp.info.get("constraints", 0),
            "lp_s": t_lp, "lp_solve_s": lp.info.get("solve_seconds", 0.0),
            "greedy_mean_r": float(ours_r.mean()), "lp_mean_r": float(lp.rho.mean())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-root", default=None, help="MNIST directory (default: uniform noise images)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    sizes = [200] if args.quick else [1000, 10000]
    if args.data_root:
        pool = data.load_dataset("mnist", "test", root=args.data_root).x.float()
    elif args.quick:  # 8x8 digits: close enough for conflicts at this size
        pool = data.load_dataset("digits", "test").x.float()
    else:  # 50 prototypes, points +-0.1 per pixel around them: neighbours ~2.3 apart, like MNIST's
        g = torch.Generator().manual_seed(0)
        protos = torch.rand(50, 1, 28, 28, generator=g) * 0.8 + 0.1
        pick = torch.randint(0, 50, (max(sizes),), generator=g)
        pool = protos[pick] + (torch.rand(max(sizes), 1, 28, 28, generator=g) - 0.5) * 0.2
    rows = []
    print(f"region allocation, greedy (ascending degree), {args.device}, {torch.get_num_threads()} threads, "
          f"{'MNIST test images' if args.data_root else 'digits' if args.quick else 'clustered synthetic images'}")
    print(f"{'n':>6} {'edges':>9} {'deg>=1':>7} {'maxdeg':>6} {'smoothcert s':>12} {'numpy s':>9} {'ratio':>7} "
          f"{'LP vars':>8} {'LP cons':>9} {'LP s':>7}")
    for n in sizes:
        R = np.random.default_rng(n).uniform(0, 3.81 * 0.5, n)
        r = case_run(pool[:n], R, args.device, args.repeat)
        rows.append(r)
        print(f"{n:>6} {r['edges']:>9} {r['points_with_degree_ge_1']:>7} {r['max_degree']:>6} "
              f"{r['smoothcert_s']:>12.3g} {r['numpy_s']:>9.3g} {r['numpy_over_smoothcert']:>6.1f}x "
              f"{r['lp_variables']:>8} {r['lp_constraints']:>9} {r['lp_s']:>7.3g}")
    if args.json:
        write_json(args.json, args.device, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
