"""Summaries, tables and plots of certification results (``smoothcert analyze``).

Reads the result TSV written by ``smoothcert certify`` (see ``docs/formats.md``), and also
Cohen et al.'s six-column ``certify.py`` output.  Only numpy and the stdlib are imported at
module load; matplotlib is imported inside :func:`plot_certified_accuracy`.

Printed numbers are truncated (rounded down) to 3 decimals, never rounded up.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import numpy as np

REQUIRED = ("idx", "label", "predict", "radius", "correct", "time")
INT_COLS = ("idx", "label", "predict", "correct", "count_a", "n")
FLOAT_COLS = ("radius", "time", "pa_lower", "sigma")
COHEN_KIND = "fixed-sigma (Cohen TSV)"


def _parse_time(s: str) -> float:
    """Seconds from ``'1.25'`` or Cohen's ``str(timedelta)`` form ``'0:00:01.250000'``."""
    if ":" in s:
        h, m, sec = s.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    return float(s)


def _parse_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        f = float(s)
        if not f.is_integer():
            raise
        return int(f)


def load_results(path) -> dict[str, np.ndarray]:
    """Read a result TSV into ``{column: array of shape (rows,)}``.

    Integer columns (idx, label, predict, correct, count_a, n) are int64, radius/time/pa_lower/
    sigma float64, anything else (certificate, norm, unknown columns) str.  ``#`` lines and blank
    lines are skipped; the first other line is the header.  A header-only file gives zero rows.
    Raises ValueError naming the file and line for malformed input.
    """
    path = Path(path)
    header, hline, rows = None, 0, []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if header is None:
                header, hline = [c.strip() for c in fields], lineno
                missing = [c for c in REQUIRED if c not in header]
                if missing:
                    raise ValueError(f"{path}: line {lineno}: header lacks required column(s) "
                                     f"{', '.join(missing)} (got {header})")
                if len(set(header)) != len(header):
                    raise ValueError(f"{path}: line {lineno}: duplicate column names in header")
                continue
            if len(fields) != len(header):
                raise ValueError(f"{path}: line {lineno}: expected {len(header)} tab-separated "
                                 f"fields, got {len(fields)}")
            rows.append((lineno, fields))
    if header is None:
        raise ValueError(f"{path}: no header line (empty file)")
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        if name in INT_COLS:
            conv, dtype = _parse_int, np.int64
        elif name == "time":
            conv, dtype = _parse_time, np.float64
        elif name in FLOAT_COLS:
            conv, dtype = float, np.float64
        else:
            out[name] = np.array([r[j].strip() for _, r in rows], dtype=str)
            continue
        vals = []
        for lineno, r in rows:
            try:
                vals.append(conv(r[j].strip()))
            except ValueError:
                raise ValueError(f"{path}: line {lineno}: column '{name}': cannot parse "
                                 f"{r[j]!r} as a number") from None
        out[name] = np.array(vals, dtype=dtype)
    return out


def certified_accuracy(radius, correct, radii) -> np.ndarray:
    """Fraction of ALL rows with ``correct == 1`` and ``radius >= r``, for each r in ``radii``.

    radius, correct: shape (rows,); radii: shape (k,) -> shape (k,) float64.  Abstains
    (predict -1, correct 0) count as not certified.  Zero rows give zeros (callers report n=0).
    """
    radius, correct = np.asarray(radius, np.float64), np.asarray(correct)
    radii = np.atleast_1d(np.asarray(radii, np.float64))
    if radius.size == 0:
        return np.zeros(radii.shape)
    return _certified_counts(radius, correct, radii) / radius.size


def _certified_counts(radius, correct, radii) -> np.ndarray:
    ok = np.sort(np.asarray(radius, np.float64)[np.asarray(correct) == 1])
    return ok.size - np.searchsorted(ok, np.asarray(radii, np.float64), side="left")


