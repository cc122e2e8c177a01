"""Sigma policies: where each training example's sigma comes from, step by step, one
registered class per ``TrainConfig.sigma_mode``
(:func:`~smoothcert.train.registry.register_sigma_policy`).

* ``"fixed"`` -- one sigma (:class:`FixedSigma`) or a per-example table ``[N]``
  (:class:`SigmaTable`, e.g. ``smoothcert train --sigma-table``);
* ``"uniform"`` -- every example's sigma ~ U(sigma_min, sigma_max), drawn afresh each epoch
  (:class:`UniformRange`; Wang et al., sample-wise smoothing, Alg. 1 stage 1 / Eq. 4);
* ``"ddrs"`` -- data-dependent sigma, DS2 (:class:`DataDependentSigma`; Alfarra et al.,
  "Data dependent randomized smoothing", Alg. 2): a per-example table updated by
  OptimizeSigma before the steps of chosen epochs, stored with the checkpoint.

The sample-wise grid (Wang et al. Alg. 1 stage 2 / Eq. 5) is not a policy of its own:
:func:`smoothcert.train.pretrain_finetune.select_training_sigma` selects every example's sigma
on the grid between the stages, and stage 2 trains that table as a :class:`SigmaTable` under
``"fixed"`` (what its checkpoints record). To make the selection a policy, register a
:class:`SigmaPolicy` under ``"samplewise"`` whose :meth:`SigmaPolicy.start` runs the selection
with the model of the run, and have pretrain-finetune's stage 2 use that mode; its recorded
``sigma_mode`` would then differ from today's checkpoints, whose resume compares it.

:meth:`SigmaPolicy.start` builds the run's policy from the config and the sigma given to
``train``; per step it answers the sigma of the batch's examples (a float, or ``[B]``
float32 on the training device).
"""
from __future__ import annotations

import argparse
import math
from typing import Any, ClassVar, Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from .. import ops
from .registry import SIGMA_POLICIES, TRAINING_NOISES, register_sigma_policy
from .seeds import derive_seed, generator


def check_sigma_range(sigma_min, sigma_max) -> None:
    """Raises ValueError unless 0 < sigma_min <= sigma_max, both finite numbers."""
    for name, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if sigma_min > sigma_max:
        raise ValueError(f"sigma_min ({sigma_min}) is above sigma_max ({sigma_max})")


def uniform_sigma_table(n: int, sigma_min: float, sigma_max: float, seed: int, epoch: int) -> Tensor:
    """``[n]`` float32 sigma ~ U(sigma_min, sigma_max), one per example (Wang et al. Eq. 4),
    a function of (seed, epoch) alone: a resumed run redraws the same table."""
    check_sigma_range(sigma_min, sigma_max)
    u = torch.rand(n, generator=generator(seed, "uniform-sigma", epoch), dtype=torch.float64)
    return (sigma_min + (sigma_max - sigma_min) * u).float()


def _checked(sigma: Union[float, Tensor], N: int) -> Union[float, Tensor]:
    """A validated number, or a validated float32 table ``[N]``."""
    if isinstance(sigma, Tensor) and sigma.numel() > 1:
        if sigma.shape != (N,):
            raise ValueError(f"a per-example sigma must have shape [{N}], got {list(sigma.shape)}")
        ops.check_sigma(sigma.float().view(-1, 1))
        return sigma.float()
    value = float(sigma)
    ops.check_sigma(torch.tensor([[value]]))
    return value


