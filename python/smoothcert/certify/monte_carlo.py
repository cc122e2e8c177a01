"""Cohen et al.'s Monte-Carlo protocol, independent of the noise: the base class of every
family that certifies from votes of noisy samples (Gaussian, uniform, splitting noise,
per-element sigma, second-order and dipole certificates), and the public methods wrappers
build on (data-dependent sigma, sample-wise sigma).

CERTIFY (Cohen, Rosenfeld and Kolter, ICML 2019, Alg. "CERTIFY"): the top class is *selected*
with n0 samples, its probability is *estimated* with n fresh samples (another noise stream:
independent draws), and a subclass's :meth:`MonteCarloFamily.certificate` turns the
estimation votes into a radius. PREDICT: Cohen et al.'s two-sided binomial test of the top two
classes. All sampling goes through :class:`smoothcert.engine.Sampler`.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, Union

import numpy as np
import torch

from .. import ops, stats
from ..engine import (Sampler, check_alpha, check_finite_inputs, check_inputs, check_int, check_scalar_sigma,
                      check_seed, groups, input_ids, num_groups, one_input, sub_table)
from ..utils import progress as progress_bar
from .family import Budget, SmoothingFamily
from .results import CertifyResult, PredictResult


class MonteCarloFamily(SmoothingFamily):
    """A smoothed classifier certified from Monte-Carlo votes (module docstring).

    Args:
        base_classifier: maps ``[N, *S]`` inputs (raw input space, e.g. [0, 1]
            pixels; normalisation belongs inside the model, see
            :class:`smoothcert.NormalizeLayer`) to ``[N, num_classes]`` logits.
        num_classes: number of classes K.
        sigma: noise level, a number or a tensor of shape ``[B]`` (per input,
            for the batched calls), ``S`` (per element) or ``[B, *S]``.
        seed: Philox key in ``[0, 2^64)``; results are a function of (seed, input index).
        out_dtype: dtype of the noisy batch fed to the classifier
            (float32 default; float16/bfloat16 for half-precision models).
        channels_last: build the batch in NHWC memory order (4-D inputs), the fast convolution
            layout on CPUs: the noise is written straight into that layout, and an ``nn.Module``
            classifier is converted to it once, here, in place (``model.to(memory_format=
            torch.channels_last)``: only 4-D weights change layout, not value).
        clamp: optional ``(min, max)`` clamp of noisy inputs. Clamping is part
            of the smoothed function, so certificates stay valid.
        progress: show a progress bar in the batched calls.

    Subclasses set the capability attributes and implement :meth:`certificate`.
    """

    MONTE_CARLO: ClassVar[bool] = True
    # Whether the certificate is a function of one binomial count (the selected class's votes),
    # so that an anytime-valid bound on it certifies (:mod:`smoothcert.certify.sequential`).
    SEQUENTIAL: ClassVar[bool] = False
    # Whether every draw of its certificate is a vote count (which processes can sum over
    # disjoint counter ranges), so :meth:`with_sample_split` can split an input's samples.
    SAMPLE_SPLIT: ClassVar[bool] = True
    sample_split = None

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
        self.channels_last = bool(channels_last)
        if self.channels_last and isinstance(base_classifier, torch.nn.Module):
            base_classifier.to(memory_format=torch.channels_last)
        self.clamp = clamp
        self.progress = progress
        self.next_index = 0

    @classmethod
    def from_base(cls, base: "MonteCarloFamily", **kwargs) -> "MonteCarloFamily":
        """``cls`` with ``base``'s classifier, classes, sigma, seed, dtype, layout and clamp
        (``kwargs`` override or add settings)."""
        settings = dict(sigma=base.sigma, seed=base.seed, out_dtype=base.out_dtype,
                        channels_last=base.channels_last, clamp=base.clamp)
        settings.update(kwargs)
        sigma = settings.pop("sigma")
        return cls(base.base_classifier, base.num_classes, sigma, **settings)

    # ----------------------------------------------------------------- public API

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                *, index: Optional[int] = None) -> Tuple[int, float]:
        """Cohen et al.'s CERTIFY for one input.

        Args:
            x: one input ``S`` (no batch dimension).
            n0: selection samples; n: estimation samples; alpha: one-sided failure
                probability; batch_size: classifier batch size.
            index: input index keying the noise (default: a counter that
                increases with every single-input call on this object).

        Returns:
            ``(class, radius)``; ``(ABSTAIN, 0.0)`` on abstain.
        """
        res = self.certify_batch(one_input(x), n0, n, alpha, batch_size, indices=self.input_index(index))
        return int(res.prediction[0]), float(res.radius[0])

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int,
                *, index: Optional[int] = None) -> int:
        """Cohen et al.'s PREDICT for one input: the top class, or ABSTAIN when the
        two-sided binomial test of top-1 against top-2 has p-value > alpha."""
        res = self.predict_batch(one_input(x), n, alpha, batch_size, indices=self.input_index(index))
        return int(res.prediction[0])

    def certify_batch(self, X: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                      *, indices: Optional[Union[torch.Tensor, int]] = None, sequential=None) -> CertifyResult:
        """CERTIFY for many inputs, packing inputs x samples into each forward batch.

        Args:
            X: ``[B, *S]`` inputs.
            indices: ``[B]`` input indices keying the noise (e.g. dataset
                indices), or an int ``i0`` meaning ``i0 .. i0+B-1``; default ``0 .. B-1``.
            sequential: a :class:`~smoothcert.certify.sequential.Sequential` to stop each
                input's estimation once decided (anytime-valid; ``n`` is then n_max), for a
                family with :attr:`SEQUENTIAL`.

        Returns:
            :class:`CertifyResult` (:class:`~smoothcert.certify.sequential.SequentialResult`
            when sequential).
        """
        n0, n, alpha, batch_size = self.check_budget(n0, n, alpha, batch_size)
        if sequential is not None:
            self.check_sequential(sequential)
        X, ids, table = self.prepare(X, indices)
        if sequential is not None:
            return self.sequential_result(self.certify_sequential(X, ids, table, n0, n, alpha, batch_size,
                                                                  sequential))
        return self.certify_table(X, ids, table, n0, n, alpha, batch_size)

    def predict_batch(self, X: torch.Tensor, n: int, alpha: float, batch_size: int,
                      *, indices: Optional[Union[torch.Tensor, int]] = None) -> PredictResult:
        """PREDICT for many inputs (see :meth:`predict`); ``X`` is ``[B, *S]``."""
        n = check_int("n", n, 1)
        alpha = check_alpha(alpha)
        batch_size = check_int("batch_size", batch_size, 1)
        X, ids, table = self.prepare(X, indices)
        B = X.shape[0]
        counts = torch.zeros(B, self.num_classes, dtype=torch.long)
        seconds = torch.zeros(B, dtype=torch.float64)
        sampler = self.sampler(ops.PREDICT_STREAM, batch_size)
        for g0, g1 in self._groups(B, n, batch_size, "predict"):
            t0 = time.perf_counter()
            counts[g0:g1] = sampler.draw(X[g0:g1], ids[g0:g1], sub_table(table, g0, g1), n).cpu()
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
        """CERTIFY of checked inputs ``X`` ``[B, *S]`` (float32, on the model's device, from
        :meth:`prepare`) with input indices ``ids`` ``[B]`` and a checked sigma table
        ``[1 | B, 1 | D]`` (:func:`smoothcert.ops.sigma_table`): the engine behind
        :meth:`certify_batch`, for wrappers that choose sigma per input."""
        self.warn_small_n(n, alpha)
        B = X.shape[0]
        est = torch.zeros(B, self.num_classes, dtype=torch.long)
        sel, seconds = self.select(X, ids, table, n0, batch_size)
        sampler = self.sampler(ops.ESTIMATION_STREAM, batch_size)
        for g0, g1 in self._groups(B, n, batch_size, "certify"):
            t0 = time.perf_counter()
            est[g0:g1] = sampler.draw(X[g0:g1], ids[g0:g1], sub_table(table, g0, g1), n).cpu()
            seconds[g0:g1] += (time.perf_counter() - t0) / (g1 - g0)
        top = sel.argmax(dim=1)  # ties to the lowest index
        count_a = est.gather(1, top.view(-1, 1)).view(-1)
        sig = self.radius_sigma(table, B)
        abstain, pa_lower, radius = self.certificate(count_a.numpy(), n, alpha, sig.numpy(),
                                                     X[0].numel() if B else 1)
        pred = torch.where(torch.as_tensor(abstain), torch.full_like(top, self.ABSTAIN), top)
        return CertifyResult(
            prediction=pred, radius=torch.as_tensor(np.asarray(radius, dtype=np.float64)).view(-1),
            count_a=count_a, pa_lower=torch.as_tensor(np.asarray(pa_lower, dtype=np.float64)).view(-1),
            sigma=sig, samples=torch.full((B,), n0 + n, dtype=torch.long), seconds=seconds,
            selection_counts=sel, counts=est, n0=n0, n=n, alpha=alpha, norm=self.NORM)

    def certify_sequential(self, X: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, n0: int, n_max: int,
                           alpha: float, batch_size: int, sequential):
        """Sequential CERTIFY of checked inputs (as :meth:`certify_table`), stopping each input's
        estimation by ``sequential``'s rule: a :class:`~smoothcert.certify.sequential.SequentialResult`."""
        from .sequential import certify_jobs, results_of  # the module builds on this one

        self.warn_small_n(n_max, alpha)
        rows = (lambda i: table[i:i + 1]) if table.shape[0] > 1 else (lambda i: table)
        inputs = ((i, X[i], int(ids[i]), rows(i)) for i in range(X.shape[0]))
        done = list(certify_jobs(self, inputs, n0, n_max, alpha, batch_size, sequential))
        return results_of(self, done, n0, n_max, alpha, sequential)

    def check_sequential(self, sequential) -> None:
        """Refuses sequential certification for a family whose certificate needs more than one count."""
        if not self.SEQUENTIAL:
            raise ValueError(f"{type(self).__name__} cannot certify sequentially: its certificate is not a "
                             f"function of one binomial count ({self.SEQUENTIAL_REFUSAL})")

    SEQUENTIAL_REFUSAL: ClassVar[str] = "no anytime-valid bound is implemented for it"

    def with_sequential(self, sequential):
        from .sequential import SequentialFamily  # the module builds on this one

        return SequentialFamily(self, sequential)

    def with_sample_split(self, split):
        if not self.SAMPLE_SPLIT:
            super().with_sample_split(split)
        self.sample_split = split
        return self

    def sequential_result(self, res):
        """The rows of a sequential run from its :class:`~smoothcert.certify.sequential.SequentialResult`
        (a family that writes more than the base columns extends it, as it does a fixed-n one)."""
        return res

    def sequential_column_types(self) -> Dict[str, type]:
        """The TSV columns of :meth:`sequential_result`'s rows."""
        from .sequential import SequentialResult

        return dict(SequentialResult.COLUMNS)

    def radius_from_lower(self, pa_lower: np.ndarray, sigma: np.ndarray, dim: int):
        """``(abstain [B] bool, radius [B])`` from lower bounds on the selected class's
        probability (families with :attr:`SEQUENTIAL`)."""
        raise NotImplementedError

    # ------------------------------------------------------- for wrapper families

    def sampler(self, stream: int, batch_size: int, **changes) -> Sampler:
        """The :class:`~smoothcert.engine.Sampler` of this family's noise on ``stream``."""
        settings = dict(noise=self.NOISE, seed=self.seed, stream=stream, clamp=self.clamp,
                        out_dtype=self.out_dtype, channels_last=self.channels_last, batch_size=batch_size,
                        split=self.sample_split)
        settings.update(changes)
        return Sampler(self.base_classifier, self.num_classes, **settings)

    def check_budget(self, n0, n, alpha, batch_size) -> Tuple[int, int, float, int]:
        """``(n0, n, alpha, batch_size)`` checked (ValueError names the bad one)."""
        return (check_int("n0", n0, 1), check_int("n", n, 1), check_alpha(alpha),
                check_int("batch_size", batch_size, 1))

    def prepare(self, X, indices) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Checked ``(X [B, *S] float32, ids [B] on X's device, sigma table [1 | B, 1 | D])``."""
        X = check_finite_inputs(check_inputs(X, self.base_classifier))
        ids = input_ids(indices, X.shape[0])
        table = ops.sigma_table(self.sigma, X)
        ops.check_sigma(table)
        return X, ids.to(X.device), table

    def input_index(self, index: Optional[int]) -> int:
        """``index``, or the next value of this object's single-input counter when None."""
        if index is None:
            index = self.next_index
            self.next_index += 1
        return check_int("index", index, 0)

    def select(self, X: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, n0: int, batch_size: int):
        """Selection votes ``[B, K]`` (CPU) and the seconds ``[B]`` they took per input.

        Selection runs for all inputs first, so that their n0 samples fill whole
        forward batches even when each input's n samples need batches of their
        own. Its draws (stream SELECTION) are independent of every estimation
        draw whatever the order."""
        B = X.shape[0]
        seconds = torch.zeros(B, dtype=torch.float64)
        t0 = time.perf_counter()
        sel = self.sampler(ops.SELECTION_STREAM, batch_size).draw(X, ids, table, n0).cpu()
        if B:
            seconds += (time.perf_counter() - t0) / B
        return sel, seconds

    def radius_sigma(self, table: torch.Tensor, B: int) -> torch.Tensor:
        """``[B]`` float64 sigma each radius is based on (the smallest element of a per-element sigma)."""
        per_input = table.double().min(dim=1).values.cpu()
        return per_input.expand(B).clone() if per_input.numel() == 1 else per_input

    def warn_small_n(self, n: int, alpha: float) -> None:
        """Warns when n samples can never certify at level alpha."""
        if n < stats.min_samples_to_certify(alpha):
            warnings.warn(f"n={n} samples can never certify at alpha={alpha}: even if all votes agree, "
                          f"pA_lower = alpha**(1/n) <= 1/2. Use n >= {stats.min_samples_to_certify(alpha)}.",
                          stacklevel=4)

    def certificate(self, count_a: np.ndarray, n: int, alpha: float, sigma: np.ndarray, dim: int):
        """(abstain ``[B]`` bool, pA_lower ``[B]``, radius ``[B]``) from the estimation votes."""
        raise NotImplementedError

    # ----------------------------------------------------------- family interface

    def column_types(self) -> Dict[str, type]:
        return dict(CertifyResult.COLUMNS)

    def certify_group(self, X: torch.Tensor, ids: torch.Tensor, budget: Budget) -> CertifyResult:
        return self.certify_batch(X, budget.n0, budget.n, budget.alpha, budget.batch_size, indices=ids)

    def validate(self, budget: Budget) -> None:
        self.check_budget(budget.n0, budget.n, budget.alpha, budget.batch_size)

    def config(self, budget: Budget) -> Dict[str, Any]:
        return {"sigma": self._sigma_config(), "n0": budget.n0, "n": budget.n, "alpha": budget.alpha,
                "seed": self.seed}

    def generator(self) -> str:
        return self.GENERATOR

    # ----------------------------------------------------------------- internals

    def _sigma_config(self):
        s = self.sigma
        if isinstance(s, torch.Tensor):
            return float(s) if s.numel() == 1 else f"tensor{list(s.shape)}"
        return s

    def _groups(self, B: int, n: int, batch_size: int, what: str):
        it = groups(B, n, batch_size)
        if self.progress:
            it = progress_bar(it, total=num_groups(B, n, batch_size), desc=f"smoothcert {what}", unit="group")
        return it
