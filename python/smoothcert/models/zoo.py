"""The architecture registry and :func:`build_model` (normalisation layer + network)."""
from __future__ import annotations

from typing import Callable, Dict, Tuple

from torch import nn

from .. import data
from .layers import NormalizeLayer
from .resnets import CifarResNet, ResNet18, ResNet50, WideResNet
from .small import LeNet, SmallConvNet, TinyMLP


Factory = Callable[[int, int, Tuple[int, int]], nn.Module]
ARCHITECTURES: Dict[str, Factory] = {}


def register_architecture(name: str) -> Callable[[Factory], Factory]:
    """Decorator adding ``factory(num_classes, in_channels, (H, W)) -> nn.Module``."""
    def deco(fn: Factory) -> Factory:
        ARCHITECTURES[name] = fn
        return fn
    return deco


@register_architecture("mlp")
def _mlp(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    return TinyMLP(in_features=in_channels * hw[0] * hw[1], num_classes=num_classes)


@register_architecture("mlp10")
def _mlp10(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    return TinyMLP(in_features=in_channels * hw[0] * hw[1], hidden=10, num_classes=num_classes)


@register_architecture("lenet")
def _lenet(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    return LeNet(in_channels=in_channels, num_classes=num_classes, input_hw=hw)


@register_architecture("smallconv")
def _smallconv(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    return SmallConvNet(in_channels=in_channels, num_classes=num_classes, input_hw=hw)


def _check_min_hw(arch: str, hw: Tuple[int, int], least: int) -> None:
    if min(hw) < least:
        raise ValueError(f"{arch} needs inputs of at least {least}x{least}, got {tuple(hw)}")


def _register_cifar_resnet(depth: int) -> None:
    name = f"resnet{depth}"

    @register_architecture(name)
    def _factory(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
        _check_min_hw(name, hw, 8)
        return CifarResNet(depth, num_classes=num_classes, in_channels=in_channels)

    _factory.__name__ = f"_{name}"
    _factory.__doc__ = f"CIFAR ResNet-{depth} (He et al. 2016), as in Cohen et al. (2019)."


for _depth in (20, 56, 110):
    _register_cifar_resnet(_depth)


@register_architecture("resnet18")
def _resnet18(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    """ResNet-18, CIFAR variant (3x3 stem, no max-pool)."""
    _check_min_hw("resnet18", hw, 8)
    return ResNet18(num_classes=num_classes, in_channels=in_channels)


@register_architecture("wrn40_2")
def _wrn40_2(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    """Wide-ResNet-40-2 (Zagoruyko & Komodakis 2016), no dropout."""
    _check_min_hw("wrn40_2", hw, 8)
    return WideResNet(40, 2, num_classes=num_classes, in_channels=in_channels)


@register_architecture("resnet50")
def _resnet50(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    """ImageNet ResNet-50 (v1.5 stride placement); meant for 224x224 inputs."""
    _check_min_hw("resnet50", hw, 16)
    return ResNet50(num_classes=num_classes, in_channels=in_channels)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (buffers such as BN statistics excluded).

    Shared parameters are counted once; ``trainable_only`` counts only those with
    ``requires_grad``.
    """
    return sum(p.numel() for p in model.parameters()
               if p.requires_grad or not trainable_only)


def build_model(arch: str, dataset: str) -> nn.Sequential:
    """``nn.Sequential(NormalizeLayer(dataset stats), net)``; input [B, C, H, W] in [0, 1]."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    c, h, w = data.input_shape(dataset)
    if dataset not in data.DATASET_STATS:
        raise ValueError(f"no normalisation stats for dataset {dataset!r} in DATASET_STATS")
    net = ARCHITECTURES[arch](data.num_classes(dataset), c, (h, w))
    return nn.Sequential(NormalizeLayer(*data.DATASET_STATS[dataset]), net)