class SigmaPolicy:
    """Base class (module docstring).

    Attributes:
        name: the registry key. HELP: its entry in ``--sigma-mode``'s help ("" for none).
        CLI: offered by ``smoothcert train --sigma-mode``.
        OWN_FIELDS: ``TrainConfig`` fields that only this mode may set (None under the others).
        PER_EXAMPLE: trains with one sigma per example.
        PERSISTS: its table is training state (saved every epoch, restored on resume).
    """

    name: ClassVar[str] = ""
    HELP: ClassVar[str] = ""
    CLI: ClassVar[bool] = False
    OWN_FIELDS: ClassVar[Tuple[str, ...]] = ()
    PER_EXAMPLE: ClassVar[bool] = False
    PERSISTS: ClassVar[bool] = False

    def __init__(self, cfg, N: int):
        self.cfg, self.N, self.device = cfg, N, None

    @classmethod
    def start(cls, cfg, sigma: Union[float, Tensor, None], N: int) -> "SigmaPolicy":
        """The policy of a run over ``N`` examples given ``train``'s ``sigma``."""
        raise NotImplementedError

    @classmethod
    def check_config(cls, cfg) -> None:
        """Refuses settings this mode cannot train with (called by ``TrainConfig.check``)."""
        for other in SIGMA_POLICIES.classes():
            if other is not cls and any(getattr(cfg, f) is not None for f in other.OWN_FIELDS):
                raise ValueError(f"{' and '.join(other.OWN_FIELDS)} belong to sigma_mode {other.name!r}, "
                                 f"not {cfg.sigma_mode!r}")

    @classmethod
    def updates_sigma(cls, cfg, epoch: int) -> bool:
        """Whether the policy changes sigma during (0-based) ``epoch``."""
        return False

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Adds the mode's own ``smoothcert train`` options."""

    @classmethod
    def config_from_args(cls, args: argparse.Namespace) -> Dict[str, Any]:
        """The ``TrainConfig`` fields of the mode's own options."""
        return {}

    def to(self, device) -> "SigmaPolicy":
        self.device = device
        return self

    def begin_epoch(self, key: int) -> None:
        """Called at the start of every epoch (``key`` counts with the run's epoch offset)."""

    def before_step(self, model, x: Tensor, ids: Tensor, epoch: int, key: int) -> None:
        """Called before every training step on ``x`` ``[B, *S]`` with example ids ``[B]``."""

    def sigma_of(self, ids: Tensor) -> Union[float, Tensor]:
        """The sigma of examples ``ids`` ``[B]``: a float or ``[B]``."""
        raise NotImplementedError

    def saved_table(self) -> Optional[Tensor]:
        """The table ``[N]`` that the training state and checkpoint store (PERSISTS only)."""
        return None

    def restore(self, table: Tensor) -> None:
        """Takes the table of a resumed run's state (only policies that save one read it)."""


@register_sigma_policy("fixed")
class FixedSigma(SigmaPolicy):
    """One sigma for every example and step; given a per-example table, :class:`SigmaTable`."""

    CLI = True

    def __init__(self, cfg, N: int, value: float):
        super().__init__(cfg, N)
        self.value = value

    @classmethod
    def start(cls, cfg, sigma, N):
        if sigma is None:
            raise ValueError(f"sigma_mode {cfg.sigma_mode!r} needs a sigma (a number or a per-example table)")
        checked = _checked(sigma, N)
        return SigmaTable(cfg, N, checked) if isinstance(checked, Tensor) else cls(cfg, N, checked)

    def sigma_of(self, ids):
        return self.value


class SigmaTable(SigmaPolicy):
    """A per-example sigma ``[N]`` indexed like the training split (mode ``"fixed"``; also the
    table that pretrain-to-finetune's stage 2 selects on the grid)."""

    PER_EXAMPLE = True

    def __init__(self, cfg, N: int, table: Optional[Tensor]):
        super().__init__(cfg, N)
        self.table = table

    def to(self, device) -> "SigmaTable":
        super().to(device)
        if self.table is not None:
            self.table = self.table.to(device)
        return self

    def sigma_of(self, ids):
        return self.table[ids]


@register_sigma_policy("uniform")
class UniformRange(SigmaTable):
    """sigma ~ U(sigma_min, sigma_max) per example, redrawn each epoch from (seed, epoch)
    (:func:`uniform_sigma_table`); ``train`` takes ``sigma=None``."""

    OWN_FIELDS = ("sigma_min", "sigma_max")

    @classmethod
    def start(cls, cfg, sigma, N):
        if sigma is not None:
            raise ValueError(f"sigma_mode {cls.name!r} draws every example's sigma itself; pass sigma=None")
        return cls(cfg, N, None)

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        check_sigma_range(cfg.sigma_min, cfg.sigma_max)
        noise = TRAINING_NOISES.get(cfg.noise)
        if not noise.PER_EXAMPLE_SIGMA:
            raise ValueError(f"{noise.LABEL or noise.name} training takes one scalar sigma, "
                             f"not sigma_mode {cls.name!r}")

    def begin_epoch(self, key: int) -> None:
        cfg = self.cfg
        self.table = uniform_sigma_table(self.N, cfg.sigma_min, cfg.sigma_max, cfg.seed, key).to(self.device)


