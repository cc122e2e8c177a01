"""The dataset registry: :class:`Split`, the per-dataset shapes, class counts and
normalisation statistics, and :func:`load_dataset` over the registered loaders
(one module per on-disk format registers each with :func:`register_dataset`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple, Union

import numpy as np
from torch import Tensor

from .images import LazyImages

__all__ = ["Split", "DATASETS", "DATASET_STATS", "SPLITS", "register_dataset", "load_dataset", "input_shape",
           "num_classes"]

SPLITS = ("train", "test")

# Per-channel (mean, std) of the [0, 1] training images, used by NormalizeLayer.
# digits: computed once from sklearn's load_digits() / 16 over all 1797 images.
DATASET_STATS: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "digits": ((0.3053,), (0.3760,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

# (C, H, W) and class count; kept apart from the loaders so models can be built
# for a dataset whose loader is not registered (yet) on this machine.
_INFO: Dict[str, Tuple[Tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "imagenet": ((3, 224, 224), 1000),
}


@dataclass
class Split:
    """One split of a dataset.

    Attributes:
        x: Images, float32 [N, C, H, W] with values in [0, 1]: an in-memory tensor,
            or a :class:`LazyImages` (ImageNet) decoding files when indexed by an
            int, slice, list or 1-D LongTensor.
        y: Labels, int64 [N] in [0, num_classes), always in memory.
        num_classes: Number of classes.
        name: Dataset name plus split, e.g. ``"mnist/test"``.
    """

    x: Union[Tensor, LazyImages]
    y: Tensor
    num_classes: int
    name: str

    def __len__(self) -> int:
        return int(self.y.shape[0])


Loader = Callable[[str, Optional[str]], Split]
DATASETS: Dict[str, Loader] = {}


def register_dataset(name: str, *, shape: Optional[Tuple[int, int, int]] = None,
                     classes: Optional[int] = None) -> Callable[[Loader], Loader]:
    """Decorator adding ``fn(split, root) -> Split`` to :data:`DATASETS` under ``name``.

    ``shape`` (C, H, W) and ``classes`` are needed only for names not already known
    to :func:`input_shape`.
    """
    def deco(fn: Loader) -> Loader:
        if shape is not None and classes is not None:
            _INFO[name] = (tuple(shape), int(classes))
        elif name not in _INFO:
            raise ValueError(f"register_dataset({name!r}) needs shape= and classes=")
        DATASETS[name] = fn
        return fn
    return deco


def _check_name(name: str) -> None:
    if name not in _INFO:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(_INFO))}")


def input_shape(name: str) -> Tuple[int, int, int]:
    """(C, H, W) of one input image of dataset ``name``."""
    _check_name(name)
    return _INFO[name][0]


def num_classes(name: str) -> int:
    """Number of classes of dataset ``name``."""
    _check_name(name)
    return _INFO[name][1]


def load_dataset(name: str, split: str, root: Optional[str] = None) -> Split:
    """Load one split of a registered dataset.

    Args:
        name: A key of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``.
        root: Directory with the data files, for datasets that need one.

    Returns:
        A :class:`Split` with x float32 [N, C, H, W] in [0, 1] and y int64 [N].
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if root is not None:
        root = os.path.expanduser(os.fspath(root))
    return DATASETS[name](split, root)


def _check_labels(labels: np.ndarray, k: int, where: str) -> None:
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"{where}: labels out of range: found {int(labels.min())}..{int(labels.max())}, "
                         f"expected 0..{k - 1}")
