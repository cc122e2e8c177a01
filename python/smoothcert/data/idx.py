"""MNIST and Fashion-MNIST from their idx files (plain or gzipped, in ``root`` or a known sub-folder)."""
from __future__ import annotations

import gzip
import os
from typing import List, Optional

import numpy as np
import torch

from .registry import _INFO, Split, _check_labels, register_dataset


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


_IDX_FILES = "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]"

# Where torchvision, Keras-style mirrors and hand-made layouts keep the idx files,
# relative to --data-root; root itself is tried first.
_IDX_SUBDIRS = {
    "mnist": ("mnist", "MNIST", "MNIST/raw", "mnist/raw"),
    "fashion-mnist": ("fashion-mnist", "fashion_mnist", "FashionMNIST", "FashionMNIST/raw",
                      "fashion-mnist/raw"),
}


def _idx_names(base: str) -> List[str]:
    # Plain/gzipped, and the dotted spelling some mirrors use (t10k-images.idx3-ubyte).
    dotted = base.replace("-idx", ".idx", 1)
    return [base, base + ".gz", dotted, dotted + ".gz"]


def _find_in(directory: str, names: List[str]) -> Optional[str]:
    for n in names:
        p = os.path.join(directory, n)
        if os.path.isfile(p):
            return p
    return None


def _find_idx(root: str, base: str) -> str:
    names = _idx_names(base)
    found = _find_in(root, names)
    if found is None:
        raise FileNotFoundError(f"idx file {base}[.gz] not found in directory {root!r} "
                                f"(tried {', '.join(names)}); pass --data-root DIR containing "
                                f"the four idx files {_IDX_FILES}")
    return found


def _idx_dir(name: str, root: str, images_base: str) -> str:
    """The first of root and its known sub-folders holding ``images_base``."""
    dirs = [root] + [os.path.join(root, d) for d in _IDX_SUBDIRS.get(name, ())]
    for d in dirs:
        if _find_in(d, _idx_names(images_base)) is not None:
            return d
    raise FileNotFoundError(f"{name}: idx file {images_base}[.gz] not found in {root!r} or its "
                            f"sub-folders {', '.join(_IDX_SUBDIRS.get(name, ()))}; pass --data-root "
                            f"DIR containing the four idx files {_IDX_FILES}")


def _load_idx_pair(name: str, split: str, root: str) -> Split:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{name}: data directory {root!r} does not exist; pass "
                                f"--data-root DIR containing the four idx files {_IDX_FILES}")
    prefix = "train" if split == "train" else "t10k"
    where = _idx_dir(name, root, f"{prefix}-images-idx3-ubyte")
    img_path = _find_idx(where, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find_idx(where, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(img_path, _IMAGES_MAGIC), read_idx(lbl_path, _LABELS_MAGIC)
    (c, h, w), k = _INFO[name]
    if images.shape[1:] != (h, w):
        raise ValueError(f"{img_path}: images are {images.shape[1]}x{images.shape[2]}, "
                         f"expected {h}x{w} for {name}")
    if len(images) != len(labels):
        raise ValueError(f"count mismatch: {img_path} has {len(images)} images but "
                         f"{lbl_path} has {len(labels)} labels")
    _check_labels(labels, k, lbl_path)
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
