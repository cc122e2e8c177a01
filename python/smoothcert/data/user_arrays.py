"""``npz``: a user's own arrays in one ``.npz`` file (``np.savez``), ``--data-root FILE.npz``.

Keys:

* ``x``: inputs ``[N, C, H, W]`` (or ``[N, H, W]``, read as C = 1), uint8 (divided by
  255) or float in [0, 1] (stored as float32); ``y``: integer labels ``[N]`` in [0, K).
* ``x_train``/``y_train``, ``x_test``/``y_test``: per-split arrays. The split's own
  pair wins; ``x``/``y`` serve a split that has no pair of its own.
* ``num_classes`` (optional integer): K. Without it K is ``len(classes)``, else
  ``max(y) + 1`` over the split read (a lower bound: the model's output size is what
  counts, and the CLI checks the labels against it).
* ``classes`` (optional, strings ``[K]``): class names.

Other keys are ignored. The file is read with ``allow_pickle=False``: an array of
Python objects is refused, so a hostile file never runs code. Channels-last arrays
``[N, H, W, C]`` are refused with the transpose to apply, not guessed at.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from typing import List, Optional, Tuple

import numpy as np
import torch

from .registry import Split, register_dataset

NAME = "npz"
_EXPECT = "FILE.npz holding x [N, C, H, W] (uint8, or float in [0, 1]) and y [N] (integer labels)"


def _open(path: str):
    try:
        f = np.load(path, allow_pickle=False)
    except ValueError as e:  # a pickle file: refused by allow_pickle=False
        raise ValueError(f"{path}: cannot read as an .npz without pickle ({e}); save the arrays with "
                         f"np.savez(path, x=..., y=...)") from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a readable .npz file: {e}") from e
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: is a single .npy array, not an .npz archive; save the arrays with "
                         f"np.savez(path, x=..., y=...)")
    return f


def _array(f, path: str, key: str) -> np.ndarray:
    try:
        return f[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        if isinstance(e, ValueError) and "allow_pickle" in str(e):  # object arrays need pickle
            raise ValueError(f"{path}: array {key!r} holds Python objects (dtype=object), which cannot be "
                             f"read without pickle; store a numeric array") from e
        raise ValueError(f"{path}: array {key!r} is unreadable (truncated or corrupt file?): {e}") from e


def _keys(keys: List[str], split: str, path: str) -> Tuple[str, str]:
    own = (f"x_{split}", f"y_{split}")
    for pair in (own, ("x", "y")):
        has = [k in keys for k in pair]
        if all(has):
            return pair
        if any(has):
            there, missing = (pair[0], pair[1]) if has[0] else (pair[1], pair[0])
            raise ValueError(f"{path}: has {there!r} but no {missing!r}; keys found: {', '.join(keys) or 'none'}")
    raise ValueError(f"{path}: no inputs for --split {split}: expected keys x and y (or {own[0]} and {own[1]}); "
                     f"keys found: {', '.join(keys) or 'none'}")


def _inputs(x: np.ndarray, path: str, key: str) -> torch.Tensor:
    """``x`` checked and converted to float32 [N, C, H, W] in [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"{path}: {key} must be [N, C, H, W] or [N, H, W], found shape {x.shape}")
    n, c, h, w = x.shape
    if w in (1, 3, 4) and c not in (1, 3, 4) and min(c, h) > w:
        raise ValueError(f"{path}: {key} of shape {x.shape} looks channels-last [N, H, W, C]; smoothcert reads "
                         f"[N, C, H, W]: store {key}.transpose(0, 3, 1, 2)")
    if min(x.shape) == 0:
        raise ValueError(f"{path}: {key} is empty (shape {x.shape})")
    if x.dtype == np.uint8:
        return torch.from_numpy(x.astype(np.float32) / 255.0)
    if x.dtype.kind != "f":
        raise ValueError(f"{path}: {key} has dtype {x.dtype}; store uint8 (0..255) or float in [0, 1]")
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{path}: {key} has {int(bad.sum())} non-finite values (NaN or inf), the first at "
                         f"{key}[{', '.join(map(str, first))}]")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        hint = ("values in [0, 255]? store uint8 or divide by 255" if hi > 1 else
                "normalised inputs? store the [0, 1] images: normalisation belongs to the model")
        raise ValueError(f"{path}: {key} has values in [{lo:g}, {hi:g}], expected [0, 1] ({hint})")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _labels(y: np.ndarray, n: int, path: str, key: str) -> torch.Tensor:
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:
        raise ValueError(f"{path}: {key} has shape {y.shape}; one-hot labels? store {key}.argmax(1), "
                         f"integer labels [N]")
    if y.ndim != 1:
        raise ValueError(f"{path}: {key} must be integer labels [N], found shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{path}: {n} inputs but {len(y)} labels in {key}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{path}: {key} has dtype {y.dtype}, expected integer labels (if they are whole "
                         f"numbers, store {key}.astype(np.int64))")
    if y.dtype == np.uint64 and int(y.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{path}: {key} has label {int(y.max())}, too large")
    neg = np.flatnonzero(y < 0)
    if neg.size:
        raise ValueError(f"{path}: {key} has {neg.size} negative labels, the first {int(y[neg[0]])} at index "
                         f"{int(neg[0])}; labels must be 0..K-1")
    return torch.from_numpy(y.astype(np.int64))


def _class_info(f, keys: List[str], path: str, y: torch.Tensor,
                ykey: str) -> Tuple[Optional[int], int, Optional[List[str]]]:
    """(stated class count or None, class count, class names or None)."""
    names = None
    if "classes" in keys:
        arr = _array(f, path, "classes")
        if arr.ndim != 1 or arr.dtype.kind not in "US":
            raise ValueError(f"{path}: classes must be a 1-D array of strings, found {arr.dtype} {arr.shape}")
        names = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.tolist()]
    k = None
    if "num_classes" in keys:
        arr = _array(f, path, "num_classes")
        if arr.size != 1 or arr.dtype.kind not in "iu" or int(arr.reshape(-1)[0]) < 1:
            raise ValueError(f"{path}: num_classes must be one positive integer, found {arr.dtype} "
                             f"{arr.reshape(-1)[:3].tolist()}")
        k = int(arr.reshape(-1)[0])
        if names is not None and len(names) != k:
            raise ValueError(f"{path}: num_classes is {k} but classes names {len(names)}")
    elif names is not None:
        k = len(names)
    top = int(y.max()) + 1
    if k is None:
        return None, top, names
    if top > k:
        at = int(torch.nonzero(y >= k)[0])
        raise ValueError(f"{path}: {ykey}[{at}] is {int(y[at])}, but the file has {k} classes (labels 0..{k - 1})")
    return k, k, names


@register_dataset(NAME, from_data=True)
def load_npz(split: str, root: Optional[str]) -> Split:
    """One split of a user's ``.npz`` (keys in the module docstring)."""
    if root is None:
        raise ValueError(f"{NAME} needs a file: pass --data-root {_EXPECT}")
    if not os.path.exists(root):
        raise FileNotFoundError(f"{NAME}: file {root!r} does not exist; pass --data-root {_EXPECT}")
    if os.path.isdir(root):
        raise ValueError(f"{NAME}: {root!r} is a folder; pass --data-root {_EXPECT} (for a folder of images "
                         f"use --dataset image-folder)")
    with _open(root) as f:
        keys = list(f.files)
        xkey, ykey = _keys(keys, split, root)
        x = _inputs(_array(f, root, xkey), root, xkey)
        y = _labels(_array(f, root, ykey), len(x), root, ykey)
        stated, k, names = _class_info(f, keys, root, y, ykey)
    return Split(x, y, k, f"{NAME}/{split}", classes=names, classes_from_labels=stated is None)
