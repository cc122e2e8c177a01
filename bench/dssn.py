"""Certification time per image: DSSN against Monte-Carlo L1 smoothing (Levine & Feizi 2021,
§5 and Figure 6).

For one model, sigma, batch size and dtype, measured in one run:
  (a) DSSN: ``SplitSmooth(model, K, sigma).certify_batch(X, batch_size=b)``, exactly
      L = int(2 sqrt(3) sigma q) forward samples per image (q = 255);
  (b) randomized (independent) SSN: ``SplitSmooth(..., deterministic=False)
      .certify_batch(X, n0, n, alpha, b)``, n0 + n samples per image;
  (c) uniform noise: ``UniformSmooth(model, K, sigma).certify_batch(X, n0, n, alpha, b)``.
Reports seconds per image of each and the ratios (b)/(a) and (c)/(a) (how many
times faster DSSN certifies an image). The paper reports 0.41 s (DSSN) against
about 13 s (n = 100,000) per CIFAR-10 image, WRN-40-2, sigma 3.5, L = 3091, on
an RTX 2080 Ti. The Monte-Carlo cost is linear in n0 + n, so a run at a
smaller --n also reports the ratio extrapolated to n = 100,000, labelled as such.

Inputs are random grid images (randint(0, 256) / 255) and the models are
untrained: the work per image does not depend on either.

    python bench/dssn.py --device cpu [--quick] [--cases lenet,resnet20] [--n 100000] [--json out.json]
"""
from __future__ import annotations

import argparse
import sys

import torch

import smoothcert
from timing import timed_interleaved, write_json
from smoothcert import models
from smoothcert.certify import SplitSmooth, UniformSmooth

N_PAPER = 100_000  # the paper's estimation samples per image
ALPHA = 0.001

# case group -> (arch, dataset); --cases picks groups, each run at every sigma
GROUPS = {"lenet": ("lenet", "mnist"), "resnet20": ("resnet20", "cifar10"), "wrn40_2": ("wrn40_2", "cifar10")}




