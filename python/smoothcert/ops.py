"""Typed wrappers of the smoothcert operators (``torch.ops.smoothcert.*``).

Argument checks a user can trigger are raised here as ``ValueError`` with the
offending value; the kernels repeat the structural checks in C++.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

NOISE_KINDS = {"gaussian": 0, "uniform": 1, "ssn": 2}

SELECTION_STREAM = 0
ESTIMATION_STREAM = 1
PREDICT_STREAM = 2
TRAINING_STREAM = 3
DSSN_OFFSET_STREAM = 4  # DSSN training's per-example split offsets

_ID_LIMIT = 1 << 32


def sigma_table(sigma: Union[float, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Brings sigma into the ``[1 | B, 1 | D]`` float32 table the kernel reads.

    Args:
        sigma: a number, or a tensor of shape ``[]`` (one value), ``[B]`` (one per
            input), ``S`` (one per element, shared by all inputs) or ``[B, *S]``,
            where ``x`` is ``[B, *S]``. If ``S == (B,)`` a 1-D sigma is read as
            per-element.
        x: ``[B, *S]`` the clean inputs.

    Returns:
        ``[1 | B, 1 | D]`` float32 on ``x.device``, ``D = prod(S)``.
    """
    B, S = x.shape[0], tuple(x.shape[1:])
    D = 1
    for s in S:
        D *= s
    if not isinstance(sigma, torch.Tensor):
        sigma = torch.tensor(float(sigma))
    shape = tuple(sigma.shape)
    if sigma.numel() == 1 and sigma.dim() <= 1:
        table = sigma.reshape(1, 1)
    elif shape == S:
        table = sigma.reshape(1, D)
    elif shape == (B,):
        table = sigma.reshape(B, 1)
    elif shape == (B, *S):
        table = sigma.reshape(B, D)
    else:
        raise ValueError(
            f"sigma must be a number or have shape [], [B]={[B]}, S={list(S)} or [B, *S]={[B, *S]}; "
            f"got {list(shape)}")
    return table.to(device=x.device, dtype=torch.float32)


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
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= _ID_LIMIT):
        raise ValueError(f"input indices must lie in [0, 2^32), got range [{int(ids.min())}, {int(ids.max())}]")


def sample_noise(
    x: torch.Tensor,
    sigma: Union[float, torch.Tensor],
    samples: int,
    *,
    ids: Optional[torch.Tensor] = None,
    sample_start: int = 0,
    seed: int = 0,
    stream: int = ESTIMATION_STREAM,
    noise: str = "gaussian",
    antithetic: bool = False,
    clamp: Optional[tuple] = None,
    out_dtype: Optional[torch.dtype] = None,
    channels_last: bool = False,
    validate: bool = True,
) -> torch.Tensor:
    """Noisy copies of every input, built in one pass with counter-based noise.

    Sample ``j`` of input ``b`` is ``x[b] + sigma * eps`` where ``eps`` is a pure
    function of ``(seed, stream, ids[b], sample_start + j, element)``: the same
    seed gives bit-identical noise for any batch size, chunking or device.
    With ``noise="ssn"`` (Levine & Feizi's splitting noise) element ``i`` is
    instead the midpoint of the piece of [0, 1] holding ``x_i`` between cuts at
    ``s_i + 2 lambda n`` (n integer), ``s_i`` uniform on ``(0, 2 lambda)`` i.i.d.
    per element and sample, ``lambda = sqrt(3) sigma`` (seed-001 §2.2).

    Args:
        x: ``[B, *S]`` float32 clean inputs in the classifier's raw input space.
        sigma: noise scale; see :func:`sigma_table` for the accepted shapes.
            For ``noise="uniform"`` sigma is the RMS (half-width sigma*sqrt(3));
            for ``noise="ssn"`` the split period is 2 lambda = 2 sqrt(3) sigma.
        samples: noisy copies per input.
        ids: ``[B]`` int64 input indices keying the noise (default ``arange(B)``).
        sample_start: sample index of the first copy (for chunking).
        seed: Philox key (any int in ``[0, 2^64)``).
        stream: separates independent draws (selection/estimation/...).
        noise: ``"gaussian"``, ``"uniform"`` or ``"ssn"`` (splitting noise).
        antithetic: copies ``2p`` and ``2p+1`` are ``x + eps_p`` and ``x - eps_p``.
        clamp: optional ``(min, max)``; either may be None.
        out_dtype: float32 (default), float16, bfloat16 or float64.
        channels_last: return NHWC memory format (4-D ``x`` only).
        validate: check x and sigma values (costs a host sync on CUDA).

    Returns:
        ``[B * samples, *S]``; row ``b * samples + j`` holds copy ``j`` of input ``b``.
    """
    if noise not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {sorted(NOISE_KINDS)}, got {noise!r}")
    if samples < 0 or sample_start < 0:
        raise ValueError(f"samples and sample_start must be >= 0, got {samples} and {sample_start}")
    if not 0 <= seed < (1 << 64):
        raise ValueError(f"seed must lie in [0, 2^64), got {seed}")
    if x.dtype != torch.float32:
        x = x.float()
    if ids is None:
        ids = torch.arange(x.shape[0], device=x.device)
    table = sigma_table(sigma, x)
    if validate:
        check_finite(x)
        check_sigma(table)
        check_ids(ids)
        if noise == "ssn":
            check_unit_interval(x)
    return sample_noise_table(x, ids, table, samples, sample_start=sample_start, seed=seed, stream=stream,
                              noise=noise, antithetic=antithetic, clamp=clamp, out_dtype=out_dtype,
                              channels_last=channels_last)


