"""Second-order and dipole certification against plain Gaussian CERTIFY (Levine et al.,
Tight Second-Order Certificates), as ratios taken in one run (interleaved rounds, best of
``--repeat``).

For the same model, inputs, n0 and n:
  (a) ``Smooth.certify_batch`` (first order);
  (b) ``SecondOrderSmooth.certify_batch``: the same forward passes through the pair sampler, which
      also returns each pair's noise dot product; ``sos_over_first_order`` = time(b) / time(a)
      (target < 1.3);
  (c) ``DipoleSmooth(first_order=False).certify_batch``: n antithetic samples (n/2 pairs, one draw
      each); ``dipole_over_plain_throughput`` = time(a) / time(c) (target >= 0.95).
Cases: the paper's 7x7 MNIST network (d = 49) and LeNet on 28x28 (d = 784).

    python bench/second_order.py --device cpu|cuda [--quick] [--json out.json]
"""
from __future__ import annotations


import torch

from timing import bench_args, sync, timed_interleaved, write_json
from smoothcert import models
from smoothcert.certify import DipoleSmooth, SecondOrderSmooth, Smooth


def case(name, arch, dataset, B, n, batch, device, repeat):
    torch.manual_seed(0)
    model = models.build_model(arch, dataset).to(device).eval()
    shape = {"mnist-7x7": (1, 7, 7), "mnist": (1, 28, 28)}[dataset]
    X = torch.rand(B, *shape, generator=torch.Generator().manual_seed(1)).to(device)
    fams = [Smooth(model, 10, 0.25, seed=3), SecondOrderSmooth(model, 10, 0.25, seed=3),
            DipoleSmooth(model, 10, 0.25, seed=3, first_order=False)]
    fns = [lambda f=f: f.certify_batch(X, 100, n, 0.001, batch) for f in fams]
    t_fo, t_sos, t_dip = timed_interleaved(fns, device, repeat)
    return {"case": name, "inputs": B, "n0": 100, "n": n, "batch": batch, "first_order_s": t_fo, "sos_s": t_sos,
            "dipole_s": t_dip, "sos_over_first_order": t_sos / t_fo, "dipole_over_plain_throughput": t_fo / t_dip,
            "first_order_samples_per_s": B * (100 + n) / t_fo}


def main() -> int:
    args = bench_args(__doc__)
    dev = args.device
    if args.quick:
        rows = [case("smallconv-mnist7x7", "smallconv", "mnist-7x7", 2, 2000, 2000, dev, 1)]
    else:
        big = dev == "cuda"
        rows = [case("smallconv-mnist7x7", "smallconv", "mnist-7x7", 4, 1_000_000 if big else 100_000,
                     100_000 if big else 20_000, dev, args.repeat),
                case("lenet-mnist", "lenet", "mnist", 2, 100_000 if big else 10_000, 10_000 if big else 2_000, dev,
                     args.repeat)]
    for r in rows:
        print(f"{r['case']:>20}: second-order / first-order time {r['sos_over_first_order']:.3f}, dipole / plain "
              f"throughput {r['dipole_over_plain_throughput']:.3f} ({r['first_order_samples_per_s']:.3g} samples/s)")
    if args.json:
        write_json(args.json, dev, {"second_order": rows})
    sync(dev)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
