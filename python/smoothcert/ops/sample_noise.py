"""Wrapper of ``smoothcert::sample_noise``: counter-based noisy copies of the inputs.

Argument checks a user can trigger are raised here as ``ValueError`` with the
offending value; the kernel repeats the structural checks in C++.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from ..utils.arrays import as_tensor

from .checks import check_finite, check_ids, check_sigma, check_unit_interval
from .streams import ESTIMATION_STREAM

NOISE_KINDS = {"gaussian": 0, "uniform": 1, "ssn": 2}


def signed_seed(seed: int) -> int:
    """``seed`` in ``[0, 2^64)`` as the int64 the kernels' schema takes (the same 64 bits)."""
    if not 0 <= seed < (1 << 64):  # a wider seed would wrap onto another one
        raise ValueError(f"seed must lie in [0, 2^64), got {seed}")
    return seed - (1 << 64) if seed >= (1 << 63) else seed


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
    if isinstance(sigma, np.ndarray) or hasattr(sigma, "__dlpack__"):
        sigma = as_tensor(sigma, "sigma")
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
    per element and sample, ``lambda = sqrt(3) sigma`` (Levine & Feizi 2021, Theorem 2,
    general case, §4.3).

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
    x, ids, table = prepare_call(x, sigma, samples, ids, sample_start, seed, noise, validate)
    return sample_noise_table(x, ids, table, samples, sample_start=sample_start, seed=seed, stream=stream,
                              noise=noise, antithetic=antithetic, clamp=clamp, out_dtype=out_dtype,
                              channels_last=channels_last)


def prepare_call(x: torch.Tensor, sigma, samples: int, ids: Optional[torch.Tensor], sample_start: int, seed: int,
                 noise: str, validate: bool):
    """The checks of the sampler wrappers: ``(x float32, ids [B], sigma table)``; ``x``, ``ids``
    and ``sigma`` may be NumPy or DLPack arrays (:func:`smoothcert.utils.arrays.as_tensor`)."""
    x = as_tensor(x, "x")
    if ids is not None:
        ids = as_tensor(ids, "ids")
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(f"ids must be integers, got dtype {ids.dtype}")
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
    return x, ids, table


def sample_noise_into_(out: torch.Tensor, x: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, samples: int, *,
                       sample_start: int, seed: int, stream: int, noise: str = "gaussian",
                       antithetic: bool = False, clamp: Optional[tuple] = None,
                       channels_last: bool = False) -> torch.Tensor:
    """:func:`sample_noise_table` written into ``out`` ``[B * samples, *S]`` (its dtype is the
    batch dtype; dense in NHWC order when ``channels_last``), bit for bit the same values: a
    caller that reuses one buffer across forward batches saves an allocation per batch.
    Returns ``out``. Not differentiable (the engine draws under ``torch.no_grad``)."""
    lo, hi = clamp if clamp is not None else (None, None)
    seed_signed = signed_seed(seed)
    torch.ops.smoothcert.sample_noise_into.default(x, ids, table, samples, sample_start, seed_signed, stream,
                                                   NOISE_KINDS[noise], antithetic, lo, hi, channels_last, out)
    return out


def sample_noise_table(x: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, samples: int, *,
                       sample_start: int, seed: int, stream: int, noise: str = "gaussian",
                       antithetic: bool = False, clamp: Optional[tuple] = None,
                       out_dtype: Optional[torch.dtype] = None, channels_last: bool = False) -> torch.Tensor:
    """:func:`sample_noise` without value checks, for callers that checked once:
    ``x`` float32 ``[B, *S]``, ``ids`` ``[B]`` int64, ``table`` from :func:`sigma_table`."""
    lo, hi = clamp if clamp is not None else (None, None)
    seed_signed = signed_seed(seed)
    return torch.ops.smoothcert.sample_noise.default(
        x, ids, table, samples, sample_start, seed_signed, stream, NOISE_KINDS[noise], antithetic,
        lo, hi, out_dtype, channels_last)

