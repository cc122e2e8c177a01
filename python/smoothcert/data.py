"""Datasets as float32 tensors in [0, 1], the space where smoothing noise is added.

Every loader returns images in raw pixel space scaled to [0, 1]; normalisation
happens inside the model (:class:`smoothcert.models.NormalizeLayer`) so that
sigma is always expressed in [0, 1] pixel units.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Split", "DATASETS", "DATASET_STATS", "SPLITS", "register_dataset",
    "load_dataset", "input_shape", "num_classes", "read_idx",
]

SPLITS = ("train", "test")

# Per-channel (mean, std) of the [0, 1] training images, used by NormalizeLayer.
# digits: computed once from sklearn's load_digits() / 16 over all 1797 images.
DATASET_STATS: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "digits": ((0.3053,), (0.3760,)),
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}

# (C, H, W) and class count; kept apart from the loaders so models can be built
# for a dataset whose loader is not registered (yet) on this machine.
_INFO: Dict[str, Tuple[Tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}


@dataclass
class Split:
    """One split of a dataset.

    Attributes:
        x: Images, float32 [N, C, H, W] with values in [0, 1].
        y: Labels, int64 [N] in [0, num_classes).
        num_classes: Number of classes.
        name: Dataset name plus split, e.g. ``"mnist/test"``.
    """

    x: Tensor
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


@register_dataset("digits")
def _load_digits(split: str, root: Optional[str]) -> Split:
    from sklearn.datasets import load_digits  # ships inside the wheel: works offline

    bunch = load_digits()
    images, labels = bunch.images, bunch.target  # [1797, 8, 8] float64 in 0..16, [1797]
    order = np.random.Generator(np.random.PCG64(0)).permutation(len(images))
    idx = order[:1297] if split == "train" else order[1297:]
    x = torch.from_numpy((images[idx] / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(labels[idx].astype(np.int64))
    return Split(x, y, 10, f"digits/{split}")


_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801


def read_idx(path: str, magic: int) -> np.ndarray:
    """Parse an idx file (optionally gzipped) holding unsigned bytes.

    Args:
        path: File path; a ``.gz`` suffix means gzip.
        magic: Expected magic number, e.g. 0x00000803 for [N, H, W] uint8 images.

    Returns:
        uint8 array whose shape is the big-endian dims from the header.
    """
    try:
        with (gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")) as f:
            raw = f.read()
    except (EOFError, OSError) as e:  # truncated or corrupt gzip stream
        raise ValueError(f"{path}: cannot read idx file: {e}") from e
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise ValueError(f"{path}: file too short ({len(raw)} bytes) for an idx header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: bad magic number 0x{found:08x}, expected 0x{magic:08x}")
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header: expected {header} bytes, found {len(raw)}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    want, got = int(np.prod(dims, dtype=np.int64)), len(raw) - header
    if got < want:
        raise ValueError(f"{path}: truncated payload for dims {dims}: "
                         f"expected {want} bytes, found {got}")
    if got > want:
        raise ValueError(f"{path}: {got - want} unexpected trailing bytes after "
                         f"{want} payload bytes for dims {dims}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_idx(root: str, base: str) -> str:
    # Accept plain/gzipped and the dotted spelling some mirrors use.
    dotted = base.replace("-idx", ".idx", 1)
    names = [base, base + ".gz", dotted, dotted + ".gz"]
    for n in names:
        p = os.path.join(root, n)
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(f"idx file {base}[.gz] not found in directory {root!r} "
                            f"(tried {', '.join(names)}); pass --data-root DIR containing "
                            "the four idx files")


def _load_idx_pair(name: str, split: str, root: str) -> Split:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{name}: data directory {root!r} does not exist; pass "
                                "--data-root DIR containing the four idx files "
                                "({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz])")
    prefix = "train" if split == "train" else "t10k"
    img_path = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find_idx(root, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path, _IMAGES_MAGIC), read_idx(lbl_path, _LABELS_MAGIC)
    (c, h, w), k = _INFO[name]
    if images.shape[1:] != (h, w):
        raise ValueError(f"{img_path}: images are {images.shape[1]}x{images.shape[2]}, "
                         f"expected {h}x{w} for {name}")
    if len(images) != len(labels):
        raise ValueError(f"count mismatch: {img_path} has {len(images)} images but "
                         f"{lbl_path} has {len(labels)} labels")
    if labels.size and int(labels.max()) >= k:
        raise ValueError(f"{lbl_path}: labels out of range: max label {int(labels.max())}, "
                         f"expected 0..{k - 1}")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return Split(x, y, k, f"{name}/{split}")


@register_dataset("mnist")
def _load_mnist(split: str, root: Optional[str]) -> Split:
    if root is None:
        raise ValueError("mnist needs a data directory: pass --data-root DIR containing the "
                         "four idx files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                         "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, optionally .gz)")
    return _load_idx_pair("mnist", split, root)


FASHION_MNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian dataset-fashion-mnist


@register_dataset("fashion-mnist")
def _load_fashion_mnist(split: str, root: Optional[str]) -> Split:
    return _load_idx_pair("fashion-mnist", split, root or FASHION_MNIST_DEFAULT_ROOT)
