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
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Tuple, Union

import numpy as np
import torch

from . import ops, stats


@dataclass
class CertifyResult:
    """Per-input results of :meth:`Smooth.certify_batch` (all CPU tensors, length B).

    Attributes:
        prediction: ``[B]`` int64 certified class, -1 on abstain.
        radius: ``[B]`` float64 certified L2 radius, 0.0 on abstain (never rounded up).
        count_a: ``[B]`` int64 votes for the selected class among the n estimation samples.
        pa_lower: ``[B]`` float64 one-sided (1 - alpha) lower bound on pA.
        sigma: ``[B]`` float64 noise level the radius is based on (the smallest
            element of sigma for per-element noise).
        samples: ``[B]`` int64 classifier evaluations used (n0 + n).
        seconds: ``[B]`` float64 wall time (inputs sharing a batch share its time).
        selection_counts: ``[B, K]`` int64 votes of the n0 selection samples.
        counts: ``[B, K]`` int64 votes of the n estimation samples.
        certificate: kind of certificate (``"fixed-sigma"`` here).
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    count_a: torch.Tensor
    pa_lower: torch.Tensor
    sigma: torch.Tensor
    samples: torch.Tensor
    seconds: torch.Tensor
    selection_counts: torch.Tensor
    counts: torch.Tensor
    n0: int
    n: int
    alpha: float
    certificate: str = "fixed-sigma"
    norm: str = "l2"


@dataclass
class PredictResult:
    """Per-input results of :meth:`Smooth.predict_batch` (CPU tensors, length B).

    Attributes:
        prediction: ``[B]`` int64 predicted class, -1 on abstain.
        counts: ``[B, K]`` int64 votes of the n samples.
        pvalue: ``[B]`` float64 two-sided binomial-test p-value of top-1 vs top-2.
        samples: ``[B]`` int64 classifier evaluations used.
        seconds: ``[B]`` float64 wall time.
    """

    prediction: torch.Tensor
    counts: torch.Tensor
    pvalue: torch.Tensor
    samples: torch.Tensor
    seconds: torch.Tensor
    alpha: float = field(default=0.001)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_alpha(alpha) -> float:
    if not (isinstance(alpha, (float, int)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must lie in (0, 1) (one-sided failure probability), got {alpha!r}")
    return float(alpha)


class Smooth:
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

    ABSTAIN = -1
    NOISE = "gaussian"  # kind of the fused sampler (subclasses: "uniform", "ssn")
    NORM = "l2"

    def __init__(self, base_classifier: Callable[[torch.Tensor], torch.Tensor], num_classes: int,
                 sigma: Union[float, torch.Tensor], *, seed: int = 0,
                 out_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                 clamp: Optional[Tuple[Optional[float], Optional[float]]] = None,
                 progress: bool = False):
        self.base_classifier = base_classifier
        self.num_classes = _check_int("num_classes", num_classes, 1)
        if not isinstance(sigma, torch.Tensor):
            if not (isinstance(sigma, (int, float)) and np.isfinite(sigma) and sigma > 0):
                raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")
        self.sigma = sigma
        self.seed = _check_int("seed", seed, 0)
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
        res = self.certify_batch(x.unsqueeze(0), n0, n, alpha, batch_size, indices=self._index(index))
        return int(res.prediction[0]), float(res.radius[0])

    def predict(self, x: torch.Tensor, n: int, alpha: float, batch_size: int,
                *, index: Optional[int] = None) -> int:
        """Cohen et al.'s PREDICT for one input: the top class, or ABSTAIN when the
        two-sided binomial test of top-1 against top-2 has p-value > alpha."""
        res = self.predict_batch(x.unsqueeze(0), n, alpha, batch_size, indices=self._index(index))
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
        n0 = _check_int("n0", n0, 1)
        n = _check_int("n", n, 1)
        alpha = _check_alpha(alpha)
        batch_size = _check_int("batch_size", batch_size, 1)
        X, ids, table = self._prepare(X, indices)
        if n < stats.min_samples_to_certify(alpha):
            warnings.warn(f"n={n} samples can never certify at alpha={alpha}: even if all votes agree, "
                          f"pA_lower = alpha**(1/n) <= 1/2. Use n >= {stats.min_samples_to_certify(alpha)}.",
                          stacklevel=2)
        B = X.shape[0]
        est = torch.zeros(B, self.num_classes, dtype=torch.long)
        seconds = torch.zeros(B, dtype=torch.float64)
        # Selection for all inputs first, so that their n0 samples fill whole
        # forward batches even when each input's n samples need batches of
        # their own. Its draws (stream SELECTION) are independent of the
        # estimation draws whatever the order.
        t0 = time.perf_counter()
        sel = self._count(X, ids, table, n0, ops.SELECTION_STREAM, batch_size).cpu()
        if B:
            seconds += (time.perf_counter() - t0) / B
        for g0, g1 in self._groups(B, n, batch_size, "certify"):
            t0 = time.perf_counter()
            c1 = self._count(X[g0:g1], ids[g0:g1], table[g0:g1] if table.shape[0] > 1 else table,
                             n, ops.ESTIMATION_STREAM, batch_size)
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

    def predict_batch(self, X: torch.Tensor, n: int, alpha: float, batch_size: int,
                      *, indices: Optional[Union[torch.Tensor, int]] = None) -> PredictResult:
        """PREDICT for many inputs (see :meth:`predict`); ``X`` is ``[B, *S]``."""
        n = _check_int("n", n, 1)
        alpha = _check_alpha(alpha)
        batch_size = _check_int("batch_size", batch_size, 1)
        X, ids, table = self._prepare(X, indices)
        B = X.shape[0]
        counts = torch.zeros(B, self.num_classes, dtype=torch.long)
        seconds = torch.zeros(B, dtype=torch.float64)
        for g0, g1 in self._groups(B, n, batch_size, "predict"):
            t0 = time.perf_counter()
            c = self._count(X[g0:g1], ids[g0:g1], table[g0:g1] if table.shape[0] > 1 else table,
                            n, ops.PREDICT_STREAM, batch_size)
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

    # ----------------------------------------------------------------- internals

    def _certificate(self, count_a: np.ndarray, n: int, alpha: float, sigma: np.ndarray, dim: int):
        """(abstain ``[B]`` bool, pA_lower ``[B]``, radius ``[B]``) from the estimation votes."""
        return stats.certify_from_counts(count_a, n, alpha, sigma)

    def _index(self, index: Optional[int]) -> int:
        if index is None:
            index = self.next_index
            self.next_index += 1
        return _check_int("index", index, 0)

    def _prepare(self, X: torch.Tensor, indices):
        if not isinstance(X, torch.Tensor):
            raise TypeError(f"inputs must be a torch.Tensor, got {type(X).__name__}")
        if X.dim() < 1:
            raise ValueError("inputs must have a batch dimension [B, ...] (use certify() for one input)")
        if not (X.is_floating_point()):
            raise ValueError(f"inputs must be floating point (raw input space, e.g. [0, 1]), got {X.dtype}")
        if X.is_cuda and ops.cuda_version() < 0:
            raise RuntimeError("the input is a CUDA tensor but smoothcert was built without CUDA; rebuild "
                               "on a machine with nvcc and a CUDA torch (or FORCE_CUDA=1), or move the input to CPU")
        check_model_device(self.base_classifier, X.device)
        X = X.detach().float()
        ops.check_finite(X, "input")
        B = X.shape[0]
        if indices is None:
            ids = torch.arange(B, dtype=torch.long)
        elif isinstance(indices, (int, np.integer)):
            ids = torch.arange(int(indices), int(indices) + B, dtype=torch.long)
        else:
            ids = torch.as_tensor(indices, dtype=torch.long).cpu().view(-1)
            if ids.numel() != B:
                raise ValueError(f"indices must have one entry per input ({B}), got {ids.numel()}")
        ops.check_ids(ids)
        table = ops.sigma_table(self.sigma, X)
        ops.check_sigma(table)
        return X, ids.to(X.device), table

    def _radius_sigma(self, table: torch.Tensor, B: int) -> torch.Tensor:
        per_input = table.double().min(dim=1).values.cpu()
        return per_input.expand(B).clone() if per_input.numel() == 1 else per_input

    def _groups(self, B: int, n: int, batch_size: int, what: str) -> Iterator[Tuple[int, int]]:
        """Consecutive input groups, each small enough that its n samples of every
        input fill about one forward batch (one input at a time when n > batch_size)."""
        step = max(1, batch_size // n)
        starts = range(0, B, step)
        if self.progress:
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc=f"smoothcert {what}", unit="group", total=len(starts))
        for g0 in starts:
            yield g0, min(B, g0 + step)

    def _count(self, X: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, num: int, stream: int,
               batch_size: int) -> torch.Tensor:
        """Votes ``[G, K]`` (int64, on X.device) of ``num`` noisy samples per input."""
        G = X.shape[0]
        counts = torch.zeros(G, self.num_classes, dtype=torch.long, device=X.device)
        nonfinite = torch.zeros(G, dtype=torch.long, device=X.device)
        with torch.no_grad():
            for i0, i1, start, m in chunks(G, num, batch_size):
                batch = ops.sample_noise_table(
                    X[i0:i1], ids[i0:i1], table[i0:i1] if table.shape[0] > 1 else table, m,
                    sample_start=start, seed=self.seed, stream=stream, noise=self.NOISE, clamp=self.clamp,
                    out_dtype=self.out_dtype, channels_last=self.channels_last)
                vote(self.base_classifier, batch, m, counts[i0:i1], nonfinite[i0:i1], self.num_classes)
        check_nonfinite(nonfinite, num, ids)
        return counts


def check_model_device(model: Callable, device: torch.device) -> None:
    """Refuses an input on another device type than an ``nn.Module`` model's parameters; warns
    when the model is in training mode."""
    if isinstance(model, torch.nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None and p.device.type != device.type:
            raise ValueError(f"device mismatch: the input is on {device} but the base classifier's "
                             f"parameters are on {p.device}; move one of them")
        if model.training:
            warnings.warn("the base classifier is in training mode (dropout/batch-norm make its votes "
                          "depend on the batch); call .eval() before certifying", stacklevel=3)


def vote(model: Callable, batch: torch.Tensor, m: int, counts: torch.Tensor, nonfinite: torch.Tensor,
         num_classes: int) -> None:
    """Runs ``model`` on ``batch`` ``[G * m, *S]`` and adds each row's argmax to ``counts`` ``[G, K]``
    (rows with NaN/inf logits are tallied in ``nonfinite`` ``[G]``)."""
    logits = model(batch)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape != (batch.shape[0], num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the base classifier must return logits of shape [{batch.shape[0]}, {num_classes}] "
                         f"(batch, num_classes) for a batch of {batch.shape[0]}; got {shape}")
    ops.count_votes_(logits, m, counts, nonfinite)


def check_nonfinite(nonfinite: torch.Tensor, num: int, ids: torch.Tensor) -> None:
    """Refuses votes of inputs whose classifier returned NaN/inf logits."""
    if bool(nonfinite.any()):
        i = int(nonfinite.nonzero()[0, 0])
        raise ValueError(f"the base classifier returned NaN/inf logits for {int(nonfinite[i])} of {num} "
                         f"noisy samples of input {int(ids[i])}; refusing to count their votes")


def chunks(G: int, num: int, batch_size: int) -> Iterator[Tuple[int, int, int, int]]:
    """(first input, end input, first sample, samples per input) of each forward batch."""
    if num <= batch_size:
        step = max(1, batch_size // num)
        for i0 in range(0, G, step):
            yield i0, min(G, i0 + step), 0, num
    else:
        for i in range(G):
            for start in range(0, num, batch_size):
                yield i, i + 1, start, min(batch_size, num - start)
