"""CERTIFY throughput of ``smoothcert.compat.art.RandomizedSmoothing`` against ART 1.20's
``PyTorchRandomizedSmoothing``, as a ratio taken in one run.

Both are built with the same arguments (the bare network, the dataset's (mean, std) as
``preprocessing``, sample_size = n0 = 100, scale 0.25, alpha 0.001) and certify the same
inputs with the same n and batch size, timed in interleaved rounds (bench/timing.py).
ART draws n noisy copies of each input in numpy and runs them through its classifier's
``predict``; smoothcert samples and counts in its fused ops. Reports samples/s
(inputs x (n0 + n) / s) of each, ``smoothcert_over_art`` and each one's mean radius (a
sanity check: they agree within Monte-Carlo error).

Cases: on the CPU (one thread) a 64-32-32-10 MLP on 8x8 inputs and LeNet on 28x28
(random weights); on CUDA also ResNet-20 on 32x32x3.

    python bench/compat.py --device cpu|cuda [--quick] [--repeat R] [--json out.json]
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from scipy import stats as sps

import smoothcert
from timing import bench_args, sync, timed_interleaved, write_json
from smoothcert import models
from smoothcert.compat.art import RandomizedSmoothing

N0, SIGMA, ALPHA = 100, 0.25, 0.001


def art_class():
    try:
        from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing
    except ImportError:
        sys.exit("bench/compat.py needs ART: pip install adversarial-robustness-toolbox")
    return PyTorchRandomizedSmoothing


def art_estimator(cls, net, shape, stats, device):
    est = cls(net, torch.nn.CrossEntropyLoss(), shape, 10, device_type="gpu" if device == "cuda" else "cpu",
              preprocessing=stats, sample_size=N0, scale=SIGMA, alpha=ALPHA)
    try:
        import statsmodels  # noqa: F401
    except ImportError:  # ART's bound needs statsmodels, which it does not install: the same bound
        est._lower_confidence_bound = lambda k, n: float(sps.beta.ppf(ALPHA, k, n - k + 1)) if k > 0 else 0.0
    return est


def build(arch, dataset):
    """The bare network (no NormalizeLayer: both estimators get the stats as preprocessing)."""
    shape = smoothcert.data.input_shape(dataset)
    if arch == "tiny-mlp":
        return models.TinyMLP(64, hidden=32, num_classes=10), shape
    return models.ARCHITECTURES[arch](10, shape[0], tuple(shape[1:])), shape


def run_case(cls, name, arch, dataset, device, images, n, batch, repeat):
    torch.manual_seed(0)
    net, shape = build(arch, dataset)
    net = net.to(device).eval()
    stats = tuple(np.asarray(s, dtype=np.float32) for s in smoothcert.data.DATASET_STATS[dataset])
    x = torch.rand(images, *shape, generator=torch.Generator().manual_seed(1)).numpy()
    art = art_estimator(cls, net, tuple(shape), stats, device)
    ours = RandomizedSmoothing(net, torch.nn.CrossEntropyLoss(), tuple(shape), 10,
                               device_type="gpu" if device == "cuda" else "cpu", preprocessing=stats,
                               sample_size=N0, scale=SIGMA, alpha=ALPHA, seed=0)
    radii = {}

    def run(key, est):
        def fn():
            radii[key] = est.certify(x, n, batch_size=batch)[1]
        return fn

    np.random.seed(0)
    warm = [lambda: art.certify(x[:1], N0, batch_size=batch), lambda: ours.certify(x[:1], N0, batch_size=batch)]
    t_art, t_ours = timed_interleaved([run("art", art), run("smoothcert", ours)], device, repeat, warmups=warm)
    total = images * (N0 + n)
    rate = {"art": total / t_art, "smoothcert": total / t_ours}
    return {"case": name, "arch": arch, "device": device, "threads": torch.get_num_threads(), "images": images,
            "n0": N0, "n": n, "batch": batch, "samples_per_s": rate, "smoothcert_over_art": t_art / t_ours,
            "mean_radius": {k: float(v.mean()) for k, v in radii.items()}}


def main() -> int:
    args = bench_args(__doc__)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no GPU visible")
    if args.device == "cpu":
        torch.set_num_threads(1)
    cls = art_class()
    if args.quick:
        cases = [("tiny-mlp-8x8", "tiny-mlp", "digits", 4, 1000, 1000),
                 ("lenet-mnist", "lenet", "mnist", 2, 1000, 500)]
        repeat = 1
    elif args.device == "cpu":
        cases = [("tiny-mlp-8x8", "tiny-mlp", "digits", 20, 10_000, 1000),
                 ("lenet-mnist", "lenet", "mnist", 4, 10_000, 1000)]
        repeat = args.repeat
    else:
        cases = [("tiny-mlp-8x8", "tiny-mlp", "digits", 20, 100_000, 10_000),
                 ("lenet-mnist", "lenet", "mnist", 4, 100_000, 10_000),
                 ("resnet20-cifar10", "resnet20", "cifar10", 4, 10_000, 1000)]
        repeat = args.repeat
    if args.quick and args.device == "cuda":
        cases.append(("resnet20-cifar10", "resnet20", "cifar10", 2, 1000, 500))
    print(f"CERTIFY, smoothcert.compat.art vs ART {__import__('art').__version__} ({args.device}, "
          f"{torch.get_num_threads()} threads, n0 = {N0}, sigma = {SIGMA})")
    print(f"{'case':18s} {'inputs':>6s} {'n':>7s} {'batch':>6s} {'ART/s':>10s} {'smoothcert/s':>13s} "
          f"{'ratio':>7s} {'mean r ART':>11s} {'smoothcert':>11s}")
    results = []
    for name, arch, ds, images, n, batch in cases:
        r = run_case(cls, name, arch, ds, args.device, images, n, batch, repeat)
        results.append(r)
        s, m = r["samples_per_s"], r["mean_radius"]
        print(f"{name:18s} {images:6d} {n:7d} {batch:6d} {s['art']:10.0f} {s['smoothcert']:13.0f} "
              f"{r['smoothcert_over_art']:6.2f}x {m['art']:11.4f} {m['smoothcert']:11.4f}")
    if args.json:
        write_json(args.json, args.device, results, quick=args.quick, art=__import__("art").__version__)
    sync(args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
