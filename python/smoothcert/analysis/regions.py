"""Robust-region runs side by side (Wang et al., sample-wise smoothing): certified accuracy of
every certificate in the files next to the paper's Table-6 view (App. C.2) -- the fraction of
points whose *allocated* radius reaches each value, correctness ignored -- with the unallocated
("overlap", unsound) radii of the first file as the upper envelope allocation can at best reach."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from .metrics import certified_accuracy, summarize
from .plot import STYLES
from .results import load_results


def radius_fractions(r: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Fraction of points with ``r > 0`` at radius 0 (the paper's strict column) and
    ``r >= rho`` elsewhere."""
    r = np.asarray(r, dtype=np.float64)
    return np.array([((r > 0) if x == 0 else (r >= x)).mean() if r.size else np.nan for x in radii])


def plot_regions(paths: List[str], out_png: str, labels: Optional[List[str]] = None,
                 title: Optional[str] = None) -> None:
    """Two panels: certified accuracy (every view of every file) | allocated-radius fractions."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = labels or [Path(p).stem for p in paths]
    summaries = summarize(paths, labels=labels)
    tables = [load_results(p) for p in paths]
    rmax = max(float(np.max(t["radius"], initial=0.0)) for t in tables)
    if "own_radius" in tables[0]:
        rmax = max(rmax, float(np.max(tables[0]["own_radius"], initial=0.0)))
    xend = rmax * 1.05 if rmax > 0 else 1.0
    xs = np.linspace(0.0, xend, 400)
    fig = Figure(figsize=(11.5, 4.4))
    FigureCanvasAgg(fig)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    seen = set()
    for s in summaries:
        key = (s["certificate"], tuple(np.round(s["radius"], 12)))
        if s["certificate"] == "fixed-sigma" and key in seen:  # the same fixed-sigma view in every file
            continue
        seen.add(key)
        left.step(xs, certified_accuracy(s["radius"], s["correct"], xs), where="post",
                  linestyle=STYLES.get(s["certificate"], "-"), linewidth=1.4, label=f"{s['label']} ({s['rows']} inputs)")
    for t, lab in zip(tables, labels):
        kind = ", ".join(sorted(set(t["certificate"].tolist()))) if "certificate" in t else "?"
        right.plot(xs, radius_fractions(t["radius"], xs), linestyle=STYLES.get(kind, "-"), label=f"{lab} [{kind}]")
    if "own_radius" in tables[0]:
        own = np.where(tables[0]["own_class"].astype(int) >= 0, tables[0]["own_radius"], 0.0)
        right.plot(xs, radius_fractions(own, xs), color="0.5", linestyle=":", label="overlap (unsound, no regions)")
    for ax, ylab in ((left, "certified accuracy"), (right, "fraction of points with allocated radius >= r")):
        ax.set_xlabel("radius (L2)")
        ax.set_ylabel(ylab)
        ax.set_xlim(0, xend)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.4)
        ax.legend(loc="lower left", fontsize="small", framealpha=0.85)
    left.set_title("certified accuracy", fontsize="medium")
    right.set_title("allocated radii, correctness ignored (Table 6)", fontsize="medium")
    if title:
        fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(str(out_png), dpi=120)
