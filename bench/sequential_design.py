"""How the estimate rule's confidence sequence was chosen: replays of candidate checkpoint grids
and alpha spendings on a *development* trace (test images disjoint from the bench set), against
the fixed-n curve at every recorded n.

The development trace is ``bench/sequential.py --start 10 --inputs 250 --fine-marks --trace-only``
(test images 10, 30, 50, ...; the bench set is 0, 20, 40, ...), so nothing here is tuned on the
images the bench reports. Every candidate is a grid Clopper-Pearson sequence fixed before any
vote is seen, so each is valid; they differ only in how many samples they spend for the ACR they
reach.

    python bench/sequential_design.py --trace results/sequential/dev/trace_0.25.tsv --sigma 0.25
"""
from __future__ import annotations

import argparse
import csv

import numpy as np


def load(path):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if None not in r.values()]
    marks = np.array(sorted(int(k[1:]) for k in rows[0] if k.startswith("k") and k[1:].isdigit()))
    K = np.array([[int(r[f"k{m}"]) for m in marks] for r in rows])
    correct = np.array([int(r["top"]) == int(r["label"]) for r in rows])
    return marks, K, correct


def fixed_curve(marks, K, correct, alpha, sigma, lo=5000):
    from smoothcert.stats import certify_from_counts

    out = []
    for j, m in enumerate(marks):
        if m >= lo:
            _, _, rad = certify_from_counts(K[:, j], int(m), alpha, sigma)
            out.append((int(m), np.where(correct, np.asarray(rad), 0.0)))
    return out


def at_equal(acr, curve):
    """Fixed n (linear between recorded n) reaching ``acr``; None when outside the curve."""
    ns = np.array([n for n, _ in curve], dtype=np.float64)
    a = np.array([v for _, v in curve])
    a = np.maximum.accumulate(a)  # ACR of fixed n is nondecreasing up to Monte-Carlo wiggles
    if acr < a[0] or acr > a[-1]:
        return None
    return float(np.interp(acr, a, ns))


def candidate(name, grid, alpha, final):
    from smoothcert.stats.sequential import GridClopperPearson

    cs = GridClopperPearson(alpha, np.asarray(grid, dtype=np.int64), final=final)
    return name, cs


def replay(cs, marks, K, sigma, tol):
    from smoothcert.stats import gaussian_radius
    from smoothcert.stats import sequential as sq

    col = {int(m): j for j, m in enumerate(marks)}
    B = K.shape[0]
    used, low, done = np.zeros(B, np.int64), np.zeros(B), np.zeros(B, bool)
    rad = lambda pa: gaussian_radius(pa, sigma)  # noqa: E731
    for n in cs.checkpoints:
        k = K[:, col[int(n)]]
        stop = sq.estimate(cs, k, n, rad, tol)
        new = ~done & stop
        used[new], low[new] = n, cs.lower(k[new], n)
        done |= new
    return used, np.asarray(gaussian_radius(low, sigma))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trace", required=True)
    p.add_argument("--sigma", type=float, required=True)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--tols", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05])
    p.add_argument("--fixed", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000])
    p.add_argument("--finals", type=lambda v: None if v == "none" else float(v), nargs="+",
                   default=[None, 0.7, 0.8, 0.9, 0.95], help="shares of alpha at n_max ('none': by the spending)")
    p.add_argument("--grid", help="only this grid")
    args = p.parse_args(argv)
    from smoothcert.stats.sequential import geometric_grid

    marks, K, correct = load(args.trace)
    n_max = int(marks[-1])
    unanimous = K[:, -1] == n_max
    curve = fixed_curve(marks, K, correct, args.alpha, args.sigma)
    rest_curve = [(n, r[~unanimous]) for n, r in curve]
    allc = [(n, r) for n, r in curve]
    g2 = geometric_grid(100, n_max, 2.0)
    fine = geometric_grid(100, n_max, 1.1)
    late = np.unique(np.concatenate([g2[g2 < 25600], np.arange(25000, n_max + 1, 12500)]))
    grids = {"ratio 2": g2, "ratio 1.21": np.unique(np.append(fine[::2], n_max)),
             "ratio 1.46": np.unique(np.append(fine[::4], n_max)), "ratio 2 + every 12500 from 25000": late}
    print(f"{args.trace}: {K.shape[0]} inputs, {int(unanimous.sum())} unanimous")
    four = [n for n, _ in curve if n in args.fixed]
    print("| grid | alpha at n_max | tol | mean n | ACR | fixed n at equal ACR | ratio | rest mean n | rest ratio "
          f"| ratio, fixed n {four} only | rest ratio, same |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for gname, grid in grids.items():
        if args.grid and gname != args.grid:
            continue
        for final in args.finals:
            _, cs = candidate(gname, grid, args.alpha, final)
            share = cs.levels[-1] / args.alpha
            for tol in args.tols:
                used, rad = replay(cs, marks, K, args.sigma, tol)
                acr = float(np.mean(np.where(correct, rad, 0.0)))
                at = at_equal(acr, [(n, float(r.mean())) for n, r in allc])
                racr = float(np.mean(np.where(correct, rad, 0.0)[~unanimous]))
                rat = at_equal(racr, [(n, float(r.mean())) for n, r in rest_curve])
                rmean = used[~unanimous].mean()
                at4 = at_equal(acr, [(n, float(r.mean())) for n, r in allc if n in four])
                rat4 = at_equal(racr, [(n, float(r.mean())) for n, r in rest_curve if n in four])
                f = lambda v, d: "-" if v is None else f"{v / d:.3f}"  # noqa: E731
                print(f"| {gname} | {share:.3f} | {tol} | {used.mean():.0f} | {acr:.4f} | "
                      f"{'-' if at is None else f'{at:.0f}'} | {f(at, used.mean())} | {rmean:.0f} | {f(rat, rmean)} "
                      f"| {f(at4, used.mean())} | {f(rat4, rmean)} |")


if __name__ == "__main__":
    main()
