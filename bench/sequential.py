"""Sequential (anytime-valid) certification against fixed n, on trained MNIST LeNets.

For each sigma, in one run (every step resumable: rerun the same command to continue):

1. **fixed n** -- Cohen et al.'s CERTIFY with n = n_max for every input, timed; its estimation
   votes are also recorded at every checkpoint of the sequential grid and at the fixed sizes
   ``--fixed`` (prefixes of the same counter stream, so these *are* the fixed-n runs at those
   sizes: samples ``[0, n)`` of the estimation stream), in ``trace_<sigma>.tsv``;
2. **sequential runs, timed** -- ``--sequential decide --radius 2 sigma`` and ``--sequential
   estimate --tol T`` for each ``--timed-tol``, through the real scheduler and dataset runner
   (``decide_<sigma>.tsv``, ``estimate_<T>_<sigma>.tsv``);
3. **replay** -- the stopping rules only look at the votes at checkpoints, which the trace
   holds, so every rule and tol is replayed on the trace exactly; replayed rows are compared
   with the timed runs' rows (they must agree) and give the curves for the other tols.

Writes ``summary.md`` (tables), ``samples_hist.png``, ``certified_accuracy.png`` and
``samples_vs_acr.png`` under ``--out``.

    python bench/sequential.py --data-root DATA --out results/sequential [--threads 1]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PrefixCounts:
    """Votes for class ``top`` of one input at given sample counts (an engine reducer)."""

    def __init__(self, top: int, marks: np.ndarray):
        self.top, self.marks, self.pos, self.hits = top, marks, 0, 0
        self.at = np.zeros(len(marks), dtype=np.int64)

    def add(self, i0, i1, m, logits, extra):
        hit = (logits.argmax(dim=1) == self.top).to(torch.int64).cumsum(0).cpu().numpy()
        lo, hi = self.pos, self.pos + m
        inside = (self.marks > lo) & (self.marks <= hi)
        self.at[inside] = self.hits + hit[self.marks[inside] - lo - 1]
        self.hits += int(hit[-1])
        self.pos = hi


def load(sigma, args):
    from smoothcert import data, models

    path = os.path.join(ROOT, "results", "mnist", f"lenet_gaussian_{sigma:.2f}.pt")
    loaded = models.load_cli_model(model=path, arch=None, factory=None, weights=None, normalize=None,
                                   dataset="mnist", input_shape=(1, 28, 28), num_classes=10)
    split = data.load_dataset("mnist", "test", root=args.data_root)
    indices = list(range(args.start, len(split), args.skip))[: args.inputs]
    return loaded.model.eval(), split, indices


def read_tsv(path):
    """Complete rows of a TSV (a line cut short by an interrupted run is left out)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [r for r in rows if None not in r.values() and None not in r]


def cut_partial_line(path):
    if os.path.exists(path):
        with open(path, "rb") as f:
            raw = f.read()
        if raw and not raw.endswith(b"\n"):
            os.truncate(path, raw.rfind(b"\n") + 1)


def run_trace(sigma, model, split, indices, marks, args, out):
    """Step 1: fixed n = n_max, recording the top class's votes at ``marks``."""
    from smoothcert import Smooth, ops

    path = os.path.join(out, f"trace_{sigma:.2f}.tsv")
    cut_partial_line(path)
    done = {int(r["idx"]) for r in read_tsv(path)}
    header = ["idx", "label", "top", "seconds"] + [f"k{m}" for m in marks]
    fresh = not os.path.exists(path)
    if not fresh:
        with open(path) as f:
            old = f.readline().rstrip("\n").split("\t")
        if old != header:
            raise SystemExit(f"{path} records other checkpoints than this run would: move it away or rerun with "
                             "the options that made it")
    sm = Smooth(model, 10, sigma, seed=args.seed, channels_last=True)
    sel_s = sm.sampler(ops.SELECTION_STREAM, args.batch)
    est_s = sm.sampler(ops.ESTIMATION_STREAM, args.batch)
    todo = [i for i in indices if i not in done]
    with open(path, "a") as f:
        if fresh:
            f.write("\t".join(header) + "\n")
        for c, i in enumerate(todo):
            X, ids, table = sm.prepare(split.x[i:i + 1], torch.tensor([i]))
            t0 = time.perf_counter()
            top = int(sel_s.draw(X, ids, table, args.n0)[0].argmax())
            red = PrefixCounts(top, marks)
            votes = est_s.draw(X, ids, table, args.n_max, reducer=red)
            dt = time.perf_counter() - t0
            if int(votes[0, top]) != red.hits:
                raise RuntimeError(f"input {i}: prefix counts disagree with the kernel's votes")
            f.write("\t".join(str(v) for v in [i, int(split.y[i]), top, repr(dt)] + red.at.tolist()) + "\n")
            f.flush()
            if (c + 1) % 25 == 0:
                print(f"  trace sigma {sigma}: {len(done) + c + 1}/{len(indices)}", file=sys.stderr, flush=True)
    return read_tsv(path)


