"""Wrapper of ``smoothcert::pair_distances``: the exact pairwise distances of the
robust-region allocation (Wang et al., sample-wise smoothing, §4.2 and App. C), and the edge
list built from them in tiles."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from ..utils.arrays import as_tensor
from .checks import check_finite


def _check_reach(reach: torch.Tensor, n: int, what: str) -> torch.Tensor:
    reach = torch.as_tensor(reach).double().view(-1)
    if reach.numel() != n:
        raise ValueError(f"{what} must have one entry per point ({n}), got {reach.numel()}")
    if n and not bool((torch.isfinite(reach) & (reach >= 0)).all()):
        raise ValueError(f"{what} must be finite and >= 0")
    return reach


def pair_distances(rows: torch.Tensor, cols: torch.Tensor, reach_rows: torch.Tensor, reach_cols: torch.Tensor,
                   *, validate: bool = True) -> torch.Tensor:
    """Exact L2 distances of the pairs closer than the sum of their reaches.

    ``out[b, i] = D(rows[b], cols[i])`` where that distance is ``< reach_rows[b] +
    reach_cols[i]``, else ``+inf``. D is the canonical fp64 distance of the float32
    points (``csrc/common/ball_math.h``; relative error below ``(D + 4) 2^-53``,
    the same bits on every backend). The kernels screen pairs with float32 dot
    products and a rigorous error bound and recompute exactly every pair that could
    be kept, so no pair closer than its threshold is ever dropped.

    Args:
        rows: ``[B, *S]`` float32 points (raw input space).
        cols: ``[N, *S]`` float32 points on the same device.
        reach_rows: ``[B]`` float64, finite, >= 0; reach_cols: ``[N]`` likewise.
        validate: check values (one host sync).

    Returns:
        ``[B, N]`` float64 on the points' device.
    """
    rows, cols = as_tensor(rows, "rows"), as_tensor(cols, "cols")
    reach_rows, reach_cols = as_tensor(reach_rows, "reach_rows"), as_tensor(reach_cols, "reach_cols")
    B, N = rows.shape[0], cols.shape[0]
    if tuple(rows.shape[1:]) != tuple(cols.shape[1:]):
        raise ValueError(f"row points have element shape {list(rows.shape[1:])} but column points "
                         f"{list(cols.shape[1:])}")
    D = int(np.prod(rows.shape[1:])) if rows.dim() > 1 else 1
    xq, xm = rows.reshape(B, D).float(), cols.reshape(N, D).float()
    if xq.device != xm.device:
        raise ValueError(f"row points are on {xq.device} but column points on {xm.device}")
    if validate:
        check_finite(xq, "row points")
        check_finite(xm, "column points")
        reach_rows = _check_reach(reach_rows, B, "reach_rows")
        reach_cols = _check_reach(reach_cols, N, "reach_cols")
    dev = xq.device
    return torch.ops.smoothcert.pair_distances.default(
        xq, xm, reach_rows.to(dev, torch.float64).view(-1), reach_cols.to(dev, torch.float64).view(-1))


def pair_edges(x: torch.Tensor, reach: torch.Tensor, *, tile_rows: Optional[int] = None
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pair ``i < j`` of ``x`` with ``D(x_i, x_j) < reach_i + reach_j``.

    Computes the upper triangle of the dense n x n matrix in row tiles of
    ``tile_rows`` (default: about 2^22 entries per tile), so memory stays
    O(tile_rows * n) whatever n.

    Args:
        x: ``[n, *S]`` float32 points (any device; the kernel runs there).
        reach: ``[n]`` float64, finite, >= 0.

    Returns:
        ``(i [E] int64, j [E] int64, distance [E] float64)`` on the CPU, sorted by
        (i, j); ``i < j``.
    """
    n = x.shape[0]
    xf = x.reshape(n, int(np.prod(x.shape[1:])) if x.dim() > 1 else 1).float()
    check_finite(xf, "points")
    reach = _check_reach(reach, n, "reach")
    dev_reach = reach.to(xf.device)
    step = tile_rows or max(1, (1 << 22) // max(1, n))
    ii, jj, dd = [], [], []
    for a in range(0, n, step):
        b = min(n, a + step)
        # Columns from a on: the tile's own lower triangle is masked below.
        d = pair_distances(xf[a:b], xf[a:], dev_reach[a:b], dev_reach[a:], validate=False)
        # Select on the tile's device: only the (few) kept pairs cross to the host.
        upper = torch.ones(d.shape, dtype=torch.bool, device=d.device).triu_(1)
        r, c = torch.nonzero(torch.isfinite(d) & upper, as_tuple=True)
        ii.append(r.cpu() + a)
        jj.append(c.cpu() + a)
        dd.append(d[r, c].cpu())
    if not ii:
        e = torch.empty(0, dtype=torch.long)
        return e, e.clone(), torch.empty(0, dtype=torch.float64)
    return torch.cat(ii), torch.cat(jj), torch.cat(dd)
