"""Drivers: long runs composed from the layers below, resumable from what they wrote.

* :mod:`.dataset` -- :func:`certify_dataset`, certifying a dataset with any family into a
  resumable TSV and its sidecar (docs/formats.md);
* :mod:`.distributed` -- :func:`certify_sharded`, the same run over the ranks of a
  torch.distributed process group (``torchrun -m smoothcert -- certify``), rank 0 writing the
  one file that one process writes (docs/distributed.md);
* :mod:`.fit_sigma` -- :func:`fit_sigma_sweep`, the per-element sigma fit over a c0 sweep
  (fit, certify, sigma files, heat-maps);
* :mod:`.pretrain_finetune` -- :func:`train_pretrain_finetune`, sample-wise smoothing's
  two-stage training (Wang et al. Alg. 1): uniform-sigma pretraining, grid selection of every
  example's sigma, fine-tuning at it; resumable at every stage.

Drivers may import every layer except :mod:`smoothcert.cli`; nothing below imports them.
"""
from .dataset import certify_dataset
from .distributed import certify_sharded
from .fit_sigma import fit_sigma_sweep
from .pretrain_finetune import (PretrainFinetuneConfig, PretrainFinetuneResult, TrainSelection,
                                select_training_sigma, train_pretrain_finetune)

__all__ = ["certify_dataset", "certify_sharded", "fit_sigma_sweep", "PretrainFinetuneConfig", "PretrainFinetuneResult",
           "TrainSelection", "select_training_sigma", "train_pretrain_finetune"]