def average_certified_radius(radius, correct) -> float:
    """ACR: mean over all rows of ``radius * correct`` (shapes (rows,)); 0.0 for zero rows.

    ACR is criticised as a metric (Sun et al., 2024: it can be raised by trading accuracy on
    hard inputs for huge radii on easy ones); read certified-accuracy curves first.
    """
    radius = np.asarray(radius, np.float64)
    if radius.size == 0:
        return 0.0
    return math.fsum(radius * (np.asarray(correct) == 1)) / radius.size


def abstain_rate(predict) -> float:
    """Fraction of rows (shape (rows,)) with ``predict == -1``; 0.0 for zero rows."""
    predict = np.asarray(predict)
    return float(np.mean(predict == -1)) if predict.size else 0.0


def default_radii(max_radius: float, max_cols: int = 13) -> np.ndarray:
    """Grid 0, s, 2s, ... up to ``max_radius`` rounded up to a multiple of s, where s is the
    first of 0.25, 0.5, 1, 2, 4, ... giving at most ``max_cols`` points.  Shape (k,)."""
    if not np.isfinite(max_radius) or max_radius <= 0:
        return np.zeros(1)
    step = 0.25
    while math.ceil(max_radius / step) + 1 > max_cols:
        step *= 2
    return np.arange(math.ceil(max_radius / step) + 1) * step


def summarize(paths, radii=None, labels=None) -> list[dict]:
    """One dict per file: label, path, rows, certificates (set), certificate (str), norm,
    clean_accuracy, radii (k,), certified_counts (k,), certified_accuracy (k,), acr,
    abstain_rate, median_time (NaN for zero rows), and the raw ``radius``/``correct`` arrays.

    Without ``radii`` the grid is :func:`default_radii` of the largest finite radius over all files.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"got {len(labels)} labels for {len(paths)} result files")
    data = [load_results(p) for p in paths]
    if radii is None:
        finite = [r[np.isfinite(r)] for r in (d["radius"] for d in data)]
        radii = default_radii(max((float(r.max()) for r in finite if r.size), default=0.0))
    radii = np.atleast_1d(np.asarray(radii, np.float64))
    out = []
    for i, (p, d) in enumerate(zip(paths, data)):
        n, r, c = d["radius"].size, d["radius"], d["correct"]
        kinds = set(d["certificate"].tolist()) if "certificate" in d else {COHEN_KIND}
        norms = sorted(set(d["norm"].tolist())) if "norm" in d else ["l2"]
        out.append({
            "label": labels[i] if labels is not None else Path(p).stem,
            "path": str(p), "rows": n, "certificates": kinds,
            "certificate": ", ".join(sorted(kinds)) or "-",
            "norm": ",".join(norms) or "l2",
            "clean_accuracy": float(np.mean(c == 1)) if n else 0.0,
            "radii": radii, "certified_counts": _certified_counts(r, c, radii),
            "certified_accuracy": certified_accuracy(r, c, radii),
            "acr": average_certified_radius(r, c), "abstain_rate": abstain_rate(d["predict"]),
            "median_time": float(np.median(d["time"])) if n else float("nan"),
            "radius": r, "correct": c,
        })
    return out


def _trunc3(x: float) -> str:
    """x rounded DOWN to 3 decimals (exact, on the double's true value)."""
    if not math.isfinite(x):
        return str(x)
    return str(Decimal(x).quantize(Decimal("0.001"), rounding=ROUND_FLOOR))


def _frac3(k: int, n: int) -> str:
    """k/n rounded DOWN to 3 decimals, in exact integer arithmetic."""
    m = (1000 * int(k)) // n
    return f"{m // 1000}.{m % 1000:03d}"


def best_of(summaries, name: str, labels) -> dict:
    """Envelope row "best over files" (e.g. over sigma, as papers report): at each radius the
    largest certified count among the summaries with these ``labels`` (same number of rows).

    Returns a dict with label, rows, certificate, norm and ``best_counts`` (k,) over the
    first summary's radii; ACR and abstain rate are not defined for an envelope."""
    pick = [s for s in summaries if s["label"] in set(labels)]
    missing = sorted(set(labels) - {s["label"] for s in pick})
    if missing or not pick:
        raise ValueError(f"--best {name}: no result file labelled {', '.join(missing) or labels} "
                         f"(labels: {', '.join(s['label'] for s in summaries)})")
    if len({s["rows"] for s in pick}) != 1:
        raise ValueError(f"--best {name}: the files have different numbers of rows "
                         f"({', '.join(str(s['rows']) for s in pick)}); an envelope needs the same inputs")
    radii = summaries[0]["radii"]
    counts = np.max([_certified_counts(s["radius"], s["correct"], radii) for s in pick], axis=0)
    return {"label": name, "rows": pick[0]["rows"], "radii": radii, "best_counts": counts,
            "certificate": ", ".join(sorted(set().union(*(s["certificates"] for s in pick)))),
            "norm": ",".join(sorted({s["norm"] for s in pick}))}


def _table(summaries, radii) -> tuple[list[str], list[list[str]]]:
    radii = summaries[0]["radii"] if radii is None and summaries else radii
    radii = np.atleast_1d(np.asarray(radii if radii is not None else [0.0], np.float64))
    head = ["label", "rows", "certificate", "norm"] + [f"acc@{r:g}" for r in radii]
    head += ["ACR", "abstain"]
    body = []
    for s in summaries:
        n = s["rows"]
        row = [str(s["label"]), str(n), s["certificate"], s["norm"]]
        if n == 0:
            row += ["n/a"] * (len(radii) + 2)
        elif "best_counts" in s:
            row += [_frac3(k, n) for k in s["best_counts"]] + ["-", "-"]
        else:
            counts = _certified_counts(s["radius"], s["correct"], radii)
            row += [_frac3(k, n) for k in counts]
            row += [_trunc3(s["acr"]), _frac3(round(s["abstain_rate"] * n), n)]
        body.append(row)
    return head, body


def to_markdown(summaries, radii=None) -> str:
    """Markdown table, one row per summary; ``radii`` (k,) defaults to the summaries' grid."""
    head, body = _table(summaries, radii)
    esc = lambda v: v.replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in body]
    lines += ["", "acc@r: fraction of all inputs predicted correctly with certified radius >= r "
              "(abstains count as not certified). Values are truncated to 3 decimals (rounded "
              "down, never up)."]
    return "\n".join(lines) + "\n"


