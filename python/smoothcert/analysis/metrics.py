"""Certified accuracy, ACR, radius grids and per-file summaries of result TSVs."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .results import certificate_views, load_results


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
    ok = np.sort(_correct_radii(radius, correct))
    return ok.size - np.searchsorted(ok, np.asarray(radii, np.float64), side="left")


def _correct_radii(radius, correct) -> np.ndarray:
    """The radii of the rows with ``correct == 1``; ValueError if one is NaN, inf or negative
    (a metric over them would be NaN or a claim no certificate makes)."""
    r = np.asarray(radius, np.float64)[np.asarray(correct) == 1]
    bad = r[~(np.isfinite(r) & (r >= 0))]
    if bad.size:
        raise ValueError(f"{bad.size} certified-correct row(s) have a radius that is not a finite number >= 0 "
                         f"(e.g. {float(bad[0])!r})")
    return r


def average_certified_radius(radius, correct) -> float:
    """ACR: mean over all rows of ``radius * correct`` (shapes (rows,)); 0.0 for zero rows.

    ACR is criticised as a metric (Sun et al., 2024: it can be raised by trading accuracy on
    hard inputs for huge radii on easy ones); read certified-accuracy curves first.
    """
    radius = np.asarray(radius, np.float64)
    if radius.size == 0:
        return 0.0
    return math.fsum(_correct_radii(radius, correct)) / radius.size


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
    """One dict per certificate of each file: label, path, rows, certificates (set), certificate
    (str), norm, clean_accuracy, radii (k,), certified_counts (k,), certified_accuracy (k,), acr,
    abstain_rate, median_time (NaN for zero rows), and the raw ``radius``/``correct`` arrays.

    A file with several certificates per row (data-dependent sigma: memory-based, unadjusted
    data-dependent and fixed-sigma) gives one summary each, labelled ``"<label> [<kind>]"``.
    Without ``radii`` the grid is :func:`default_radii` of the largest finite radius over all files.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"got {len(labels)} labels for {len(paths)} result files")
    data = [load_results(p) for p in paths]
    if radii is None:
        finite = [r[np.isfinite(r)] for d in data for _, _, r in certificate_views(d)]
        radii = default_radii(max((float(r.max()) for r in finite if r.size), default=0.0))
    radii = np.atleast_1d(np.asarray(radii, np.float64))
    out = []
    for i, (p, d) in enumerate(zip(paths, data)):
        norms = sorted(set(d["norm"].tolist())) if "norm" in d else ["l2"]
        label = labels[i] if labels is not None else Path(p).stem
        views = certificate_views(d)
        for kind, pred, r in views:
            n = r.size
            c = (pred == d["label"]).astype(np.int64) if len(views) > 1 else d["correct"]
            out.append({
                "label": f"{label} [{kind}]" if len(views) > 1 else label,
                "path": str(p), "rows": n, "certificates": {kind},
                "certificate": kind or "-",
                "norm": ",".join(norms) or "l2",
                "clean_accuracy": float(np.mean(c == 1)) if n else 0.0,
                "radii": radii, "certified_counts": _certified_counts(r, c, radii),
                "certified_accuracy": certified_accuracy(r, c, radii),
                "acr": average_certified_radius(r, c), "abstain_rate": abstain_rate(pred),
                "median_time": float(np.median(d["time"])) if n else float("nan"),
                "radius": r, "correct": c,
            })
    return out


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