def sample_noise_table(x: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, samples: int, *,
                       sample_start: int, seed: int, stream: int, noise: str = "gaussian",
                       antithetic: bool = False, clamp: Optional[tuple] = None,
                       out_dtype: Optional[torch.dtype] = None, channels_last: bool = False) -> torch.Tensor:
    """:func:`sample_noise` without value checks, for callers that checked once:
    ``x`` float32 ``[B, *S]``, ``ids`` ``[B]`` int64, ``table`` from :func:`sigma_table`."""
    lo, hi = clamp if clamp is not None else (None, None)
    seed_signed = seed - (1 << 64) if seed >= (1 << 63) else seed
    return torch.ops.smoothcert.sample_noise.default(
        x, ids, table, samples, sample_start, seed_signed, stream, NOISE_KINDS[noise], antithetic,
        lo, hi, out_dtype, channels_last)


def count_votes_(logits: torch.Tensor, samples: int, counts: torch.Tensor,
                 nonfinite: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Adds the argmax of each logits row to its input's class counts, in place.

    Args:
        logits: ``[B * samples, K]`` floating point (row ``b * samples + j``
            belongs to input ``b``). Ties go to the lowest class index.
        samples: rows per input.
        counts: ``[B, K]`` int64, contiguous, same device; updated in place.
        nonfinite: optional ``[B]`` int64, contiguous, same device; adds, per
            input, the number of rows holding a NaN or +-inf logit (such rows
            still vote as ``torch.argmax`` would; the caller decides to refuse).

    Returns:
        ``counts``.
    """
    torch.ops.smoothcert.count_votes_.default(logits, samples, counts, nonfinite)
    return counts


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


def dssn_batch(x: torch.Tensor, v: torch.Tensor, offsets: torch.Tensor, levels: int, q: int, *,
               mean: Optional[torch.Tensor] = None, std: Optional[torch.Tensor] = None,
               out_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
               validate: bool = True) -> torch.Tensor:
    """Deterministic splitting noise (DSSN) of grid images for given split offsets.

    Row ``b * nb + j`` is image ``b`` with split values
    ``s_i = ((v_i + offsets[b, j]) mod L + 1/2) / q`` (seed-001 §3.2): each
    element becomes the midpoint of the piece of [0, 1] between consecutive
    cuts ``s_i + n L / q`` that holds it, computed exactly in integers.

    Args:
        x: ``[B, *S]`` float32 grid values ``i / q`` or uint8 pixels (q >= 255).
        v: ``[D]`` int32 fixed offsets in ``[0, L)`` (see :func:`smoothcert.split.dssn_offsets`).
        offsets: ``[nb]`` (shared) or ``[1 | B, nb]`` int64 split offsets in ``[0, L)``.
        levels: ``L = floor(2 lambda q)``, ``lambda = sqrt(3) sigma``.
        q: grid steps.
        mean, std: optional ``[C]`` per-channel normalisation fused into the output.
        out_dtype: float32 (default), float16, bfloat16 or float64.
        channels_last: NHWC memory format (4-D ``x`` only).
        validate: check the grid, ``v`` and ``offsets`` ranges (one host sync).

    Returns:
        ``[B * nb, *S]``; un-normalised values are exact multiples of ``1 / (4q)``.
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"L (levels) must be an integer >= 1, got {levels!r}")
    levels, q = int(levels), int(q)
    if (mean is None) != (std is None):
        raise ValueError("dssn_batch: give both mean and std (fused normalisation), or neither")
    if offsets.dim() == 1:
        offsets = offsets.view(1, -1)
    offsets = offsets.to(device=x.device, dtype=torch.int64)
    v = v.to(device=x.device, dtype=torch.int32)
    if validate:
        if x.dtype not in (torch.float32, torch.uint8):
            raise ValueError(f"dssn_batch: x must be float32 grid values or uint8 pixels, got {x.dtype}")
        check_grid(x, q)
        for name, t in (("v", v), ("offsets", offsets)):
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= levels):
                raise ValueError(f"{name} must lie in [0, L={levels}), got range [{int(t.min())}, {int(t.max())}]")
    if mean is not None:
        mean = mean.to(device=x.device, dtype=torch.float32)
        std = std.to(device=x.device, dtype=torch.float32)
    return torch.ops.smoothcert.dssn_batch.default(x, v, offsets, levels, q, mean, std, out_dtype, channels_last)


def cuda_version() -> int:
    """CUDA version the extension was built with (e.g. 13000), or -1 for CPU-only."""
    return torch.ops.smoothcert.cuda_version.default()