def to_csv(summaries, radii=None) -> str:
    """The same table as :func:`to_markdown`, as CSV (header + one line per summary)."""
    head, body = _table(summaries, radii)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    w.writerows(body)
    return buf.getvalue()


def plot_certified_accuracy(summaries_or_paths, out_png, labels=None, title=None) -> None:
    """Certified accuracy vs radius as exact step curves (evaluated at every distinct certified
    radius), one per file; saved as PNG (dpi 120).  Accepts summaries or result paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg, without pyplot state
    from matplotlib.figure import Figure

    items = summaries_or_paths
    items = [items] if isinstance(items, (str, Path, dict)) else list(items)
    if not all(isinstance(s, dict) for s in items):
        items = summarize(items, labels=labels)
    finite = [s["radius"][np.isfinite(s["radius"])] for s in items]
    rmax = max((float(r.max()) for r in finite if r.size), default=0.0)
    xend = rmax * 1.05 if rmax > 0 else 1.0
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for s in items:
        r, c = s["radius"], s["correct"]
        knots = np.unique(r[(c == 1) & (r > 0) & (r <= xend)])
        xs = np.concatenate([[0.0], knots, [xend]])
        ys = certified_accuracy(r, c, xs)
        ax.step(xs, ys, where="pre", label=f"{s['label']} (n={s['rows']})")
    norms = sorted({s["norm"] for s in items}) or ["l2"]
    ax.set_xlabel(f"radius ({'/'.join(n.upper() for n in norms)})")
    ax.set_ylabel("certified accuracy")
    ax.set_xlim(0, xend)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.4)
    ax.legend(loc="upper right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(str(out_png), dpi=120)  # the figure is not registered with pyplot: nothing to close


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