def run_timed(sigma, model, split, indices, rule, name, args, out):
    """Step 2: a sequential run through the dataset runner (resumable)."""
    from smoothcert import Sequential, Smooth
    from smoothcert.certify import SequentialFamily
    from smoothcert.drivers import certify_dataset

    path = os.path.join(out, f"{name}_{sigma:.2f}.tsv")
    if args.report_only:
        return read_tsv(path), json.load(open(path + ".json")).get("summary", {})
    fam = SequentialFamily(Smooth(model, 10, sigma, seed=args.seed, channels_last=True), Sequential(rule))
    certify_dataset(fam, split.x, split.y, indices, out=path, config={"bench": "sequential", "dataset": "mnist"},
                    progress=True, n0=args.n0, n=args.n_max, alpha=args.alpha, batch_size=args.batch)
    side = json.load(open(path + ".json"))
    return read_tsv(path), side.get("summary", {})


def replay(trace, cs, marks, rule, sigma, target):
    """Step 3: a rule on the recorded votes -- ``[B]`` samples used, lower bounds, stop reasons."""
    from smoothcert.stats import gaussian_radius
    from smoothcert.stats import sequential as sq

    col = {m: j for j, m in enumerate(marks)}
    K = np.array([[int(r[f"k{m}"]) for m in marks] for r in trace])
    used = np.zeros(len(trace), dtype=np.int64)
    low = np.zeros(len(trace))
    done = np.zeros(len(trace), dtype=bool)
    rad = lambda pa: gaussian_radius(pa, sigma)  # noqa: E731
    for n in cs.checkpoints:
        k = K[:, col[int(n)]]
        if rule == "decide":
            stop = sq.decide(cs, k, n, rad, target) != sq.CONTINUE
        else:
            stop = sq.estimate(cs, k, n, rad, target)
        new = ~done & stop
        used[new] = n
        low[new] = cs.lower(k[new], n)
        done |= new
    return used, low


def fixed_results(trace, n, alpha, sigma):
    from smoothcert.stats import certify_from_counts

    k = np.array([int(r[f"k{n}"]) for r in trace])
    _, pa, radius = certify_from_counts(k, n, alpha, sigma)
    return np.asarray(radius)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--out", default=os.path.join(ROOT, "results", "sequential"))
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.25, 0.5])
    p.add_argument("--inputs", type=int, default=500)
    p.add_argument("--skip", type=int, default=20)
    p.add_argument("--start", type=int, default=0,
                   help="first test index (the bench set is 0, 20, 40, ...; --start 10 is a disjoint development set)")
    p.add_argument("--fine-marks", action="store_true",
                   help="also record votes on a fine grid (ratio 1.1 from 100, and every 2500) to replay other "
                        "checkpoint grids")
    p.add_argument("--trace-only", action="store_true", help="stop after the fixed-n trace")
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n-max", type=int, default=100_000)
    p.add_argument("--fixed", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000])
    p.add_argument("--tols", type=float, nargs="+", default=[0.005, 0.01, 0.02, 0.05])
    p.add_argument("--timed-tol", type=float, nargs="*", default=[0.05])
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true", help="only rebuild summary.md and the plots")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    from smoothcert import Decide, Estimate, Sequential

    def cs_for(kind, target):
        """The confidence sequence a rule runs with (estimate keeps a tol-dependent share at n_max)."""
        rule = Decide(target) if kind == "decide" else Estimate(target)
        return Sequential(rule).sequence(args.n_max, args.alpha)

    cs = cs_for("decide", 1.0)
    extra = [np.asarray(args.fixed)]
    if args.fine_marks:
        from smoothcert.stats.sequential import geometric_grid

        extra += [geometric_grid(100, args.n_max, 1.1), np.arange(2500, args.n_max + 1, 2500)]
    marks = np.unique(np.concatenate([cs.checkpoints] + extra)).astype(np.int64)
    report = {}
    for sigma in args.sigmas:
        model, split, indices = load(sigma, args)
        if not args.report_only:
            print(f"sigma {sigma}: fixed n = {args.n_max} with checkpoint trace", file=sys.stderr)
        trace = read_tsv(os.path.join(args.out, f"trace_{sigma:.2f}.tsv")) if args.report_only else \
            run_trace(sigma, model, split, indices, marks, args, args.out)
        if args.trace_only:
            continue
        timed = {}
        runs = [("decide", Decide(2 * sigma), "decide", 2 * sigma)] + \
               [(f"estimate_{t}", Estimate(t), "estimate", t) for t in args.timed_tol]
        for name, rule, kind, target in runs:
            if args.report_only and not os.path.exists(os.path.join(args.out, f"{name}_{sigma:.2f}.tsv")):
                continue
            if not args.report_only:
                print(f"sigma {sigma}: timed sequential run {name}", file=sys.stderr)
            timed[name] = run_timed(sigma, model, split, indices, rule, name, args, args.out) + (kind, target)
        report[sigma] = (trace, timed)
    if args.trace_only:
        return
    from sequential_report import write_report

    write_report(report, cs_for, marks, args, replay, fixed_results)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
