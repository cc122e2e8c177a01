"""Certified-accuracy curves as PNG (matplotlib's Agg canvas, no pyplot state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .metrics import certified_accuracy, summarize


# Line style per kind of certificate, so that curves that coincide (a memory that never
# fired gives the data-dependent curve) stay visible.
STYLES = {"memory": "-", "data-dependent": "--", "fixed-sigma": ":", "first-order": ":", "second-order": "-",
          "dipole": "--", "transductive-greedy": "-", "transductive-lp": "-."}


def plot_certified_accuracy(summaries_or_paths, out_png, labels=None, title=None):
    """Certified accuracy vs radius as exact step curves (evaluated at every distinct certified
    radius), one per certificate of each file; saved as PNG (dpi 120).  Accepts summaries or
    result paths; returns the matplotlib Figure."""
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
        ax.step(xs, ys, where="pre", label=f"{s['label']} ({s['rows']} inputs)",
                linestyle=STYLES.get(s["certificate"], "-"), linewidth=1.4)
    norms = sorted({s["norm"] for s in items}) or ["l2"]
    ax.set_xlabel(f"radius ({'/'.join(n.upper() for n in norms)})")
    ax.set_ylabel("certified accuracy")
    ax.set_xlim(0, xend)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left", fontsize="small", framealpha=0.85)
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(str(out_png), dpi=120)  # the figure is not registered with pyplot: nothing to close
    return fig
