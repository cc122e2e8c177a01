"""Data augmentations applied before the noise, by ``TrainConfig.augment`` name. Each takes
``x`` ``[B, C, H, W]`` and the epoch's generator (after the shuffle drew from it) and returns
``[B, C, H, W]``."""
from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import Tensor


def no_augment(x: Tensor, gen: torch.Generator) -> Tensor:
    return x


def crop_flip(x: Tensor, gen: torch.Generator) -> Tensor:
    """Pad 4 (zeros), random crop back to H x W, random horizontal flip (the CIFAR recipe)."""
    B, _, H, W = x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (B,), generator=gen)
    dx = torch.randint(0, 9, (B,), generator=gen)
    flip = torch.rand(B, generator=gen) < 0.5
    rows = (dy.view(B, 1) + torch.arange(H).view(1, H)).to(x.device)
    cols = (dx.view(B, 1) + torch.arange(W).view(1, W)).to(x.device)
    cols = torch.where(flip.view(B, 1).to(x.device), cols.flip(1), cols)
    b = torch.arange(B, device=x.device).view(B, 1, 1)
    out = padded.permute(0, 2, 3, 1)[b, rows.view(B, H, 1), cols.view(B, 1, W)]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


AUGMENTATIONS: Dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {"none": no_augment, "crop-flip": crop_flip}
