"""Certification throughput: smoothcert against the bare forward pass and the classic loop.

For one model, n, batch size and dtype, measured in one run:
  (a) forward-only: samples/s of the bare classifier on a pre-built batch;
  (b) smoothcert ``Smooth.certify_batch`` (fused noise + model + on-device votes);
  (c) the classic per-image loop of the reference code (repeat, randn_like, add,
      argmax, copy to host, count in Python), written out below as the baseline.
Reports overhead = (b)/(a) and speedup = (b)/(c), as ratios of samples/s.

A second table times the engine's memory-format option on a conv model: smoothcert with the
noisy batch written in channels_last (NHWC) order and the model converted once, against the
contiguous layout, interleaved in one run; it also checks that both give the same counts.

    python bench/certify.py --device cpu [--quick] [--threads 1] [--json out.json]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

import smoothcert
from timing import timed_interleaved, write_json
from smoothcert import models



def classic_counts(model, x, num, batch_size, sigma, num_classes, fmt=torch.contiguous_format):
    """The reference code's sampling loop (Cohen et al.'s _sample_noise), one image."""
    counts = np.zeros(num_classes, dtype=int)
    remaining = num
    with torch.no_grad():
        while remaining > 0:
            this = min(batch_size, remaining)
            remaining -= this
            batch = x.repeat((this, 1, 1, 1)).contiguous(memory_format=fmt)
            noise = torch.randn_like(batch) * sigma
            predictions = model(batch + noise).argmax(1)
            for idx in predictions.cpu().numpy():
                counts[idx] += 1
    return counts



def build(arch, dataset):
    """The case's model; "tiny-mlp" is a 64-32-32-10 MLP, where the sampling
    machinery rather than the forward pass dominates."""
    if arch == "tiny-mlp":
        return torch.nn.Sequential(models.NormalizeLayer(*smoothcert.data.DATASET_STATS[dataset]),
                                   models.TinyMLP(64, hidden=32, num_classes=10))
    return models.build_model(arch, dataset)


def run_case(name, arch, dataset, device, n, n0, images, batch, repeat, dtype, channels_last=False):
    """One case; with ``channels_last`` the model's weights and every batch it
    sees (pre-built, smoothcert's, the classic loop's) use NHWC memory order,
    the fast convolution layout on CPUs."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build(arch, dataset).to(device=device, dtype=dtype, memory_format=fmt).eval()
    C, H, W = smoothcert.data.input_shape(dataset)
    X = torch.rand(images, C, H, W, device=device)
    total = images * (n0 + n)
    pre = torch.rand(batch, C, H, W, device=device, dtype=dtype).contiguous(memory_format=fmt)

    def forward_only():
        with torch.no_grad():
            done = 0
            while done < total:
                model(pre)
                done += batch

    smooth = smoothcert.Smooth(model, 10, 0.25, out_dtype=None if dtype == torch.float32 else dtype,
                               channels_last=channels_last)

    def fused():
        smooth.certify_batch(X, n0, n, 0.001, batch)

    def classic():
        for i in range(images):
            xi = X[i].to(dtype)
            classic_counts(model, xi, n0, batch, 0.25, 10, fmt)
            classic_counts(model, xi, n, batch, 0.25, 10, fmt)

    t_fwd, t_fused, t_classic = timed_interleaved([forward_only, fused, classic], device, repeat)
    fwd_total = batch * -(-total // batch)
    rate = {"forward_only": fwd_total / t_fwd, "smoothcert": total / t_fused, "classic": total / t_classic}
    return {"case": name, "arch": arch, "device": device, "dtype": str(dtype).replace("torch.", ""),
            "memory_format": "channels_last" if channels_last else "contiguous",
            "n0": n0, "n": n, "images": images, "batch": batch, "samples_per_s": rate,
            "overhead": rate["smoothcert"] / rate["forward_only"],
            "speedup": rate["smoothcert"] / rate["classic"]}


def memory_format_case(arch, dataset, device, n, n0, images, batch, repeat):
    """Samples/s of ``certify_batch`` with contiguous and channels_last batches (same weights),
    their ratio, and whether every count agrees."""
    import copy

    torch.manual_seed(0)
    model = build(arch, dataset).to(device).eval()
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
    C, H, W = smoothcert.data.input_shape(dataset)
    X = torch.rand(images, C, H, W, device=device)
    plain = smoothcert.Smooth(model, 10, 0.25)
    nhwc = smoothcert.Smooth(model_cl, 10, 0.25, channels_last=True)
    a, b = plain.certify_batch(X, n0, n, 0.001, batch), nhwc.certify_batch(X, n0, n, 0.001, batch)
    same = bool(torch.equal(a.counts, b.counts) and torch.equal(a.selection_counts, b.selection_counts))
    t_plain, t_nhwc = timed_interleaved([lambda: plain.certify_batch(X, n0, n, 0.001, batch),
                                         lambda: nhwc.certify_batch(X, n0, n, 0.001, batch)], device, repeat)
    total = images * (n0 + n)
    return {"case": f"{arch}-{dataset}", "device": device, "n": n, "batch": batch, "images": images,
            "samples_per_s": {"contiguous": total / t_plain, "channels_last": total / t_nhwc},
            "channels_last_speedup": t_plain / t_nhwc, "identical_counts": same}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a measurement)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is kept)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 gives stable ratios on a shared machine)")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no GPU visible")
    if args.quick:
        cases = [("tiny-mlp-8x8", "tiny-mlp", "digits", 1000, 100, 4, 500),
                 ("lenet-mnist", "lenet", "mnist", 1000, 100, 2, 500),
                 ("lenet-mnist-nhwc", "lenet", "mnist", 1000, 100, 2, 500)]
        repeat = 1
    elif args.device == "cpu":
        cases = [("tiny-mlp-8x8", "tiny-mlp", "digits", 10000, 100, 20, 1000),
                 ("tiny-mlp-8x8-n1e5", "tiny-mlp", "digits", 100000, 100, 4, 1000),
                 ("mlp256-8x8", "mlp", "digits", 10000, 100, 20, 1000),
                 ("lenet-mnist", "lenet", "mnist", 10000, 100, 4, 1000),
                 ("lenet-mnist-nhwc", "lenet", "mnist", 10000, 100, 4, 1000)]
        repeat = args.repeat
    else:
        cases = [("tiny-mlp-8x8", "tiny-mlp", "digits", 100000, 100, 20, 100000),
                 ("lenet-mnist", "lenet", "mnist", 100000, 100, 8, 10000),
                 ("lenet-mnist-nhwc", "lenet", "mnist", 100000, 100, 8, 10000)]
        if "resnet20" in models.ARCHITECTURES:
            cases.append(("resnet20-cifar10", "resnet20", "cifar10", 100000, 100, 2, 4000))
        repeat = args.repeat
    results = [run_case(name, arch, ds, args.device, n, n0, images, batch, repeat, torch.float32,
                        channels_last=name.endswith("-nhwc"))
               for name, arch, ds, n, n0, images, batch in cases]
    print(f"{'case':18s} {'n':>7s} {'batch':>6s} {'fwd-only/s':>12s} {'smoothcert/s':>13s} "
          f"{'classic/s':>11s} {'overhead':>9s} {'speedup':>8s}")
    for r in results:
        s = r["samples_per_s"]
        print(f"{r['case']:18s} {r['n']:7d} {r['batch']:6d} {s['forward_only']:12.0f} {s['smoothcert']:13.0f} "
              f"{s['classic']:11.0f} {r['overhead']:9.3f} {r['speedup']:7.2f}x")
    fmt = memory_format_case("lenet", "mnist", args.device, *((200, 20, 2, 200) if args.quick else
                                                            (10000, 100, 4, 1000)), repeat)
    print(f"\nchannels_last on {fmt['case']}: {fmt['samples_per_s']['contiguous']:.0f} -> "
          f"{fmt['samples_per_s']['channels_last']:.0f} samples/s, {fmt['channels_last_speedup']:.2f}x, "
          f"identical counts: {fmt['identical_counts']}")
    if args.json:
        write_json(args.json, args.device, results, quick=args.quick, memory_format=fmt)
    return results


if __name__ == "__main__":
    main()
