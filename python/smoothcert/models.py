"""Classifier architectures, the in-model normalisation layer, and checkpoints."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from . import data
from .archs import CifarResNet, ResNet18, ResNet50, WideResNet

__all__ = [
    "NormalizeLayer", "TinyMLP", "LeNet", "CifarResNet", "ResNet18", "WideResNet",
    "ResNet50", "ARCHITECTURES", "register_architecture", "build_model",
    "count_parameters", "save_checkpoint", "load_checkpoint", "checkpoint_info",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "smoothcert-checkpoint-v1"


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


@register_architecture("lenet")
def _lenet(num_classes: int, in_channels: int, hw: Tuple[int, int]) -> nn.Module:
    return LeNet(in_channels=in_channels, num_classes=num_classes, input_hw=hw)


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


def _plain(obj: Any, where: str) -> Any:
    # weights_only=True loading only accepts plain containers, so reject others early.
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be str, got {type(k).__name__}")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    raise TypeError(f"{where}: {type(obj).__name__} is not a plain Python type "
                    "(str/int/float/bool/list/dict/None)")


def save_checkpoint(path: str, model: nn.Module, *, arch: str, dataset: str,
                    meta: Optional[dict] = None) -> None:
    """Atomically save a model made by :func:`build_model` with its metadata.

    Args:
        path: Destination file; written via ``path + ".tmp"`` and ``os.replace``.
        model: The full Sequential (normalize buffers included).
        arch: Architecture name in :data:`ARCHITECTURES`.
        dataset: Dataset name (fixes input shape, classes and normalisation).
        meta: Plain-typed details: training method, sigma, epochs, command line, ...
    """
    if not (isinstance(model, nn.Sequential) and isinstance(model[0], NormalizeLayer)):
        raise ValueError("save_checkpoint expects the nn.Sequential from build_model "
                         "(NormalizeLayer first)")
    path = os.fspath(path)
    obj = {"format": CHECKPOINT_FORMAT, "arch": arch, "dataset": dataset,
           "num_classes": data.num_classes(dataset),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
           "meta": _plain(meta or {}, "meta")}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)  # readers never see a half-written checkpoint
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_INFO_KEYS = ("format", "arch", "dataset", "num_classes", "meta")


def _read(path: str, map_location: Any = "cpu", mmap: bool = False) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # pickle of arbitrary objects, not a torch file, ...
        if mmap:  # e.g. a legacy (non-zip) torch file, which cannot be memory-mapped
            return _read(path, map_location, mmap=False)
        raise ValueError(f"{path}: cannot load as a weights-only torch file: {e}") from e


def _not_ours(path: str, obj: Any) -> str:
    found = (f"dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, dict)
             else type(obj).__name__)
    return f"{path}: not a smoothcert checkpoint (no 'format' key; found {found})"


def _check_format(path: str, obj: Dict[str, Any]) -> None:
    if obj["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {obj['format']!r}, "
                         f"expected {CHECKPOINT_FORMAT!r}")
    missing = [k for k in _INFO_KEYS + ("state_dict",) if k not in obj]
    if missing:
        raise ValueError(f"{path}: corrupt checkpoint, missing keys {missing}")


def load_checkpoint(path: str, map_location: Any = "cpu", *, arch: Optional[str] = None,
                    dataset: Optional[str] = None) -> Tuple[nn.Sequential, Dict[str, Any]]:
    """Rebuild a model from a checkpoint, in eval mode.

    A raw ``state_dict`` file (of the full Sequential, or of the bare network, in
    which case the dataset's normalisation stats are used) is accepted when both
    ``arch`` and ``dataset`` are given.

    Returns:
        (model, info) where info has format, arch, dataset, num_classes and meta.
    """
    path = os.fspath(path)
    obj = _read(path, map_location)
    if isinstance(obj, dict) and "format" in obj:
        _check_format(path, obj)
        for key, given in (("arch", arch), ("dataset", dataset)):
            if given is not None and given != obj[key]:
                raise ValueError(f"{path}: checkpoint has {key}={obj[key]!r}, caller asked {given!r}")
        model = build_model(obj["arch"], obj["dataset"])
        model.load_state_dict(obj["state_dict"], strict=True)
        info = {k: obj[k] for k in _INFO_KEYS}
    elif (arch is not None and dataset is not None and isinstance(obj, dict)
          and all(isinstance(v, Tensor) for v in obj.values())):
        model = build_model(arch, dataset)
        if "0.mean" in obj:
            model.load_state_dict(obj, strict=True)
        else:
            model[1].load_state_dict(obj, strict=True)
        info = {"format": None, "arch": arch, "dataset": dataset,
                "num_classes": data.num_classes(dataset), "meta": {}}
    else:
        raise ValueError(_not_ours(path, obj) + "; for a raw state_dict pass arch= and dataset=")
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, info


def checkpoint_info(path: str) -> Dict[str, Any]:
    """The metadata of a checkpoint written by :func:`save_checkpoint`, without building the model.

    Loads with ``weights_only=True`` (memory-mapped where possible, so the weights are
    not read into memory) and returns a dict with ``format``, ``arch``, ``dataset``,
    ``num_classes`` and ``meta`` (what :func:`save_checkpoint` was given: training
    method, sigma, epochs, command line, ...). The dataset and architecture need not
    be known to this installation.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a weights-only torch file, or not a smoothcert checkpoint.
    """
    path = os.fspath(path)
    obj = _read(path, "cpu", mmap=True)
    if not (isinstance(obj, dict) and "format" in obj):
        raise ValueError(_not_ours(path, obj))
    _check_format(path, obj)
    return {k: obj[k] for k in _INFO_KEYS}
