"""The training layer: one resumable loop (:mod:`.loop`) over registered strategies
(:mod:`.registry`) -- losses (:mod:`.losses`: Gaussian augmentation, SmoothAdv, MACER,
stability training), sigma policies (:mod:`.policies`: fixed, per-example table, per-epoch
uniform range, DS2) and training noises (:mod:`.noises`) -- with every random stream's seed
from :func:`.seeds.derive_seed`. Wang et al.'s two-stage pretrain-to-finetune run, which
composes two such trainings with a sigma selection, is a driver
(:mod:`smoothcert.drivers.pretrain_finetune`)."""
from . import losses
from .config import TrainConfig
from .losses import Loss, as_loss
from .loop import (NOISES, SAMPLES_PER_EPOCH, SIGMA_MODES, SingleCopySmoothAdv, check_sigma_range, describe,
                   make_method, make_noise, train, train_gaussian, uniform_sigma_table)
from .noises import TrainingNoise
from .policies import SigmaPolicy
from .registry import (LOSSES, RECIPES, SIGMA_POLICIES, TRAINING_NOISES, Recipe, Registry, register_loss,
                       register_recipe, register_sigma_policy, register_training_noise)
from .seeds import derive_seed

__all__ = ["losses", "NOISES", "SAMPLES_PER_EPOCH", "SIGMA_MODES", "SingleCopySmoothAdv", "TrainConfig",
           "check_sigma_range", "describe", "make_method", "make_noise", "train", "train_gaussian",
           "uniform_sigma_table", "Loss", "as_loss", "SigmaPolicy", "TrainingNoise",
           "Recipe", "Registry", "LOSSES", "SIGMA_POLICIES", "TRAINING_NOISES", "RECIPES", "register_loss",
           "register_sigma_policy", "register_training_noise", "register_recipe", "derive_seed"]
