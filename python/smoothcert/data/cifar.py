"""CIFAR-10 from the python pickle batches or a folder of ``cifar10_<index>_<label>.png``."""
from __future__ import annotations

import os
import pickle
from typing import List, Optional, Tuple

import numpy as np
import torch

from . import images as _img
from .registry import Split, _check_labels, register_dataset


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
