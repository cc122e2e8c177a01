"""How ``inputs x samples`` become forward batches, the same way for every family.

Packing never changes a draw (the noise is keyed by input index and sample index, not by
position in a batch); it only decides which rows share a forward pass.
"""
from __future__ import annotations

from typing import Iterator, Tuple

import torch


def chunks(G: int, num: int, batch_size: int, start: int = 0) -> Iterator[Tuple[int, int, int, int]]:
    """``(first input, end input, first sample, samples per input)`` of each forward batch that
    draws samples ``[start, start + num)`` of ``G`` inputs: whole inputs share a batch when
    ``num <= batch_size``, else each input's range is cut into batches of ``batch_size``."""
    if num <= 0:
        return
    if num <= batch_size:
        step = max(1, batch_size // num)
        for i0 in range(0, G, step):
            yield i0, min(G, i0 + step), start, num
    else:
        end = start + num
        for i in range(G):
            for s in range(start, end, batch_size):
                yield i, i + 1, s, min(batch_size, end - s)


def groups(B: int, n: int, batch_size: int) -> Iterator[Tuple[int, int]]:
    """Consecutive input groups, each small enough that its n samples of every input fill
    about one forward batch (one input at a time when n > batch_size)."""
    step = max(1, batch_size // n)
    for g0 in range(0, B, step):
        yield g0, min(B, g0 + step)


def num_groups(B: int, n: int, batch_size: int) -> int:
    """How many groups :func:`groups` yields (for progress bars)."""
    return len(range(0, B, max(1, batch_size // n)))


def sub_table(table, g0: int, g1: int):
    """Rows g0:g1 of a ``[1 | B, 1 | D]`` sigma table (a shared row stays shared; None stays None)."""
    return table[g0:g1] if table is not None and table.shape[0] > 1 else table


def even_batch(batch_size: int) -> int:
    """The largest even batch size <= ``batch_size`` (at least 2), so that :func:`chunks` keeps
    samples ``2j, 2j+1`` of an input in one forward batch (pair-based reducers)."""
    return max(2, batch_size - batch_size % 2)


def check_pairs(start: int, num: int) -> None:
    """Pair-based noise draws whole pairs ``(2j, 2j+1)``: ``start`` and ``num`` must be even."""
    if start % 2 or num % 2:
        raise ValueError(f"pair-based noise draws whole pairs: the sample range [{start}, {start + num}) must "
                         "start and end on an even index")


def empty_votes(G: int, K: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Zeroed ``[G, K]`` vote counts and ``[G]`` non-finite tallies (int64) on ``device``."""
    return (torch.zeros(G, K, dtype=torch.long, device=device), torch.zeros(G, dtype=torch.long, device=device))
