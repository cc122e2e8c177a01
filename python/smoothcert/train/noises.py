"""Training noises: how a training step draws its noisy copies, one registered class per
``TrainConfig.noise`` / ``smoothcert train --noise`` value
(:func:`~smoothcert.train.registry.register_training_noise`).

A noise gives the loop ``make(cfg, ids, sigma, sample_start) -> noise(x, m)`` (``[B * m, *S]``,
row ``b * m + j`` keyed by (seed, example id, ``sample_start + j``), differentiable in ``x``)
and says what it can train with: ``GAUSSIAN`` (the losses derived for Gaussian noise),
``SIGMA_GRADIENT`` (differentiable in sigma, which data-dependent sigma needs) and
``PER_EXAMPLE_SIGMA``; it checks the data (:meth:`TrainingNoise.check_data`) and writes the
checkpoint's noise metadata, which certification reads (:meth:`TrainingNoise.meta`).
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, ClassVar, Dict, Union

from torch import Tensor

from .. import ops
from .registry import register_training_noise
from .seeds import derive_seed


class TrainingNoise:
    """Base class (module docstring): additive noise from the fused counter-based sampler
    on ``ops.TRAINING_STREAM``, so training draws never meet certification's.

    Attributes:
        name: the registry key, also the sampler's noise kind; LABEL: its name in messages.
    """

    name: ClassVar[str] = ""
    LABEL: ClassVar[str] = ""
    GAUSSIAN: ClassVar[bool] = False
    SIGMA_GRADIENT: ClassVar[bool] = False
    PER_EXAMPLE_SIGMA: ClassVar[bool] = True

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Adds the noise's own ``smoothcert train`` options."""

    @classmethod
    def config_from_args(cls, args: argparse.Namespace) -> Dict[str, Any]:
        """The ``TrainConfig`` fields of the noise's own options."""
        return {}

    @classmethod
    def check_data(cls, x: Tensor, cfg) -> None:
        """Refuses training inputs ``x`` ``[N, *S]`` the noise is not defined on."""

    @classmethod
    def check_sigma(cls, per_example: bool) -> None:
        if per_example and not cls.PER_EXAMPLE_SIGMA:
            raise ValueError(f"{cls.LABEL or cls.name} training takes one scalar sigma")

    @classmethod
    def meta(cls, cfg, sigma) -> Dict[str, Any]:
        """The checkpoint's ``noise`` metadata for ``sigma`` (a number, or None for a table)."""
        return {"kind": cls.name}

    @classmethod
    def make(cls, cfg, ids: Tensor, sigma: Union[float, Tensor], sample_start: int) -> Callable:
        # A per-example sigma goes in as an explicit [B, 1] table: a 1-D tensor of length B
        # would read as per-element when B equals the element count.
        table = sigma.float().view(-1, 1) if isinstance(sigma, Tensor) else None
        seed, kind = derive_seed(cfg.seed, "noise"), cls.name

        def noise(inp: Tensor, m: int) -> Tensor:
            if table is not None:
                return ops.sample_noise_table(inp.float(), ids, table.to(inp.device), m, sample_start=sample_start,
                                              seed=seed, stream=ops.TRAINING_STREAM, noise=kind)
            return ops.sample_noise(inp, sigma, m, ids=ids, sample_start=sample_start, seed=seed,
                                    stream=ops.TRAINING_STREAM, noise=kind, validate=False)
        return noise


@register_training_noise("gaussian")
class GaussianNoise(TrainingNoise):
    """x + sigma * N(0, I) (Cohen et al. 2019)."""

    GAUSSIAN = True
    SIGMA_GRADIENT = True


@register_training_noise("uniform")
class UniformNoise(TrainingNoise):
    """x + U[-lambda, lambda]^d with RMS sigma (Levine & Feizi 2021's L1 baseline)."""

    SIGMA_GRADIENT = True


@register_training_noise("ssn")
class SplittingNoise(TrainingNoise):
    """Independent splitting noise (Levine & Feizi 2021), RMS sigma."""


@register_training_noise("dssn")
class DssnNoise(TrainingNoise):
    """DSSN's training noise (Levine & Feizi 2021): one random split offset per example and
    copy, with the fixed offset vector of ``cfg.offset_seed`` that certification uses; inputs
    on the grid {0, 1/q, ..., 1}, one scalar sigma."""

    LABEL = "DSSN"
    PER_EXAMPLE_SIGMA = False

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--q", type=int, default=255, help="dssn: grid steps of the inputs")
        parser.add_argument("--offset-seed", type=int, default=0,
                            help="dssn: seed of the fixed offset vector v (stored; certification uses the same)")

    @classmethod
    def config_from_args(cls, args) -> Dict[str, Any]:
        return {"q": args.q, "offset_seed": args.offset_seed}

    @classmethod
    def check_data(cls, x: Tensor, cfg) -> None:
        ops.check_grid(x[: min(x.shape[0], 256)], cfg.q, "training input")

    @classmethod
    def meta(cls, cfg, sigma) -> Dict[str, Any]:
        from ..stats.l1 import dssn_levels

        if sigma is None:
            raise ValueError(f"--noise {cls.name} needs one scalar --sigma")
        return {"kind": cls.name, "q": cfg.q, "offset_seed": cfg.offset_seed, "levels": dssn_levels(sigma, cfg.q)}

    @classmethod
    def make(cls, cfg, ids: Tensor, sigma, sample_start: int) -> Callable:
        from ..ops import dssn_offsets, dssn_training_offsets
        from ..stats.l1 import dssn_levels

        levels = dssn_levels(float(sigma), cfg.q)
        seed = derive_seed(cfg.seed, "noise")

        def noise(inp: Tensor, m: int) -> Tensor:
            v = dssn_offsets(levels, inp[0].numel(), cfg.offset_seed)
            offsets = dssn_training_offsets(ids, m, levels, seed=seed, sample_start=sample_start)
            ops.check_grid(inp, cfg.q, "training input")
            return ops.dssn_batch(inp, v, offsets, levels, cfg.q, validate=False)
        return noise
