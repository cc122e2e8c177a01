"""Data-dependent randomized smoothing (Alfarra et al., UAI 2022; Alg. 1, Sec. 3.5).

For every input x: sigma_x* = OptimizeSigma(x) (:mod:`smoothcert.sigma`, its own
noise stream), Cohen's CERTIFY at sigma_x* with fresh, independent selection and
estimation draws, then the memory (:mod:`.memory`) turns that per-input
certificate into the **memory-based certificate** -- the only form in which the
paper certifies a data-dependent sigma. Beside it every row carries the
unadjusted data-dependent certificate and the plain **fixed-sigma** certificate
at sigma0 (the same draws as ``--sigma-mode fixed --sigma sigma0``), which alone
is a certificate of a fixed smoothed classifier.

Wraps any Monte-Carlo family whose noise is differentiable in sigma (Gaussian:
L2 balls; uniform: L1 balls, App. G), selected by ``--sigma-mode ddrs``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .. import ops
from ..sigma import OptimizeSigma
from ..engine import one_input
from .family import Budget, SmoothingFamily, register_sigma_mode, require
from .monte_carlo import MonteCarloFamily
from .memory import Memory, MemoryResult
from .results import CertifyResult
from .sequential import (SPLIT_REFUSAL, Sequential, certify_checked, check_dataset_rule, labelled, samples_used,
                         wrapper_columns, wrapper_fields)


@dataclass
class DdrsResult:
    """Per-input results of :meth:`DataDependentSmooth.certify_batch` (CPU, length B).

    Attributes:
        prediction, radius: the memory-based certificate (``certificate == "memory"``).
        memory: the memory's resolution (case, partner) of each input.
        data_dependent: the unadjusted :class:`CertifyResult` at sigma* (``sigma`` = sigma*).
        fixed: the :class:`CertifyResult` at sigma0 (``certificate == "fixed-sigma"``).
        sigma_star: ``[B]`` float32 sigma*; clipped: ``[B]`` steps where sigma hit its floor.
        seconds: ``[B]`` wall time of everything above.
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    memory: MemoryResult
    data_dependent: CertifyResult
    fixed: CertifyResult
    sigma_star: torch.Tensor
    clipped: torch.Tensor
    seconds: torch.Tensor
    certificate: str = "memory"
    norm: str = "l2"
    sequential: Optional[Sequential] = None

    COLUMNS = {"certificate": str, "norm": str, "memory_case": str, "memory_partner": int, "dd_predict": int,
               "dd_radius": float, "dd_certificate": str, "sigma_star": float, "dd_count_a": int,
               "dd_pa_lower": float, "fixed_predict": int, "fixed_radius": float, "fixed_certificate": str,
               "sigma0": float, "fixed_count_a": int, "fixed_pa_lower": float, "n": int, "sigma_clipped": int}

    def fields(self, k: int) -> List[Any]:
        dd, fx = self.data_dependent, self.fixed
        return [self.certificate, self.norm, self.memory.case[k], int(self.memory.partner[k]),
                int(dd.prediction[k]), repr(float(dd.radius[k])), labelled("data-dependent", dd),
                repr(float(self.sigma_star[k])), int(dd.count_a[k]), repr(float(dd.pa_lower[k])),
                int(fx.prediction[k]), repr(float(fx.radius[k])), labelled("fixed-sigma", fx),
                repr(float(fx.sigma[k])), int(fx.count_a[k]), repr(float(fx.pa_lower[k])), samples_used(dd, k),
                int(self.clipped[k])] + wrapper_fields(self.sequential, k, dd, fx)

    @classmethod
    def column_types(cls, sequential: Optional[Sequential]) -> Dict[str, type]:
        """:attr:`COLUMNS`, and a sequential run's (``n`` is then the data-dependent certificate's samples)."""
        return {**cls.COLUMNS, **wrapper_columns(sequential, "fixed")}


@dataclass
class _PerInput:
    """A group's certificates before the memory step (CPU; picklable, so another process can
    compute it): at sigma0, at sigma*, sigma* ``[B]``, its clipped steps ``[B]``, and the seconds."""

    fixed: Any
    dd: Any
    sigma: torch.Tensor
    clipped: torch.Tensor
    seconds: float


