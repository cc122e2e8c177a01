"""Training throughput: one Gaussian-augmentation epoch of ``smoothcert.train.train`` (the
fused counter-based noise, keyed by example index) against a plain PyTorch loop
(``x + sigma * torch.randn_like(x)``) on the same model, data, batch size and optimiser, timed in
one run (interleaved rounds, best of ``--repeat``).

Model: LeNet of :mod:`smoothcert.models` (seeded); data: the first ``--examples`` MNIST training
images with ``--data-root``, else seeded random 28x28 images.

    python bench/train.py [--data-root DATA] [--examples 10000] [--batch 128] [--threads 1] [--json OUT]
"""
from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import timed_interleaved, write_json  # noqa: E402


def main() -> int:
    import argparse

    from smoothcert import data, models
    from smoothcert import train as training

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--data-root", default=None, help="MNIST under this folder (default: random images)")
    p.add_argument("--examples", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--sigma", type=float, default=0.25)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.quick:
        args.examples, args.repeat = 512, 1
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.data_root:
        split = data.load_dataset("mnist", "train", root=args.data_root)
        x, y = split.x[: args.examples], split.y[: args.examples]
    else:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(args.examples, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (args.examples,), generator=g)
    x = x.contiguous()
    sub = data.Split(x, y, 10, "bench")
    cfg = training.TrainConfig(epochs=1, batch_size=args.batch, lr=0.05, momentum=0.9, weight_decay=5e-4, seed=0)

    def fresh():
        torch.manual_seed(0)
        return models.build_model("lenet", "mnist").to(device)

    def fused():
        training.train(fresh(), sub, "gaussian", args.sigma, config=cfg, device=device, progress=False)

    def plain():
        model = fresh().train()
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        sched = cfg.scheduler(opt, (len(y) + args.batch - 1) // args.batch)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
        for i in range(0, len(y), args.batch):
            idx = perm[i:i + args.batch]
            xb, yb = x[idx].to(device), y[idx].to(device)
            loss = F.cross_entropy(model(xb + args.sigma * torch.randn_like(xb)), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()

    t_fused, t_plain = timed_interleaved([fused, plain], args.device, args.repeat)
    res = [{"case": "lenet-mnist-gaussian-epoch", "examples": args.examples, "batch": args.batch,
            "fused_samples_per_s": args.examples / t_fused, "plain_samples_per_s": args.examples / t_plain,
            "fused_over_plain_throughput": t_plain / t_fused}]
    print("| examples | batch | smoothcert samples/s | plain loop samples/s | smoothcert / plain |\n|---|---|---|---|---|")
    r = res[0]
    print(f"| {args.examples} | {args.batch} | {r['fused_samples_per_s']:.0f} | {r['plain_samples_per_s']:.0f} | "
          f"{r['fused_over_plain_throughput']:.3f} |")
    if args.json:
        write_json(args.json, args.device, res, threads_per_process=args.threads,
                   data="mnist" if args.data_root else "random")
    return 0


if __name__ == "__main__":
    sys.exit(main())
