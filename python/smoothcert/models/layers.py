"""The in-model normalisation layer (noise is added before it, in raw pixel space)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class NormalizeLayer(nn.Module):
    """Per-channel standardisation as the first layer of the classifier.

    Following Cohen et al. (2019), Gaussian noise is added to the input *before*
    this layer, in [0, 1] pixel space, so sigma and certified radii are in [0, 1]
    pixel units regardless of the dataset's statistics. Keeping the normalisation
    inside the model (instead of in the data pipeline) guarantees that.

    Args:
        mean: Per-channel means, length C.
        std: Per-channel standard deviations, length C, all > 0.

    Shape:
        x: [B, C, H, W] -> [B, C, H, W].
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        if mean_t.shape != std_t.shape or bool((std_t <= 0).any()):
            raise ValueError(f"need equal-length mean/std with std > 0, got {mean} / {std}")
        # Buffers: saved in state_dict and moved by .to(device), but never trained.
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std
