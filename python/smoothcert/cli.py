"""The ``smoothcert`` command: ``train``, ``certify``, ``analyze`` and ``demo``."""
from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from typing import List, Optional

import torch


def _add_certify(sub) -> None:
    p = sub.add_parser("certify", help="certify a dataset split: Gaussian (L2, Cohen et al.), uniform, SSN or "
                       "DSSN (L1, Levine & Feizi)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint written by smoothcert (or a raw state_dict "
                   "with --arch)")
    p.add_argument("--arch", default=None, help="architecture, only for raw state_dict files")
    p.add_argument("--dataset", required=True, help="dataset name (digits, mnist, fashion-mnist, ...)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset files")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--sigma", type=float, required=True, help="noise level (RMS) in [0, 1] pixel units")
    p.add_argument("--noise", default="gaussian", choices=["gaussian", "uniform", "ssn", "dssn"],
                   help="gaussian: L2 radius; uniform, ssn (Monte Carlo) and dssn (exact, grid inputs): L1 radius")
    p.add_argument("--q", type=int, default=None, help="dssn: grid steps (default: the checkpoint's, else 255)")
    p.add_argument("--offset-seed", type=int, default=None,
                   help="dssn: seed of the offset vector v (default: the checkpoint's, else 0)")
    p.add_argument("--quantize", action="store_true",
                   help="dssn: round off-grid inputs to the grid instead of refusing them")
    p.add_argument("--abstain", action="store_true",
                   help="uniform/ssn: abstain when pA_lower <= 1/2 (the paper never abstains)")
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
    smooth = _make_smooth(args, model, split.num_classes, info, None if dtype == torch.float32 else dtype)
    config = {k: getattr(args, k) for k in ["dataset", "split", "sigma", "n0", "n", "alpha", "skip", "max",
                                            "seed", "dtype"]}
    if args.noise != "gaussian":  # (gaussian sidecars keep their earlier keys)
        config.update(noise=args.noise, abstain=args.abstain)
    if args.noise == "dssn":
        config.update(q=smooth.q, offset_seed=smooth.seed, levels=smooth.levels, quantize=args.quantize)
        for k in ("n0", "n", "alpha", "seed"):
            config.pop(k)
    # The checkpoint's hash, so a resumed file never mixes two models' results.
    with open(args.model, "rb") as f:
        config["model_sha256"] = hashlib.sha256(f.read()).hexdigest()
    config["arch"] = info.get("arch")
    certify_dataset(smooth, split.x, split.y, indices, n0=args.n0, n=args.n, alpha=args.alpha,
                    batch_size=args.batch, out=args.out, config=config, progress=not args.no_progress,
                    device=torch.device(args.device))
    return 0


def _make_smooth(args, model, num_classes: int, info: dict, out_dtype):
    from .smooth import Smooth
    from .split import SplitSmooth, UniformSmooth

    trained = (info.get("meta") or {}).get("noise") or {}
    if trained.get("kind", "gaussian") != args.noise:
        print(f"note: model was trained with {trained.get('kind', 'gaussian')} noise, certifying with "
              f"{args.noise}", file=sys.stderr)
    if args.noise == "gaussian":
        return Smooth(model, num_classes, args.sigma, seed=args.seed, out_dtype=out_dtype)
    if args.noise == "uniform":
        return UniformSmooth(model, num_classes, args.sigma, seed=args.seed, out_dtype=out_dtype,
                             abstain=args.abstain)
    if args.noise == "ssn":
        return SplitSmooth(model, num_classes, args.sigma, seed=args.seed, deterministic=False,
                           out_dtype=out_dtype, abstain=args.abstain)
    q = args.q if args.q is not None else int(trained.get("q", 255))
    offset_seed = args.offset_seed if args.offset_seed is not None else int(trained.get("offset_seed", 0))
    if trained.get("kind") == "dssn":
        if trained.get("offset_seed", 0) != offset_seed or trained.get("q", 255) != q:
            print(f"note: model was trained with DSSN q={trained.get('q')} offset seed "
                  f"{trained.get('offset_seed')}; certifying with q={q} offset seed {offset_seed}", file=sys.stderr)
    smooth = SplitSmooth(model, num_classes, args.sigma, q=q, seed=offset_seed, deterministic=True,
                         quantize=args.quantize, out_dtype=out_dtype)
    if trained.get("kind") == "dssn" and trained.get("levels") not in (None, smooth.levels):
        print(f"note: model was trained with L={trained['levels']} offsets (another sigma, so another v); "
              f"certifying with L={smooth.levels}", file=sys.stderr)
    return smooth


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
