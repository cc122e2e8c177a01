"""Sample-wise sigma over a grid (Wang et al., "Pretrain-to-Finetune Adversarial Training via
Sample-wise Randomized Smoothing", Sec. 3, Eqs. 5 and 7).

For every input and every grid sigma, ``samples`` noisy copies vote (their own
noise stream, independent of the certification draws), and sigma is the grid
value with the largest Cohen radius ``sigma Phi^-1(p_lower)``:

* test time (Eq. 7, no label): the top class's votes; ties by the unclipped value
  ``sigma Phi^-1(p_lower)`` (which orders abstentions too), then the smaller sigma;
* training set (Eq. 5, the label): the votes of class y, the radius counting only
  where y is the top class and ``p_lower > 1/2``; no sigma classifies -> the
  smallest grid sigma.

Inputs x sigmas are packed into the forward batches together: the copies of an
input at every grid sigma share their standard-normal draws (common random
numbers: each grid sigma still sees ``samples`` N(0, sigma^2 I) draws, and the
comparison between sigmas is less noisy than with independent draws).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from scipy import special

from .. import ops, stats
from ..engine import Sampler

GRID_STEP = 0.05


def sigma_grid(sigma_min: float, sigma_max: float, step: float = GRID_STEP, *,
               include_min: bool = False) -> torch.Tensor:
    """Sigma = {t * step : t integer, sigma_min <= t step <= sigma_max} (Wang et al., Eqs. 5, 7),
    ascending float64; ``include_min`` prepends sigma_min when it is off the grid.

    Example: ``sigma_grid(0.12, 0.25)`` is ``[0.15, 0.20, 0.25]``."""
    for name, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max), ("step", step)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be finite and > 0, got {v!r}")
    if sigma_max < sigma_min:
        raise ValueError(f"sigma_max ({sigma_max}) is below sigma_min ({sigma_min})")
    eps = 1e-9
    t0, t1 = math.ceil(sigma_min / step - eps), math.floor(sigma_max / step + eps)
    vals = [round(t * step, 12) for t in range(t0, t1 + 1)]
    if include_min and (not vals or abs(vals[0] - sigma_min) > 1e-12):
        vals = [float(sigma_min)] + vals
    if not vals:
        raise ValueError(f"no multiple of {step} lies in [{sigma_min}, {sigma_max}]: the sigma grid is empty")
    return torch.tensor(vals, dtype=torch.float64)


def check_grid_values(grid: Sequence[float]) -> torch.Tensor:
    """A user-given grid as a sorted float64 tensor, refusing empty, non-finite, <= 0 or repeated values."""
    g = torch.as_tensor(grid, dtype=torch.float64).view(-1)
    if g.numel() == 0:
        raise ValueError("the sigma grid is empty")
    if not bool((torch.isfinite(g) & (g > 0)).all()):
        raise ValueError(f"every grid sigma must be finite and > 0, got {g.tolist()}")
    g = g.sort().values
    if bool((g[1:] == g[:-1]).any()):
        raise ValueError(f"the sigma grid repeats a value: {g.tolist()}")
    return g


@dataclass
class GridSelection:
    """Per-input sigma selection over a grid of T values (CPU tensors).

    Attributes:
        grid: ``[T]`` float64.
        radius: ``[B, T]`` float64 selection radius at each grid sigma (0 = abstain).
        score: ``[B, T]`` float64 unclipped ``sigma Phi^-1(p_lower)`` (``-inf`` with no votes).
        top: ``[B, T]`` int64 class whose votes were used (top class, or the label).
        choice: ``[B]`` int64 index into the grid; sigma: ``[B]`` float64 the chosen sigma.
        best: ``[B]`` float64 radius at the chosen sigma (= max over the grid).
        samples: draws per (input, sigma).
    """

    grid: torch.Tensor
    radius: torch.Tensor
    score: torch.Tensor
    top: torch.Tensor
    choice: torch.Tensor
    sigma: torch.Tensor
    best: torch.Tensor
    samples: int


def select_sigma(sampler: Sampler, X: torch.Tensor, ids: torch.Tensor, grid: torch.Tensor, samples: int,
                 alpha: float, batch_size: Optional[int] = None, *, stream: Optional[int] = None,
                 labels: Optional[torch.Tensor] = None) -> GridSelection:
    """The sample-wise sigma of each input (module docstring).

    Args:
        sampler: the :class:`smoothcert.engine.Sampler` of the Gaussian noise (classifier, seed,
            dtype, clamp; its stream and batch size unless ``stream``/``batch_size`` are given).
        X: ``[B, *S]`` checked float32 inputs on the model's device; ids: ``[B]`` indices keying the noise.
        grid: ``[T]`` float64 from :func:`sigma_grid` / :func:`check_grid_values`.
        samples: draws per (input, sigma); alpha: level of the selection bound.
        stream: noise stream (:data:`ops.SAMPLEWISE_STREAM` at test time,
            :data:`ops.TRAIN_SAMPLEWISE_STREAM` on the training set).
        labels: ``[B]`` int64 for the training-set rule (Eq. 5); None for Eq. 7.
    """
    grid = check_grid_values(grid)
    B, T = X.shape[0], grid.numel()
    if samples < 1:
        raise ValueError(f"selection needs at least one sample per sigma, got {samples}")
    Xr = X.repeat_interleave(T, dim=0)
    idr = ids.to(X.device).repeat_interleave(T)
    table = grid.to(X.device, torch.float32).repeat(B).view(B * T, 1)
    ops.check_sigma(table)
    changes = {k: v for k, v in (("stream", stream), ("batch_size", batch_size)) if v is not None}
    if changes:
        sampler = sampler.replace(**changes)
    counts = sampler.draw(Xr, idr, table, samples).cpu().view(B, T, -1)
    top = counts.argmax(dim=2)  # ties to the lowest class
    if labels is not None:
        y = torch.as_tensor(labels).long().cpu().view(B, 1).expand(B, T)
        k = counts.gather(2, y.unsqueeze(2)).squeeze(2)
        valid = top == y
        top = y.clone()
    else:
        k = counts.gather(2, top.unsqueeze(2)).squeeze(2)
        valid = torch.ones(B, T, dtype=torch.bool)
    p_lo = np.asarray(stats.clopper_pearson_lower(k.numpy(), samples, alpha), dtype=np.float64).reshape(B, T)
    g = grid.numpy().reshape(1, T)
    with np.errstate(divide="ignore"):
        score = g * special.ndtri(p_lo)
    ok = valid.numpy() & (p_lo > 0.5)
    radius = np.where(ok, np.asarray(stats.gaussian_radius(np.where(ok, p_lo, 0.5), np.broadcast_to(g, (B, T))),
                                     dtype=np.float64), 0.0)
    if labels is not None:
        # Eq. 5: the largest R*h; all zero -> the smallest sigma (index 0, the grid is ascending).
        choice = np.argmax(radius, axis=1)
    else:
        # Eq. 7: the largest radius, ties by the unclipped score, then the smaller sigma.
        order = np.lexsort((-np.arange(T)[None, :].repeat(B, 0), score, radius), axis=1)
        choice = order[:, -1]
    rows = np.arange(B)
    pick = torch.from_numpy(choice).long()
    return GridSelection(grid=grid, radius=torch.from_numpy(radius), score=torch.from_numpy(score), top=top,
                         choice=pick, sigma=grid[pick],
                         best=torch.from_numpy(radius[rows, choice].copy()), samples=int(samples))
