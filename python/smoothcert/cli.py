"""The ``smoothcert`` command: ``train``, ``certify``, ``analyze`` and ``demo``."""
from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from typing import List, Optional

import torch


def _add_certify(sub) -> None:
    p = sub.add_parser("certify", help="certify a dataset split with Gaussian smoothing (Cohen et al.)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint written by smoothcert (or a raw state_dict "
                   "with --arch)")
    p.add_argument("--arch", default=None, help="architecture, only for raw state_dict files")
    p.add_argument("--dataset", required=True, help="dataset name (digits, mnist, fashion-mnist, ...)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset files")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--sigma", type=float, required=True, help="noise level in [0, 1] pixel units")
    p.add_argument("--n0", type=int, default=100, help="selection samples")
    p.add_argument("--n", type=int, default=100000, help="estimation samples")
    p.add_argument("--alpha", type=float, default=0.001, help="one-sided failure probability")
    p.add_argument("--batch", type=int, default=1000, help="classifier batch size")
    p.add_argument("--skip", type=int, default=1, help="certify every skip-th input")
    p.add_argument("--max", type=int, default=-1, help="stop before this dataset index (-1: all)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (results depend on seed and index only)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="dtype of the classifier's input batch (and of the model)")
    p.add_argument("--out", required=True, help="result TSV (resumed if it exists)")
    p.add_argument("--no-progress", action="store_true")


def _certify(args) -> int:
    from . import data, models
    from .certify_run import certify_dataset
    from .smooth import Smooth

    dtype = getattr(torch, args.dtype)
    model, info = models.load_checkpoint(args.model, map_location=args.device, arch=args.arch,
                                         dataset=args.dataset if args.arch else None)
    if info["dataset"] != args.dataset:
        print(f"note: model was trained on {info['dataset']}, certifying on {args.dataset}", file=sys.stderr)
    model = model.to(device=args.device, dtype=dtype).eval()
    split = data.load_dataset(args.dataset, args.split, root=args.data_root)
    stop = len(split) if args.max < 0 else min(args.max, len(split))
    if args.skip < 1:
        raise SystemExit("--skip must be >= 1")
    indices = list(range(0, stop, args.skip))
    smooth = Smooth(model, split.num_classes, args.sigma, seed=args.seed,
                    out_dtype=None if dtype == torch.float32 else dtype)
    config = {k: getattr(args, k) for k in ["dataset", "split", "sigma", "n0", "n", "alpha", "skip", "max",
                                            "seed", "dtype"]}
    # The checkpoint's hash, so a resumed file never mixes two models' results.
    with open(args.model, "rb") as f:
        config["model_sha256"] = hashlib.sha256(f.read()).hexdigest()
    config["arch"] = info.get("arch")
    certify_dataset(smooth, split.x, split.y, indices, n0=args.n0, n=args.n, alpha=args.alpha,
                    batch_size=args.batch, out=args.out, config=config, progress=not args.no_progress,
                    device=torch.device(args.device))
    return 0


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train and certify a small model on scikit-learn's digits (offline)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="smoothcert-demo", help="output directory")
    p.add_argument("--n", type=int, default=10000, help="estimation samples per input")
    p.add_argument("--max", type=int, default=500, help="test inputs to certify (of 500)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--no-progress", action="store_true")


def main(argv: Optional[List[str]] = None) -> int:
    from . import analyze, train_cli

    parser = argparse.ArgumentParser(prog="smoothcert", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train_cli.add_arguments(sub.add_parser("train", help="train a base classifier (gaussian, smoothadv, macer, "
                                            "stability); resumable", formatter_class=argparse.ArgumentDefaultsHelpFormatter))
    _add_certify(sub)
    analyze.add_arguments(sub.add_parser("analyze", help="certified accuracy tables and plots of result TSVs"))
    _add_demo(sub)
    args = parser.parse_args(argv)
    args.command_line = "smoothcert " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "certify":
            return _certify(args)
        if args.command == "analyze":
            return analyze.run(args)
        if args.command == "train":
            return train_cli.run(args)
        from .demo import run_demo
        return run_demo(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"smoothcert {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
