"""The ``smoothcert`` command: ``train``, ``fit-sigma``, ``certify``, ``analyze`` and ``demo``."""
from __future__ import annotations

import argparse
import shlex
import sys
from typing import List, Optional

from .help_format import HelpFormatter


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train and certify a small model on scikit-learn's digits (offline)",
                       formatter_class=HelpFormatter)
    p.add_argument("--out", default="smoothcert-demo", help="output directory")
    p.add_argument("--n", type=int, default=10000, help="estimation samples per input")
    p.add_argument("--max", type=int, default=500, help="test inputs to certify (of 500)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs of the demo's small MLP")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``smoothcert`` command and its subcommands."""
    from . import analyze, certify, fit_sigma, train

    parser = argparse.ArgumentParser(prog="smoothcert", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train.add_arguments(sub.add_parser("train", help="train a base classifier (gaussian, smoothadv, macer, "
                                       "stability, pretrain-finetune); resumable", formatter_class=HelpFormatter))
    certify.add_arguments(sub.add_parser("certify", help="certify a dataset split: Gaussian (L2, Cohen et al.; "
                                         "second-order or dipole with --certificate), uniform, SSN or DSSN (L1, "
                                         "Levine & Feizi)",
                                         formatter_class=HelpFormatter))
    fit_sigma.add_arguments(sub.add_parser("fit-sigma", help="fit one per-element sigma for a model on training "
                                           "data (non-uniform smoothing, Tecot et al.); resumable",
                                           formatter_class=HelpFormatter))
    analyze.add_arguments(sub.add_parser("analyze", help="certified accuracy tables and plots of result TSVs",
                                         formatter_class=HelpFormatter))
    _add_demo(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    from . import analyze, certify, fit_sigma, train

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        # torchrun ... -m smoothcert -- certify ...: the "--" keeps torchrun's own parser off
        # our options (it would take --n and --max for abbreviations of its own); some
        # Python versions pass it on.
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    args.command_line = "smoothcert " + " ".join(shlex.quote(a) for a in argv)
    try:
        if args.command == "certify":
            return certify.run(args)
        if args.command == "analyze":
            return analyze.run(args)
        if args.command == "train":
            return train.run(args)
        if args.command == "fit-sigma":
            return fit_sigma.run(args)
        from .demo import run_demo
        return run_demo(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"smoothcert {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
