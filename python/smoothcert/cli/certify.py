"""``smoothcert certify``: certify a dataset split with any registered smoothing family
into a resumable TSV (docs/formats.md)."""
from __future__ import annotations

import argparse
import hashlib
import sys

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..certify import CERTIFICATES, FAMILIES, SIGMA_MODES
    from ..certify.family import add_family_arguments

    p.add_argument("--model", required=True, help="checkpoint written by smoothcert (or a raw state_dict "
                   "with --arch)")
    p.add_argument("--arch", default=None, help="architecture, only for raw state_dict files")
    p.add_argument("--dataset", required=True, help="dataset name (digits, mnist, fashion-mnist, ...)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset files")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level (RMS) in [0, 1] pixel units; with --sigma-mode ddrs the initial sigma0, "
                   "which the fixed-sigma certificate beside it uses (not with --sigma-file)")
    p.add_argument("--noise", default="gaussian", choices=sorted(FAMILIES),
                   help="gaussian: L2 radius; uniform, ssn (Monte Carlo) and dssn (exact, grid inputs): L1 radius")
    p.add_argument("--sigma-mode", default=None, choices=sorted(SIGMA_MODES),
                   help="fixed: one sigma for all inputs; ddrs: sigma optimised per input (Alfarra et al.), "
                   "certified with a memory; anisotropic: one sigma per input element from --sigma-file "
                   "(Tecot et al.); samplewise: sigma per input from a grid, certified with transductive robust regions "
                   "(--regions greedy|lp). Default: anisotropic with --sigma-file, else fixed")
    p.add_argument("--certificate", default="first-order", choices=sorted(CERTIFICATES),
                   help="first-order: Cohen's radius; sos: second-order (gradient-norm) radius of Levine et al., "
                   "with the first-order one from the same samples beside it; dipole: antithetic-pair radius, with "
                   "an independent first-order one beside it (Gaussian noise, fixed sigma)")
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
    p.add_argument("--stage", default=None, help="transductive modes (--sigma-mode samplewise): the per-input "
                   "stage TSV (default <out>.stage.tsv); runs that differ only in --regions/--region-order can "
                   "share one, so the per-input work is done once")
    p.add_argument("--no-progress", action="store_true")
    add_family_arguments(p, list(FAMILIES.values()) + [m for m in SIGMA_MODES.values() if m is not None]
                         + [c for c in CERTIFICATES.values() if c is not None])


def build_family(args, model, num_classes: int, info: dict, out_dtype):
    """The smoothing family of the parsed options (``--noise``, wrapped by ``--sigma-mode``)."""
    from ..certify import CERTIFICATES, FAMILIES, SIGMA_MODES

    trained = (info.get("meta") or {}).get("noise") or {}
    if args.sigma_mode is None:
        chosen = [name for name, m in SIGMA_MODES.items()
                  if m is not None and getattr(m, "IMPLIED_BY_OPTIONS", False) and m.options_given(args)]
        if len(chosen) > 1:
            raise ValueError(f"options of several sigma modes were given ({', '.join(chosen)}); choose one")
        args.sigma_mode = chosen[0] if chosen else "fixed"
    if trained.get("kind", "gaussian") != args.noise:
        print(f"note: model was trained with {trained.get('kind', 'gaussian')} noise, certifying with "
              f"{args.noise}", file=sys.stderr)
    for name, other in SIGMA_MODES.items():
        given = other.options_given(args) if other is not None and name != args.sigma_mode else []
        if given:
            raise ValueError(f"{', '.join(given)} belong to --sigma-mode {name}, but --sigma-mode is {args.sigma_mode}")
    def make_base(**overrides):
        return FAMILIES[args.noise].from_args(argparse.Namespace(**{**vars(args), **overrides}), model,
                                              num_classes, trained, out_dtype)

    make_base.trained = trained  # the checkpoint's noise metadata, for modes that default from it
    cert_name = getattr(args, "certificate", None) or "first-order"
    for name, other in CERTIFICATES.items():
        given = other.options_given(args) if other is not None and name != cert_name else []
        if given:
            raise ValueError(f"{', '.join(given)} belong to --certificate {name}, but --certificate is {cert_name}")
    cert = CERTIFICATES[cert_name]
    mode = SIGMA_MODES[args.sigma_mode]
    if cert is not None:
        if mode is not None:
            raise ValueError(f"--certificate {cert_name} certifies one fixed sigma; it does not combine with "
                             f"--sigma-mode {args.sigma_mode}")
        return cert.from_args(args, make_base)
    return make_base() if mode is None else mode.from_args(args, make_base)


def run(args) -> int:
    from .. import data, models
    from ..certify import Budget, certify_dataset

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
    family = build_family(args, model, split.num_classes, info, None if dtype == torch.float32 else dtype)
    if args.stage is not None and not getattr(family, "TRANSDUCTIVE", False):
        raise ValueError("--stage applies to transductive modes (--sigma-mode samplewise) only")
    config = {k: getattr(args, k) for k in ["dataset", "split", "skip", "max", "dtype"]}
    # The checkpoint's hash, so a resumed file never mixes two models' results.
    with open(args.model, "rb") as f:
        config["model_sha256"] = hashlib.sha256(f.read()).hexdigest()
    config["arch"] = info.get("arch")
    budget = Budget(n0=args.n0, n=args.n, alpha=args.alpha, batch_size=args.batch)
    certify_dataset(family, split.x, split.y, indices, budget=budget, out=args.out, config=config,
                    progress=not args.no_progress, device=torch.device(args.device), stage=args.stage)
    summary = family.summary()
    if summary:
        print(f"smoothcert certify: {args.out}: " + ", ".join(f"{k} {v}" for k, v in summary.items()),
              file=sys.stderr)
    return 0