@register_sigma_policy("ddrs")
class DataDependentSigma(SigmaTable):
    """DS2 (Alfarra et al. Alg. 2): the table S[idx], initialised to the given sigma (or
    table), is updated by :class:`smoothcert.sigma.OptimizeSigma` (model in eval mode,
    ``ddrs_steps`` steps of size ``ddrs_lr`` with ``ddrs_samples`` draws, its own noise stream)
    before every step of the epochs ``e >= ddrs_start`` with ``(e - ddrs_start) % ddrs_every
    == 0``; the step then trains at the updated sigma."""

    HELP = ("data-dependent sigma (DS2, Alfarra et al. Alg. 2): a per-example sigma, starting at --sigma, "
            "updated by OptimizeSigma before each step and stored in the checkpoint")
    CLI = True
    PERSISTS = True

    @classmethod
    def start(cls, cfg, sigma, N):
        given = FixedSigma.start(cfg, sigma, N)
        table = given.table.clone() if given.PER_EXAMPLE else torch.full((N,), given.value)
        policy = cls(cfg, N, table.float())
        policy.optimizer = cfg.optimizer()
        return policy

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        if not TRAINING_NOISES.get(cfg.noise).SIGMA_GRADIENT:
            able = " or ".join(c.name for c in TRAINING_NOISES.classes() if c.SIGMA_GRADIENT)
            raise ValueError(f"data-dependent sigma trains with {able} noise (differentiable in sigma), "
                             f"got {cfg.noise!r}")
        if cfg.ddrs_start < 0 or cfg.ddrs_every < 1:
            raise ValueError(f"ddrs_start must be >= 0 and ddrs_every >= 1, got {cfg.ddrs_start} and "
                             f"{cfg.ddrs_every}")

    @classmethod
    def updates_sigma(cls, cfg, epoch: int) -> bool:
        return cfg.ddrs_steps > 0 and epoch >= cfg.ddrs_start and (epoch - cfg.ddrs_start) % cfg.ddrs_every == 0

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("ddrs (DS2)")
        g.add_argument("--ddrs-steps", type=int, default=1, help="K_train, OptimizeSigma steps per minibatch")
        g.add_argument("--ddrs-start", type=int, default=0,
                       help="first epoch (0-based) that updates sigma; before it sigma stays sigma0 (the paper: 50)")
        g.add_argument("--ddrs-every", type=int, default=1, help="update sigma every k-th epoch from --ddrs-start")
        g.add_argument("--ddrs-lr", type=float, default=1e-4, help="alpha, OptimizeSigma's step size")
        g.add_argument("--ddrs-samples", type=int, default=1, help="n, noise draws per example per step")

    @classmethod
    def config_from_args(cls, args) -> Dict[str, Any]:
        return dict(ddrs_steps=args.ddrs_steps, ddrs_start=args.ddrs_start, ddrs_every=args.ddrs_every,
                    ddrs_lr=args.ddrs_lr, ddrs_samples=args.ddrs_samples)

    def before_step(self, model, x, ids, epoch, key) -> None:
        cfg = self.cfg
        if not self.updates_sigma(cfg, epoch):
            return
        model.eval()  # batch-norm statistics fixed: the samples stay independent
        res = self.optimizer(model, x, self.table[ids], ids=ids, seed=derive_seed(cfg.seed, "sigma-opt"),
                             stream=ops.TRAIN_SIGMA_OPT_STREAM, noise=cfg.noise,
                             sample_start=key * cfg.ddrs_steps * cfg.ddrs_samples,
                             batch_size=max(cfg.batch_size, x.shape[0] * cfg.ddrs_samples))
        self.table[ids] = res.sigma.to(self.table.device)
        model.train()

    def saved_table(self) -> Optional[Tensor]:
        return self.table

    def restore(self, table: Tensor) -> None:
        self.table = table.to(self.device)


def start_sigma_policy(cfg, sigma: Union[float, Tensor, None], N: int, device) -> SigmaPolicy:
    """The policy of ``cfg.sigma_mode`` for a run over ``N`` examples, on ``device``."""
    return SIGMA_POLICIES.get(cfg.sigma_mode).start(cfg, sigma, N).to(device)
