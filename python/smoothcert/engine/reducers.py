"""Reducers: statistics the engine keeps per input besides the votes.

:meth:`Sampler.draw <smoothcert.engine.Sampler.draw>` always counts each input's votes
(``[G, K]``, the fused :func:`smoothcert.ops.count_votes_`); a reducer also sees every
forward batch's logits and the noise kind's ``extra`` and keeps what a certificate needs.
A reducer holds its own result; the caller reads it after the draw.

Protocol: ``reducer.add(i0, i1, m, logits, extra)`` for the batch holding ``m`` samples of
inputs ``i0:i1`` of the draw (``logits`` ``[(i1 - i0) * m, K]``, ``extra`` from the noise
kind); reducers of pairs need ``m`` even (pair noise kinds guarantee it).
"""
from __future__ import annotations

from typing import List, Tuple

import torch

from ..stats.second_order import DOT_SCALE_BITS


class PairHits:
    """Dipole smoothing's pair counts (Levine et al., second-order certificates, Sec. 4): over the
    antithetic pairs ``(2j, 2j+1)`` of each input, how many have both votes for the input's
    class ``top`` (``count_s``), only the first (``count_n``), exactly one (``count_x``).

    Args:
        top: ``[G]`` int64 class of each input, on the inputs' device.
    """

    def __init__(self, top: torch.Tensor):
        self.top = top.view(-1, 1, 1)
        self.c = torch.zeros(3, top.numel(), dtype=torch.long, device=top.device)

    def add(self, i0: int, i1: int, m: int, logits: torch.Tensor, extra) -> None:
        hit = logits.argmax(dim=1).view(i1 - i0, m // 2, 2) == self.top[i0:i1]
        plus, minus = hit[..., 0], hit[..., 1]
        self.c[0, i0:i1] += (plus & minus).sum(dim=1)
        self.c[1, i0:i1] += (plus & ~minus).sum(dim=1)
        self.c[2, i0:i1] += (plus ^ minus).sum(dim=1)

    def result(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(count_s, count_n, count_x)``, each ``[G]`` int64 on the CPU."""
        c = self.c.cpu()
        return c[0], c[1], c[2]


class PairDotSums:
    """Second-order smoothing's gradient-norm statistic (Levine et al., second-order
    certificates, Sec. 3): per input, the exact integer ``sum_j ceil(2^24 f_j f'_j z_j . z'_j)``
    over its pairs of independent draws, where ``f_j`` is 1 when sample ``j`` votes for the
    input's class ``top``. Needs a noise kind whose ``extra`` is the pairs' dot products
    (``"gaussian-pairs"``).

    Args:
        top: ``[G]`` int64 class of each input, on the inputs' device.
    """

    def __init__(self, top: torch.Tensor):
        self.top = top.view(-1, 1, 1)
        self.G = top.numel()
        # Per-batch int64 sums stay on the device (each is far from overflow) and become exact
        # Python ints once at the end, so no forward batch waits for the host.
        self.parts: List[Tuple[int, torch.Tensor]] = []
        self.scale = float(2 ** DOT_SCALE_BITS)

    def add(self, i0: int, i1: int, m: int, logits: torch.Tensor, dots: torch.Tensor) -> None:
        if dots is None:
            raise ValueError("PairDotSums needs a noise kind that returns the pairs' dot products "
                             "(noise='gaussian-pairs')")
        both = (logits.argmax(dim=1).view(i1 - i0, m // 2, 2) == self.top[i0:i1]).all(dim=2)
        fixed = torch.ceil(torch.where(both, dots, torch.zeros_like(dots)) * self.scale).to(torch.long)
        self.parts.append((i0, fixed.sum(dim=1)))

    def result(self) -> List[int]:
        """Per input, the sum as an exact Python int (length G)."""
        totals = [0] * self.G
        for i0, sums in self.parts:
            for k, v in enumerate(sums.tolist()):
                totals[i0 + k] += v
        return totals