@register_sigma_mode("ddrs")
class DataDependentSmooth(SmoothingFamily):
    """Data-dependent sigma with the memory-based certificate, around a Monte-Carlo family.

    Args:
        base: the family at sigma0 (:class:`smoothcert.Smooth` or
            :class:`smoothcert.UniformSmooth`); its sigma is sigma0, its seed keys all draws.
        optimizer: :class:`smoothcert.sigma.OptimizeSigma` (K, lr, n, clamps).
        memory: a :class:`Memory` to start from (default: empty, created at the
            first input with the base family's norm); it keeps its own tolerance and case-A rule.
        memory_tol, case_a: the memory's tolerance and case-A rule when it is created here.
        memory_source: description of a starting memory, for the sidecar.
        memory_out: path where :meth:`finish` saves the memory.
        sequential: a :class:`~smoothcert.certify.sequential.Sequential` for both CERTIFY runs
            (at sigma* and at sigma0; the memory step then takes the sequential certificate).

    Inputs are resolved against the memory in the order they are certified (a
    dataset run: increasing dataset index).
    """

    ORDERED = True  # the memory resolves each input against the ones before it

    def __init__(self, base: MonteCarloFamily, optimizer: Optional[OptimizeSigma] = None, *, memory: Optional[Memory] = None,
                 memory_tol: float = 1e-6, case_a: str = "min", memory_source: Optional[str] = None,
                 memory_out: Optional[str] = None, sequential: Optional[Sequential] = None):
        require(base, "data-dependent sigma", sigma_gradient=True)
        if isinstance(base.sigma, torch.Tensor) and base.sigma.numel() != 1:
            raise ValueError("the base family's sigma is sigma0, one number")
        self.base = base
        self.sigma0 = float(base.sigma)
        self.optimizer = optimizer or OptimizeSigma()
        self.memory = memory
        # A memory given to continue from keeps its own tolerance and case-A rule.
        self.memory_tol, self.case_a = (memory.tol, memory.case_a) if memory is not None else (float(memory_tol),
                                                                                                case_a)
        self.memory_source, self.memory_out = memory_source, memory_out
        self.NORM = base.NORM
        self.sigma_stars: List[float] = []
        self.flips = 0
        self.sequential = None
        if sequential is not None:
            base.check_sequential(sequential)
            self.sequential = sequential
        self.samples: List[int] = []

    # ----------------------------------------------------------------- public API

    def certify_batch(self, X: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int, *,
                      indices=None, sequential: Optional[Sequential] = None) -> DdrsResult:
        """Certifies ``X`` ``[B, *S]`` (resolved against the memory in order, then stored);
        ``sequential`` (default: the one given at construction) stops each CERTIFY's estimation
        once decided, ``n`` being n_max."""
        base = self.base
        n0, n, alpha, batch_size = base.check_budget(n0, n, alpha, batch_size)
        seq = sequential if sequential is not None else self.sequential
        if seq is not None:
            base.check_sequential(seq)
        X, ids, table0 = base.prepare(X, indices)
        return self._resolve(X, ids, self._per_input(X, ids, table0, n0, n, alpha, batch_size, seq), seq)

    def _per_input(self, X, ids, table0, n0, n, alpha, batch_size, seq) -> "_PerInput":
        """Everything of a group that does not read the memory (checked inputs ``X`` ``[B, *S]``)."""
        base = self.base
        t0 = time.perf_counter()
        fixed = certify_checked(base, X, ids, table0, n0, n, alpha, batch_size, seq)
        opt = self.optimizer(base.base_classifier, X, self.sigma0, ids=ids, seed=base.seed, noise=base.NOISE,
                             batch_size=batch_size, clamp_inputs=base.clamp)
        table = opt.sigma.to(X.device).view(-1, 1)  # [B, 1]: per input
        ops.check_sigma(table)
        dd = certify_checked(base, X, ids, table, n0, n, alpha, batch_size, seq)
        return _PerInput(fixed=fixed, dd=dd, sigma=opt.sigma.cpu(), clipped=opt.clipped.cpu(),
                         seconds=time.perf_counter() - t0)

    def _resolve(self, X, ids, part: "_PerInput", seq) -> DdrsResult:
        """The memory step of a group, after every group before it (dataset order)."""
        t0 = time.perf_counter()
        fixed, dd = part.fixed, part.dd
        if self.memory is None:
            self.memory = Memory(X.shape[1:], norm=self.NORM, tol=self.memory_tol, case_a=self.case_a)
        mem = self.memory.query(X, dd.prediction, dd.radius, ids.cpu())
        B = X.shape[0]
        seconds = torch.full((B,), (part.seconds + time.perf_counter() - t0) / max(1, B), dtype=torch.float64)
        self.sigma_stars += part.sigma.tolist()
        self.flips += int((dd.prediction != fixed.prediction).sum())
        self.samples += [samples_used(dd, k) + samples_used(fixed, k) for k in range(B)]
        return DdrsResult(prediction=mem.prediction, radius=mem.radius, memory=mem, data_dependent=dd, fixed=fixed,
                          sigma_star=part.sigma, clipped=part.clipped, seconds=seconds, norm=self.NORM,
                          sequential=seq)

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int, *,
                index: Optional[int] = None):
        """One input ``S``: ``(class, radius)`` of the memory-based certificate."""
        res = self.certify_batch(one_input(x), n0, n, alpha, batch_size,
                                 indices=self.base.input_index(index))
        return int(res.prediction[0]), float(res.radius[0])

    # ----------------------------------------------------------- family interface

    def column_types(self) -> Dict[str, type]:
        return DdrsResult.column_types(self.sequential)

    def certify_group(self, X, ids, budget: Budget) -> DdrsResult:
        return self.certify_batch(X, budget.n0, budget.n, budget.alpha, budget.batch_size, indices=ids)

    def certify_unordered(self, X, ids, budget: Budget) -> "_PerInput":
        base = self.base
        n0, n, alpha, batch_size = base.check_budget(budget.n0, budget.n, budget.alpha, budget.batch_size)
        X, ids, table0 = base.prepare(X, ids)
        return self._per_input(X, ids, table0, n0, n, alpha, batch_size, self.sequential)

    def resolve_ordered(self, X, ids, partial: "_PerInput") -> DdrsResult:
        X, ids, _ = self.base.prepare(X, ids)
        return self._resolve(X, ids, partial, self.sequential)

    def group_size(self, budget: Budget) -> int:
        if self.sequential is not None:
            # Inputs stop at different times: a group of several keeps the scheduler's batches
            # full (the memory resolves them in dataset order all the same).
            return max(self.base.group_size(budget), 4 * self.sequential.slots(budget.batch_size))
        return self.base.group_size(budget)

    def with_sequential(self, sequential: Sequential) -> "DataDependentSmooth":
        self.base.check_sequential(sequential)
        check_dataset_rule(sequential)
        self.sequential = sequential
        return self

    def validate(self, budget: Budget) -> None:
        self.base.validate(budget)

    def with_sample_split(self, split) -> "DataDependentSmooth":
        if self.sequential is not None:
            raise ValueError(SPLIT_REFUSAL)
        # OptimizeSigma's few draws run whole on every process (the same on each).
        self.base.with_sample_split(split)
        return self

    def generator(self) -> str:
        return self.base.generator() + "; sigma optimised on its own stream (ops.SIGMA_OPT_STREAM)"

    def config(self, budget: Budget) -> Dict[str, Any]:
        out = {**self.base.config(budget), "sigma_mode": "ddrs", "ddrs": self.optimizer.config(),
               "memory": {"tol": self.memory_tol, "case_a": self.case_a, "order": "as certified (dataset index)",
                          "initial": self.memory_source}}
        if self.sequential is not None:
            out["sequential"] = self.sequential.config(budget.n, budget.alpha)
        return out

    def resume(self, rows: List[Dict[str, str]], inputs) -> None:
        """Rebuilds the memory from the rows already written (their final classes and radii)."""
        keep = [r for r in rows if r["memory_case"] not in ("duplicate", "abstain")]
        if self.memory is None and rows:
            X0 = inputs([int(rows[0]["idx"])])
            self.memory = Memory(X0.shape[1:], norm=self.NORM, tol=self.memory_tol, case_a=self.case_a)
        for r in rows:
            self.memory.counts[r["memory_case"]] += 1
            self.sigma_stars.append(float(r["sigma_star"]))
            self.flips += int(r["dd_predict"] != r["fixed_predict"])
            self.samples.append(int(r["n"]) + int(r.get("fixed_n") or r["n"]))
        for i0 in range(0, len(keep), 256):
            part = keep[i0:i0 + 256]
            X = inputs([int(r["idx"]) for r in part])
            for k, r in enumerate(part):
                self.memory.insert(X[k], int(r["predict"]), float(r["radius"]), int(r["idx"]))

    def summary(self) -> Dict[str, Any]:
        if self.memory is None:
            return {}
        s = np.asarray(self.sigma_stars, dtype=np.float64)
        total = max(1, len(s))
        out = {f"memory_{k}": v for k, v in self.memory.counts.items()}
        out.update(stored=len(self.memory), sigma_star_mean=float(s.mean()) if s.size else float("nan"),
                   sigma_star_min=float(s.min()) if s.size else float("nan"),
                   sigma_star_max=float(s.max()) if s.size else float("nan"),
                   flip_rate=self.flips / total)
        if self.sequential is not None and self.samples:
            out["mean_samples"] = round(float(np.mean(self.samples)), 1)  # estimation, both certificates
        return out

    # Options of --sigma-mode ddrs and their defaults (None on the parser, so that giving one
    # without --sigma-mode ddrs can be refused instead of silently ignored).
    OPTION_DEFAULTS = {"ddrs_steps": 100, "ddrs_lr": 1e-4, "ddrs_samples": 1, "ddrs_fixed_class": False,
                       "ddrs_min_sigma": 1e-3, "memory_tol": 1e-6, "memory_case_a": "min", "memory_in": None,
                       "memory_out": None}

    @classmethod
    def add_arguments(cls, parser) -> None:
        d = cls.OPTION_DEFAULTS
        g = parser.add_argument_group("data-dependent sigma (--sigma-mode ddrs)")
        g.add_argument("--ddrs-steps", type=int, help=f"K, gradient steps of OptimizeSigma ({d['ddrs_steps']})")
        g.add_argument("--ddrs-lr", type=float, help=f"alpha, the step size ({d['ddrs_lr']})")
        g.add_argument("--ddrs-samples", type=int, help=f"n, noise draws per input per step ({d['ddrs_samples']})")
        g.add_argument("--ddrs-fixed-class", action="store_true", default=None,
                       help="keep sigma0's top class (Eq. 2) instead of re-selecting the top 2 every step")
        g.add_argument("--ddrs-min-sigma", type=float, help=f"floor of sigma, counted when hit ({d['ddrs_min_sigma']})")
        g.add_argument("--memory-tol", type=float, help=f"the memory's conservative tolerance tau ({d['memory_tol']})")
        g.add_argument("--memory-case-a", choices=["min", "listing"],
                       help="case A radius: min(R, R_i - D) (paper text; default) or R_i - D (its listing)")
        g.add_argument("--memory-in", help="start from this saved memory (smoothcert memory file)")
        g.add_argument("--memory-out", help="save the memory here at the end")

    @classmethod
    def options_given(cls, args) -> List[str]:
        """The --sigma-mode ddrs options set on the command line (to refuse them in fixed mode)."""
        return ["--" + k.replace("_", "-") for k in cls.OPTION_DEFAULTS if getattr(args, k, None) is not None]

    @classmethod
    def from_args(cls, args, make_base) -> "DataDependentSmooth":
        base = make_base()
        o = {k: (getattr(args, k) if getattr(args, k, None) is not None else v)
             for k, v in cls.OPTION_DEFAULTS.items()}
        opt = OptimizeSigma(steps=o["ddrs_steps"], lr=o["ddrs_lr"], samples=o["ddrs_samples"],
                            fixed_class=o["ddrs_fixed_class"], min_sigma=o["ddrs_min_sigma"])
        memory, source = None, None
        if o["memory_in"]:
            import hashlib

            memory = Memory.load(o["memory_in"], num_classes=getattr(base, "num_classes", None))
            with open(o["memory_in"], "rb") as f:
                source = f"{o['memory_in']} sha256:{hashlib.sha256(f.read()).hexdigest()}"
            if memory.norm != base.NORM:
                raise ValueError(f"--memory-in holds {memory.norm} balls but --noise {base.NOISE} certifies "
                                 f"{base.NORM}")
            for key, have in (("memory_tol", memory.tol), ("memory_case_a", memory.case_a)):
                if getattr(args, key, None) is not None and getattr(args, key) != have:
                    raise ValueError(f"--{key.replace('_', '-')} {getattr(args, key)} differs from the "
                                     f"--memory-in memory's {have!r}")
        return cls(base, opt, memory=memory, memory_tol=o["memory_tol"], case_a=o["memory_case_a"],
                   memory_source=source, memory_out=o["memory_out"])

    def finish(self) -> None:
        if self.memory_out and self.memory is not None:
            self.memory.save(self.memory_out)
