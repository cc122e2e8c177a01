"""Certified volume (O_CA) views of result files (Tecot et al. §4.1, §5.1-§5.2 and App. B.1).

* certified accuracy at ``a``: the share of inputs certified correctly with
  ``O_CA >= a`` (the complementary CDF the paper plots);
* mean O_CA over the correctly certified inputs, beside the clean accuracy;
* the "blanket" filter that thins the (accuracy, mean O_CA) points of a sweep;
* plots of both.

Anisotropic files carry an ``o_ca`` column; for an isotropic (fixed-sigma
Gaussian) file ``O_CA = D log(radius)``, D from ``dim`` or from the dataset named
in the file's sidecar, so both lie on one axis.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..stats import ellipsoid
from .results import load_results


def isotropic_log_volume(radius, dim: int) -> np.ndarray:
    """``D log(radius)`` ``[B]`` (``-inf`` where radius is 0), lowered like :func:`ellipsoid.log_volume`."""
    return ellipsoid.log_volume(np.asarray(radius, dtype=np.float64), ellipsoid.SigmaSummary(np.ones(int(dim))))


def _dim_of(path) -> Optional[int]:
    side = str(path) + ".json"
    if not os.path.exists(side):
        return None
    with open(side) as f:
        cfg = json.load(f).get("config", {})
    shape = cfg.get("sigma_shape")
    if shape:
        return int(np.prod(shape))
    if cfg.get("dataset"):
        from .. import data

        try:
            return int(np.prod(data.input_shape(cfg["dataset"])))
        except ValueError:
            return None
    return None


def volume_summary(path, label: Optional[str] = None, dim: Optional[int] = None) -> Dict:
    """``{label, path, kind, rows, clean_accuracy, mean_o_ca, o_ca [B], correct [B]}`` of one result file."""
    d = load_results(path)
    if "o_ca" in d:
        o, kind = d["o_ca"], "anisotropic"
    else:
        if "norm" in d and set(d["norm"].tolist()) - {"l2"}:
            raise ValueError(f"{path}: O_CA needs Gaussian L2 certificates, the file has norm {set(d['norm'])}")
        dim = dim or _dim_of(path)
        if not dim:
            raise ValueError(f"{path}: no o_ca column and no input dimension (pass --dim, or keep the sidecar)")
        o, kind = isotropic_log_volume(d["radius"], dim), "isotropic"
    correct = (d["correct"] == 1) & (d["predict"] >= 0)
    return {"label": label or Path(path).stem, "path": str(path), "kind": kind, "rows": int(o.size),
            "clean_accuracy": float(correct.mean()) if o.size else 0.0,
            "mean_o_ca": float(o[correct].mean()) if correct.any() else float("nan"), "o_ca": o, "correct": correct}


def certified_accuracy_at_volume(o_ca, correct, levels) -> np.ndarray:
    """Share of inputs with ``correct`` and ``O_CA >= a`` for each ``a`` of ``levels`` ``[k]``."""
    o, c = np.asarray(o_ca, np.float64), np.asarray(correct, bool)
    levels = np.atleast_1d(np.asarray(levels, np.float64))
    if o.size == 0:
        return np.zeros(levels.shape)
    return np.array([np.count_nonzero(c & (o >= a)) / o.size for a in levels])


def blanket_filter(accuracy: Sequence[float], volume: Sequence[float], variant: str = "text") -> List[int]:
    """Indices of the points kept by the blanket filter, in order of decreasing accuracy.

    ``"text"``: keep a point when its volume lies outside the [min, max] of the
    volumes kept so far. ``"code"`` (the authors' plots): points whose volume is
    below the most accurate point's are dropped, the next most accurate is kept
    unconditionally, then a point only if its volume exceeds all kept ones.
    """
    if variant not in ("text", "code"):
        raise ValueError(f"variant must be 'text' or 'code', got {variant!r}")
    acc, vol = np.asarray(accuracy, np.float64), np.asarray(volume, np.float64)
    order = [int(i) for i in np.argsort(-acc, kind="stable") if np.isfinite(vol[i])]
    kept: List[int] = []
    for i in order:
        if not kept:
            kept.append(i)
        elif variant == "code":
            if vol[i] >= vol[kept[0]] and (len(kept) < 2 or vol[i] > vol[kept].max()):
                kept.append(i)
        elif vol[i] > vol[kept].max() or vol[i] < vol[kept].min():
            kept.append(i)
    return kept


def plot_volume_curves(summaries: List[Dict], out_png, title: Optional[str] = None) -> None:
    """Certified accuracy against O_CA (exact step curves), anisotropic solid, isotropic dashed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    finite = np.concatenate([s["o_ca"][np.isfinite(s["o_ca"]) & s["correct"]] for s in summaries] + [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    pad = 0.05 * max(hi - lo, 1.0)
    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for s in summaries:
        knots = np.unique(s["o_ca"][s["correct"] & np.isfinite(s["o_ca"])])
        xs = np.concatenate([[lo - pad], knots, [hi + pad]])
        ax.step(xs, certified_accuracy_at_volume(s["o_ca"], s["correct"], xs), where="pre",
                linestyle="-" if s["kind"] == "anisotropic" else "--", linewidth=1.4,
                label=f"{s['label']} ({s['kind']}, {s['rows']} inputs)")
    ax.set_xlabel("O_CA = sum log sigma_i + D log R (log certified volume)")
    ax.set_ylabel("certified accuracy")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left", fontsize="small", framealpha=0.85)
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(str(out_png), dpi=120)


def plot_accuracy_vs_volume(record: List[Dict], out_png, title: Optional[str] = None, variant: str = "text") -> None:
    """Fig. 2 of the paper from a fit-sigma record: held-out clean accuracy against mean O_CA,
    one point per (c0, sub-epoch); isotropic (sub-epoch 0) and fitted points, each thinned by
    :func:`blanket_filter` (all points faint behind)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for iso, name, marker in ((True, "isotropic (sigma = c0)", "s"), (False, "fitted sigma", "o")):
        pts = [r for r in record if bool(r["sub_epoch"] == 0) == iso]
        if not pts:
            continue
        acc = np.array([r["val_accuracy"] for r in pts])
        vol = np.array([r["val_mean_o_ca"] for r in pts])
        ax.scatter(vol, acc, marker=marker, s=12, alpha=0.25, color="C0" if iso else "C1")
        keep = sorted(blanket_filter(acc, vol, variant), key=lambda i: vol[i])
        ax.plot(vol[keep], acc[keep], marker=marker, color="C0" if iso else "C1", label=name)
    ax.set_xlabel("mean O_CA of correct held-out inputs")
    ax.set_ylabel("held-out clean accuracy")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left", fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(str(out_png), dpi=120)
