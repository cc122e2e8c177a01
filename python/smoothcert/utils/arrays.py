"""Inputs from other array libraries, and what a model records about the inputs it expects.

:func:`as_tensor` is how every certifier and op wrapper accepts arrays that are not
``torch.Tensor``: NumPy arrays are wrapped with ``torch.from_numpy`` and any other
object exporting ``__dlpack__`` (CuPy, JAX, TensorFlow, ...) with
``torch.from_dlpack``, so the tensor shares the array's memory and stays on its
device (a CuPy array on GPU 1 becomes a tensor on ``cuda:1``). Nothing is copied
here; a later cast to float32 copies only inputs of another dtype.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch

_SPEC_ATTR = "smoothcert_input"


def as_tensor(x: Any, what: str = "inputs") -> torch.Tensor:
    """``x`` as a tensor sharing its memory (zero-copy) when it is a NumPy or DLPack array.

    Args:
        x: ``torch.Tensor`` (returned as is), ``numpy.ndarray`` (or NumPy scalar),
            or any object with ``__dlpack__``.
        what: name used in errors.

    Raises:
        TypeError: for lists, Python numbers and other objects; NumPy arrays of
            object, string or complex dtype.
    """
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{what}: a NumPy array of dtype {x.dtype} is not numeric (need bool, int or float)")
        if any(s < 0 for s in x.strides):
            x = np.ascontiguousarray(x)  # torch cannot view negative strides (e.g. x[::-1])
        with warnings.catch_warnings():
            # a read-only array is only ever read here; torch warns since it cannot mark tensors read-only
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(x)
    if hasattr(x, "__dlpack__"):
        try:
            return torch.from_dlpack(x)
        except (RuntimeError, TypeError, BufferError, ValueError) as e:
            raise TypeError(f"{what}: {type(x).__name__} exports __dlpack__ but torch cannot import it: {e}") from None
    raise TypeError(f"{what} must be a torch.Tensor, a NumPy array or an array with __dlpack__ "
                    f"(CuPy, JAX, ...), got {type(x).__name__}")


def set_input_spec(model: torch.nn.Module, shape: Sequence[int], value_range: Tuple[float, float]) -> None:
    """Records on ``model`` the shape ``S`` of one input and the value range it was trained on,
    so that certifiers can name a wrong shape or a forgotten ``/ 255`` before the first forward."""
    setattr(model, _SPEC_ATTR, {"shape": tuple(int(s) for s in shape),
                                "range": (float(value_range[0]), float(value_range[1]))})


def input_spec(model: Any) -> Optional[dict]:
    """``{"shape": S, "range": (lo, hi)}`` recorded by :func:`set_input_spec`, or None."""
    spec = getattr(model, _SPEC_ATTR, None)
    return spec if isinstance(spec, dict) else None
