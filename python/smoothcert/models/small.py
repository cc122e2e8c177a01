"""Small networks for 8x8 digits and 28x28 MNIST-like images."""
from __future__ import annotations

from typing import Tuple

from torch import Tensor, nn


class TinyMLP(nn.Module):
    """Two-hidden-layer MLP, sized for 8x8 digits.

    Shape:
        x: [B, ...] with prod(...) == in_features -> logits [B, num_classes].
    """

    def __init__(self, in_features: int = 64, hidden: int = 256, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class LeNet(nn.Module):
    """LeNet-5 (ReLU, max-pool); 28x28 input gives the classic 16*5*5 = 400 features.

    Shape:
        x: [B, in_channels, H, W] -> logits [B, num_classes].
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10,
                 input_hw: Tuple[int, int] = (28, 28)):
        super().__init__()
        # conv pad=2 keeps size, pool halves, conv 5 removes 4, pool halves.
        h, w = ((s // 2 - 4) // 2 for s in input_hw)
        if h < 1 or w < 1:
            raise ValueError(f"LeNet needs inputs of at least 12x12, got {input_hw}")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(16 * h * w, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class SmallConvNet(nn.Module):
    """Conv(C -> 4, kernel 2) -> FC 100 -> FC num_classes with ReLU: the 7x7 MNIST network of
    Levine et al.'s second-order smoothing experiments (their §5; the paper gives no layer sizes,
    these follow the authors' released code).

    Shape:
        x: [B, in_channels, H, W] -> logits [B, num_classes].
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, input_hw: Tuple[int, int] = (7, 7)):
        super().__init__()
        h, w = input_hw
        if h < 2 or w < 2:
            raise ValueError(f"SmallConvNet needs inputs of at least 2x2, got {input_hw}")
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 4, 2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * (h - 1) * (w - 1), 100), nn.ReLU(),
            nn.Linear(100, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
