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
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown",
                        help="table format printed (and written with --out-table)")
    parser.add_argument("--out-table", metavar="PATH", help="also write the table here")
    parser.add_argument("--plot", metavar="PATH", help="write a certified-accuracy PNG here")
    parser.add_argument("--title", help="plot title")
    parser.add_argument("--best", action="append", default=[], metavar="NAME=LABEL,LABEL,...",
                        help="add a table row with the best certified accuracy at each radius over the "
                             "files with these labels (e.g. best over sigma); repeatable")
    parser.add_argument("--volume-plot", metavar="PATH",
                        help="write certified accuracy against O_CA (log certified volume) here, for anisotropic "
                        "and Gaussian fixed-sigma files (O_CA = D log radius)")
    parser.add_argument("--volumes", type=float, nargs="+", metavar="A",
                        help="O_CA levels of the volume table (with --volume-plot or alone)")
    parser.add_argument("--dim", type=int, help="input dimension D of isotropic files (default: from the sidecar)")
    parser.add_argument("--ratio-baseline", metavar="TSV",
                        help="also count each file's radius / this file's first-order radius (its prefix if it has "
                        "no first-order view) in Levine et al.'s ratio bins, matched by idx")
    parser.add_argument("--regions-plot", metavar="PATH",
                        help="sample-wise runs (--sigma-mode samplewise): certified accuracy beside the allocated-radius "
                        "fractions (the paper's Table 6, correctness ignored), with the unsound overlap radii")
    parser.add_argument("--ratio-plot", metavar="PATH", help="write the ratio histograms as a PNG (with --ratio-baseline)")
    parser.add_argument("--samples", action="store_true",
                        help="also print the samples per input (mean, percentiles, saving against n_max); on by "
                        "default when a file comes from a sequential run")
    return parser


def _ratio_section(args) -> str:
    from ..analysis.ratios import compare_to_baseline, plot_ratio_histograms, ratio_table

    rows = compare_to_baseline(args.ratio_baseline, args.results, args.labels or [])
    if args.ratio_plot:
        plot_ratio_histograms(rows, args.ratio_plot, title=args.title)
    return ratio_table(rows)


def _volume_table(args) -> str:
    from ..analysis.tables import _trunc3
    from ..analysis.volume import certified_accuracy_at_volume, volume_summary

    labels = args.labels or [None] * len(args.results)
    vs = [volume_summary(p, label=lab, dim=args.dim) for p, lab in zip(args.results, labels)]
    levels = args.volumes or []
    head = ["label", "kind", "rows", "clean acc", "mean O_CA"] + [f"acc@O_CA>={a:g}" for a in levels]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in vs:
        acc = certified_accuracy_at_volume(s["o_ca"], s["correct"], levels) if levels else []
        cells = [s["label"], s["kind"], str(s["rows"]), _trunc3(s["clean_accuracy"]), f"{s['mean_o_ca']:.1f}"]
        lines.append("| " + " | ".join(cells + [_trunc3(a) for a in acc]) + " |")
    if args.volume_plot:
        from ..analysis.volume import plot_volume_curves

        plot_volume_curves(vs, args.volume_plot, title=args.title)
    return "\n".join(lines) + "\n"


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
    if args.regions_plot:
        from ..analysis.regions import plot_regions

        plot_regions(args.results, args.regions_plot, labels=args.labels, title=args.title)
    if args.ratio_baseline:
        rt = _ratio_section(args)
        sys.stdout.write("\n" + rt)
        if args.out_table:
            with open(args.out_table, "a", encoding="utf-8") as f:
                f.write("\n" + rt)
    elif args.ratio_plot:
        raise ValueError("--ratio-plot needs --ratio-baseline TSV")
    from ..analysis.samples import samples_table, varies

    if getattr(args, "samples", False) or any(varies(p) for p in args.results):
        st = "Estimation samples per input:\n\n" + samples_table(args.results, args.labels)
        sys.stdout.write("\n" + st)
        if args.out_table:
            with open(args.out_table, "a", encoding="utf-8") as f:
                f.write("\n" + st)
    if args.volume_plot or args.volumes:
        vt = _volume_table(args)
        sys.stdout.write("\n" + vt)
        if args.out_table:
            with open(args.out_table, "a", encoding="utf-8") as f:
                f.write("\n" + vt)
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
