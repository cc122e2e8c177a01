"""The dataset registry: :class:`Split`, the per-dataset shapes, class counts and
normalisation statistics, and :func:`load_dataset` over the registered loaders
(one module per on-disk format registers each with :func:`register_dataset`).

A user's own data (``image-folder``, ``npz``) is registered ``from_data=True``: its
shape, class count and class names come from the files, so :func:`input_shape`,
:func:`num_classes` and :func:`dataset_stats` refuse those names with a message
saying where to read them instead (the loaded :class:`Split`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .images import LazyImages

__all__ = ["Split", "DATASETS", "DATASET_STATS", "SPLITS", "USER_DATASETS", "register_dataset", "load_dataset",
           "input_shape", "num_classes", "dataset_stats"]

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
        classes: Class names, ``classes[k]`` the name of label ``k`` (an image
            folder's sub-folder names, an ``.npz``'s ``classes``), or None.
        classes_from_labels: True when ``num_classes`` is only ``max(y) + 1`` (an
            ``.npz`` without ``num_classes``/``classes``): a lower bound, not the
            dataset's class count.
    """

    x: Union[Tensor, LazyImages]
    y: Tensor
    num_classes: int
    name: str
    classes: Optional[List[str]] = None
    classes_from_labels: bool = False

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Shape of one input, e.g. (C, H, W)."""
        return tuple(int(s) for s in self.x.shape[1:])

    def check_model_classes(self, model_classes: int) -> None:
        """Raise unless a model with ``model_classes`` outputs fits this data.

        The model's output size is what counts: a class count the data states (a
        registry dataset, class folders, an ``.npz``'s ``num_classes``) must equal
        it, since labels are positions in the class list; one inferred from the
        labels only needs every label below it.
        """
        k = int(model_classes)
        if self.classes_from_labels:
            if self.num_classes > k:
                at = int(torch.nonzero(self.y >= k)[0])
                raise ValueError(f"{self.name}: label {int(self.y[at])} (index {at}) is out of range for a model "
                                 f"with {k} outputs (classes 0..{k - 1})")
        elif self.num_classes != k:
            raise ValueError(f"{self.name}: the data has {self.num_classes} classes but the model has {k} "
                             f"outputs; labels are positions in the class list, so they must agree")

    def fingerprint(self, indices: Optional[Sequence[int]] = None) -> str:
        """sha256 (64 hex digits) of the inputs ``x[indices]`` and labels ``y[indices]``.

        The identity of the data a run certifies, stored in its resume configuration.
        In-memory inputs are hashed as their float32 values; a :class:`LazyImages`
        as the selected files' relative paths and raw bytes (no decoding). See
        :func:`smoothcert.data.fingerprint.fingerprint` for the exact scheme.

        Args:
            indices: dataset indices, in the order certified (default: all).
        """
        from .fingerprint import fingerprint
        return fingerprint(self.x, self.y, range(len(self)) if indices is None else indices)


Loader = Callable[[str, Optional[str]], Split]
DATASETS: Dict[str, Loader] = {}
# Datasets whose shape and classes come from the user's files, not from _INFO.
USER_DATASETS: Set[str] = set()


def register_dataset(name: str, *, shape: Optional[Tuple[int, int, int]] = None,
                     classes: Optional[int] = None, from_data: bool = False) -> Callable[[Loader], Loader]:
    """Decorator adding ``fn(split, root) -> Split`` to :data:`DATASETS` under ``name``.

    ``shape`` (C, H, W) and ``classes`` are needed only for names not already known
    to :func:`input_shape`; ``from_data=True`` (a user's own data) takes neither.
    """
    def deco(fn: Loader) -> Loader:
        if from_data:
            if shape is not None or classes is not None:
                raise ValueError(f"register_dataset({name!r}, from_data=True) takes no shape= or classes=")
            USER_DATASETS.add(name)
        elif shape is not None and classes is not None:
            _INFO[name] = (tuple(shape), int(classes))
        elif name not in _INFO:
            raise ValueError(f"register_dataset({name!r}) needs shape= and classes=")
        DATASETS[name] = fn
        return fn
    return deco


def _check_name(name: str) -> None:
    if name in USER_DATASETS:
        raise ValueError(f"dataset {name!r} is your own data: its input shape and class count come from the "
                         f"files (--data-root), not from its name, so no model can be built for it by name "
                         f"(--arch, smoothcert train); in Python read split.input_shape and split.num_classes "
                         f"of smoothcert.data.load_dataset({name!r}, split, root)")
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


def dataset_stats(name: str) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Per-channel (mean, std) of dataset ``name``'s [0, 1] training images.

    Raises:
        ValueError: for a user's own data (no statistics are known, and none are
            computed behind the user's back) or a dataset without statistics.
    """
    if name in USER_DATASETS:
        raise ValueError(f"dataset {name!r} is your own data: smoothcert has no normalisation statistics "
                         f"for it and computes none behind your back; give them (--normalize MEAN,STD with "
                         f"your model's per-channel values, or --normalize none; fit-sigma: --units pixel)")
    if name not in DATASET_STATS:
        raise ValueError(f"no normalisation statistics for dataset {name!r}; known: "
                         f"{', '.join(sorted(DATASET_STATS))}")
    return DATASET_STATS[name]


def load_dataset(name: str, split: str, root: Optional[str] = None) -> Split:
    """Load one split of a registered dataset.

    Args:
        name: A key of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``.
        root: Directory with the data files, for datasets that need one (for
            ``npz``: the ``.npz`` file).

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
