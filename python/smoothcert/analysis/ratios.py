"""Per-input radius ratios of one certificate against a baseline: the histograms of Levine
et al.'s second-order smoothing paper (§5, Figs. 5-6, and App. B).

Over the inputs that both certify correctly (not abstained, label matched, baseline radius
> 0), the ratio method/baseline falls into the bins (0, .75], (.75, .85], (.85, .95],
(.95, .99], (.99, 1.01], (1.01, 1.05], (1.05, 1.15], (1.15, 1.25], (1.25, inf); two more
counts hold the inputs only the baseline or only the method certifies correctly."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .results import certificate_views, load_results

EDGES = (0.75, 0.85, 0.95, 0.99, 1.01, 1.05, 1.15, 1.25)
BIN_LABELS = ("<=.75", ".75-.85", ".85-.95", ".95-.99", "+-1%", "1.01-1.05", "1.05-1.15", "1.15-1.25", ">1.25")
HEAD = ["baseline only", *BIN_LABELS, "method only"]


def ratio_histogram(base_radius, base_ok, radius, ok) -> List[int]:
    """``[baseline only, nine bins..., method only]`` counts (see the module docstring).

    Args:
        base_radius, radius: ``[N]`` radii of the same inputs (float64).
        base_ok, ok: ``[N]`` bool, certified correctly (not abstained and right label).
    """
    base_radius, radius = np.asarray(base_radius, np.float64), np.asarray(radius, np.float64)
    base_ok = np.asarray(base_ok, bool) & (base_radius > 0)
    ok = np.asarray(ok, bool) & (radius > 0)
    both = base_ok & ok
    ratio = radius[both] / base_radius[both]
    bins = np.bincount(np.searchsorted(np.asarray(EDGES), ratio, side="left"), minlength=len(EDGES) + 1)
    return [int((base_ok & ~ok).sum()), *[int(b) for b in bins], int((ok & ~base_ok).sum())]


def _view(d: dict, want: str):
    """(predict, radius) of the view of kind ``want`` in a loaded file, else the prefix."""
    for kind, pred, rad in certificate_views(d):
        if kind == want:
            return pred, rad
    return d["predict"], d["radius"]


def compare_to_baseline(baseline_path: str, paths: Sequence[str], labels: Sequence[str] = (),
                        baseline_kind: str = "first-order") -> List[Dict]:
    """One histogram per file of its main certificate against the ``baseline_kind`` view of
    ``baseline_path`` (its prefix if it has none), matched by ``idx``."""
    b = load_results(baseline_path)
    bpred, brad = _view(b, baseline_kind)
    bidx = {int(i): k for k, i in enumerate(b["idx"])}
    out = []
    for j, path in enumerate(paths):
        d = load_results(path)
        keep = [k for k, i in enumerate(d["idx"]) if int(i) in bidx]
        if not keep:
            raise ValueError(f"{path} shares no input (idx) with the baseline {baseline_path}")
        kb = np.array([bidx[int(d["idx"][k])] for k in keep])
        keep = np.array(keep)
        label = labels[j] if j < len(labels) else str(path)
        hist = ratio_histogram(brad[kb], bpred[kb] == b["label"][kb], d["radius"][keep],
                               d["predict"][keep] == d["label"][keep])
        out.append({"label": label, "rows": len(keep), "hist": hist,
                    "kind": ", ".join(sorted(set(d["certificate"].tolist()))) if "certificate" in d else "?"})
    return out


def ratio_table(rows: List[Dict]) -> str:
    """Markdown table of :func:`compare_to_baseline` rows."""
    head = ["label", "certificate", "rows", *HEAD]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([r["label"], r["kind"], str(r["rows"]), *map(str, r["hist"])]) + " |")
    lines += ["", "Counts of inputs by radius ratio method / baseline, over inputs both certify correctly; "
              "'baseline only' and 'method only' count inputs only one of them certifies correctly."]
    return "\n".join(lines) + "\n"


def plot_ratio_histograms(rows: List[Dict], out_png: str, title: str = None) -> None:
    """Grouped bars of :func:`compare_to_baseline` rows (log count axis), saved as PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(HEAD))
    width = 0.8 / max(1, len(rows))
    for j, r in enumerate(rows):
        ax.bar(x + (j - (len(rows) - 1) / 2) * width, np.maximum(r["hist"], 0.5), width, label=r["label"])
    ax.set_xticks(x)
    ax.set_xticklabels(HEAD, rotation=30, ha="right", fontsize="small")
    ax.set_yscale("log")
    ax.set_ylim(0.5, None)
    ax.set_ylabel("inputs (log scale)")
    ax.grid(True, axis="y", alpha=0.4)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(str(out_png), dpi=120)
