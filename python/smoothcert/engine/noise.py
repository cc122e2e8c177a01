"""Noise kinds: how the engine turns ``(inputs, indices, sigma table, counter range)`` into a
forward batch. A kind is a parameter of :class:`~smoothcert.engine.Sampler`; a new way of
drawing noise (e.g. a lattice sampler) is one more class registered here, and every family,
reducer and driver works with it unchanged.

A kind's :meth:`NoiseKind.bind` fixes the per-call constants once (seed, stream, clamp,
dtype, layout) and returns ``make(x, ids, table, m, start) -> (batch, extra)``, the function
the engine calls per forward batch: ``x`` ``[G, *S]`` float32, ``ids`` ``[G]`` int64,
``table`` ``[1 | G, 1 | D]`` float32 (or None for kinds without sigma), samples
``[start, start + m)`` of each input; ``batch`` is ``[G * m, *S]`` (row ``g * m + j`` is
sample ``start + j`` of input ``g``) and ``extra`` what a reducer may need (or None).
"""
from __future__ import annotations

from typing import Callable, ClassVar, Dict, Optional, Tuple

import torch

from ..ops.sample_noise import NOISE_KINDS as _KERNEL_CODES, signed_seed

Maker = Callable[[torch.Tensor, torch.Tensor, Optional[torch.Tensor], int, int],
                 Tuple[torch.Tensor, Optional[torch.Tensor]]]

NOISES: Dict[str, type] = {}


