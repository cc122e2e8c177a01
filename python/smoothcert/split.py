"""L1 smoothing: uniform noise, splitting noise (SSN) and deterministic SSN (DSSN).

Levine & Feizi, "Improved, Deterministic Smoothing for L1 Certified Robustness"
(ICML 2021); precise statement in ``shared/specs/seed-001-dssn.md``. sigma is
the RMS of the noise throughout, ``lambda = sqrt(3) sigma``.

* :class:`UniformSmooth` -- x + U(-lambda, lambda)^d, Cohen-style Monte Carlo
  (selection with n0 samples, estimation with n fresh samples), radius
  ``2 lambda (pA_lower - 1/2)``.
* :class:`SplitSmooth` with ``deterministic=False`` -- independent splitting
  noise, the same Monte-Carlo protocol and radius (less a discretisation slack
  of the float sampler, see :func:`smoothcert.stats_l1.ssn_slack`).
* :class:`SplitSmooth` with ``deterministic=True`` (default) -- DSSN for inputs
  on the grid {0, 1/q, ..., 1}: all ``L = int(2 lambda q)`` split offsets are
  enumerated with the fixed offset vector v (``numpy.random.RandomState(seed)
  .randint(L, size=d)``, C,H,W order), so the smoothed classifier and its
  certificate are exact: no alpha, no failure probability, no abstention.

Neither L1 Monte-Carlo class abstains by default (as in the paper): the
prediction is the selection vote's winner, and an input whose bound does not
exceed 1/2 gets radius 0 (``pa_lower`` tells it apart from a certified one).
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple, Union

import numpy as np
import torch

from . import ops, stats, stats_l1
from .smooth import CertifyResult, Smooth, _check_int, check_model_device, check_nonfinite, chunks, vote
from .stats_l1 import dssn_levels

__all__ = ["UniformSmooth", "SplitSmooth", "DssnResult", "dssn_levels", "dssn_offsets", "dssn_training_offsets"]


@functools.lru_cache(maxsize=16)
def _offsets_cached(levels: int, dim: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).randint(levels, size=dim).astype(np.int32))


def dssn_offsets(levels: int, dim: int, seed: int = 0) -> torch.Tensor:
    """The fixed DSSN offset vector ``v`` ``[dim]`` int32: ``numpy.random.RandomState(seed).randint(L, size=d)``.

    i.i.d. integers in ``[0, L)`` (not a permutation), in the input's C,H,W
    flattening order; training and certification must use the same ``(L, d, seed)``.
    """
    _check_int("levels", levels, 1)
    _check_int("dim", dim, 1)
    _check_int("seed", seed, 0)
    if seed >= 2 ** 32:
        raise ValueError(f"the offset seed must be < 2^32 (numpy RandomState), got {seed}")
    return _offsets_cached(int(levels), int(dim), int(seed)).clone()  # callers may modify their copy


def dssn_training_offsets(ids: torch.Tensor, m: int, levels: int, *, seed: int, sample_start: int) -> torch.Tensor:
    """Split offsets ``[B, m]`` int64 in ``[0, L)`` for training: offset j of example ``ids[b]`` is a
    Philox draw keyed by ``(seed, ids[b], sample_start + j)`` on its own stream, so it depends on
    nothing else (batch composition, device, resumption)."""
    from .reference import philox4x32_10

    ids = ids.detach().cpu().long().view(-1, 1)
    s = (sample_start + torch.arange(m)).view(1, m)
    c1, c2 = torch.broadcast_tensors(s, ids)
    zero = torch.zeros_like(c1)
    w = philox4x32_10(zero, c1, c2, torch.full_like(c1, ops.DSSN_OFFSET_STREAM), seed & 0xFFFFFFFF,
                      (seed >> 32) & 0xFFFFFFFF)[0]
    return (w * levels) >> 32  # floor(u * L), u = w / 2^32


class _L1MonteCarlo(Smooth):
    """Cohen-style CERTIFY with an L1 radius ``2 lambda (pA_lower - 1/2)`` and, by default, no abstention."""

    NORM = "l1"

    def __init__(self, base_classifier, num_classes, sigma, *, abstain: bool = False, **kwargs):
        super().__init__(base_classifier, num_classes, sigma, **kwargs)
        self.abstain = bool(abstain)

    def _slack(self, dim: int, sigma: np.ndarray) -> np.ndarray:
        return np.zeros_like(sigma, dtype=np.float64)

    def _certificate(self, count_a, n, alpha, sigma, dim):
        pa = np.atleast_1d(np.asarray(stats.clopper_pearson_lower(count_a, n, alpha), dtype=np.float64))
        r = stats_l1.l1_radius(pa, sigma, slack=self._slack(dim, np.asarray(sigma, dtype=np.float64)))
        certified = r > 0
        abstain = ~certified if self.abstain else np.zeros_like(certified)
        return abstain, pa, np.where(certified, r, 0.0)


class UniformSmooth(_L1MonteCarlo):
    """Uniform additive smoothing for L1 (Lee et al. 2019; Yang et al. 2020).

    The smoothed classifier votes over ``x + U(-lambda, lambda)^d`` with
    ``lambda = sqrt(3) sigma`` (sigma is the noise's RMS, as in the papers; the
    noisy input is not clipped). ``certify(x, n0, n, alpha, batch_size)`` and
    ``predict(x, n, alpha, batch_size)`` keep Cohen et al.'s signatures;
    ``certify`` returns ``(class, l1_radius)`` with radius
    ``2 lambda (pA_lower - 1/2)`` (0.0 when not certified; ``abstain=True``
    returns ``ABSTAIN`` there instead of the selected class). Other keyword
    arguments as :class:`smoothcert.Smooth`.
    """

    NOISE = "uniform"


class _SsnSmooth(_L1MonteCarlo):
    NOISE = "ssn"

    def _prepare(self, X, indices):
        X, ids, table = super()._prepare(X, indices)
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

    @property
    def samples(self) -> torch.Tensor:
        return torch.full_like(self.prediction, self.levels)


class SplitSmooth:
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

    ABSTAIN = Smooth.ABSTAIN

    def __init__(self, base_classifier: Callable[[torch.Tensor], torch.Tensor], num_classes: int, sigma: float, *,
                 q: int = 255, seed: int = 0, deterministic: bool = True, quantize: bool = False,
                 out_dtype: Optional[torch.dtype] = None, channels_last: bool = False, progress: bool = False,
                 abstain: bool = False):
        self.base_classifier = base_classifier
        self.num_classes = _check_int("num_classes", num_classes, 1)
        self.q = _check_int("q", q, 1)
        self.seed = _check_int("seed", seed, 0)
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
            self._mc = _SsnSmooth(base_classifier, num_classes, sigma, seed=seed, out_dtype=out_dtype,
                                  channels_last=channels_last, progress=progress, abstain=abstain)
            self.sigma = sigma

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
            res = self.certify_batch(x.unsqueeze(0), batch_size=batch_size, indices=self._index(index))
            return int(res.prediction[0]), float(res.radius[0])
        return self._mc.certify(x, 64 if n0 is None else n0, 100_000 if n is None else n,
                                0.001 if alpha is None else alpha, batch_size, index=index)

    def predict(self, x: torch.Tensor, n: Optional[int] = None, alpha: Optional[float] = None,
                batch_size: int = 1000, *, index: Optional[int] = None) -> int:
        """DSSN: the exact smoothed prediction. Randomized SSN: Cohen's PREDICT
        (defaults n=100,000, alpha=0.001), which may return ``ABSTAIN``."""
        if self.deterministic:
            self._no_mc_args(None, n, alpha)
            return int(self.certify_batch(x.unsqueeze(0), batch_size=batch_size).prediction[0])
        return self._mc.predict(x, 100_000 if n is None else n, 0.001 if alpha is None else alpha, batch_size,
                                index=index)

    def certify_batch(self, X: torch.Tensor, n0: Optional[int] = None, n: Optional[int] = None,
                      alpha: Optional[float] = None, batch_size: int = 1000, *,
                      indices=None) -> Union[DssnResult, CertifyResult]:
        """Certifies ``X`` ``[B, *S]``: a :class:`DssnResult` (DSSN) or a
        :class:`smoothcert.CertifyResult` with ``norm == "l1"`` (randomized SSN)."""
        if not self.deterministic:
            return self._mc.certify_batch(X, 64 if n0 is None else n0, 100_000 if n is None else n,
                                          0.001 if alpha is None else alpha, batch_size, indices=indices)
        self._no_mc_args(n0, n, alpha)
        batch_size = _check_int("batch_size", batch_size, 1)
        X = self._prepare(X)
        B, L = X.shape[0], self.levels
        v = dssn_offsets(L, X[0].numel() if B else 1, self.seed).to(X.device)
        counts = torch.zeros(B, self.num_classes, dtype=torch.long, device=X.device)
        nonfinite = torch.zeros(B, dtype=torch.long, device=X.device)
        seconds = torch.zeros(B, dtype=torch.float64)
        work = list(chunks(B, L, batch_size))
        if self.progress:
            from tqdm.auto import tqdm
            work = tqdm(work, desc="smoothcert dssn", unit="batch")
        with torch.no_grad():
            for i0, i1, start, m in work:
                if start == 0:
                    t0 = time.perf_counter()
                offsets = torch.arange(start, start + m, device=X.device).view(1, m)
                batch = torch.ops.smoothcert.dssn_batch.default(X[i0:i1], v, offsets, L, self.q, None, None,
                                                                self.out_dtype, self.channels_last)
                vote(self.base_classifier, batch, m, counts[i0:i1], nonfinite[i0:i1], self.num_classes)
                if start + m == L:  # the group's last batch: one sync per group, not per forward batch
                    if X.is_cuda:
                        torch.cuda.synchronize(X.device)
                    seconds[i0:i1] = (time.perf_counter() - t0) / (i1 - i0)
        check_nonfinite(nonfinite, L, torch.arange(B) if indices is None else torch.as_tensor(indices).view(-1))
        counts = counts.cpu()
        cert = stats_l1.dssn_certificate(counts.numpy(), self.q)
        t = {k: torch.from_numpy(np.ascontiguousarray(val)) for k, val in cert.items()}
        return DssnResult(prediction=t["prediction"], radius=t["radius"], grid_radius=t["grid_radius"],
                          runner_up=t["runner_up"], count_a=t["count_a"], count_b=t["count_b"], counts=counts,
                          seconds=seconds, levels=L, q=self.q, sigma=self.sigma, offset_seed=self.seed)

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
        return _check_int("index", index, 0)

    @staticmethod
    def _no_mc_args(n0, n, alpha) -> None:
        given = [name for name, val in (("n0", n0), ("n", n), ("alpha", alpha)) if val is not None]
        if given:
            raise ValueError(f"DSSN is exact (all L offsets are enumerated): {', '.join(given)} do not apply; "
                             "use deterministic=False for the Monte-Carlo SSN certificate")

    def _prepare(self, X: torch.Tensor) -> torch.Tensor:
        if not isinstance(X, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(X).__name__}")
        if X.dim() < 1:
            raise ValueError("inputs must have a batch dimension [B, ...] (use certify() for one input)")
        if X.is_cuda and ops.cuda_version() < 0:
            raise RuntimeError("the input is a CUDA tensor but smoothcert was built without CUDA")
        check_model_device(self.base_classifier, X.device)
        X = X.detach()
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
