"""The shared Monte-Carlo engine: input checks, forward-batch packing and vote counting.

Every smoothing family builds its classifier batches with a fused op
(:func:`smoothcert.ops.sample_noise` or :func:`smoothcert.ops.dssn_batch`) and
counts votes with :func:`smoothcert.ops.count_votes_` through :func:`vote`;
:func:`chunks` packs ``inputs x samples`` into forward batches the same way for all.
"""
from __future__ import annotations

import warnings
from typing import Callable, Iterator, Optional, Tuple, Union

import numpy as np
import torch

from .. import ops
from ..ops.checks import check_int  # noqa: F401  (re-exported for the families)


def check_alpha(alpha) -> float:
    if not (isinstance(alpha, (float, int)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must lie in (0, 1) (one-sided failure probability), got {alpha!r}")
    return float(alpha)


def check_scalar_sigma(sigma) -> None:
    if not isinstance(sigma, torch.Tensor):
        if isinstance(sigma, bool) or not (isinstance(sigma, (int, float, np.floating)) and np.isfinite(sigma)
                                           and sigma > 0):
            raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")


def check_inputs(X, model: Callable, *, floating: bool = True) -> torch.Tensor:
    """Structural checks of a batch ``[B, *S]`` of inputs; returns it detached."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"inputs must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() < 1:
        raise ValueError("inputs must have a batch dimension [B, ...] (use certify() for one input)")
    if floating and not X.is_floating_point():
        raise ValueError(f"inputs must be floating point (raw input space, e.g. [0, 1]), got {X.dtype}")
    if X.is_cuda and ops.cuda_version() < 0:
        raise RuntimeError("the input is a CUDA tensor but smoothcert was built without CUDA; rebuild "
                           "on a machine with nvcc and a CUDA torch (or FORCE_CUDA=1), or move the input to CPU")
    check_model_device(model, X.device)
    return X.detach()


def input_ids(indices: Optional[Union[torch.Tensor, int]], B: int) -> torch.Tensor:
    """``[B]`` int64 CPU input indices from ``None`` (0..B-1), an int ``i0`` (i0..i0+B-1) or a tensor."""
    if indices is None:
        ids = torch.arange(B, dtype=torch.long)
    elif isinstance(indices, (int, np.integer)):
        ids = torch.arange(int(indices), int(indices) + B, dtype=torch.long)
    else:
        ids = torch.as_tensor(indices, dtype=torch.long).cpu().view(-1)
        if ids.numel() != B:
            raise ValueError(f"indices must have one entry per input ({B}), got {ids.numel()}")
    ops.check_ids(ids)
    return ids


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
                          "depend on the batch); call .eval() before certifying", stacklevel=4)


def vote(model: Callable, batch: torch.Tensor, m: int, counts: torch.Tensor, nonfinite: torch.Tensor,
         num_classes: int) -> torch.Tensor:
    """Runs ``model`` on ``batch`` ``[G * m, *S]`` and adds each row's argmax to ``counts`` ``[G, K]``
    (rows with NaN/inf logits are tallied in ``nonfinite`` ``[G]``); returns the logits
    ``[G * m, K]`` for families that need each row's vote."""
    logits = model(batch)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape != (batch.shape[0], num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the base classifier must return logits of shape [{batch.shape[0]}, {num_classes}] "
                         f"(batch, num_classes) for a batch of {batch.shape[0]}; got {shape}")
    ops.count_votes_(logits, m, counts, nonfinite)
    return logits


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


def groups(B: int, n: int, batch_size: int) -> Iterator[Tuple[int, int]]:
    """Consecutive input groups, each small enough that its n samples of every input fill
    about one forward batch (one input at a time when n > batch_size)."""
    step = max(1, batch_size // n)
    for g0 in range(0, B, step):
        yield g0, min(B, g0 + step)


def sub_table(table: torch.Tensor, g0: int, g1: int) -> torch.Tensor:
    """Rows g0:g1 of a ``[1 | B, 1 | D]`` sigma table (a shared row stays shared)."""
    return table[g0:g1] if table.shape[0] > 1 else table


def check_finite_inputs(X: torch.Tensor) -> torch.Tensor:
    """``X`` as float32, refusing NaN/inf (one host sync)."""
    X = X.float()
    ops.check_finite(X, "input")
    return X


def even_batch(batch_size: int) -> int:
    """The largest even batch size <= ``batch_size`` (at least 2), so that :func:`chunks` keeps
    samples ``2j, 2j+1`` of an input in one forward batch (pair-based families)."""
    return max(2, batch_size - batch_size % 2)
