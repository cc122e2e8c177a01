"""Wrapper of ``smoothcert::dssn_batch``: the deterministic splitting-noise batch builder."""
from __future__ import annotations

from typing import Optional

import functools

import numpy as np
import torch

from ..utils.arrays import as_tensor
from .checks import check_grid, check_int
from .streams import DSSN_OFFSET_STREAM


def dssn_batch(x: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, levels: int, q: int, *,
               mean: Optional[torch.Tensor] = None, std: Optional[torch.Tensor] = None,
               out_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
               validate: bool = True) -> torch.Tensor:
    """Deterministic splitting noise (DSSN) of grid images for given split offsets.

    Row ``b * nb + j`` is image ``b`` with split values
    ``s_i = ((v_i + offsets[b, j]) mod L + 1/2) / q`` (Levine & Feizi 2021, §4.1, Eqs. 17-18): each
    element becomes the midpoint of the piece of [0, 1] between consecutive
    cuts ``s_i + n L / q`` that holds it, computed exactly in integers.

    Args:
        x: ``[B, *S]`` float32 grid values ``i / q`` or uint8 pixels (q >= 255).
        v: ``[D]`` int32 fixed offsets in ``[0, L)`` (see :func:`dssn_offsets`).
        offsets: ``[nb]`` (shared) or ``[1 | B, nb]`` int64 split offsets in ``[0, L)``.
        levels: ``L = floor(2 lambda q)``, ``lambda = sqrt(3) sigma``.
        q: grid steps.
        mean, std: optional ``[C]`` per-channel normalisation fused into the output.
        out_dtype: float32 (default), float16, bfloat16 or float64.
        channels_last: NHWC memory format (4-D ``x`` only).
        validate: check the grid, ``v`` and ``offsets`` ranges (one host sync).

    Returns:
        ``[B * nb, *S]``; un-normalised values are exact multiples of ``1 / (4q)``.
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"L (levels) must be an integer >= 1, got {levels!r}")
    levels, q = int(levels), int(q)
    x, v, offsets = as_tensor(x, "x"), as_tensor(v, "v"), as_tensor(offsets, "offsets")
    if (mean is None) != (std is None):
        raise ValueError("dssn_batch: give both mean and std (fused normalisation), or neither")
    if offsets.dim() == 1:
        offsets = offsets.view(1, -1)
    offsets = offsets.to(device=x.device, dtype=torch.int64)
    v = v.to(device=x.device, dtype=torch.int32)
    if validate:
        if x.dtype not in (torch.float32, torch.uint8):
            raise ValueError(f"dssn_batch: x must be float32 grid values or uint8 pixels, got {x.dtype}")
        check_grid(x, q)
        for name, t in (("v", v), ("offsets", offsets)):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= levels):
                raise ValueError(f"{name} must lie in [0, L={levels}), got range [{int(t.min())}, {int(t.max())}]")
    if mean is not None:
        mean = mean.to(device=x.device, dtype=torch.float32)
        std = std.to(device=x.device, dtype=torch.float32)
    return torch.ops.smoothcert.dssn_batch.default(x, v, offsets, levels, q, mean, std, out_dtype, channels_last)


@functools.lru_cache(maxsize=16)
def _offsets_cached(levels: int, dim: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.RandomState(seed).randint(levels, size=dim).astype(np.int32))


def dssn_offsets(levels: int, dim: int, seed: int = 0) -> torch.Tensor:
    """The fixed DSSN offset vector ``v`` ``[dim]`` int32: ``numpy.random.RandomState(seed).randint(L, size=d)``.

    i.i.d. integers in ``[0, L)`` (not a permutation), in the input's C,H,W
    flattening order; training and certification must use the same ``(L, d, seed)``.
    """
    check_int("levels", levels, 1)
    check_int("dim", dim, 1)
    check_int("seed", seed, 0)
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
    w = philox4x32_10(zero, c1, c2, torch.full_like(c1, DSSN_OFFSET_STREAM), seed & 0xFFFFFFFF,
                      (seed >> 32) & 0xFFFFFFFF)[0]
    return (w * levels) >> 32  # floor(u * L), u = w / 2^32
