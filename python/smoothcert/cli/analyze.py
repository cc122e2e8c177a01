"""``smoothcert analyze``: certified-accuracy tables and plots of result TSVs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..analysis import best_of, plot_certified_accuracy, summarize, to_csv, to_markdown


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``analyze`` arguments to ``parser`` (for reuse as a subcommand)."""
    parser.add_argument("results", nargs="+", help="result TSV file(s) from smoothcert certify")
    parser.add_argument("--radii", type=float, nargs="+", help="radii for the table columns")
    parser.add_argument("--labels", nargs="+", help="one label per file (default: file stem)")
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    parser.add_argument("--out-table", metavar="PATH", help="also write the table here")
    parser.add_argument("--plot", metavar="PATH", help="write a certified-accuracy PNG here")
    parser.add_argument("--title", help="plot title")
    parser.add_argument("--best", action="append", default=[], metavar="NAME=LABEL,LABEL,...",
                        help="add a table row with the best certified accuracy at each radius over the "
                             "files with these labels (e.g. best over sigma); repeatable")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``analyze`` from parsed arguments; returns 0.  Raises ValueError on bad input."""
    summaries = summarize(args.results, radii=args.radii, labels=args.labels)
    rows = list(summaries)
    for spec in getattr(args, "best", []):
        name, sep, labels = spec.partition("=")
        if not sep or not name or not labels:
            raise ValueError(f"--best wants NAME=LABEL,LABEL,..., got {spec!r}")
        rows.append(best_of(summaries, name, labels.split(",")))
    table = (to_csv if args.format == "csv" else to_markdown)(rows, summaries[0]["radii"])
    sys.stdout.write(table)
    if args.out_table:
        Path(args.out_table).write_text(table, encoding="utf-8")
    if args.plot:
        plot_certified_accuracy(summaries, args.plot, title=args.title)
    return 0


def main(argv=None) -> int:
    """``smoothcert analyze`` CLI; returns 0 on success, 2 on an input error."""
    parser = add_arguments(argparse.ArgumentParser(
        prog="smoothcert analyze", description="Tables and plots of certification results."))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError) as e:
        print(f"smoothcert analyze: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