def register_noise(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` the noise kind ``name`` (``Sampler(noise=name)``)."""
    def deco(cls: type) -> type:
        if name in NOISES and NOISES[name] is not cls:
            raise ValueError(f"noise kind {name!r} is already registered ({NOISES[name].__name__})")
        cls.name = name
        NOISES[name] = cls
        return cls
    return deco


class NoiseKind:
    """Base class of the noise kinds (module docstring).

    Attributes:
        name: the registry key.
        PAIRS: draws come in pairs ``(2j, 2j+1)`` (counter ranges must be even).
        NEEDS_SIGMA: the kind reads the sigma table.
    """

    name: ClassVar[str] = ""
    PAIRS: ClassVar[bool] = False
    NEEDS_SIGMA: ClassVar[bool] = True

    def bind(self, *, seed: int, stream: int, clamp, out_dtype: Optional[torch.dtype],
             channels_last: bool) -> Maker:
        raise NotImplementedError

    def describe(self) -> str:
        """The generator's description (recorded in result sidecars)."""
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Additive(NoiseKind):
    """``x + sigma * eps`` from the fused counter-based sampler (:func:`smoothcert.ops.sample_noise`)."""

    ANTITHETIC: ClassVar[bool] = False
    KERNEL: ClassVar[str] = "gaussian"

    def bind(self, *, seed, stream, clamp, out_dtype, channels_last) -> Maker:
        write = self.bind_into(seed=seed, stream=stream, clamp=clamp, channels_last=channels_last)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        held = [None]

        # One batch buffer per draw, reused by every forward batch (the first batch of a draw is
        # its largest): a fresh tensor per batch costs page faults each time. The model must not
        # keep its input beyond the call (the next batch overwrites it).
        def make(x, ids, table, m, start):
            rows = x.shape[0] * m
            buf = held[0]
            if buf is None or buf.shape[0] < rows or buf.shape[1:] != x.shape[1:] or buf.device != x.device:
                buf = held[0] = torch.empty((rows, *x.shape[1:]), dtype=out_dtype or torch.float32,
                                            device=x.device, memory_format=fmt)
            out = buf[:rows] if buf.shape[0] != rows else buf
            write(out, x, ids, table, m, start)
            return out, None
        return make

    def bind_into(self, *, seed, stream, clamp, channels_last):
        """``write(out, x, ids, table, m, start)``: :meth:`bind`'s batch written into ``out``
        ``[G * m, *S]`` (a slice of a batch shared with other draws; its dtype is the batch's)."""
        op = torch.ops.smoothcert.sample_noise_into.default
        s, code, anti = signed_seed(seed), _KERNEL_CODES[self.KERNEL], self.ANTITHETIC
        lo, hi = clamp if clamp is not None else (None, None)

        def write(out, x, ids, table, m, start):
            op(x, ids, table, m, start, s, stream, code, anti, lo, hi, channels_last, out)
        return write


@register_noise("gaussian")
class Gaussian(_Additive):
    """``N(0, sigma^2)`` per element (Philox-4x32-10 + Box-Muller; Cohen et al. 2019)."""


@register_noise("uniform")
class Uniform(_Additive):
    """``U(-sqrt(3) sigma, sqrt(3) sigma)`` per element (sigma is the RMS; Levine & Feizi 2021, Sec. 3)."""

    KERNEL = "uniform"


@register_noise("ssn")
class Splitting(_Additive):
    """Randomized splitting noise (Levine & Feizi 2021, Sec. 4): each element becomes the
    midpoint of its piece of [0, 1] between random cuts of period ``2 sqrt(3) sigma``."""

    KERNEL = "ssn"


@register_noise("antithetic-gaussian")
class AntitheticGaussian(_Additive):
    """Gaussian pairs ``x + sigma z_j``, ``x - sigma z_j`` in rows ``2j, 2j+1`` (dipole
    smoothing's antithetic samples; Levine et al., second-order certificates, Sec. 4)."""

    ANTITHETIC = True
    PAIRS = True


@register_noise("gaussian-pairs")
class GaussianPairs(NoiseKind):
    """Gaussian noise with ``extra`` = ``[G, m // 2]`` float64 dot products ``z_2j . z_2j+1``
    of the unit noise of each pair of independent draws (second-order smoothing's
    gradient-norm estimator; Levine et al., second-order certificates, Sec. 3), made in the same pass."""

    PAIRS = True

    def bind(self, *, seed, stream, clamp, out_dtype, channels_last) -> Maker:
        op = torch.ops.smoothcert.sample_noise_pairs.default
        s, code = signed_seed(seed), _KERNEL_CODES["gaussian"]
        lo, hi = clamp if clamp is not None else (None, None)

        def make(x, ids, table, m, start):
            return op(x, ids, table, m, start, s, stream, code, lo, hi, out_dtype, channels_last)
        return make


@register_noise("dssn-offsets")
class DssnOffsets(NoiseKind):
    """Deterministic splitting noise (Levine & Feizi 2021, Sec. 4.1): sample ``l`` in ``[0, L)``
    is the split at offset ``(l + v_i) / L`` per element, with the fixed offset vector ``v``
    ``[D]`` int64; all L samples enumerate the smoothed classifier exactly. No seed, stream
    or sigma table is read (``q`` grid steps, ``L`` levels)."""

    NEEDS_SIGMA = False

    def __init__(self, v: torch.Tensor, levels: int, q: int):
        self.v, self.levels, self.q = v, int(levels), int(q)

    def bind(self, *, seed, stream, clamp, out_dtype, channels_last) -> Maker:
        op = torch.ops.smoothcert.dssn_batch.default
        v, L, q = self.v, self.levels, self.q

        def make(x, ids, table, m, start):
            offsets = torch.arange(start, start + m, device=x.device).view(1, m)
            return op(x, v.to(x.device), offsets, L, q, None, None, out_dtype, channels_last), None
        return make

    def __repr__(self) -> str:
        return f"DssnOffsets(levels={self.levels}, q={self.q})"


def noise_kind(noise) -> NoiseKind:
    """A :class:`NoiseKind` from itself or a registered name."""
    if isinstance(noise, NoiseKind):
        return noise
    cls = NOISES.get(noise)
    if cls is None:
        raise ValueError(f"unknown noise kind {noise!r}; registered: {', '.join(sorted(NOISES))}")
    return cls()


__all__ = ["NoiseKind", "NOISES", "register_noise", "noise_kind", "Gaussian", "Uniform", "Splitting",
           "AntitheticGaussian", "GaussianPairs", "DssnOffsets"]
