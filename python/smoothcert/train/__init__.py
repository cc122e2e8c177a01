"""The training layer: one resumable loop (:mod:`.loop`) for every loss of the
randomized-smoothing literature (:mod:`.losses`: Gaussian augmentation, SmoothAdv,
MACER, stability training), each with a fixed, a per-example or a per-epoch uniform
sigma, and seed-004's two-stage pretrain-to-finetune run (:mod:`.pretrain_finetune`)."""
from . import losses
from .loop import (NOISES, SAMPLES_PER_EPOCH, SIGMA_MODES, SingleCopySmoothAdv, TrainConfig, check_sigma_range,
                   describe, make_method, make_noise, train, train_gaussian, uniform_sigma_table)
from .pretrain_finetune import (PretrainFinetuneConfig, PretrainFinetuneResult, TrainSelection,
                                select_training_sigma, train_pretrain_finetune)

__all__ = ["losses", "NOISES", "SAMPLES_PER_EPOCH", "SIGMA_MODES", "SingleCopySmoothAdv", "TrainConfig",
           "check_sigma_range", "describe", "make_method", "make_noise", "train", "train_gaussian",
           "uniform_sigma_table", "PretrainFinetuneConfig", "PretrainFinetuneResult", "TrainSelection",
           "select_training_sigma", "train_pretrain_finetune"]
