"""Markdown and CSV tables of summaries. Printed numbers are truncated (rounded down)
to 3 decimals, never rounded up."""
from __future__ import annotations

import csv
import io
import math
from decimal import ROUND_FLOOR, Decimal

import numpy as np

from .metrics import _certified_counts


def _trunc3(x: float) -> str:
    """x rounded DOWN to 3 decimals (exact, on the double's true value)."""
    if not math.isfinite(x):
        return str(x)
    return str(Decimal(x).quantize(Decimal("0.001"), rounding=ROUND_FLOOR))


def _frac3(k: int, n: int) -> str:
    """k/n rounded DOWN to 3 decimals, in exact integer arithmetic."""
    m = (1000 * int(k)) // n
    return f"{m // 1000}.{m % 1000:03d}"


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
