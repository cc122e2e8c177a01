"""Datasets as float32 tensors in [0, 1], the space where smoothing noise is added.

Every loader returns images in raw pixel space scaled to [0, 1]; normalisation
happens inside the model (:class:`smoothcert.models.NormalizeLayer`) so that
sigma is always expressed in [0, 1] pixel units.

Datasets and the layouts found under ``root`` (the CLI's ``--data-root``):

* ``digits``: scikit-learn's 8x8 digits (no files; ``root`` ignored).
* ``mnist`` / ``fashion-mnist``: the four idx files, plain or ``.gz``, in ``root``
  or a known sub-folder (``mnist/``, ``MNIST/raw/``, ``FashionMNIST/raw/``, ...).
* ``cifar10``: the python batches ``data_batch_1..5`` / ``test_batch`` (in ``root``
  or a ``cifar*`` sub-folder such as ``cifar-10-batches-py/``), else PNGs named
  ``cifar10_<index>_<label>.png`` (test split only, ordered by index).
* ``imagenet``: ``root/{train,val}/<wnid>/*.JPEG``; ``x`` is a :class:`LazyImages`.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from . import datasets_image as _img
from .datasets_image import LazyImages, imagenet_transform

__all__ = [
    "Split", "DATASETS", "DATASET_STATS", "SPLITS", "register_dataset",
    "load_dataset", "input_shape", "num_classes", "read_idx", "read_cifar_batch",
    "LazyImages", "imagenet_transform",
]

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


def _check_labels(labels: np.ndarray, k: int, where: str) -> None:
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= k):
        raise ValueError(f"{where}: labels out of range: found {int(labels.min())}..{int(labels.max())}, "
                         f"expected 0..{k - 1}")


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


# ---------------------------------------------------------------- CIFAR-10

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)
_CIFAR_EXPECT = ("the python batches data_batch_1..data_batch_5 and test_batch (or a "
                 "cifar-10-batches-py/ folder holding them), or PNGs named cifar10_<index>_<label>.png")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only dicts/lists/bytes and numpy arrays: a data file must not run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            # The official batches name numpy.core, deprecated (with a warning) in numpy 2.
            module = "numpy._core." + module[len("numpy.core."):]
        return super().find_class(module, name)


def read_cifar_batch(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch (a pickled dict with b"data" and b"labels").

    Returns:
        images uint8 [n, 3, 32, 32] and labels int64 [n] (not range-checked).
    """
    try:
        with open(path, "rb") as f:
            d = _ArrayUnpickler(f, encoding="bytes").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a readable CIFAR-10 pickle batch: {e}") from e
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{path}: CIFAR-10 batch must be a dict with keys b'data' and b'labels', "
                         f"found {keys}")
    data, labels = d[b"data"], np.asarray(d[b"labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: b'data' must be uint8 [n, 3072], found {desc}")
    if labels.ndim != 1 or len(labels) != len(data) or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(f"{path}: b'labels' must be {len(data)} integers (one per image), "
                         f"found {labels.dtype} {labels.shape}")
    # Rows are 1024 R, then G, then B values, each a row-major 32x32 plane.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_dirs(root: str) -> List[str]:
    # root, then its sub-folders named cifar* (cifar-10-batches-py, CIFAR10, cifar10-test20, ...).
    subs = sorted(e.path for e in os.scandir(root) if e.is_dir() and e.name.lower().startswith("cifar"))
    return [root] + subs


def _load_cifar_pickles(split: str, d: str) -> Split:
    names = _CIFAR_TRAIN if split == "train" else _CIFAR_TEST
    missing = [n for n in names if not os.path.isfile(os.path.join(d, n))]
    if missing:
        raise FileNotFoundError(f"cifar10: {split} batches {', '.join(missing)} not found in {d!r}; "
                                f"expected {', '.join(names)}")
    parts = [(os.path.join(d, n),) + read_cifar_batch(os.path.join(d, n)) for n in names]
    for path, _, labels in parts:
        _check_labels(labels, 10, path)
    x = torch.from_numpy(np.concatenate([p[1] for p in parts]).astype(np.float32) / 255.0)
    y = torch.from_numpy(np.concatenate([p[2] for p in parts]))
    return Split(x, y, 10, f"cifar10/{split}")


@register_dataset("cifar10")
def _load_cifar10(split: str, root: Optional[str]) -> Split:
    """Pickle batches if any candidate folder has them, else a PNG folder (test split only)."""
    if root is None:
        raise ValueError(f"cifar10 needs a data directory: pass --data-root DIR containing {_CIFAR_EXPECT}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"cifar10: data directory {root!r} does not exist; pass --data-root "
                                f"DIR containing {_CIFAR_EXPECT}")
    dirs = _cifar_dirs(root)
    for d in dirs:
        if any(os.path.isfile(os.path.join(d, n)) for n in _CIFAR_TRAIN + _CIFAR_TEST):
            return _load_cifar_pickles(split, d)
    for d in dirs:
        if _img.cifar_png_files(d):
            if split != "test":
                raise FileNotFoundError(f"cifar10: {d!r} holds PNGs cifar10_<index>_<label>.png, which "
                                        f"are a test split only; the {split} split needs the python "
                                        f"batches {', '.join(_CIFAR_TRAIN)}")
            x, y = _img.read_cifar_pngs(d)
            return Split(x, y, 10, f"cifar10/{split}")
    raise FileNotFoundError(f"cifar10: no data found in {', '.join(repr(d) for d in dirs)}; "
                            f"expected {_CIFAR_EXPECT}")


# ---------------------------------------------------------------- ImageNet

@register_dataset("imagenet")
def _load_imagenet(split: str, root: Optional[str]) -> Split:
    """ImageFolder root/{train,val}/<wnid>/*.JPEG; "test" reads val. x is a :class:`LazyImages`.

    Both splits use the deterministic test transform (resize 256, center-crop 224):
    random training augmentation belongs to the training loop, not the dataset.
    """
    expect = "DIR with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (ImageFolder layout)"
    if root is None:
        raise ValueError(f"imagenet needs a data directory: pass --data-root {expect}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"imagenet: data directory {root!r} does not exist; pass --data-root {expect}")
    here, other = (("train", "val") if split == "train" else ("val", "train"))
    folder = os.path.join(root, here)
    (c, h, w), k = _INFO["imagenet"]
    paths, y, _ = _img.scan_image_folder("imagenet", folder, k)
    if os.path.isdir(os.path.join(root, other)):
        _img.check_same_classes("imagenet", os.path.join(root, "train"), os.path.join(root, "val"))
    return Split(LazyImages(paths, (c, h, w)), y, k, f"imagenet/{split}")
