"""Value checks shared by the op wrappers and the certifiers.

Each raises ``ValueError`` naming the offending value; they cost one host sync
on CUDA, so callers that validate once pass ``validate=False`` to the ops.
"""
from __future__ import annotations

import numpy as np
import torch

from .streams import ID_LIMIT


def check_int(name: str, value, minimum: int) -> int:
    """``int(value)``, or ValueError unless it is an integer (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seed(value, name: str = "seed") -> int:
    """``int(value)``, or ValueError unless it is an integer in ``[0, 2^64)``: the Philox key is
    64 bits, and reducing a larger seed modulo 2^64 would make two seeds give the same noise."""
    seed = check_int(name, value, 0)
    if seed >= (1 << 64):
        raise ValueError(f"{name} must lie in [0, 2^64) (the Philox key is 64 bits), got {seed}")
    return seed


def check_sigma(table: torch.Tensor) -> None:
    """Raises ValueError unless every sigma is finite and > 0 (one host sync)."""
    if table.numel() == 0:
        return
    bad = ~(torch.isfinite(table) & (table > 0))
    if bool(bad.any()):
        value = table[bad].flatten()[0].item()
        raise ValueError(f"sigma must be finite and > 0 everywhere, got {value}")


def check_finite(x: torch.Tensor, what: str = "x") -> None:
    """Raises ValueError if ``x`` holds NaN or inf (one host sync)."""
    if x.numel() and not bool(torch.isfinite(x).all()):
        n = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{what} contains {n} NaN/inf value(s); certificates of such inputs are meaningless")


def check_unit_interval(x: torch.Tensor, what: str = "input") -> None:
    """Raises ValueError unless every value lies in [0, 1] (splitting noise splits [0, 1])."""
    if x.numel() and (bool((x < 0).any()) or bool((x > 1).any())):
        lo, hi = float(x.min()), float(x.max())
        raise ValueError(f"{what} values must lie in [0, 1] for splitting noise (it cuts [0, 1] into pieces), "
                         f"got range [{lo!r}, {hi!r}]; pass raw pixels and normalise inside the model")


def check_ids(ids: torch.Tensor) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= ID_LIMIT):
        raise ValueError(f"input indices must lie in [0, 2^32), got range [{int(ids.min())}, {int(ids.max())}]")


def check_grid(x: torch.Tensor, q: int, what: str = "input") -> torch.Tensor:
    """Integer pixels ``round(x * q)`` of grid inputs, or ValueError naming the first off-grid element.

    Args:
        x: ``[B, *S]`` float values that must lie on ``{0, 1/q, ..., 1}`` (within
            1e-3 of a grid step, i.e. float32 rounding of ``i / q``), or an
            integer tensor of pixels in ``[0, q]``.
        q: number of grid steps (255 for 8-bit images).

    Returns:
        ``[B, *S]`` int32 pixels in ``[0, q]`` on ``x.device``.
    """
    if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or q < 1:
        raise ValueError(f"q (grid steps) must be an integer >= 1, got {q!r}")
    if not x.is_floating_point():
        X = x.to(torch.int64)
        bad = (X < 0) | (X > q)
        if x.numel() and bool(bad.any()):
            i = int(bad.flatten().nonzero()[0, 0])
            raise ValueError(f"{what} pixel {int(X.flatten()[i])} at flat index {i} is outside [0, q={q}]")
        return X.to(torch.int32)
    check_finite(x, what)
    if q >= (1 << 20):
        raise ValueError(f"q must be < 2^20 for float grid inputs (float32 cannot hold finer grids), got {q}")
    t = x.double() * q
    X = torch.round(t)
    # float32 rounding of i / q is at most q 2^-24 grid steps
    bad = ((t - X).abs() > 1e-3 + q * 2.0 ** -22) | (X < 0) | (X > q)
    if x.numel() and bool(bad.any()):
        i = int(bad.flatten().nonzero()[0, 0])
        v = float(x.flatten()[i])
        raise ValueError(
            f"{what} is not on the grid {{0, 1/{q}, ..., 1}}: element at flat index {i} is {v!r} "
            f"({v * q!r} grid steps). DSSN certificates hold only for grid inputs; quantise explicitly "
            f"(quantize=True / --quantize) or use the randomized SSN (deterministic=False / --noise ssn)")
    return X.to(torch.int32)

