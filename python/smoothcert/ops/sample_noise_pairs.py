"""Wrapper of ``smoothcert::sample_noise_pairs``: the fused sampler's batch plus the
unit-noise dot product of each pair of rows, for second-order smoothing's gradient-norm
estimator (Levine et al., Tight Second-Order Certificates, §3.1 and App. A.3)."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from .sample_noise import NOISE_KINDS, prepare_call, signed_seed
from .streams import ESTIMATION_STREAM


def sample_noise_pairs(x: torch.Tensor, sigma: Union[float, torch.Tensor], samples: int, *,
                       ids: Optional[torch.Tensor] = None, sample_start: int = 0, seed: int = 0,
                       stream: int = ESTIMATION_STREAM, noise: str = "gaussian", clamp: Optional[tuple] = None,
                       out_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                       validate: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`smoothcert.ops.sample_noise`'s batch (bit for bit, same arguments) and the
    dot products ``z_2j . z_2j+1`` of the unit noise of each pair of its rows, made in one
    pass.

    Args:
        x: ``[B, *S]`` float32 clean inputs.
        samples, sample_start: even, so that samples ``2j`` and ``2j+1`` of each input
            (independent draws) form its pair ``j``.
        noise: ``"gaussian"`` or ``"uniform"`` (additive noise ``x + sigma z``).
        The other arguments are :func:`~smoothcert.ops.sample_noise`'s.

    Returns:
        ``(batch [B * samples, *S], dots [B, samples // 2] float64)``; each dot is summed
        over elements in order in float64 (each product of two float32 values is exact).
    """
    if noise not in ("gaussian", "uniform"):
        raise ValueError(f"noise must be 'gaussian' or 'uniform' (additive noise), got {noise!r}")
    if samples % 2 or sample_start % 2:
        raise ValueError(f"samples and sample_start must be even (rows 2j, 2j+1 form a pair), "
                         f"got {samples} and {sample_start}")
    x, ids, table = prepare_call(x, sigma, samples, ids, sample_start, seed, noise, validate)
    return sample_noise_pairs_table(x, ids, table, samples, sample_start=sample_start, seed=seed, stream=stream,
                                    noise=noise, clamp=clamp, out_dtype=out_dtype, channels_last=channels_last)


def sample_noise_pairs_table(x: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, samples: int, *,
                             sample_start: int, seed: int, stream: int, noise: str = "gaussian",
                             clamp: Optional[tuple] = None, out_dtype: Optional[torch.dtype] = None,
                             channels_last: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`sample_noise_pairs` without value checks (``table`` from
    :func:`~smoothcert.ops.sigma_table`)."""
    lo, hi = clamp if clamp is not None else (None, None)
    seed_signed = signed_seed(seed)
    return torch.ops.smoothcert.sample_noise_pairs.default(
        x, ids, table, samples, sample_start, seed_signed, stream, NOISE_KINDS[noise], lo, hi, out_dtype,
        channels_last)
