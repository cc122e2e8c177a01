"""``smoothcert fit-sigma``: fit one per-element sigma for a trained model on training
data (Tecot et al.), sweeping the initial constant c0; writes sigma files,
heat-maps, a record and a plot of held-out accuracy against mean O_CA (resumable)."""
from __future__ import annotations

import argparse
import hashlib
import os
import sys

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint written by smoothcert train")
    p.add_argument("--arch", default=None, help="architecture, only for raw state_dict files")
    p.add_argument("--normalize", default=None, metavar="dataset|none|MEAN,STD",
                   help="with --arch (a raw state_dict): the normalisation in front of the network, which is never "
                   "added unasked (the network may normalise in its own forward); as in smoothcert certify")
    p.add_argument("--dataset", required=True, help="dataset name (mnist, fashion-mnist, cifar10, ...)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset files")
    p.add_argument("--out", required=True, help="output directory (resumed if it holds this run)")
    p.add_argument("--c0", type=float, nargs="+", default=None,
                   help="initial constants sigma = c0, in the unit of --units: for mnist, fashion-mnist and "
                   "imagenet that is STANDARDIZED by default (sigma_pixel = std * c0, e.g. c0 0.25 on MNIST is "
                   "sigma 0.077 in the [0, 1] pixel units of certify --sigma); pass --units pixel for pixel units. "
                   "The first log line prints both (default: the dataset's grid, see --c0-count)")
    p.add_argument("--c0-count", type=int, default=20,
                   help="without --c0: sweep c0 = step, 2 step, ... (the dataset's grid step) this many times, "
                   "stopping once held-out accuracy falls to --stop-accuracy")
    p.add_argument("--stop-accuracy", type=float, default=None,
                   help="stop the sweep after a c0 whose isotropic held-out accuracy is <= this "
                   "(default with the grid: chance + 0.05; with --c0: never)")
    p.add_argument("--units", choices=["pixel", "standardized"], default=None,
                   help="units of c0 and of the learning rate: [0, 1] pixels or normalised inputs "
                   "(sigma_pixel = std * sigma; the paper's MNIST/Fashion-MNIST/ImageNet values); default per dataset")
    p.add_argument("--param", choices=["abs", "log"], default="abs",
                   help="abs: Adam on sigma, |sigma| used (the authors' code); log: sigma = exp(s), lr is relative")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default per dataset, App. B)")
    p.add_argument("--decay", type=float, default=None, help="lr factor per sub-epoch (default per dataset)")
    p.add_argument("--batch", type=int, default=None, help="inputs per step (default per dataset)")
    p.add_argument("--samples", type=int, default=32, help="n0, noise draws per input per step (paper: 32)")
    p.add_argument("--sub-epochs", type=int, default=None, help="passes over the fitting set per c0")
    p.add_argument("--val", type=int, default=1000, help="held-out training images (the last ones) for evaluation")
    p.add_argument("--fit-count", type=int, default=None,
                   help="fit on the first N training images only (default: all but the held-out ones)")
    p.add_argument("--eval-n0", type=int, default=64, help="held-out CERTIFY selection samples")
    p.add_argument("--eval-n", type=int, default=512, help="held-out CERTIFY estimation samples")
    p.add_argument("--eval-alpha", type=float, default=0.001, help="held-out CERTIFY one-sided failure probability")
    p.add_argument("--eval-batch", type=int, default=1000, help="held-out CERTIFY classifier batch size")
    p.add_argument("--seed", type=int, default=0, help="noise and minibatch-order seed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def _c0_units(c0s, scale) -> str:
    """``c0s`` with their [0, 1] pixel-unit sigma per channel (what ``certify --sigma`` takes)."""
    if scale is None:
        return ", ".join(f"{c:g}" for c in c0s) + " (= pixel sigma)"
    return ", ".join(f"{c:g} (pixel sigma {'/'.join(f'{c * s:.4g}' for s in scale)})" for c in c0s)


def run(args) -> int:
    from .. import data, models
    from ..analysis.volume import plot_accuracy_vs_volume
    from ..sigma.fit import DATASET_DEFAULTS, GENERIC_DEFAULTS, FitConfig
    from ..drivers.fit_sigma import fit_sigma_sweep

    d = DATASET_DEFAULTS.get(args.dataset, GENERIC_DEFAULTS)
    units = args.units or d["units"]
    if args.arch is not None and args.normalize is None:
        raise ValueError(f"{args.model}: a raw state_dict with --arch needs --normalize dataset|none|MEAN,STD: "
                         "normalisation is never added unasked, since the network may normalise in its own forward")
    if args.arch is None and args.normalize is not None:
        raise ValueError("--normalize applies to a raw state_dict with --arch; a smoothcert checkpoint records its own")
    model, info = models.load_checkpoint(args.model, map_location=args.device, arch=args.arch,
                                         dataset=args.dataset if args.arch else None,
                                         normalize=args.normalize)
    model = model.to(args.device).eval()
    split = data.load_dataset(args.dataset, "train", root=args.data_root)
    x = split.x if isinstance(split.x, torch.Tensor) else split.x[list(range(len(split)))]
    if args.c0 is None:
        c0s = [round(d["c0_step"] * k, 10) for k in range(1, args.c0_count + 1)]
        stop = args.stop_accuracy if args.stop_accuracy is not None else 1.0 / split.num_classes + 0.05
    else:
        c0s, stop = args.c0, args.stop_accuracy
    base = FitConfig(c0=c0s[0], lr=args.lr if args.lr is not None else d["lr"],
                     decay=args.decay if args.decay is not None else d["decay"],
                     batch_size=args.batch or d["batch_size"], samples=args.samples,
                     sub_epochs=args.sub_epochs or d["sub_epochs"], param=args.param, units=units, seed=args.seed)
    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    scale = list(data.dataset_stats(args.dataset)[1]) if units == "standardized" else None
    print(f"smoothcert fit-sigma: c0 in {units} units: {_c0_units(c0s, scale)}", file=sys.stderr)
    meta = {"dataset": args.dataset, "model": os.path.abspath(args.model), "model_sha256": sha,
            "arch": info.get("arch"), "command": getattr(args, "command_line", None)}
    record = fit_sigma_sweep(model, x, split.y, c0s=c0s, base=base, out_dir=args.out, scale=scale,
                             num_classes=split.num_classes, meta=meta, val_count=args.val, fit_count=args.fit_count,
                             eval_budget=(args.eval_n0, args.eval_n, args.eval_alpha, args.eval_batch),
                             stop_accuracy=stop, device=torch.device(args.device), progress=not args.no_progress)
    plot_accuracy_vs_volume(record, os.path.join(args.out, "accuracy_vs_volume.png"),
                            title=f"{args.dataset}: held-out accuracy vs mean O_CA")
    print("c0\tsub_epoch\tval_accuracy\tval_mean_o_ca\tsigma_mean\tsigma_min\tsigma_max\tborder/centre")
    for r in record:
        print(f"{r['c0']:g}\t{r['sub_epoch']}\t{r['val_accuracy']:.3f}\t{r['val_mean_o_ca']:.1f}\t"
              f"{r['sigma_mean']:.4f}\t{r['sigma_min']:.4f}\t{r['sigma_max']:.4f}\t{r['border_centre_ratio']:.3f}")
    print(f"smoothcert fit-sigma: {args.out}: sigma files in {args.out}/c0_*/sigma.pt", file=sys.stderr)
    return 0
