"""Scaling of certification over torch.distributed: throughput with K processes against one.

One process (``certify_dataset``, what ``smoothcert certify`` runs) and K ranks launched with
``torchrun --standalone --nproc_per_node=K`` (``certify_sharded``, what ``torchrun -m smoothcert
certify`` runs) certify the same inputs with the same model, in one run, one thread per process
on CPU (one GPU per rank on CUDA). Efficiency at K = (throughput at K) / (K x throughput of one
process); the rows written at every K must equal the one-process rows (apart from ``time``),
else the bench fails. Times are the certification loop alone (inputs in memory, model built),
between two barriers, so process start-up and ``import torch`` are left out; they are
reported beside.

Model: LeNet of :mod:`smoothcert.models` with seeded initial weights (throughput does not
depend on what it learned); inputs: MNIST test images (every 20th) with ``--data-root``, else
seeded random 28x28 images.

    python bench/distributed.py [--procs 2] [--data-root DATA] [--inputs 40] [--n 10000] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.abspath(__file__))


def setup(cfg):
    """Model, inputs, labels, indices and family: built the same on every rank."""
    from smoothcert import Smooth, data, models

    torch.manual_seed(0)
    model = models.build_model("lenet", "mnist").eval()
    if cfg["data_root"]:
        split = data.load_dataset("mnist", "test", root=cfg["data_root"])
        x, y = split.x, split.y
        indices = list(range(0, len(split), 20))[: cfg["inputs"]]
    else:
        g = torch.Generator().manual_seed(1)
        x = torch.rand(cfg["inputs"], 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (cfg["inputs"],), generator=g)
        indices = list(range(cfg["inputs"]))
    device = torch.device(cfg["device"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    model.to(device)
    family = Smooth(model, 10, 0.25, seed=0, channels_last=device.type == "cpu")
    return family, x, y, indices, device


def worker(cfg_path: str) -> None:
    """One process of a measurement (torchrun's ranks, or the one process)."""
    from smoothcert.certify import Budget
    from smoothcert.drivers import certify_dataset, distributed

    t_start = time.perf_counter()
    with open(cfg_path) as f:
        cfg = json.load(f)
    torch.set_num_threads(cfg["threads"])
    budget = Budget(n0=cfg["n0"], n=cfg["n"], alpha=0.001, batch_size=cfg["batch"])
    family, x, y, indices, device = setup(cfg)
    sharded = distributed.launched()
    if sharded:
        import torch.distributed as dist

        device = distributed.init(device, 600)
        dist.barrier()
    t0 = time.perf_counter()
    if sharded:
        distributed.certify_sharded(family, x, y, indices, budget=budget, out=cfg["out"], config={}, progress=False,
                                    device=device, round_per_rank=cfg["round"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        dist.barrier()
    else:
        certify_dataset(family, x, y, indices, budget=budget, out=cfg["out"], config={}, progress=False,
                        device=device)
    t1 = time.perf_counter()
    if not sharded or dist.get_rank() == 0:
        with open(cfg["out"] + ".time", "w") as f:
            json.dump({"certify_s": t1 - t0, "setup_s": t0 - t_start}, f)
    if sharded:
        distributed.finish()


def rows_without_time(path):
    with open(path) as f:
        lines = [line.rstrip("\n").split("\t") for line in f]
    t = lines[0].index("time")
    return [line[:t] + line[t + 1:] for line in lines]


def measure(cfg, procs: int, tmp: str, tag: str):
    """Runs one measurement; ``(certify seconds, seconds of the whole command, rows)``."""
    cfg = {**cfg, "out": os.path.join(tmp, f"{tag}.tsv")}
    path = os.path.join(tmp, f"{tag}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"])}
    me = os.path.abspath(__file__)
    if procs == 0:  # one plain process, no process group
        cmd = [sys.executable, me, "--worker", path]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}",
               me, "--worker", path]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    with open(cfg["out"] + ".time") as f:
        t = json.load(f)
    return t["certify_s"], wall, rows_without_time(cfg["out"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--procs", type=int, nargs="+", default=None,
                   help="K values to measure (default: 2 on CPU, every visible GPU count up to all on CUDA)")
    p.add_argument("--device", default="cpu", help="cpu (gloo, one thread per rank) or cuda (NCCL, one GPU per rank)")
    p.add_argument("--data-root", default=None, help="MNIST under this folder (default: random images)")
    p.add_argument("--inputs", type=int, default=40)
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--round", type=int, default=8, help="inputs per rank and round (--dist-round)")
    p.add_argument("--threads", type=int, default=1, help="threads per process (CPU)")
    p.add_argument("--repeat", type=int, default=1, help="measurements of each K, interleaved (best kept)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0
    if args.quick:
        args.inputs, args.n, args.n0 = 6, 400, 20
    if args.device == "cuda":
        gpus = torch.cuda.device_count()
        if gpus < 1:
            raise SystemExit("--device cuda: no GPU visible")
        procs = args.procs or list(range(1, gpus + 1))
    else:
        procs = args.procs or [2]
    cfg = {k: getattr(args, k) for k in ("device", "data_root", "inputs", "n0", "n", "batch", "round", "threads")}
    order = [0] + procs  # 0: the plain one-process run
    best = {k: (float("inf"), 0.0) for k in order}
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for rep in range(args.repeat):
            for k in order:
                t, wall, rows = measure(cfg, k, tmp, f"k{k}_r{rep}")
                if reference is None:
                    reference = rows
                elif rows != reference:
                    raise SystemExit(f"K = {k} wrote other rows than one process: the sharded run is wrong")
                if t < best[k][0]:
                    best[k] = (t, wall)
                print(f"K={k or 1}{' (one plain process)' if k == 0 else ''}: certify {t:.2f} s, "
                      f"command {wall:.2f} s", file=sys.stderr)
    samples = args.inputs * (args.n0 + args.n)
    base = samples / best[0][0]
    results = [{"procs": 1, "mode": "one process", "certify_s": best[0][0], "command_s": best[0][1],
                "samples_per_s": base, "efficiency": 1.0}]
    for k in procs:
        thr = samples / best[k][0]
        results.append({"procs": k, "mode": "torchrun", "certify_s": best[k][0], "command_s": best[k][1],
                        "samples_per_s": thr, "efficiency": thr / (k * base)})
    print("| K | mode | certify s | command s | samples/s | efficiency |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['procs']} | {r['mode']} | {r['certify_s']:.2f} | {r['command_s']:.2f} | "
              f"{r['samples_per_s']:.0f} | {r['efficiency']:.3f} |")
    if args.json:
        sys.path.insert(0, ROOT)
        from timing import write_json

        write_json(args.json, args.device, results, inputs=args.inputs, n0=args.n0, n=args.n, batch=args.batch,
                   threads_per_process=args.threads, round_per_rank=args.round, cpus=os.cpu_count(),
                   identical_rows=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
