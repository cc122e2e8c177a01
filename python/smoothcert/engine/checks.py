"""The checks every entry point of a family runs once per call, before the first forward:
inputs (shape, dtype, device, range, finiteness), indices, alpha, sigma, seeds."""
from __future__ import annotations

import warnings
from typing import Callable, Tuple

import numpy as np
import torch

from .. import ops
from ..ops.checks import check_int, check_seed  # noqa: F401  (re-exported: the families' one import)
from ..utils.arrays import as_tensor, input_spec


def check_alpha(alpha) -> float:
    """``float(alpha)`` for a real number (Python or NumPy, not bool) in (0, 1)."""
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (float, int, np.floating, np.integer)):
        raise ValueError(f"alpha must be a number in (0, 1) (one-sided failure probability), "
                         f"got {type(alpha).__name__} {alpha!r}")
    if not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1) (one-sided failure probability), got {alpha!r}")
    return float(alpha)


def check_scalar_sigma(sigma) -> None:
    if not isinstance(sigma, torch.Tensor):
        if isinstance(sigma, bool) or not (isinstance(sigma, (int, float, np.floating)) and np.isfinite(sigma)
                                           and sigma > 0):
            raise ValueError(f"sigma must be finite and > 0, got {sigma!r}")


def check_inputs(X, model: Callable, *, floating: bool = True) -> torch.Tensor:
    """Structural checks of a batch ``[B, *S]`` of inputs; returns it as a detached tensor.

    ``X`` may be a NumPy or DLPack array (:func:`smoothcert.utils.arrays.as_tensor`, zero-copy).
    When the model records its input shape and range (checkpoint models,
    :func:`smoothcert.utils.arrays.set_input_spec`), ``S`` must equal that shape, and
    floating inputs outside the range are warned about (one host sync)."""
    X = as_tensor(X, "inputs")
    if X.dim() < 1:
        raise ValueError("inputs must have a batch dimension [B, ...] (use certify() for one input)")
    if floating and not X.is_floating_point():
        hint = " (8-bit images: divide by 255)" if X.dtype == torch.uint8 else ""
        raise ValueError(f"inputs must be floating point (raw input space, e.g. [0, 1]), got {X.dtype}{hint}")
    if X.is_cuda and ops.cuda_version() < 0:
        raise RuntimeError("the input is a CUDA tensor but smoothcert was built without CUDA; rebuild "
                           "on a machine with nvcc and a CUDA torch (or FORCE_CUDA=1), or move the input to CPU")
    check_model_device(model, X.device)
    spec = input_spec(model)
    if spec is not None:
        check_shape(X, spec["shape"])
        if floating:
            warn_range(X, spec["range"])
    return X.detach()


def one_input(x) -> torch.Tensor:
    """One input ``S`` (tensor or array) as a batch ``[1, *S]``."""
    return as_tensor(x, "x").unsqueeze(0)


def check_shape(X: torch.Tensor, shape: Tuple[int, ...]) -> None:
    """Refuses a batch ``[B, *S]`` whose ``S`` is not the model's input shape, guessing the slip."""
    S = tuple(X.shape[1:])
    if S == tuple(shape):
        return
    want = f"[B, {', '.join(map(str, shape))}]"
    if S[1:] == tuple(shape) and X.shape[0] == 1:
        hint = "; certify()/predict() take one input without a batch dimension, certify_batch() takes [B, ...]"
    elif tuple(X.shape) == tuple(shape):
        hint = "; this is one input: certify_batch() takes a batch, certify() one input"
    elif len(S) == len(shape) == 3 and S == (shape[1], shape[2], shape[0]):
        hint = ("; the inputs look channels-last (NHWC): pass x.permute(0, 3, 1, 2) (channels_last=True "
                "only sets the memory order of the noisy batch)")
    else:
        hint = ""
    raise ValueError(f"inputs have shape {list(X.shape)}, but the model expects {want}{hint}")


def warn_range(X: torch.Tensor, value_range: Tuple[float, float]) -> None:
    """Warns when inputs leave the range the model was trained on (sigma is in its units)."""
    if X.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(X.detach().float()))
    if lo < value_range[0] or hi > value_range[1]:
        hint = " (8-bit pixels not divided by 255?)" if hi > 2 * value_range[1] + 1 else ""
        warnings.warn(f"inputs span [{lo:g}, {hi:g}] but the model expects values in "
                      f"[{value_range[0]:g}, {value_range[1]:g}]{hint}; sigma is in the inputs' units, so the "
                      "certificates are for the wrong scale", stacklevel=5)


def input_ids(indices, B: int) -> torch.Tensor:
    """``[B]`` int64 CPU input indices from ``None`` (0..B-1), an int ``i0`` (i0..i0+B-1) or
    integer indices (tensor, array or sequence); float or bool indices are refused, never truncated."""
    if indices is None:
        ids = torch.arange(B, dtype=torch.long)
    elif isinstance(indices, (int, np.integer)) and not isinstance(indices, (bool, np.bool_)):
        ids = torch.arange(int(indices), int(indices) + B, dtype=torch.long)
    else:
        if isinstance(indices, (list, tuple)):
            indices = np.asarray(indices)
        try:
            t = as_tensor(indices, "indices")
        except TypeError:
            raise TypeError(f"indices must be an int or integer indices (tensor, array, list), "
                            f"got {type(indices).__name__}") from None
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"indices must be integers, got dtype {t.dtype} (they key the noise; "
                             "a float index would be truncated onto another input's noise)")
        ids = t.to(device="cpu", dtype=torch.long).reshape(-1)
        if ids.numel() != B:
            raise ValueError(f"indices must have one entry per input ({B}), got {ids.numel()}")
    ops.check_ids(ids)
    return ids


def check_model_device(model: Callable, device: torch.device) -> None:
    """Refuses an input on another device type than an ``nn.Module`` model's parameters; warns
    when the model is in training mode."""
    if isinstance(model, torch.nn.Module):
        p = next(iter(model.parameters()), None)
        if p is not None and p.device.type != device.type:
            raise ValueError(f"device mismatch: the input is on {device} but the base classifier's "
                             f"parameters are on {p.device}; move one of them")
        if model.training:
            warnings.warn("the base classifier is in training mode (dropout/batch-norm make its votes "
                          "depend on the batch); call .eval() before certifying", stacklevel=4)


def check_finite_inputs(X: torch.Tensor) -> torch.Tensor:
    """``X`` as float32, refusing NaN/inf (one host sync)."""
    X = X.float()
    ops.check_finite(X, "input")
    return X
