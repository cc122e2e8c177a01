"""Wrapper of ``smoothcert::ball_margin``: the pairwise ball tests of the memory-based
certificate (Alfarra et al., §3.5 and App. C, Algorithm 3), new points against a memory of stored balls."""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..utils.arrays import as_tensor
from .checks import check_finite

Margins = Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def ball_margin(queries: torch.Tensor, memory: torch.Tensor, radius: torch.Tensor, mem_class: torch.Tensor,
                query_class: torch.Tensor, *, p: int = 2, chunk_rows: Optional[int] = None,
                validate: bool = True) -> Margins:
    """For each query, the deepest other-class ball it meets and its nearest stored point.

    With D the exact fp64 distance (L2 for ``p=2``, L1 for ``p=1``; one canonical
    summation order on every backend, see ``csrc/common/ball_math.h``):

    * ``margin[b] = min {D(x_b, m_i) - R_i : C_i != c_b}`` and its argmin: negative
      means x_b lies inside an other-class ball, ``< R`` that a ball of radius R
      around x_b would meet one (``c_b = -1``, abstain, counts every stored point);
    * ``nearest[b] = min_i D(x_b, m_i)`` and its argmin (0.0: a duplicate).

    Ties go to the lowest index; an empty set gives ``+inf`` and ``-1``. The
    kernels screen pairs with float32 dot products and a rigorous error bound and
    recompute every pair that could be a minimum exactly, so the results are the
    minima of the exact distances, with no ``[B, N, D]`` intermediate.

    Args:
        queries: ``[B, *S]`` float32 new points (raw input space).
        memory: ``[N, *S]`` float32 stored points, on the queries' device or on the
            CPU (then streamed to the queries' device ``chunk_rows`` rows at a time:
            a memory larger than device memory).
        radius: ``[N]`` float64 stored radii (finite, >= 0).
        mem_class: ``[N]`` int64 stored classes (>= 0).
        query_class: ``[B]`` int64 classes of the queries, -1 for abstain.
        p: 1 or 2, the norm.
        chunk_rows: stored rows per kernel call (default: all at once when the memory
            is on the queries' device, else 65536 // max(1, D // 1024)).
        validate: check values (one host sync).

    Returns:
        ``(margin [B] float64, margin_idx [B] int64, nearest [B] float64, nearest_idx [B] int64)``
        on the queries' device.
    """
    if p not in (1, 2):
        raise ValueError(f"p (the norm) must be 1 or 2, got {p!r}")
    queries, memory = as_tensor(queries, "queries"), as_tensor(memory, "memory")
    radius, mem_class = as_tensor(radius, "radius"), as_tensor(mem_class, "mem_class")
    query_class = as_tensor(query_class, "query_class")
    B, N = queries.shape[0], memory.shape[0]
    if tuple(queries.shape[1:]) != tuple(memory.shape[1:]):
        raise ValueError(f"queries have element shape {list(queries.shape[1:])} but stored points "
                         f"{list(memory.shape[1:])}")
    D = 1
    for s in queries.shape[1:]:
        D *= int(s)
    xq = queries.reshape(B, D).float()
    xm = memory.reshape(N, D)
    dev = xq.device
    radius = radius.to(device=xm.device, dtype=torch.float64).view(-1)
    mem_class = mem_class.to(device=xm.device, dtype=torch.int64).view(-1)
    query_class = query_class.to(device=dev, dtype=torch.int64).view(-1)
    if validate:
        check_finite(xq, "queries")
        if radius.numel() != N or mem_class.numel() != N or query_class.numel() != B:
            raise ValueError(f"radius and mem_class must have one entry per stored point ({N}) and query_class "
                             f"one per query ({B}); got {radius.numel()}, {mem_class.numel()}, {query_class.numel()}")
        if N and not bool((torch.isfinite(radius) & (radius >= 0)).all()):
            raise ValueError("stored radii must be finite and >= 0")
        if N and bool((mem_class < 0).any()):
            raise ValueError("stored classes must be >= 0 (abstentions are never stored)")
        if B and bool((query_class < -1).any()):
            raise ValueError("query classes must be >= 0, or -1 for an abstention")
    op = torch.ops.smoothcert.ball_margin.default
    if chunk_rows is None and xm.device == dev:
        if validate:
            check_finite(xm, "stored points")
        return op(xq, xm.float(), radius, mem_class, query_class, p)
    step = chunk_rows or max(1, 65536 // max(1, xq.shape[1] // 1024))
    inf = torch.full((B,), float("inf"), dtype=torch.float64, device=dev)
    none = torch.full((B,), -1, dtype=torch.int64, device=dev)
    margin, margin_idx, nearest, nearest_idx = inf, none, inf.clone(), none.clone()
    for i0 in range(0, N, step):
        i1 = min(N, i0 + step)
        if validate:
            check_finite(xm[i0:i1], "stored points")
        m, mi, n, ni = op(xq, xm[i0:i1].to(dev, torch.float32, non_blocking=True), radius[i0:i1].to(dev),
                          mem_class[i0:i1].to(dev), query_class, p)
        # Later chunks hold higher indices: only a strictly smaller value wins a tie.
        take = m < margin
        margin, margin_idx = torch.where(take, m, margin), torch.where(take, mi + i0, margin_idx)
        take = n < nearest
        nearest, nearest_idx = torch.where(take, n, nearest), torch.where(take, ni + i0, nearest_idx)
    return margin, margin_idx, nearest, nearest_idx
