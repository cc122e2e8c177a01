"""The one Monte-Carlo loop: draw a counter range of noisy samples for a set of inputs, run
the classifier on packed forward batches, count votes and feed any reducer.

Every result is a function of ``(seed, stream, input index, sample index)`` alone: asking
again for samples ``[start, start + m)`` of an input gives the same draws whatever else is
drawn, in whichever batches, processes or devices (the noise is counter-based Philox, keyed
by those values, not by position). So a caller may

* draw an input's samples in several calls (``start`` = samples drawn so far: sequential
  sample sizes), and
* hand the engine any subset of inputs and counter ranges (sharding across processes), and
  sum the votes.

(The classifier's own float arithmetic may still depend on what shares its batch; see
docs/soundness.md.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import torch

from .checks import check_int, check_seed
from .noise import NoiseKind, noise_kind
from .packing import check_pairs, chunks, empty_votes, even_batch


@dataclass(frozen=True)
class Sampler:
    """How a family draws and counts samples (everything but the inputs and the counter range).

    Args:
        model: base classifier, ``[N, *S]`` inputs in the raw input space -> ``[N, K]`` logits.
        num_classes: K.
        noise: a :class:`~smoothcert.engine.noise.NoiseKind` or a registered name
            (``"gaussian"``, ``"uniform"``, ``"ssn"``, ``"antithetic-gaussian"``,
            ``"gaussian-pairs"``; ``DssnOffsets(...)`` for DSSN).
        seed: Philox key in ``[0, 2^64)``.
        stream: the draw's noise stream (:mod:`smoothcert.ops.streams`): selection,
            estimation, prediction, ... are independent draws.
        clamp: optional ``(min, max)`` clamp of the noisy inputs (part of the smoothed function).
        out_dtype: dtype of the noisy batch (float32 default; float16/bfloat16/float64).
        channels_last: build 4-D batches in NHWC order (the fast convolution layout on CPUs);
            the noise is written straight into that layout, the values are unchanged.
        batch_size: rows per forward batch.
        split: optional share of every draw's counter range for this process
            (:class:`~smoothcert.drivers.distributed.SampleSplit`): ``split.part(start, num,
            unit)`` is the sub-range this process draws, ``split.combine(votes, nonfinite)``
            sums the processes' tallies, so each process returns the votes of the whole range
            (one input's samples split across processes). Vote counts only: a draw with a
            reducer is refused.

    The sigma table travels with the inputs (:meth:`draw`), because one sampler serves
    inputs with different sigmas; :meth:`replace` gives a sampler with other settings
    (e.g. another stream or noise kind) at no cost.
    """

    model: Callable[[torch.Tensor], torch.Tensor]
    num_classes: int
    noise: NoiseKind = dataclasses.field(default_factory=lambda: noise_kind("gaussian"))
    seed: int = 0
    stream: int = 1
    clamp: Optional[Tuple[Optional[float], Optional[float]]] = None
    out_dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    batch_size: int = 1000
    split: Optional[Any] = None

    def __post_init__(self):
        object.__setattr__(self, "noise", noise_kind(self.noise))
        object.__setattr__(self, "num_classes", check_int("num_classes", self.num_classes, 1))
        object.__setattr__(self, "seed", check_seed(self.seed))
        object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, 1))

    def replace(self, **changes) -> "Sampler":
        """This sampler with some settings changed (``stream=``, ``noise=``, ``batch_size=``, ...)."""
        return dataclasses.replace(self, **changes)

    def draw(self, X: torch.Tensor, ids: torch.Tensor, table: Optional[torch.Tensor], num: int, *,
             start: int = 0, reducer=None) -> torch.Tensor:
        """Samples ``[start, start + num)`` of every input: their votes, and ``reducer.add`` per batch.

        Args:
            X: ``[G, *S]`` float32 inputs, checked (:mod:`smoothcert.engine.checks`), on the
                model's device.
            ids: ``[G]`` int64 input indices keying the noise, on ``X``'s device.
            table: ``[1 | G, 1 | D]`` float32 sigma table (:func:`smoothcert.ops.sigma_table`),
                checked; None for a noise kind that reads no sigma.
            num: samples per input; start: counter of the first one.
            reducer: optional statistic over the batches (:mod:`smoothcert.engine.reducers`).

        Returns:
            ``[G, K]`` int64 votes on ``X``'s device. Raises ValueError if the classifier
            returned NaN/inf logits for any sample (no vote is counted for such an input).
        """
        G, K = X.shape[0], self.num_classes
        counts, nonfinite = empty_votes(G, K, X.device)
        if self.noise.PAIRS:
            check_pairs(start, num)
        first, size = start, num
        if self.split is not None:
            if reducer is not None:
                raise ValueError("one input's samples can be split across processes only for vote counts; this "
                                 "draw feeds a statistic of the logits (second-order, dipole)")
            first, size = self.split.part(start, num, 2 if self.noise.PAIRS else 1)
        make = self.noise.bind(seed=self.seed, stream=self.stream, clamp=self.clamp, out_dtype=self.out_dtype,
                               channels_last=self.channels_last)
        # Pairs (2j, 2j+1) never straddle two forward batches.
        batch_size = even_batch(self.batch_size) if self.noise.PAIRS else self.batch_size
        count = torch.ops.smoothcert.count_votes_.default
        model = self.model
        shared_row = table is None or table.shape[0] == 1
        with torch.no_grad():
            for i0, i1, s, m in chunks(G, size, batch_size, first):
                batch, extra = make(X[i0:i1], ids[i0:i1], table if shared_row else table[i0:i1], m, s)
                try:
                    logits = model(batch)
                except torch.OutOfMemoryError:
                    raise
                except RuntimeError as e:
                    raise RuntimeError(f"the base classifier failed on a noisy batch of shape {list(batch.shape)} "
                                       f"(inputs of shape {list(batch.shape[1:])}; certify() takes one input, "
                                       f"certify_batch() [B, *input shape]): {e}") from e
                if not isinstance(logits, torch.Tensor) or logits.shape != (batch.shape[0], K):
                    bad_logits(logits, batch.shape[0], K)
                count(logits, m, counts[i0:i1], nonfinite[i0:i1])
                if reducer is not None:
                    reducer.add(i0, i1, m, logits, extra)
        if self.split is not None:
            counts, nonfinite = self.split.combine(counts, nonfinite)
        check_nonfinite(nonfinite, num, ids)
        return counts


def bad_logits(logits, rows: int, K: int) -> None:
    shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
    raise ValueError(f"the base classifier must return logits of shape [{rows}, {K}] (batch, num_classes) for a "
                     f"batch of {rows}; got {shape}")


def check_nonfinite(nonfinite: torch.Tensor, num: int, ids: torch.Tensor) -> None:
    """Refuses votes of inputs whose classifier returned NaN/inf logits (one host sync)."""
    if bool(nonfinite.any()):
        i = int(nonfinite.nonzero()[0, 0])
        raise ValueError(f"the base classifier returned NaN/inf logits for {int(nonfinite[i])} of {num} "
                         f"noisy samples of input {int(ids[i])}; refusing to count their votes")
