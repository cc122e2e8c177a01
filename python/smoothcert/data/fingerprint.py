"""The identity of the inputs a run certifies: a sha256 over the selected inputs and labels.

A resumed run compares it with the one in its configuration, so a run continued on
other data (another ``--data-root``, one altered pixel) is refused instead of mixing
two datasets' certificates in one file.

Scheme ``v1`` (all integers little-endian int64):

* header ``b"smoothcert-data-v1\\n"``, then the kind (``b"tensor\\n"`` or ``b"files\\n"``),
  the count of indices and the shape of one input as int64s;
* the indices themselves, in the order given;
* ``tensor`` (inputs in memory): ``x[indices]`` converted to float32, C order, then
  ``y[indices]`` as int64;
* ``files`` (a :class:`~smoothcert.data.images.LazyImages`): for each index, its path
  relative to the image root (UTF-8, ``/`` separators, NUL-terminated), its label,
  the file's size and its raw bytes. The files are read, not decoded: reading is far
  cheaper than decoding, let alone certifying. Path, size and mtime alone would not
  be content identity.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .images import LazyImages

_CHUNK_BYTES = 64 << 20  # inputs hashed per step: bounds the memory of the float32 copy
_READ_BYTES = 1 << 20


def _int64(values) -> bytes:
    return np.asarray(values, dtype="<i8").tobytes()


def _indices(indices: Sequence[int], n: int) -> np.ndarray:
    if isinstance(indices, Tensor):
        arr = indices.detach().cpu().numpy()
    else:
        arr = np.asarray(list(indices) if isinstance(indices, range) else indices)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"fingerprint: indices must be a 1-D sequence of integers, got {arr.dtype} "
                         f"of shape {arr.shape}")
    if int(arr.min()) < 0 or int(arr.max()) >= n:
        raise ValueError(f"fingerprint: indices {int(arr.min())}..{int(arr.max())} out of range for "
                         f"{n} inputs")
    return arr.astype(np.int64)


def fingerprint(x, y: Tensor, indices: Sequence[int]) -> str:
    """sha256 hex digest of inputs ``x[indices]`` and labels ``y[indices]`` (scheme v1, above).

    Args:
        x: float [N, *S] tensor, or a :class:`LazyImages` (hashed by file bytes).
        y: int [N] labels.
        indices: dataset indices in [0, N), in the order certified.
    """
    n = int(y.shape[0])
    idx = _indices(indices, n)
    item_shape = tuple(int(s) for s in x.shape[1:])
    lazy = isinstance(x, LazyImages)
    h = hashlib.sha256(b"smoothcert-data-v1\n")
    h.update(b"files\n" if lazy else b"tensor\n")
    h.update(_int64([len(idx), len(item_shape), *item_shape]))
    h.update(_int64(idx))
    labels = y.detach().cpu().to(torch.int64).numpy()
    if lazy:
        for i in idx.tolist():
            h.update(x.relative_path(i).encode("utf-8") + b"\0")
            _hash_file(h, x.paths[i], int(labels[i]))
        return h.hexdigest()
    step = max(1, _CHUNK_BYTES // max(1, 4 * int(np.prod(item_shape, dtype=np.int64))))
    for a in range(0, len(idx), step):
        part = torch.as_tensor(x[torch.from_numpy(idx[a:a + step])]).detach().cpu()
        h.update(part.to(torch.float32).contiguous().numpy().astype("<f4", copy=False).tobytes())
    h.update(_int64(labels[idx]))
    return h.hexdigest()


def _hash_file(h, path: str, label: int) -> None:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(0)
            h.update(_int64([label, size]))
            while True:
                block = f.read(_READ_BYTES)
                if not block:
                    break
                h.update(block)
    except OSError as e:
        raise ValueError(f"{path}: cannot read image file to fingerprint the data: {e}") from e
