"""The settings of one training run (:class:`TrainConfig`) and the learning-rate schedules."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence

import torch

from . import noises, policies  # noqa: F401  (they register the noises and sigma modes)
from .augment import AUGMENTATIONS
from .registry import SIGMA_POLICIES, TRAINING_NOISES
from .seeds import check_seed


def _cosine(opt, cfg: "TrainConfig", steps_per_epoch: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)


def _step(opt, cfg: "TrainConfig", steps_per_epoch: int):
    return torch.optim.lr_scheduler.MultiStepLR(opt, [m * steps_per_epoch for m in cfg.milestones], gamma=cfg.gamma)


# Per-step schedulers by TrainConfig.schedule.
SCHEDULES: Dict[str, Callable[..., Any]] = {"cosine": _cosine, "step": _step}


def _one_of(names) -> str:
    return " or ".join(repr(n) for n in names)


@dataclass
class TrainConfig:
    """Optimisation settings (defaults: Cohen et al.'s SGD recipe, cosine decay).

    Attributes:
        epochs, batch_size, lr, momentum, weight_decay: SGD settings.
        schedule: ``"cosine"`` (per step, to 0 at the end) or ``"step"``
            (lr times ``gamma`` at each epoch in ``milestones``).
        augment: ``"none"`` or ``"crop-flip"`` (pad 4, random crop, horizontal
            flip: the CIFAR recipe), applied before the noise.
        seed: keys shuffling, augmentation and noise (:func:`smoothcert.train.seeds.derive_seed`).
        noise: a registered training noise (:mod:`smoothcert.train.noises`): ``"gaussian"``,
            ``"uniform"``, ``"ssn"`` (independent splitting noise) or ``"dssn"`` (one random
            split offset per example and copy, with the fixed offset vector of ``offset_seed``,
            the one certification uses); sigma is the noise's RMS for all of them.
        q, offset_seed: DSSN's grid steps and offset-vector seed.
        sigma_mode: a registered sigma policy (:mod:`smoothcert.train.policies`).
            ``"fixed"``: the given number or per-example table. ``"uniform"`` is stage 1 of
            Wang et al.'s pretrain-to-finetune (Alg. 1, Eq. 4): in every epoch every example
            trains at its own sigma ~ U(sigma_min, sigma_max), drawn afresh by
            :func:`~smoothcert.train.policies.uniform_sigma_table` (keyed by seed and epoch,
            so a resume redraws the same table); ``train`` then takes ``sigma=None``.
            ``"ddrs"`` is data-dependent sigma (DS2, Alfarra et al. Alg. 2): a per-example
            sigma table, initialised to the given sigma, is updated by
            :class:`smoothcert.sigma.OptimizeSigma` (model in eval mode, ``ddrs_steps`` steps
            of size ``ddrs_lr`` with ``ddrs_samples`` draws, its own noise stream) before
            every step of the epochs ``e >= ddrs_start`` (0-based) with
            ``(e - ddrs_start) % ddrs_every == 0``; the step then trains at the updated
            sigma. The table persists across epochs and is stored with the checkpoint.
        sigma_min, sigma_max: the range of ``"uniform"`` (None otherwise).
        epoch_offset: epoch e's shuffle, augmentation, noise and uniform sigma are
            keyed by ``epoch_offset + e``: a second stage of one run sets it to the
            first stage's epoch count so it continues, rather than replays, the
            first stage's draws (its lr schedule and epsilon warm-up still count
            from 0).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    milestones: Sequence[int] = field(default_factory=lambda: (30, 60, 90))
    gamma: float = 0.1
    augment: str = "none"
    seed: int = 0
    noise: str = "gaussian"
    q: int = 255
    offset_seed: int = 0
    sigma_mode: str = "fixed"
    ddrs_steps: int = 1
    ddrs_start: int = 0
    ddrs_every: int = 1
    ddrs_lr: float = 1e-4
    ddrs_samples: int = 1
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    epoch_offset: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be {_one_of(SCHEDULES)}, got {self.schedule!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be {_one_of(AUGMENTATIONS)}, got {self.augment!r}")
        if self.noise not in TRAINING_NOISES:
            raise ValueError(f"noise must be one of {TRAINING_NOISES.names()}, got {self.noise!r}")
        if self.sigma_mode not in SIGMA_POLICIES:
            raise ValueError(f"sigma_mode must be one of {SIGMA_POLICIES.names()}, got {self.sigma_mode!r}")
        if self.epoch_offset < 0:
            raise ValueError(f"epoch_offset must be >= 0, got {self.epoch_offset}")
        SIGMA_POLICIES.get(self.sigma_mode).check_config(self)
        check_seed(self.seed)

    def optimizer(self):
        """The :class:`OptimizeSigma` of the DS2 updates."""
        from ..sigma import OptimizeSigma

        return OptimizeSigma(steps=self.ddrs_steps, lr=self.ddrs_lr, samples=self.ddrs_samples)

    def updates_sigma(self, epoch: int) -> bool:
        """Whether the sigma policy changes sigma in (0-based) ``epoch`` (DS2's schedule)."""
        return SIGMA_POLICIES.get(self.sigma_mode).updates_sigma(self, epoch)

    def scheduler(self, opt, steps_per_epoch: int):
        """The per-step lr scheduler of ``schedule`` over ``opt``."""
        return SCHEDULES[self.schedule](opt, self, steps_per_epoch)


def plain_config(cfg) -> Dict[str, Any]:
    """``vars(cfg)`` with tuples as lists: what states and checkpoints record."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
