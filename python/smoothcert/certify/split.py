"""Splitting noise for L1: randomized SSN and deterministic SSN (DSSN).

Levine & Feizi, "Improved, Deterministic Smoothing for L1 Certified Robustness"
(ICML 2021), Sec. 4 (SSN) and Sec. 4.1 (DSSN). sigma is the RMS of the noise
throughout, ``lambda = sqrt(3) sigma``.

* :class:`SsnSmooth` (``SplitSmooth(deterministic=False)``) -- independent
  splitting noise, Cohen-style Monte Carlo with the L1 radius
  ``2 lambda (pA_lower - 1/2)`` less a discretisation slack of the float sampler
  (:func:`smoothcert.stats.l1.ssn_slack`).
* :class:`SplitSmooth` with ``deterministic=True`` (default) -- DSSN for inputs
  on the grid {0, 1/q, ..., 1}: all ``L = int(2 lambda q)`` split offsets are
  enumerated with the fixed offset vector v (``numpy.random.RandomState(offset_seed)
  .randint(L, size=d)``, C,H,W order), so the smoothed classifier and its
  certificate are exact: no alpha, no failure probability, no abstention, and no
  random draws (``seed``, the Philox key, does not apply).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from .. import ops
from ..ops.dssn_batch import dssn_offsets, dssn_training_offsets
from ..stats import l1 as stats_l1
from ..stats.l1 import dssn_levels
from ..engine import DssnOffsets, Sampler, check_inputs, check_int, check_seed, groups, num_groups, one_input
from ..utils import progress as progress_bar
from .family import Budget, SmoothingFamily, register_family, required_sigma
from .results import CertifyResult
from .uniform import L1MonteCarlo

__all__ = ["SsnSmooth", "SplitSmooth", "DssnResult", "dssn_levels", "dssn_offsets", "dssn_training_offsets"]


@register_family("ssn")
class SsnSmooth(L1MonteCarlo):
    """Randomized splitting noise (SSN) certified by Monte Carlo: inputs in [0, 1];
    arguments as :class:`smoothcert.UniformSmooth`."""

    NOISE = "ssn"
    GENERATOR = "Philox-4x32-10, split values uniform on 2^23 points (smoothcert)"

    def prepare(self, X, indices):
        X, ids, table = super().prepare(X, indices)
        ops.check_unit_interval(X)
        return X, ids, table

    def _slack(self, dim: int, sigma: np.ndarray) -> np.ndarray:
        return stats_l1.ssn_slack(dim, sigma)


@dataclass
class DssnResult:
    """Per-input results of :meth:`SplitSmooth.certify_batch` in DSSN mode (CPU tensors, length B).

    Attributes:
        prediction: ``[B]`` int64 class A with the most votes (ties: lowest index); DSSN never abstains.
        radius: ``[B]`` float64 certified L1 radius K / q (never above it); every grid
            point within this distance, inclusive, gets prediction A.
        grid_radius: ``[B]`` int64 K, the radius in grid steps (exact).
        runner_up: ``[B]`` int64 class B (-1 with one class).
        count_a, count_b: ``[B]`` int64 votes of A and B out of L.
        counts: ``[B, K]`` int64 votes over all L offsets.
        seconds: ``[B]`` float64 wall time.
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    grid_radius: torch.Tensor
    runner_up: torch.Tensor
    count_a: torch.Tensor
    count_b: torch.Tensor
    counts: torch.Tensor
    seconds: torch.Tensor
    levels: int
    q: int
    sigma: float
    offset_seed: int
    certificate: str = "deterministic"
    norm: str = "l1"

    COLUMNS = {"count_a": int, "count_b": int, "runner_up": int, "levels": int, "q": int, "grid_radius": int,
               "sigma": float, "certificate": str, "norm": str}

    @property
    def samples(self) -> torch.Tensor:
        return torch.full_like(self.prediction, self.levels)

    def fields(self, k: int) -> List[Any]:
        """TSV values of :attr:`COLUMNS` for input ``k``."""
        return [int(self.count_a[k]), int(self.count_b[k]), int(self.runner_up[k]), self.levels, self.q,
                int(self.grid_radius[k]), repr(float(self.sigma)), self.certificate, self.norm]


