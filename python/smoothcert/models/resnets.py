"""Convolutional networks used in the randomized-smoothing literature.

Written from the published descriptions:

* :class:`CifarResNet` -- the CIFAR-10 ResNets of He et al. (2016, section 4.2),
  depth 6n + 2, as used by Cohen et al. (2019): ResNet-20/56/110.
* :class:`ResNet18` -- the CIFAR variant of ResNet-18 (3x3 stem, no max-pool)
  common in MACER / DDRS style training code.
* :class:`WideResNet` -- pre-activation Wide-ResNet of Zagoruyko & Komodakis (2016),
  e.g. WRN-40-2.
* :class:`ResNet50` -- the ImageNet ResNet-50 with bottleneck blocks, stride on
  the 3x3 convolution ("v1.5").

All networks map ``[B, in_channels, H, W]`` to logits ``[B, num_classes]`` and end
with adaptive average pooling, so they accept any spatial size large enough for
their downsampling (the CIFAR nets: H, W >= 8). They contain no normalisation of
the input; :func:`smoothcert.models.build_model` prepends a ``NormalizeLayer``.
"""

from __future__ import annotations

from typing import List, Sequence

from torch import Tensor, nn

__all__ = [
    "BasicBlock", "PreActBlock", "Bottleneck", "CifarResNet", "ResNet18",
    "WideResNet", "ResNet50", "init_weights",
]


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU) convs; BatchNorm weight 1, bias 0.

    Linear layers keep PyTorch's default initialisation.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """Post-activation residual block: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU.

    The shortcut is the identity, or a projection (1x1 conv with ``stride`` + BN)
    when the stride or the channel count changes.
    """

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    """Wide-ResNet block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, + shortcut.

    When the shape changes the shortcut is a 1x1 conv (with ``stride``) applied to
    the pre-activated input, as in Zagoruyko & Komodakis (2016).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout)
        self.relu = nn.ReLU(inplace=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut = _conv1x1(cin, cout, stride) if (stride != 1 or cin != cout) else None

    def forward(self, x: Tensor) -> Tensor:
        o = self.relu(self.bn1(x))
        res = x if self.shortcut is None else self.shortcut(o)
        out = self.conv1(o)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        return out + res


class Bottleneck(nn.Module):
    """conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1(x4)-BN, + shortcut, ReLU."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)  # "v1.5": stride on the 3x3 conv
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, cout)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _stage(make, cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    layers: List[nn.Module] = []
    for i in range(blocks):
        layers.append(make(cin if i == 0 else cout, cout, stride if i == 0 else 1))
    return nn.Sequential(*layers)


class _Head(nn.Module):
    """Global average pool, flatten, linear."""

    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(x).flatten(1))


class CifarResNet(nn.Module):
    """CIFAR ResNet of depth 6n + 2 (He et al. 2016, section 4.2).

    3x3 conv to 16 channels, BN, ReLU; three stages of n :class:`BasicBlock` with
    16/32/64 channels, the first block of stages 2 and 3 with stride 2; global
    average pool; linear. depth 20 / 56 / 110 give about 0.27M / 0.85M / 1.7M
    parameters.

    Shape:
        x: [B, in_channels, H, W] (H, W >= 8 sensible) -> logits [B, num_classes].
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet depth must be 6n + 2 with n >= 1, got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.stem = nn.Sequential(_conv3x3(in_channels, 16), nn.BatchNorm2d(16),
                                  nn.ReLU(inplace=True))
        self.layer1 = _stage(BasicBlock, 16, 16, n, 1)
        self.layer2 = _stage(BasicBlock, 16, 32, n, 2)
        self.layer3 = _stage(BasicBlock, 32, 64, n, 2)
        self.head = _Head(64, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        return self.head(self.layer3(self.layer2(self.layer1(x))))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs (about 11.2M parameters with 10 classes).

    3x3 stride-1 stem conv to 64 channels, BN, ReLU, no max-pool; four stages of
    two :class:`BasicBlock` with 64/128/256/512 channels and strides 1/2/2/2;
    global average pool; linear.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(_conv3x3(in_channels, 64), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True))
        widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
        stages, cin = [], 64
        for w, s in zip(widths, strides):
            stages.append(_stage(BasicBlock, cin, w, 2, s))
            cin = w
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = _Head(512, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x)


class WideResNet(nn.Module):
    """Wide-ResNet-depth-k (Zagoruyko & Komodakis 2016); WRN-40-2 has about 2.2M parameters.

    3x3 stem conv to 16 channels; three stages of n = (depth - 4) / 6
    :class:`PreActBlock` with 16k / 32k / 64k channels and strides 1/2/2; final
    BN-ReLU; global average pool; linear.
    """

    def __init__(self, depth: int = 40, widen: int = 2, num_classes: int = 10,
                 in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1, got {depth}")
        n = (depth - 4) // 6
        widths = (16 * widen, 32 * widen, 64 * widen)

        def block(cin: int, cout: int, stride: int) -> PreActBlock:
            return PreActBlock(cin, cout, stride, dropout)

        self.stem = _conv3x3(in_channels, 16)
        self.layer1 = _stage(block, 16, widths[0], n, 1)
        self.layer2 = _stage(block, widths[0], widths[1], n, 2)
        self.layer3 = _stage(block, widths[1], widths[2], n, 2)
        self.bn = nn.BatchNorm2d(widths[2])
        self.relu = nn.ReLU(inplace=True)
        self.head = _Head(widths[2], num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.head(self.relu(self.bn(x)))


class ResNet50(nn.Module):
    """ImageNet ResNet-50 (about 25.6M parameters with 1000 classes), input 224x224.

    7x7 stride-2 conv to 64, BN, ReLU, 3x3 stride-2 max-pool; four stages of
    :class:`Bottleneck` blocks ``layers`` = [3, 4, 6, 3] with widths 64..512
    (outputs x4), strides 1/2/2/2 on the 3x3 conv; global average pool; linear.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3,
                 layers: Sequence[int] = (3, 4, 6, 3)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        stages, cin = [], 64
        for width, blocks, stride in zip((64, 128, 256, 512), layers, (1, 2, 2, 2)):
            mods: List[nn.Module] = []
            for i in range(blocks):
                mods.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * Bottleneck.expansion
            stages.append(nn.Sequential(*mods))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = _Head(cin, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.head(x)