def run_case(name, arch, dataset, sigma, device, n, n0, images, batch, repeat, dtype, channels_last=False):
    """One case: the three certifiers on the same model, images and batch size."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = models.build_model(arch, dataset).to(device=device, dtype=dtype, memory_format=fmt).eval()
    C, H, W = smoothcert.data.input_shape(dataset)
    K = smoothcert.data.num_classes(dataset)
    X = torch.randint(0, 256, (images, C, H, W), device=device).float() / 255
    out_dtype = None if dtype == torch.float32 else dtype

    dssn = SplitSmooth(model, K, sigma, deterministic=True, out_dtype=out_dtype, channels_last=channels_last)
    ssn = SplitSmooth(model, K, sigma, deterministic=False, out_dtype=out_dtype, channels_last=channels_last)
    unif = UniformSmooth(model, K, sigma, out_dtype=out_dtype, channels_last=channels_last)
    L = dssn.levels
    n_warm = min(n, 2 * batch)  # the warm-up sees full batches and the tail without a full n

    fns = [lambda: dssn.certify_batch(X, batch_size=batch),
           lambda: ssn.certify_batch(X, n0=n0, n=n, alpha=ALPHA, batch_size=batch),
           lambda: unif.certify_batch(X, n0, n, ALPHA, batch)]
    warm = [fns[0],
            lambda: ssn.certify_batch(X, n0=n0, n=n_warm, alpha=ALPHA, batch_size=batch),
            lambda: unif.certify_batch(X, n0, n_warm, ALPHA, batch)]
    t_dssn, t_ssn, t_unif = timed_interleaved(fns, device, repeat, warm)
    spi = {"dssn": t_dssn / images, "ssn": t_ssn / images, "uniform": t_unif / images}
    samples = {"dssn": L, "ssn": n0 + n, "uniform": n0 + n}
    r = {"case": name, "arch": arch, "dataset": dataset, "sigma": sigma, "levels": L, "device": device,
         "dtype": str(dtype).replace("torch.", ""), "memory_format": "channels_last" if channels_last else "contiguous",
         "n0": n0, "n": n, "alpha": ALPHA, "images": images, "batch": batch, "repeat": repeat,
         "samples_per_image": samples, "seconds_per_image": spi,
         "samples_per_s": {k: samples[k] / spi[k] for k in spi},
         "ratio_ssn": spi["ssn"] / spi["dssn"], "ratio_uniform": spi["uniform"] / spi["dssn"],
         "sample_ratio": (n0 + n) / L}  # the ratio if every method ran at the same samples/s
    if n != N_PAPER:
        # Monte-Carlo time is linear in n0 + n; DSSN's does not depend on n
        scale = (n0 + N_PAPER) / (n0 + n)
        r["extrapolated_to_n"] = N_PAPER
        r["extrapolated_seconds_per_image"] = {"ssn": spi["ssn"] * scale, "uniform": spi["uniform"] * scale}
        r["extrapolated_ratio_ssn"] = r["ratio_ssn"] * scale
        r["extrapolated_ratio_uniform"] = r["ratio_uniform"] * scale
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a measurement)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions (best is kept)")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated groups out of {', '.join(GROUPS)} (default: lenet on cpu; "
                        "lenet,resnet20,wrn40_2 on cuda); the CIFAR ones are slow on a CPU: lower --n")
    p.add_argument("--sigmas", default="0.5,3.5", help="comma-separated sigmas (L = int(2 sqrt(3) sigma 255))")
    p.add_argument("--n", type=int, default=N_PAPER, help="Monte-Carlo estimation samples per image")
    p.add_argument("--n0", type=int, default=64, help="Monte-Carlo selection samples per image")
    p.add_argument("--images", type=int, default=None, help="images per timed call (default 2 on cpu, 4 on cuda)")
    p.add_argument("--batch", type=int, default=None,
                   help="forward batch of all three (default 1000 on cpu; 10000 lenet / 4000 cifar on cuda)")
    p.add_argument("--channels-last", action="store_true", help="NHWC weights and batches (fast on CPUs)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no GPU visible")
    groups = (args.cases or ("lenet" if args.device == "cpu" else "lenet,resnet20,wrn40_2")).split(",")
    for g in groups:
        if g not in GROUPS:
            sys.exit(f"--cases: unknown group {g!r}; known: {', '.join(GROUPS)}")
    sigmas = [float(s) for s in args.sigmas.split(",")]
    n, repeat = args.n, args.repeat
    images = args.images or (4 if args.device == "cuda" else 2)
    if args.quick:
        n, images, repeat = min(n, 2000), 1, 1
    results = []
    for g in groups:
        arch, ds = GROUPS[g]
        batch = args.batch or (1000 if args.device == "cpu" else (10000 if g == "lenet" else 4000))
        if args.quick:
            batch = min(batch, 500)
        for sigma in sigmas:
            name = f"{arch}-{ds}" + ("-nhwc" if args.channels_last else "")
            results.append(run_case(name, arch, ds, sigma, args.device, n, args.n0, images, batch, repeat,
                                    torch.float32, channels_last=args.channels_last))
    print(f"{'case':22s} {'sigma':>5s} {'L':>5s} {'n':>7s} {'batch':>6s} {'dssn s/img':>11s} {'ssn s/img':>10s} "
          f"{'unif s/img':>10s} {'ssn/dssn':>9s} {'unif/dssn':>9s}")
    for r in results:
        s = r["seconds_per_image"]
        print(f"{r['case']:22s} {r['sigma']:5.2f} {r['levels']:5d} {r['n']:7d} {r['batch']:6d} {s['dssn']:11.4f} "
              f"{s['ssn']:10.3f} {s['uniform']:10.3f} {r['ratio_ssn']:8.1f}x {r['ratio_uniform']:8.1f}x")
    extra = [r for r in results if "extrapolated_ratio_ssn" in r]
    if extra:
        print(f"\nEXTRAPOLATED to n = {N_PAPER:,} (Monte-Carlo time scaled by (n0 + {N_PAPER}) / (n0 + n); "
              "not measured):")
        print(f"{'case':22s} {'sigma':>5s} {'n used':>7s} {'ssn s/img':>10s} {'unif s/img':>10s} "
              f"{'ssn/dssn':>9s} {'unif/dssn':>9s}")
        for r in extra:
            e = r["extrapolated_seconds_per_image"]
            print(f"{r['case']:22s} {r['sigma']:5.2f} {r['n']:7d} {e['ssn']:10.3f} {e['uniform']:10.3f} "
                  f"{r['extrapolated_ratio_ssn']:8.1f}x {r['extrapolated_ratio_uniform']:8.1f}x")
    if args.json:
        write_json(args.json, args.device, results, quick=args.quick)
    return results


if __name__ == "__main__":
    main()