@register_family("dssn")
class SplitSmooth(SmoothingFamily):
    """Splitting-noise smoothing for L1 certificates (Levine & Feizi 2021).

    Args:
        base_classifier: maps ``[N, *S]`` inputs in [0, 1] (raw pixels;
            normalisation inside the model) to ``[N, num_classes]`` logits.
        num_classes: K.
        sigma: RMS of the noise; lambda = sqrt(3) sigma. DSSN uses
            ``L = int(2 lambda q)`` offsets, i.e. lambda rounded down to L / (2q).
        q: grid steps of the inputs (255 for 8-bit images).
        seed: DSSN: seed of the fixed offset vector v (must equal the training
            seed); randomized SSN: the Philox noise seed.
        deterministic: DSSN (exact, grid inputs) if True, else independent SSN
            certified by Monte Carlo.
        quantize: DSSN only: round off-grid inputs to the grid instead of
            refusing them (the certificate is then about the rounded input).
        out_dtype, channels_last, progress: as :class:`smoothcert.Smooth`.
        abstain: randomized SSN only: abstain when pA_lower <= 1/2 (off by default).

    The threat model is the L1 ball in the [0, 1] input space the classifier
    receives (for ImageNet: after resize and centre crop, still 8-bit).
    """

    NORM = "l1"
    DSSN_GENERATOR = "none: all L split offsets enumerated, v = numpy RandomState(offset_seed).randint(L, size=d)"

    def __init__(self, base_classifier: Callable[[torch.Tensor], torch.Tensor], num_classes: int, sigma: float, *,
                 q: int = 255, seed: int = 0, offset_seed: Optional[int] = None, deterministic: bool = True,
                 quantize: bool = False, out_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                 progress: bool = False, abstain: bool = False):
        self.base_classifier = base_classifier
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.q = check_int("q", q, 1)
        self.seed = check_seed(seed)
        self.offset_seed = self._offset_seed(bool(deterministic), self.seed, offset_seed)
        self.deterministic = bool(deterministic)
        self.quantize = bool(quantize)
        self.out_dtype = out_dtype
        self.channels_last = channels_last
        self.progress = progress
        self.next_index = 0
        if self.deterministic:
            if isinstance(sigma, torch.Tensor):
                raise ValueError("DSSN takes one scalar sigma (L = int(2 sqrt(3) sigma q) offsets)")
            self.levels = dssn_levels(sigma, self.q)
            self.sigma = float(sigma)
            if abstain:
                raise ValueError("DSSN never abstains: its prediction and certificate are exact")
            self._mc = None
        else:
            self._mc = SsnSmooth(base_classifier, num_classes, sigma, seed=seed, out_dtype=out_dtype,
                                 channels_last=channels_last, progress=progress, abstain=abstain)
            self.sigma = sigma

    @staticmethod
    def _offset_seed(deterministic: bool, seed: int, offset_seed: Optional[int]) -> Optional[int]:
        if not deterministic:
            if offset_seed is not None:
                raise ValueError("offset_seed keys DSSN's offset vector (deterministic=True); randomized SSN draws "
                                 "its noise from seed")
            return None
        if offset_seed is None:
            if seed:
                # Before offset_seed existed, DSSN read its offset seed from seed: keep those results.
                warnings.warn("SplitSmooth(seed=...) as DSSN's offset seed is deprecated: pass offset_seed= "
                              "(DSSN draws no random noise, so the Philox seed does not apply)",
                              FutureWarning, stacklevel=3)
            return seed
        if seed:
            raise ValueError(f"DSSN draws no random noise: seed={seed} (the Philox key) does not apply; "
                             "offset_seed keys its offset vector")
        return check_seed(offset_seed)

    @property
    def lam(self) -> float:
        """The lambda of the certificate: L / (2q) for DSSN, sqrt(3) sigma otherwise."""
        return self.levels / (2 * self.q) if self.deterministic else float(stats_l1.l1_lambda(self.sigma))

    # ----------------------------------------------------------------- public API

    def certify(self, x: torch.Tensor, n0: Optional[int] = None, n: Optional[int] = None,
                alpha: Optional[float] = None, batch_size: int = 1000, *,
                index: Optional[int] = None) -> Tuple[int, float]:
        """Certifies one input ``S``; returns ``(class, l1_radius)``.

        DSSN: exact; n0, n and alpha do not apply (leave them None).
        Randomized SSN: Cohen's protocol, defaults n0=64, n=100,000, alpha=0.001 (one-sided).
        """
        if self.deterministic:
            self._no_mc_args(n0, n, alpha)
            res = self.certify_batch(one_input(x), batch_size=batch_size, indices=self._index(index))
            return int(res.prediction[0]), float(res.radius[0])
        return self._mc.certify(x, 64 if n0 is None else n0, 100_000 if n is None else n,
                                0.001 if alpha is None else alpha, batch_size, index=index)

    def predict(self, x: torch.Tensor, n: Optional[int] = None, alpha: Optional[float] = None,
                batch_size: int = 1000, *, index: Optional[int] = None) -> int:
        """DSSN: the exact smoothed prediction. Randomized SSN: Cohen's PREDICT
        (defaults n=100,000, alpha=0.001), which may return ``ABSTAIN``."""
        if self.deterministic:
            self._no_mc_args(None, n, alpha)
            return int(self.certify_batch(one_input(x), batch_size=batch_size).prediction[0])
        return self._mc.predict(x, 100_000 if n is None else n, 0.001 if alpha is None else alpha, batch_size,
                                index=index)

    def certify_batch(self, X: torch.Tensor, n0: Optional[int] = None, n: Optional[int] = None,
                      alpha: Optional[float] = None, batch_size: int = 1000, *,
                      indices=None, sequential=None) -> Union[DssnResult, CertifyResult]:
        """Certifies ``X`` ``[B, *S]``: a :class:`DssnResult` (DSSN) or a
        :class:`smoothcert.CertifyResult` with ``norm == "l1"`` (randomized SSN; ``sequential=``
        as :meth:`smoothcert.Smooth.certify_batch`)."""
        if not self.deterministic:
            return self._mc.certify_batch(X, 64 if n0 is None else n0, 100_000 if n is None else n,
                                          0.001 if alpha is None else alpha, batch_size, indices=indices,
                                          sequential=sequential)
        if sequential is not None:
            raise ValueError("DSSN cannot certify sequentially: its certificate is exact (all L offsets are "
                             "enumerated), there are no samples to stop early")
        self._no_mc_args(n0, n, alpha)
        batch_size = check_int("batch_size", batch_size, 1)
        X = self._prepare(X)
        B, L = X.shape[0], self.levels
        ids = torch.arange(B) if indices is None else torch.as_tensor(indices).view(-1)  # names inputs in errors
        v = dssn_offsets(L, X[0].numel() if B else 1, self.offset_seed).to(X.device)
        sampler = Sampler(self.base_classifier, self.num_classes, noise=DssnOffsets(v, L, self.q),
                          out_dtype=self.out_dtype, channels_last=self.channels_last, batch_size=batch_size)
        counts = torch.zeros(B, self.num_classes, dtype=torch.long)
        seconds = torch.zeros(B, dtype=torch.float64)
        work = groups(B, L, batch_size)
        if self.progress:
            work = progress_bar(work, total=num_groups(B, L, batch_size), desc="smoothcert dssn", unit="group")
        for g0, g1 in work:
            t0 = time.perf_counter()
            counts[g0:g1] = sampler.draw(X[g0:g1], ids[g0:g1], None, L).cpu()  # one sync per group
            seconds[g0:g1] = (time.perf_counter() - t0) / (g1 - g0)
        cert = stats_l1.dssn_certificate(counts.numpy(), self.q)
        t = {k: torch.from_numpy(np.ascontiguousarray(val)) for k, val in cert.items()}
        return DssnResult(prediction=t["prediction"], radius=t["radius"], grid_radius=t["grid_radius"],
                          runner_up=t["runner_up"], count_a=t["count_a"], count_b=t["count_b"], counts=counts,
                          seconds=seconds, levels=L, q=self.q, sigma=self.sigma, offset_seed=self.offset_seed)

    def predict_batch(self, X: torch.Tensor, n: Optional[int] = None, alpha: Optional[float] = None,
                      batch_size: int = 1000, *, indices=None):
        """DSSN: ``[B]`` int64 exact predictions. Randomized SSN: :meth:`smoothcert.Smooth.predict_batch`."""
        if self.deterministic:
            self._no_mc_args(None, n, alpha)
            return self.certify_batch(X, batch_size=batch_size, indices=indices).prediction
        return self._mc.predict_batch(X, 100_000 if n is None else n, 0.001 if alpha is None else alpha,
                                      batch_size, indices=indices)

    # ----------------------------------------------------------------- internals

    def _index(self, index: Optional[int]) -> int:
        if index is None:
            index = self.next_index
            self.next_index += 1
        return check_int("index", index, 0)

    @staticmethod
    def _no_mc_args(n0, n, alpha) -> None:
        given = [name for name, val in (("n0", n0), ("n", n), ("alpha", alpha)) if val is not None]
        if given:
            raise ValueError(f"DSSN is exact (all L offsets are enumerated): {', '.join(given)} do not apply; "
                             "use deterministic=False for the Monte-Carlo SSN certificate")

    def _prepare(self, X: torch.Tensor) -> torch.Tensor:
        X = check_inputs(X, self.base_classifier, floating=False)
        if not X.is_floating_point():  # integer pixels: already on the grid, only the range to check
            pixels = ops.check_grid(X, self.q)
            return X if X.dtype == torch.uint8 and self.q >= 255 else (pixels.double() / self.q).float()
        if self.quantize:
            ops.check_finite(X.float(), "input")
            if bool((X < 0).any()) or bool((X > 1).any()):
                raise ValueError("inputs must lie in [0, 1] to be quantised to the grid")
            return (torch.round(X.double() * self.q) / self.q).float()
        ops.check_grid(X, self.q)
        return X.float()

    # ----------------------------------------------------------- family interface

    def column_types(self) -> Dict[str, type]:
        return dict(DssnResult.COLUMNS) if self.deterministic else self._mc.column_types()

    def certify_group(self, X: torch.Tensor, ids: torch.Tensor, budget: Budget):
        if self.deterministic:
            return self.certify_batch(X, batch_size=budget.batch_size, indices=ids)
        return self._mc.certify_group(X, ids, budget)

    def group_size(self, budget: Budget) -> int:
        return max(1, budget.batch_size // self.levels) if self.deterministic else self._mc.group_size(budget)

    def validate(self, budget: Budget) -> None:
        if self.deterministic:
            check_int("batch_size", budget.batch_size, 1)  # n0, n, alpha do not apply to DSSN
        else:
            self._mc.validate(budget)

    def config(self, budget: Budget) -> Dict[str, Any]:
        if not self.deterministic:
            return self._mc.config(budget)
        return {"sigma": self.sigma, "noise": "dssn", "abstain": False, "q": self.q, "offset_seed": self.offset_seed,
                "levels": self.levels, "quantize": self.quantize}

    def generator(self) -> str:
        return self.DSSN_GENERATOR if self.deterministic else self._mc.generator()

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--q", type=int, default=None, help="dssn: grid steps (default: the checkpoint's, else 255)")
        parser.add_argument("--offset-seed", type=int, default=None,
                            help="dssn: seed of the offset vector v (default: the checkpoint's, else 0)")
        parser.add_argument("--quantize", action="store_true",
                            help="dssn: round off-grid inputs to the grid instead of refusing them")

    @classmethod
    def options_given(cls, args) -> List[str]:
        given = [("--q", getattr(args, "q", None) is not None), ("--offset-seed", getattr(args, "offset_seed", None)
                 is not None), ("--quantize", bool(getattr(args, "quantize", False)))]
        return [flag for flag, g in given if g]

    @classmethod
    def from_args(cls, args, model, num_classes, trained, out_dtype):
        import sys

        q = args.q if args.q is not None else int(trained.get("q", 255))
        offset_seed = args.offset_seed if args.offset_seed is not None else int(trained.get("offset_seed", 0))
        if trained.get("kind") == "dssn":
            if trained.get("offset_seed", 0) != offset_seed or trained.get("q", 255) != q:
                print(f"note: model was trained with DSSN q={trained.get('q')} offset seed "
                      f"{trained.get('offset_seed')}; certifying with q={q} offset seed {offset_seed}",
                      file=sys.stderr)
        if getattr(args, "seed_given", False):
            raise ValueError("--noise dssn draws no random noise: --seed (the Philox key) does not apply; "
                             "--offset-seed keys the offset vector")
        smooth = cls(model, num_classes, required_sigma(args), q=q, offset_seed=offset_seed, deterministic=True,
                     quantize=args.quantize, out_dtype=out_dtype)
        if trained.get("kind") == "dssn" and trained.get("levels") not in (None, smooth.levels):
            print(f"note: model was trained with L={trained['levels']} offsets (another sigma, so another v); "
                  f"certifying with L={smooth.levels}", file=sys.stderr)
        return smooth
