"""The training layer: one resumable loop (:mod:`.loop`) for every loss of the
randomized-smoothing literature (:mod:`.losses`: Gaussian augmentation, SmoothAdv,
MACER, stability training), each with a fixed or a per-example sigma."""
from . import losses
from .loop import NOISES, SAMPLES_PER_EPOCH, TrainConfig, describe, make_method, make_noise, train, train_gaussian

__all__ = ["losses", "NOISES", "SAMPLES_PER_EPOCH", "TrainConfig", "describe", "make_method", "make_noise", "train",
           "train_gaussian"]
