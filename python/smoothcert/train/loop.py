"""Training base classifiers for randomized smoothing: one loop for every registered loss
(:mod:`smoothcert.train.losses`), sigma policy (:mod:`smoothcert.train.policies`) and
training noise (:mod:`smoothcert.train.noises`); the loop asks them what to do and never
compares their names.

Reproducible and resumable by construction:

* the noise comes from the fused counter-based sampler on its own stream
  (``ops.TRAINING_STREAM``), keyed by (seed, example index, epoch), so it is
  independent of every certification draw;
* epoch e's shuffle and augmentation come from a generator seeded by (seed, e), and
  every other random stream's seed comes from :func:`smoothcert.train.seeds.derive_seed`
  too, so nothing random needs saving;
* after every epoch the weights and optimiser/scheduler state go to
  ``<out>.state`` (:mod:`smoothcert.train.state`) and the model to a certifiable
  checkpoint; rerunning the same command resumes after the last finished epoch and ends
  with the same weights as an uninterrupted run (on deterministic CPU kernels);
* under torchrun (an initialised process group of several ranks) every rank trains on its
  share of each batch with DistributedDataParallel (:mod:`smoothcert.train.parallel`), rank 0
  alone writes the state and the checkpoint.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch import Tensor

from ..data import Split
from . import parallel
from .augment import AUGMENTATIONS
from .config import TrainConfig
from .losses import SingleCopySmoothAdv, as_loss, describe, make_method
from .policies import check_sigma_range, start_sigma_policy, uniform_sigma_table
from .registry import SIGMA_POLICIES, TRAINING_NOISES
from .seeds import generator
from .state import STATE_FORMAT, checkpoint_epochs, resume, save_state, state_path

# The built-in names (the registries may grow).
NOISES = TRAINING_NOISES.names()
SIGMA_MODES = SIGMA_POLICIES.names()

# Noise counters reserved per example per epoch (draws per step must fit).
SAMPLES_PER_EPOCH = 4096

__all__ = ["NOISES", "SIGMA_MODES", "SAMPLES_PER_EPOCH", "STATE_FORMAT", "SingleCopySmoothAdv", "TrainConfig",
           "check_sigma_range", "describe", "make_method", "make_noise", "train", "train_gaussian",
           "uniform_sigma_table"]


def train(model: torch.nn.Module, split: Split, method: Union[str, Callable], sigma: Union[float, Tensor, None], *,
          config: Optional[TrainConfig] = None, device: Union[str, torch.device] = "cpu",
          out: Optional[str] = None, save: Optional[Callable[[torch.nn.Module, Dict[str, Any]], None]] = None,
          progress: bool = True, log: Optional[List[dict]] = None, desc: str = "train") -> torch.nn.Module:
    """Trains ``model`` with a smoothing-aware method and returns it in eval mode.

    Args:
        model: maps ``[N, C, H, W]`` inputs in the raw input space to logits.
        split: training data, ``split.x`` ``[N, C, H, W]`` in memory, ``split.y`` ``[N]``.
        method: a registered method name (default parameters), a loss object
            (:func:`make_method`), or a callable ``(model, x, y, sigma, noise) -> (loss, logits)``.
        sigma: a number, or a per-example table ``[N]`` indexed like ``split.x``;
            None under a sigma mode that draws its own (``"uniform"``).
        config: :class:`TrainConfig`.
        out: checkpoint path; with it, ``save(model, meta)`` is called after every
            epoch (it must write ``out``) and the optimiser state goes to
            ``out + ".state"``; an existing state resumes the run.
        log: if given, one dict per epoch (epoch, loss, noisy accuracy, lr) is appended.
        desc: the progress bar's label.
    """
    cfg = config or TrainConfig()
    cfg.check()
    loss_fn = as_loss(method)
    per_step = loss_fn.samples_per_step()
    if per_step > SAMPLES_PER_EPOCH:
        raise ValueError(f"{per_step} noise draws per step exceed the {SAMPLES_PER_EPOCH} reserved per epoch")
    N = len(split)
    if N == 0:
        raise ValueError("the training split is empty")
    policy = start_sigma_policy(cfg, sigma, N, device)
    noise_kind = TRAINING_NOISES.get(cfg.noise)
    loss_fn.check_noise(noise_kind)
    noise_kind.check_sigma(policy.PER_EXAMPLE)
    noise_kind.check_data(split.x, cfg)
    augment = AUGMENTATIONS[cfg.augment]
    described = describe(loss_fn)
    ranks = parallel.ranks()
    if ranks is not None:
        ranks.check_batches(N, cfg.batch_size)
    lead = ranks is None or ranks.lead
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps_per_epoch = (N + cfg.batch_size - 1) // cfg.batch_size
    sched = cfg.scheduler(opt, steps_per_epoch)
    history: List[dict] = []
    start = 0
    if out is not None and os.path.exists(state_path(out)):
        start, history, saved_table = resume(out, model, opt, sched, cfg, described, device, N)
        if saved_table is not None:
            policy.restore(saved_table)
        if save is not None and lead and checkpoint_epochs(out) != start:
            # A crash between the two writes left the checkpoint one epoch
            # behind; an up-to-date one is left byte-identical (certification
            # runs key their resumable files by its hash).
            model.eval()
            save(model, _progress(start, history, policy))
    x_all, y_all = split.x, split.y
    net = model if ranks is None else ranks.wrap(model, device)
    bar = None
    if progress and lead:
        from ..utils import progress as progress_bar
        bar = progress_bar(total=(cfg.epochs - start) * steps_per_epoch, desc=desc, unit="batch")
    for epoch in range(start, cfg.epochs):
        net.train()
        key = cfg.epoch_offset + epoch  # keys every random draw of the epoch
        gen = generator(cfg.seed, "epoch", key)
        policy.begin_epoch(key)
        perm = torch.randperm(N, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        kwargs = loss_fn.epoch_kwargs(epoch)
        for i in range(0, N, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            x = augment(x_all[idx].to(device), gen)
            y = y_all[idx].to(device)
            ids = idx.to(device)
            # The policy's step sees the whole batch on every rank: its tables stay equal.
            policy.before_step(model, x, ids, epoch, key)
            batch = y.shape[0]
            if ranks is not None:
                mine = ranks.share(batch)
                x, y, ids = x[mine], y[mine], ids[mine]
            sig = policy.sigma_of(ids)

            noise = make_noise(cfg, ids, sig, key * SAMPLES_PER_EPOCH)

            loss, logits = loss_fn(net, x, y, sig, noise, **kwargs)
            finite = bool(torch.isfinite(loss))
            if ranks is not None:  # every rank stops together, none waits in the gradient all-reduce
                finite = ranks.sum(float(not finite))[0] == 0
            if not finite:
                raise FloatingPointError(f"non-finite training loss at epoch {epoch}, batch {i // cfg.batch_size}; "
                                         "lower the learning rate")
            opt.zero_grad(set_to_none=True)
            (loss if ranks is None else loss * ranks.weight(y.shape[0], batch)).backward()
            opt.step()
            sched.step()
            reps = logits.shape[0] // y.shape[0]
            loss_sum += float(loss.detach()) * y.shape[0]
            correct += int((logits.argmax(1) == y.repeat_interleave(reps)).sum()) / reps
            total += y.shape[0]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        if ranks is not None:
            loss_sum, correct, total = ranks.sum(loss_sum, correct, total)
        entry = {"epoch": epoch + 1, "loss": loss_sum / total, "noisy_accuracy": correct / total,
                 "lr": opt.param_groups[0]["lr"]}
        history.append(entry)
        if log is not None:
            log.append(entry)
        if out is not None and lead:
            model.eval()
            # The state (weights included) first: it alone drives a resume, so a
            # crash between the two writes loses nothing.
            save_state(out, model, opt, sched, epoch + 1, history, cfg, described, policy.saved_table())
            if save is not None:
                save(model, _progress(epoch + 1, history, policy))
        if ranks is not None:
            ranks.barrier()
    if bar is not None:
        bar.close()
    return model.eval()


def make_noise(cfg: TrainConfig, ids: Tensor, sigma: Union[float, Tensor], sample_start: int) -> Callable:
    """``noise(x, m) -> [B * m, *S]`` for one training step: ``m`` noisy copies of each example,
    keyed by (seed, example id, ``sample_start + j``) so that two calls in a step agree."""
    return TRAINING_NOISES.get(cfg.noise).make(cfg, ids, sigma, sample_start)


def _progress(epochs_done: int, history: List[dict], policy) -> Dict[str, Any]:
    """What ``save`` gets after an epoch; a policy that saves its table adds it (DS2: ``[N]``, a tensor)."""
    meta: Dict[str, Any] = {"epochs_done": epochs_done, "history": history}
    table = policy.saved_table()
    if table is not None:
        meta["sigma_table"] = table.detach().float().cpu().clone()  # a snapshot, not the live table
    return meta


def train_gaussian(model: torch.nn.Module, split: Split, sigma: Union[float, Tensor], *,
                   epochs: int = 30, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
                   weight_decay: float = 5e-4, seed: int = 0, device: Union[str, torch.device] = "cpu",
                   progress: bool = True, log: Optional[list] = None) -> torch.nn.Module:
    """Gaussian data augmentation (Cohen et al.) with SGD and cosine decay, in memory."""
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, seed=seed)
    return train(model, split, "gaussian", sigma, config=cfg, device=device, progress=progress, log=log)
