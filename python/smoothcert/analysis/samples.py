"""Samples per input: how many classifier evaluations each row of a result file used.

Fixed-n runs spend ``n`` estimation samples on every input; sequential runs (``smoothcert
certify --sequential``) stop each input at its own ``n`` (the ``n`` column), so their cost is a
distribution worth reading: mean, percentiles and the saving against ``n_max``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .results import load_results


def samples_summary(path, label=None) -> dict:
    """``{label, rows, n0, mean, p10, median, p90, max, n_max, saved}`` of the estimation
    samples ``n`` of a result file (``n0`` and ``n_max`` from its sidecar when recorded;
    ``saved`` = 1 - mean / n_max). Raises ValueError for a file without an ``n`` column."""
    d = load_results(path)
    if "n" not in d:
        raise ValueError(f"{path}: no 'n' column (samples per input are not recorded)")
    n = d["n"].astype(np.float64)
    config = {}
    try:
        with open(str(path) + ".json", encoding="utf-8") as f:
            config = json.load(f).get("config", {})
    except (OSError, ValueError):
        pass
    n_max = config.get("n") if isinstance(config.get("n"), int) else None
    if "n_max" in d and d["n_max"].size:
        n_max = int(d["n_max"].max())
    q = (lambda p: float(np.percentile(n, p))) if n.size else (lambda p: float("nan"))  # noqa: E731
    mean = float(n.mean()) if n.size else float("nan")
    return {"label": label or Path(path).stem, "rows": int(n.size), "n0": config.get("n0"), "mean": mean,
            "p10": q(10), "median": q(50), "p90": q(90), "max": q(100), "n_max": n_max,
            "saved": (1.0 - mean / n_max) if n_max and n.size else float("nan")}


def samples_table(paths, labels=None) -> str:
    """A markdown table of :func:`samples_summary` for each file."""
    labels = labels or [None] * len(paths)
    head = ["label", "rows", "n0", "mean n", "p10", "median", "p90", "max", "n_max", "saved"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p, lab in zip(paths, labels):
        s = samples_summary(p, lab)
        num = lambda v: "-" if v is None or v != v else f"{v:.0f}"  # noqa: E731
        saved = "-" if s["saved"] != s["saved"] else f"{100 * s['saved']:.1f}%"
        lines.append("| " + " | ".join([s["label"], str(s["rows"]), num(s["n0"]), f"{s['mean']:.1f}", num(s["p10"]),
                                        num(s["median"]), num(s["p90"]), num(s["max"]), num(s["n_max"]), saved]) + " |")
    return "\n".join(lines) + "\n"


def varies(path) -> bool:
    """Whether a file's inputs used different sample sizes (a sequential run)."""
    d = load_results(path)
    return "n" in d and d["n"].size > 0 and bool((d["n"] != d["n"][0]).any() or "n_max" in d)
