"""Gaussian randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019).

The smoothed classifier g(x) = argmax_c P(f(x + eps) = c), eps ~ N(0, sigma^2 I),
is certified with Cohen et al.'s CERTIFY: the top class is *selected* with n0
samples, its probability is *estimated* with n fresh samples, and
pA_lower = one-sided (1 - alpha) Clopper-Pearson bound gives the L2 radius
sigma * Phi^-1(pA_lower) (abstain when pA_lower < 1/2).

Noise comes from the counter-based sampler (:func:`smoothcert.ops.sample_noise`)
keyed by (seed, stream, input index, sample index, element): selection,
estimation and prediction use different streams, so they are independent
draws, and every result is a function of the seed and the input index alone,
whatever the batch size or the way inputs are packed. (The classifier's own
arithmetic may still depend on the batch size; see docs/soundness.md.)
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np
import torch

from .. import ops, stats
from ..utils import progress as progress_bar
from .engine import (check_alpha, check_finite_inputs, check_inputs, check_int, check_nonfinite, check_seed,
                     check_scalar_sigma, chunks, groups, input_ids, one_input, sub_table, vote)
from .family import Budget, SmoothingFamily, register_family, required_sigma
from .results import CertifyResult, PredictResult


@register_family("gaussian")
class Smooth(SmoothingFamily):
    """A Gaussian-smoothed classifier with Cohen et al.'s PREDICT and CERTIFY.

    Args:
        base_classifier: maps ``[N, *S]`` inputs (raw input space, e.g. [0, 1]
            pixels; normalisation belongs inside the model, see
            :class:`smoothcert.NormalizeLayer`) to ``[N, num_classes]`` logits.
        num_classes: number of classes K.
        sigma: noise level, a number or a tensor of shape ``[B]`` (per input,
            for the batched calls), ``S`` (per element) or ``[B, *S]``.
            A per-element sigma certifies the L2 ball of its smallest value.
        seed: Philox key; results are a function of (seed, input index).
        out_dtype: dtype of the noisy batch fed to the classifier
            (float32 default; float16/bfloat16 for half-precision models).
        channels_last: build the batch in NHWC memory order (4-D inputs).
        clamp: optional ``(min, max)`` clamp of noisy inputs. Clamping is part
            of the smoothed function, so certificates stay valid.
        progress: show a progress bar in the batched calls.
    """

    NOISE = "gaussian"  # kind of the fused sampler (subclasses: "uniform", "ssn")
    NORM = "l2"
    GENERATOR = "Philox-4x32-10, Box-Muller (smoothcert)"

    def __init__(self, base_classifier: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                 sigma: Union[float, torch.Tensor], *, seed: int = 0,
                 out_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                 clamp: Optional[Tuple[Optional[float], Optional[float]]] = None,
                 progress: bool = False):
        self.base_classifier = base_classifier
        self.num_classes = check_int("num_classes", num_classes, 1)
        check_scalar_sigma(sigma)
        self.sigma = sigma
        self.seed = check_seed(seed)
        self.out_dtype = out_dtype
        self.channels_last = channels_last
        self.clamp = clamp
        self.progress = progress
        self.next_index = 0

    # ----------------------------------------------------------------- public API

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                *, index: Optional[int] = None) -> Tuple[int, float]:
        """Cohen et al.'s CERTIFY for one input.

        Args:
            x: one input ``S`` (no batch dimension).
            n0: selection samples; n: estimation samples; alpha: failure
                probability; batch_size: classifier batch size.
            index: input index keying the noise (default: a counter that
                increases with every single-input call on this object).

        Returns:
            ``(class, radius)``; ``(Smooth.ABSTAIN, 0.0)`` on abstain.
        """
        res = self.certify_batch(one_input(x), n0, n, alpha, batch_size, indices=self._index(index))
        return int(res.prediction[0]), float(res.radius[0])

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int,
                *, index: Optional[int] = None) -> int:
        """Cohen et al.'s PREDICT for one input: the top class, or ABSTAIN when the
        two-sided binomial test of top-1 against top-2 has p-value > alpha."""
        res = self.predict_batch(one_input(x), n, alpha, batch_size, indices=self._index(index))
        return int(res.prediction[0])

    def certify_batch(self, X: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                      *, indices: Optional[Union[torch.Tensor, int]] = None) -> CertifyResult:
        """CERTIFY for many inputs, packing inputs x samples into each forward batch.

        Args:
            X: ``[B, *S]`` inputs.
            indices: ``[B]`` input indices keying the noise (e.g. dataset
                indices), or an int ``i0`` meaning ``i0 .. i0+B-1``; default ``0 .. B-1``.

        Returns:
            :class:`CertifyResult`.
        """
        n0, n, alpha, batch_size = self._check_budget(n0, n, alpha, batch_size)
        X, ids, table = self._prepare(X, indices)
        return self.certify_table(X, ids, table, n0, n, alpha, batch_size)

    def predict_batch(self, X: torch.Tensor, n: int, alpha: float, batch_size: int,
                      *, indices: Optional[Union[torch.Tensor, int]] = None) -> PredictResult:
        """PREDICT for many inputs (see :meth:`predict`); ``X`` is ``[B, *S]``."""
        n = check_int("n", n, 1)
        alpha = check_alpha(alpha)
        batch_size = check_int("batch_size", batch_size, 1)
        X, ids, table = self._prepare(X, indices)
        B = X.shape[0]
        counts = torch.zeros(B, self.num_classes, dtype=torch.long)
        seconds = torch.zeros(B, dtype=torch.float64)
        for g0, g1 in self._groups(B, n, batch_size, "predict"):
            t0 = time.perf_counter()
            c = self._count(X[g0:g1], ids[g0:g1], sub_table(table, g0, g1), n, ops.PREDICT_STREAM, batch_size)
            counts[g0:g1] = c.cpu()
            seconds[g0:g1] = (time.perf_counter() - t0) / (g1 - g0)
        pred = torch.as_tensor(np.asarray(stats.predict_from_counts(counts.numpy(), alpha))).view(-1)
        top2 = counts.topk(min(2, self.num_classes), dim=1).values
        n_a = top2[:, 0]
        n_b = top2[:, 1] if self.num_classes > 1 else torch.zeros_like(n_a)
        pval = torch.tensor([stats.binom_test_pvalue(int(a), int(a + b), 0.5) if a + b > 0 else 1.0
                             for a, b in zip(n_a, n_b)], dtype=torch.float64)
        return PredictResult(prediction=pred, counts=counts, pvalue=pval,
                             samples=torch.full((B,), n, dtype=torch.long), seconds=seconds, alpha=alpha)

    def certify_table(self, X: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, n0: int, n: int,
                      alpha: float, batch_size: int) -> CertifyResult:
        """CERTIFY of checked inputs ``X`` ``[B, *S]`` (float32, on the model's device) with
        input indices ``ids`` ``[B]`` and a checked sigma table ``[1 | B, 1 | D]``
        (:func:`smoothcert.ops.sigma_table`): the engine behind :meth:`certify_batch`,
        for families that choose sigma per input."""
        self._warn_small_n(n, alpha)
        B = X.shape[0]
        est = torch.zeros(B, self.num_classes, dtype=torch.long)
        sel, seconds = self._select(X, ids, table, n0, batch_size)
        for g0, g1 in self._groups(B, n, batch_size, "certify"):
            t0 = time.perf_counter()
            c1 = self._count(X[g0:g1], ids[g0:g1], sub_table(table, g0, g1), n, ops.ESTIMATION_STREAM, batch_size)
            est[g0:g1] = c1.cpu()
            seconds[g0:g1] += (time.perf_counter() - t0) / (g1 - g0)
        top = sel.argmax(dim=1)  # ties to the lowest index
        count_a = est.gather(1, top.view(-1, 1)).view(-1)
        sig = self._radius_sigma(table, B)
        abstain, pa_lower, radius = self._certificate(count_a.numpy(), n, alpha, sig.numpy(),
                                                      X[0].numel() if B else 1)
        pred = torch.where(torch.as_tensor(abstain), torch.full_like(top, self.ABSTAIN), top)
        return CertifyResult(
            prediction=pred, radius=torch.as_tensor(np.asarray(radius, dtype=np.float64)).view(-1),
            count_a=count_a, pa_lower=torch.as_tensor(np.asarray(pa_lower, dtype=np.float64)).view(-1),
            sigma=sig, samples=torch.full((B,), n0 + n, dtype=torch.long), seconds=seconds,
            selection_counts=sel, counts=est, n0=n0, n=n, alpha=alpha, norm=self.NORM)

    # ----------------------------------------------------------- family interface

    def columns(self):
        return list(CertifyResult.COLUMNS)

    def certify_group(self, X: torch.Tensor, ids: torch.Tensor, budget: Budget) -> CertifyResult:
        return self.certify_batch(X, budget.n0, budget.n, budget.alpha, budget.batch_size, indices=ids)

    def validate(self, budget: Budget) -> None:
        self._check_budget(budget.n0, budget.n, budget.alpha, budget.batch_size)

    def config(self, budget: Budget) -> Dict[str, Any]:
        return {"sigma": self._sigma_config(), "n0": budget.n0, "n": budget.n, "alpha": budget.alpha,
                "seed": self.seed}

    @classmethod
    def from_args(cls, args, model, num_classes, trained, out_dtype):
        return cls(model, num_classes, required_sigma(args), seed=args.seed, out_dtype=out_dtype)

    @classmethod
    def _from_gaussian_base(cls, args, make_base, option: str, **kwargs) -> "Smooth":
        """``cls`` built with the classifier, sigma, seed and dtype of the ``--noise`` family,
        which must be Gaussian (L2); ``option`` names the CLI option in the error."""
        base = make_base()
        if getattr(base, "NOISE", None) != "gaussian" or base.NORM != "l2":
            raise ValueError(f"{option} certifies Gaussian noise (L2); --noise {args.noise} is not")
        return cls(base.base_classifier, base.num_classes, base.sigma, seed=base.seed, out_dtype=base.out_dtype,
                   channels_last=base.channels_last, clamp=base.clamp, **kwargs)

    # ----------------------------------------------------------------- internals

    def _check_budget(self, n0, n, alpha, batch_size):
        return (check_int("n0", n0, 1), check_int("n", n, 1), check_alpha(alpha),
                check_int("batch_size", batch_size, 1))

    def _sigma_config(self):
        s = self.sigma
        if isinstance(s, torch.Tensor):
            return float(s) if s.numel() == 1 else f"tensor{list(s.shape)}"
        return s

    def _certificate(self, count_a: np.ndarray, n: int, alpha: float, sigma: np.ndarray, dim: int):
        """(abstain ``[B]`` bool, pA_lower ``[B]``, radius ``[B]``) from the estimation votes."""
        return stats.certify_from_counts(count_a, n, alpha, sigma)

    def _select(self, X: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, n0: int, batch_size: int):
        """Selection votes ``[B, K]`` (CPU) and the seconds ``[B]`` they took per input.

        Selection runs for all inputs first, so that their n0 samples fill whole
        forward batches even when each input's n samples need batches of their
        own. Its draws (stream SELECTION) are independent of every estimation
        draw whatever the order."""
        B = X.shape[0]
        seconds = torch.zeros(B, dtype=torch.float64)
        t0 = time.perf_counter()
        sel = self._count(X, ids, table, n0, ops.SELECTION_STREAM, batch_size).cpu()
        if B:
            seconds += (time.perf_counter() - t0) / B
        return sel, seconds

    def _warn_small_n(self, n: int, alpha: float) -> None:
        if n < stats.min_samples_to_certify(alpha):
            warnings.warn(f"n={n} samples can never certify at alpha={alpha}: even if all votes agree, "
                          f"pA_lower = alpha**(1/n) <= 1/2. Use n >= {stats.min_samples_to_certify(alpha)}.",
                          stacklevel=4)

    def _index(self, index: Optional[int]) -> int:
        if index is None:
            index = self.next_index
            self.next_index += 1
        return check_int("index", index, 0)

    def _prepare(self, X: torch.Tensor, indices):
        X = check_finite_inputs(check_inputs(X, self.base_classifier))
        ids = input_ids(indices, X.shape[0])
        table = ops.sigma_table(self.sigma, X)
        ops.check_sigma(table)
        return X, ids.to(X.device), table

    def _radius_sigma(self, table: torch.Tensor, B: int) -> torch.Tensor:
        per_input = table.double().min(dim=1).values.cpu()
        return per_input.expand(B).clone() if per_input.numel() == 1 else per_input

    def _groups(self, B: int, n: int, batch_size: int, what: str):
        it = groups(B, n, batch_size)
        if self.progress:
            it = progress_bar(it, total=len(range(0, B, max(1, batch_size // n))), desc=f"smoothcert {what}",
                              unit="group")
        return it

    def _count(self, X: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, num: int, stream: int,
               batch_size: int) -> torch.Tensor:
        """Votes ``[G, K]`` (int64, on X.device) of ``num`` noisy samples per input."""
        G = X.shape[0]
        counts = torch.zeros(G, self.num_classes, dtype=torch.long, device=X.device)
        nonfinite = torch.zeros(G, dtype=torch.long, device=X.device)
        with torch.no_grad():
            for i0, i1, start, m in chunks(G, num, batch_size):
                batch = ops.sample_noise_table(
                    X[i0:i1], ids[i0:i1], sub_table(table, i0, i1), m,
                    sample_start=start, seed=self.seed, stream=stream, noise=self.NOISE, clamp=self.clamp,
                    out_dtype=self.out_dtype, channels_last=self.channels_last)
                vote(self.base_classifier, batch, m, counts[i0:i1], nonfinite[i0:i1], self.num_classes)
        check_nonfinite(nonfinite, num, ids)
        return counts
