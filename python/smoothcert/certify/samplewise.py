"""Sample-wise randomized smoothing with robust regions (Wang et al.,
"Pretrain-to-Finetune Adversarial Training via Sample-wise Randomized Smoothing", Secs. 3-4).

Two phases over the whole set of inputs (``--sigma-mode samplewise``):

1. **per input** (resumable row by row): sigma_j* = the grid sigma with the
   largest selection radius (Eq. 7, no label, :func:`smoothcert.sigma.samplewise.select_sigma`,
   its own noise stream), then Cohen's CERTIFY at sigma_j* with fresh selection
   and estimation draws, and the plain **fixed-sigma** certificate at sigma0;
2. **transductive** (once every input is done): the conflict graph of the
   selection radii orders the points, robust regions are allocated
   (:mod:`.regions`: the greedy scan with inheritance and capping, or the LP),
   and points that inherit another sigma are certified afresh at it (deferred:
   inheriting points never found regions, so this changes no region).

The certificate is labelled ``transductive-greedy`` or ``transductive-lp``: it is
valid for the classifier G_S built after seeing the clean inputs S (and their
order), against perturbations applied after that -- not an inductive
certificate like the fixed-sigma one printed beside it (docs/soundness.md).
Labels never enter allocation: :meth:`SampleWiseSmooth.allocate` never sees them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from .. import ops
from ..sigma.samplewise import check_grid_values, select_sigma, sigma_grid
from ..utils import progress as progress_bar
from . import regions as rg
from .family import Budget, SmoothingFamily, register_sigma_mode, require
from .monte_carlo import MonteCarloFamily
from .results import CertifyResult
from .sequential import (Sequential, certify_checked, check_dataset_rule, samples_used, wrapper_columns,
                         wrapper_fields)


@dataclass
class StageResult:
    """Phase-1 results of a group of inputs (CPU, length B): the own-sigma certificate
    in the prefix, the fixed-sigma one and the selection beside it."""

    prediction: torch.Tensor
    radius: torch.Tensor
    seconds: torch.Tensor
    own: CertifyResult
    fixed: CertifyResult
    sigma_star: torch.Tensor
    select_radius: torch.Tensor
    t_select: torch.Tensor
    t_certify: torch.Tensor
    t_fixed: torch.Tensor
    sequential: Optional[Sequential] = None

    COLUMNS = {"sigma_star": float, "select_radius": float, "own_count_a": int, "own_pa_lower": float,
               "fixed_predict": int, "fixed_radius": float, "fixed_count_a": int, "fixed_pa_lower": float,
               "sigma0": float, "n": int, "t_select": float, "t_certify": float, "t_fixed": float}

    def fields(self, k: int) -> List[Any]:
        o, f = self.own, self.fixed
        return [repr(float(self.sigma_star[k])), repr(float(self.select_radius[k])), int(o.count_a[k]),
                repr(float(o.pa_lower[k])), int(f.prediction[k]), repr(float(f.radius[k])), int(f.count_a[k]),
                repr(float(f.pa_lower[k])), repr(float(f.sigma[k])), samples_used(o, k), repr(float(self.t_select[k])),
                repr(float(self.t_certify[k])), repr(float(self.t_fixed[k]))] + wrapper_fields(self.sequential, k, o, f)


@dataclass
class TransductiveResult:
    """Final per-input rows (aligned with the phase-1 rows given to :meth:`SampleWiseSmooth.allocate`)."""

    prediction: torch.Tensor
    radius: torch.Tensor
    seconds: torch.Tensor
    rows: List[List[Any]]

    COLUMNS = {"certificate": str, "norm": str, "rank": int, "region": int, "region_case": str,
               "region_radius": float, "radius_cap": float, "sigma_used": float, "sigma_star": float,
               "select_radius": float, "degree": int, "own_class": int, "own_radius": float, "used_count_a": int,
               "used_pa_lower": float, "fixed_predict": int, "fixed_radius": float, "fixed_certificate": str,
               "sigma0": float, "fixed_count_a": int, "fixed_pa_lower": float, "n": int, "capped": int,
               "inherited": int}

    def fields(self, k: int) -> List[Any]:
        return self.rows[k]


@register_sigma_mode("samplewise")
class SampleWiseSmooth(SmoothingFamily):
    """Sample-wise sigma over a grid, certified with transductive robust regions.

    Args:
        base: Gaussian :class:`smoothcert.Smooth` at sigma0 (the fixed-sigma certificate
            beside); its classifier, seed and dtype serve every draw.
        grid: ``[T]`` candidate sigmas (:func:`smoothcert.sigma.samplewise.sigma_grid`).
        select_samples: draws per (input, grid sigma) for the selection (paper: 1,000).
        regions: ``"greedy"`` (Alg. 2) or ``"lp"`` (Eq. 10).
        order: greedy order, ``"ascending"`` degree (paper), ``"descending"`` or ``"index"``.
        lp_time_limit: seconds HiGHS may take (None: no limit).
        check: verify disjointness and containment with exact distances after allocation.
        sequential: a :class:`~smoothcert.certify.sequential.Sequential` for every CERTIFY (own
            sigma, sigma0, the deferred ones); the selection over the grid keeps its fixed draws.
    """

    TRANSDUCTIVE = True
    NORM = "l2"

    def __init__(self, base: MonteCarloFamily, grid, *, select_samples: int = 1000, regions: str = "greedy",
                 order: str = "ascending", lp_time_limit: Optional[float] = None, check: bool = True,
                 sequential: Optional[Sequential] = None):
        require(base, "sample-wise smoothing", noise="gaussian", norm="l2")
        if isinstance(base.sigma, torch.Tensor) and base.sigma.numel() != 1:
            raise ValueError("the base family's sigma is sigma0 of the fixed-sigma certificate, one number")
        if regions not in ("greedy", "lp"):
            raise ValueError(f"regions must be 'greedy' or 'lp', got {regions!r}")
        if order not in rg.ORDERS:
            raise ValueError(f"region order must be one of {rg.ORDERS}, got {order!r}")
        if int(select_samples) < 1:
            raise ValueError(f"select_samples must be >= 1, got {select_samples}")
        self.base, self.grid = base, check_grid_values(grid)
        self.select_samples, self.regions, self.order = int(select_samples), regions, order
        self.lp_time_limit, self.check = lp_time_limit, check
        self.certificate = f"transductive-{regions}"
        self.stats: Dict[str, Any] = {}
        self.sequential = None
        if sequential is not None:
            self.with_sequential(sequential)

    def with_sequential(self, sequential: Sequential) -> "SampleWiseSmooth":
        self.base.check_sequential(sequential)
        check_dataset_rule(sequential)
        self.sequential = sequential
        return self

    # ----------------------------------------------------------- phase 1

    def stage_column_types(self) -> Dict[str, type]:
        return {**StageResult.COLUMNS, **wrapper_columns(self.sequential, "fixed")}

    def certify_group(self, X, ids, budget: Budget) -> StageResult:
        base = self.base
        n0, n, alpha, batch = base.check_budget(budget.n0, budget.n, budget.alpha, budget.batch_size)
        X, ids, table0 = base.prepare(X, ids)
        B = X.shape[0]
        t0 = time.perf_counter()
        sel = select_sigma(base.sampler(ops.SAMPLEWISE_STREAM, batch), X, ids, self.grid, self.select_samples, alpha, batch)
        t1 = time.perf_counter()
        seq = self.sequential
        own = certify_checked(base, X, ids, sel.sigma.to(X.device, torch.float32).view(B, 1), n0, n, alpha, batch, seq)
        t2 = time.perf_counter()
        fixed = certify_checked(base, X, ids, table0, n0, n, alpha, batch, seq)
        t3 = time.perf_counter()
        per = lambda a, b: torch.full((B,), (b - a) / max(1, B), dtype=torch.float64)  # noqa: E731
        return StageResult(prediction=own.prediction, radius=own.radius, seconds=per(t0, t3), own=own, fixed=fixed,
                           sigma_star=sel.sigma, select_radius=sel.best, t_select=per(t0, t1),
                           t_certify=per(t1, t2), t_fixed=per(t2, t3), sequential=seq)

    def group_size(self, budget: Budget) -> int:
        size = max(1, budget.batch_size // max(self.select_samples, 1))
        if self.sequential is not None:  # inputs stop at different times: keep the scheduler's batches full
            size = max(size, 4 * self.sequential.slots(budget.batch_size))
        return size

    def validate(self, budget: Budget) -> None:
        self.base.validate(budget)

    def with_sample_split(self, split):
        raise ValueError("sample-wise sigma's regions are allocated once, by one process, with deferred "
                         "certificates of their own: its samples are not split across processes; shard the inputs "
                         "instead (leave out --split-samples)")

    # ----------------------------------------------------------- phase 2

    def column_types(self) -> Dict[str, type]:
        extra = {}
        if self.sequential is not None:  # the stage's sequential columns, and the samples of the certificate used
            extra = {**wrapper_columns(self.sequential, "fixed"), "used_n": int}
        return {**TransductiveResult.COLUMNS, **extra}

    def allocate(self, rows: List[Dict[str, str]], inputs: Callable[[List[int]], torch.Tensor],
                 budget: Budget) -> TransductiveResult:
        """Regions over the phase-1 ``rows`` (label-free dicts, one per input, in dataset
        order), the deferred certificates, and the final rows."""
        if any("label" in r or "correct" in r for r in rows):
            raise ValueError("allocation must not see labels")
        ids = [int(r["idx"]) for r in rows]
        n = len(ids)
        own_pred = np.array([int(r["predict"]) for r in rows], dtype=np.int64)
        own_r = np.array([float(r["radius"]) for r in rows])
        sel_r = np.array([float(r["select_radius"]) for r in rows])
        sig_star = np.array([float(r["sigma_star"]) for r in rows])
        abstain = own_pred < 0
        X = inputs(ids)
        t0 = time.perf_counter()
        reach = np.maximum(sel_r, own_r)
        graph = rg.conflict_graph(X, reach)
        sel_graph = graph.subgraph(rg.within(graph, sel_r))
        fin_graph = graph.subgraph(rg.within(graph, own_r, bound="lo"))
        t_graph = time.perf_counter() - t0
        if self.regions == "greedy":
            alloc = rg.greedy_regions(own_r, abstain, fin_graph, rg.allocation_order(sel_graph.degree, self.order),
                                      self.order)
        else:
            alloc = rg.lp_regions(own_r, abstain, fin_graph, time_limit=self.lp_time_limit)
        label = self.certificate if self.sequential is None else f"{self.certificate}-{self.sequential.label()}"
        extra = list(wrapper_columns(self.sequential, "fixed"))
        fixed_label = "fixed-sigma" if self.sequential is None else f"fixed-sigma-{self.sequential.label()}"
        final_pred, final_r, used, t_deferred, deferred = self._finish(rows, X, ids, alloc, own_pred, own_r, sig_star,
                                                                      budget)
        if self.check:
            rg.check_regions(X, alloc, final_r)
        capped = np.array([alloc.case[k] == rg.CAPPED or bool(used["capped"][k]) for k in range(n)])
        out_rows = []
        for k, r in enumerate(rows):
            g = int(alloc.region[k])
            out_rows.append([
                label, "l2", int(alloc.rank[k]), ids[g] if g >= 0 else -1, alloc.case[k],
                repr(float(alloc.rho[g]) if g >= 0 else 0.0), repr(float(alloc.radius_cap[k])),
                repr(float(used["sigma"][k])), r["sigma_star"], r["select_radius"], int(sel_graph.degree[k]),
                int(own_pred[k]), r["radius"], int(used["count_a"][k]), repr(float(used["pa_lower"][k])),
                r["fixed_predict"], r["fixed_radius"], fixed_label, r["sigma0"], r["fixed_count_a"],
                r["fixed_pa_lower"], r["n"], int(capped[k]),
                int(alloc.case[k] == rg.INHERITED)] + [r[c] for c in extra]
                + ([int(used["n"][k])] if self.sequential is not None else []))
        seconds = np.array([float(r["time"]) for r in rows]) + (t_graph + alloc.seconds + t_deferred) / max(1, n)
        self.stats = self._summary(rows, alloc, sel_graph, fin_graph, final_r, own_r, own_pred, capped, deferred,
                                   t_graph, t_deferred)
        return TransductiveResult(prediction=torch.from_numpy(final_pred), radius=torch.from_numpy(final_r),
                                  seconds=torch.from_numpy(seconds), rows=out_rows)

    def _finish(self, rows, X, ids, alloc: rg.Allocation, own_pred, own_r, sig_star, budget: Budget):
        """Final (prediction, radius) of every point, the certificate each used, and the
        deferred certification of the points that inherit another sigma."""
        n = len(rows)
        pred, r = own_pred.copy(), own_r.copy()
        used = {"sigma": sig_star.copy(), "count_a": np.array([int(x["own_count_a"]) for x in rows]),
                "pa_lower": np.array([float(x["own_pa_lower"]) for x in rows]), "capped": np.zeros(n, bool),
                "n": np.array([int(x["n"]) for x in rows])}
        inh = np.flatnonzero(alloc.inherit_from >= 0)
        inh_sigma = sig_star[alloc.inherit_from[inh]] if inh.size else np.zeros(0)
        redo = inh[inh_sigma != sig_star[inh]]  # the same sigma: the phase-1 certificate is that certificate
        t0 = time.perf_counter()
        if redo.size:
            base = self.base
            step = max(1, budget.batch_size // budget.n) * 8
            if self.sequential is not None:
                step = max(step, 4 * self.sequential.slots(budget.batch_size))
            bar = progress_bar(total=int(redo.size), desc="deferred certify", unit="input") if base.progress or \
                redo.size > 50 else None
            for a in range(0, redo.size, step):
                part = redo[a:a + step]
                Xp = X[torch.from_numpy(part)]
                idp = torch.tensor([ids[k] for k in part])
                sig = torch.from_numpy(sig_star[alloc.inherit_from[part]]).float().view(-1, 1).to(Xp.device)
                res = certify_checked(base, *base.prepare(Xp, idp)[:2], sig, budget.n0, budget.n, budget.alpha,
                                      budget.batch_size, self.sequential)
                pred[part], r[part] = res.prediction.numpy(), res.radius.numpy()
                used["n"][part] = [samples_used(res, k) for k in range(part.size)]
                used["count_a"][part], used["pa_lower"][part] = res.count_a.numpy(), res.pa_lower.numpy()
                if bar is not None:
                    bar.update(part.size)
            if bar is not None:
                bar.close()
        t_deferred = time.perf_counter() - t0
        if inh.size:
            used["sigma"][inh] = inh_sigma
        for k in range(n):
            case = alloc.case[k]
            if case in (rg.ABSTAIN, rg.BOUNDARY) or pred[k] < 0:
                pred[k], r[k] = -1, 0.0
            elif case == rg.INHERITED:
                used["capped"][k] = alloc.radius_cap[k] < r[k]
                r[k] = min(r[k], alloc.radius_cap[k])
            else:  # a founder (greedy) or an LP point: its region's radius
                r[k] = min(r[k], alloc.rho[k])
        return pred, r, used, t_deferred, int(redo.size)

    def _summary(self, rows, alloc, sel_graph, fin_graph, final_r, own_r, own_pred, capped, deferred, t_graph,
                 t_deferred):
        cases = {c: alloc.case.count(c) for c in (rg.NEW, rg.CAPPED, rg.INHERITED, rg.ABSTAIN, rg.BOUNDARY)}
        t = {k: float(sum(float(r[k]) for r in rows)) for k in ("t_select", "t_certify", "t_fixed")}
        out = {"certificate": self.certificate, "order": alloc.order if alloc.method == "greedy" else "none (LP)",
               "points": len(rows), **{f"case_{k}": v for k, v in cases.items()},
               "capped": int(capped.sum()),
               "inherited": cases[rg.INHERITED], "deferred_certifications": deferred,
               "selection_graph": sel_graph.stats(), "final_graph": fin_graph.stats(),
               "seconds": {"selection": t["t_select"], "certification": t["t_certify"],
                           "fixed_sigma": t["t_fixed"], "conflict_graph": t_graph, "allocation": alloc.seconds,
                           "deferred": t_deferred},
               "allocated_radius": rg.radius_stats(final_r),
               "overlap_unsound_radius": rg.radius_stats(np.where(own_pred >= 0, own_r, 0.0))}
        if alloc.info:
            out["lp"] = alloc.info
        return out

    def summary(self) -> Dict[str, Any]:
        return dict(self.stats)

    # ----------------------------------------------------------- interface

    def generator(self) -> str:
        return (self.base.generator() + "; grid selection on its own stream (ops.SAMPLEWISE_STREAM), the copies of "
                "an input at every grid sigma sharing their standard-normal draws")

    def config(self, budget: Budget) -> Dict[str, Any]:
        out = {**self.base.config(budget), "sigma_mode": "samplewise", "grid": [float(g) for g in self.grid],
               "select_samples": self.select_samples, "regions": self.regions,
               "order": self.order if self.regions == "greedy" else None, "certificate": self.certificate}
        if self.sequential is not None:
            out["sequential"] = self.sequential.config(budget.n, budget.alpha)
        return out

    def allocation_keys(self) -> List[str]:
        return ["regions", "order", "certificate"]

    OPTION_DEFAULTS = {"sigma_grid": None, "sigma_min": None, "sigma_max": None, "sigma_step": 0.05,
                       "grid_include_min": False, "select_samples": 1000, "regions": "greedy",
                       "region_order": "ascending", "lp_time_limit": None, "no_region_check": False}

    @classmethod
    def add_arguments(cls, parser) -> None:
        g = parser.add_argument_group("sample-wise sigma with robust regions (--sigma-mode samplewise)")
        g.add_argument("--sigma-grid", type=float, nargs="+", help="candidate sigmas (default: multiples of "
                       "--sigma-step in [--sigma-min, --sigma-max], or the checkpoint's grid)")
        g.add_argument("--sigma-min", type=float, help="lower end of the grid range")
        g.add_argument("--sigma-max", type=float, help="upper end of the grid range")
        g.add_argument("--sigma-step", type=float, help="grid spacing (0.05)")
        g.add_argument("--grid-include-min", action="store_true", default=None,
                       help="prepend --sigma-min to the grid when it is not a multiple of the step")
        g.add_argument("--select-samples", type=int, help="draws per input and grid sigma for the selection (1000)")
        g.add_argument("--regions", choices=["greedy", "lp"],
                       help="robust-region allocation: greedy scan (Alg. 2; default) or the transductive LP (Eq. 10)")
        g.add_argument("--region-order", choices=list(rg.ORDERS),
                       help="greedy order: ascending conflict degree (default), descending, or dataset index")
        g.add_argument("--lp-time-limit", type=float, help="seconds HiGHS may take (default: no limit)")
        g.add_argument("--no-region-check", action="store_true", default=None,
                       help="skip the exact check that regions are disjoint and hold their certified balls")

    @classmethod
    def options_given(cls, args) -> List[str]:
        return ["--" + k.replace("_", "-") for k in cls.OPTION_DEFAULTS if getattr(args, k, None) is not None]

    @classmethod
    def from_args(cls, args, make_base) -> "SampleWiseSmooth":
        o = {k: (getattr(args, k) if getattr(args, k, None) is not None else v)
             for k, v in cls.OPTION_DEFAULTS.items()}
        if getattr(args, "sigma", None) is None:
            raise ValueError("--sigma-mode samplewise needs --sigma: sigma0 of the plain fixed-sigma certificate "
                             "written beside the transductive one")
        base = make_base()
        trained = getattr(make_base, "trained", None) or {}
        if o["sigma_grid"] is not None:
            if o["sigma_min"] is not None or o["sigma_max"] is not None:
                raise ValueError("give either --sigma-grid or --sigma-min/--sigma-max, not both")
            grid = check_grid_values(o["sigma_grid"])
        elif o["sigma_min"] is not None or o["sigma_max"] is not None:
            if o["sigma_min"] is None or o["sigma_max"] is None:
                raise ValueError("--sigma-min and --sigma-max go together")
            grid = sigma_grid(o["sigma_min"], o["sigma_max"], o["sigma_step"], include_min=o["grid_include_min"])
        elif trained.get("grid"):
            grid = check_grid_values(trained["grid"])
        else:
            raise ValueError("--sigma-mode samplewise needs a sigma grid: --sigma-grid, or --sigma-min and "
                             "--sigma-max (the checkpoint records none)")
        if o["lp_time_limit"] is not None and o["regions"] != "lp":
            raise ValueError("--lp-time-limit applies to --regions lp")
        if getattr(args, "region_order", None) is not None and o["regions"] == "lp":
            raise ValueError("--region-order applies to --regions greedy (the LP has no order)")
        return cls(base, grid, select_samples=o["select_samples"], regions=o["regions"], order=o["region_order"],
                   lp_time_limit=o["lp_time_limit"], check=not o["no_region_check"])
