"""The memory certificate's pairwise ball kernel against loops over stored points, and the
cost of OptimizeSigma next to one CERTIFY (Alfarra et al., §3.5 and App. C; costs as in their
App. E and H).

(1) Pairwise kernel. For a memory of N stored points of dimension d (N = 1,000 and 10,000;
    d = 784 and 3,072) and a batch of B new points, every query's other-class margin
    min_i (D_i - R_i) and nearest stored point, computed by
      (a) ``smoothcert.ops.ball_margin`` (all B queries in one call, exact distances);
      (b) the naive loop: per query, a Python/NumPy loop over the stored points
          (``np.linalg.norm(x - m_i)``), the shape of the published post-processing code;
      (c) NumPy vectorised per query (``np.linalg.norm(M - x, axis=1)``), a stronger baseline.
    (b) and (c) run on a few queries (they cost the same for each) and every result is
    checked against (a) first. Reports seconds per query and the ratios (b)/(a), (c)/(a).

(2) OptimizeSigma (K steps, n = 1, batched over the inputs) against one CERTIFY at
    n0 = 100, n = 10,000 (the reproduction's budget), per input, LeNet on 28x28 inputs.

    python bench/memory.py --device cpu|cuda [--quick] [--json out.json]
"""
from __future__ import annotations

import time

import numpy as np
import torch

import smoothcert
from timing import bench_args, sync, timed_interleaved, write_json
from smoothcert import models, ops
from smoothcert.certify import Smooth
from smoothcert.sigma import OptimizeSigma


def memory_case(N, d, B, device, naive_queries, repeat, classes=10):
    g = torch.Generator().manual_seed(N + d)
    xm = torch.rand(N, d, generator=g)
    xq = torch.rand(B, d, generator=g)
    radius = torch.rand(N, generator=g, dtype=torch.float64) * 2
    mc = torch.randint(0, classes, (N,), generator=g)
    qc = torch.randint(0, classes, (B,), generator=g)
    dev = [t.to(device) for t in (xq, xm, radius, mc, qc)]
    margin, m_idx, near, n_idx = (t.cpu() for t in ops.ball_margin(*dev))
    M, R, C = xm.double().numpy(), radius.numpy(), mc.numpy()

    def naive(b):
        x, best, bi, nd, ni = xq[b].double().numpy(), np.inf, -1, np.inf, -1
        for i in range(N):
            dist = np.linalg.norm(x - M[i])
            if dist < nd:
                nd, ni = dist, i
            if C[i] != qc[b] and dist - R[i] < best:
                best, bi = dist - R[i], i
        return best, bi, nd, ni

    def vectorised(b):
        dist = np.linalg.norm(M - xq[b].double().numpy(), axis=1)
        marg = np.where(C != int(qc[b]), dist - R, np.inf)
        return marg.min(), int(marg.argmin()), dist.min(), int(dist.argmin())

    for b in range(naive_queries):  # correctness before timing
        for ref in (naive(b), vectorised(b)):
            assert ref[1] == int(m_idx[b]) and ref[3] == int(n_idx[b]), (N, d, b)
            assert abs(ref[0] - float(margin[b])) <= 1e-9 * (1 + abs(ref[0])) and abs(ref[2] - float(near[b])) <= 1e-9

    def kernel():
        ops.ball_margin(*dev)

    def loop():
        for b in range(naive_queries):
            naive(b)

    def vec():
        for b in range(naive_queries):
            vectorised(b)

    t_kernel, t_vec = timed_interleaved([kernel, vec], device, repeat)
    t0 = time.perf_counter()
    loop()
    t_loop = time.perf_counter() - t0
    per = {"kernel": t_kernel / B, "naive_loop": t_loop / naive_queries, "numpy_vectorised": t_vec / naive_queries}
    return {"N": N, "d": d, "B": B, "device": device, "s_per_query": per,
            "naive_over_kernel": per["naive_loop"] / per["kernel"],
            "vectorised_over_kernel": per["numpy_vectorised"] / per["kernel"]}


def sigma_case(device, inputs, steps, n, batch, repeat):
    torch.manual_seed(0)
    model = models.build_model("lenet", "mnist").to(device).eval()
    X = torch.rand(inputs, 1, 28, 28, device=device)
    ids = torch.arange(inputs)
    smooth = Smooth(model, 10, 0.25)
    results = []
    t_cert = None
    for k in steps:
        opt = OptimizeSigma(steps=k, lr=1e-4, samples=1)
        fns = [lambda: opt(model, X, 0.25, ids=ids, seed=0, batch_size=batch)]
        if t_cert is None:
            fns.append(lambda: smooth.certify_batch(X, 100, n, 0.001, batch, indices=ids))
        times = timed_interleaved(fns, device, repeat, warmups=[lambda: opt(model, X[:2], 0.25, ids=ids[:2], seed=0)])
        if t_cert is None:
            t_cert = times[1] / inputs
        per = times[0] / inputs
        results.append({"K": k, "n": 1, "s_per_input": per, "certify_s_per_input": t_cert, "n_certify": n,
                        "optimize_over_certify": per / t_cert, "inputs": inputs, "device": device})
    return results


def main() -> int:
    args = bench_args(__doc__)
    if args.quick:
        grid, B, naive_q, sig = [(200, 64)], 16, 2, dict(inputs=4, steps=[2], n=200, batch=200)
    else:
        B = 512 if args.device == "cuda" else 256
        grid, naive_q = [(1000, 784), (1000, 3072), (10000, 784), (10000, 3072)], 3
        sig = dict(inputs=64, steps=[100, 900], n=10_000, batch=1000)
    rows = []
    print(f"ball_margin vs loops over stored points ({args.device}, {torch.get_num_threads()} threads, B = {B})")
    print(f"{'N':>6} {'d':>5} {'kernel s/q':>11} {'loop s/q':>10} {'numpy-vec s/q':>13} {'loop/kernel':>12} "
          f"{'vec/kernel':>11}")
    for N, d in grid:
        r = memory_case(N, d, B, args.device, naive_q, args.repeat)
        rows.append(r)
        s = r["s_per_query"]
        print(f"{N:>6} {d:>5} {s['kernel']:>11.3g} {s['naive_loop']:>10.3g} {s['numpy_vectorised']:>13.3g} "
              f"{r['naive_over_kernel']:>11.1f}x {r['vectorised_over_kernel']:>10.1f}x")
    print(f"\nOptimizeSigma (n = 1, batched over {sig['inputs']} inputs) vs CERTIFY (n0 = 100, n = {sig['n']}), LeNet")
    sig_rows = sigma_case(args.device, sig["inputs"], sig["steps"], sig["n"], sig["batch"], args.repeat)
    for r in sig_rows:
        print(f"K = {r['K']:>4}: {r['s_per_input']:.3g} s/input vs certify {r['certify_s_per_input']:.3g} s/input "
              f"= {r['optimize_over_certify']:.3f}x")
    if args.json:
        write_json(args.json, args.device, {"ball_margin": rows, "optimize_sigma": sig_rows})
    sync(args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
