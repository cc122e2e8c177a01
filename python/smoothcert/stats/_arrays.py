"""Argument conversion and checks shared by the statistics modules.

Every statistics function accepts Python numbers, numpy arrays or torch tensors
(converted with ``.detach().cpu().numpy()``); a result is a Python scalar when
every argument is a scalar, else an ndarray of the broadcast shape.
"""
from __future__ import annotations

import numpy as np


def _to_numpy(x, name):
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, no hard torch dep
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if np.iscomplexobj(a):
        raise ValueError(f"{name} must be real-valued, got {x!r}")
    return a


def _bad(a, mask):  # first offending value, for error messages
    return a[mask].flat[0] if a.ndim else a.item()


def _ints(x, name, minimum):
    a = _to_numpy(x, name).astype(np.float64)
    bad = ~np.isfinite(a) | (a != np.floor(a)) | (a < minimum)
    if np.any(bad):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {_bad(a, bad):g}")
    return a.astype(np.int64)


def _alpha(x):
    a = _to_numpy(x, "alpha").astype(np.float64)
    bad = ~((a > 0) & (a < 1))  # also catches NaN
    if np.any(bad):
        raise ValueError(f"alpha must satisfy 0 < alpha < 1, got {_bad(a, bad)!r}")
    return a


def _scalar_out(inputs, arr, kind=float):
    """Return a Python scalar if all inputs are 0-d, else an ndarray."""
    if all(np.ndim(_to_numpy(v, "input")) == 0 for v in inputs):
        return kind(np.asarray(arr).reshape(()))
    return np.asarray(arr)


def _kn(k, n):
    k, n = _ints(k, "k", 0), _ints(n, "n", 1)
    if np.any(k > n):
        kb, nb = np.broadcast_arrays(k, n)
        i = np.argmax(kb > nb)
        raise ValueError(f"k must satisfy k <= n, got k={kb.flat[i]} > n={nb.flat[i]}")
    return k, n


