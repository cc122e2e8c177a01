"""Training base classifiers with Gaussian data augmentation (Cohen et al. 2019).

The noise comes from the same fused sampler as certification, on its own
stream (``ops.TRAINING_STREAM``), keyed by (seed, example index, epoch), so a
run is reproducible and its noise is independent of the certification draws.
"""
from __future__ import annotations

from typing import Optional, Union

import torch
import torch.nn.functional as F

from . import ops
from .data import Split


def train_gaussian(model: torch.nn.Module, split: Split, sigma: Union[float, torch.Tensor], *,
                   epochs: int = 30, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
                   weight_decay: float = 5e-4, seed: int = 0, device: Union[str, torch.device] = "cpu",
                   progress: bool = True, log: Optional[list] = None) -> torch.nn.Module:
    """Trains ``model`` on ``x + N(0, sigma^2)`` with SGD and a cosine schedule.

    Args:
        model: maps ``[N, C, H, W]`` inputs in [0, 1] to logits ``[N, K]``.
        split: the training data (``split.x`` ``[N, C, H, W]``, ``split.y`` ``[N]``).
        sigma: a number, or a per-example table ``[N]`` (indexed like ``split.x``).
        epochs, batch_size, lr, momentum, weight_decay: optimisation settings.
        seed: keys both the shuffling and the noise.
        log: if given, one dict per epoch (loss, noisy accuracy) is appended.

    Returns:
        the trained model, in eval mode.
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    N = len(split)
    per_example = isinstance(sigma, torch.Tensor) and sigma.numel() > 1
    if per_example and sigma.shape != (N,):
        raise ValueError(f"a per-example sigma must have shape [{N}], got {list(sigma.shape)}")
    sig_all = sigma.float().to(device) if per_example else float(sigma)
    ops.check_sigma(ops.sigma_table(sig_all if per_example else torch.tensor(sig_all), split.x[:1]))
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps = epochs * ((N + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    x_all, y_all = split.x.to(device), split.y.to(device)
    gen = torch.Generator().manual_seed(seed)
    epoch_iter = range(epochs)
    if progress:
        from tqdm.auto import tqdm
        epoch_iter = tqdm(epoch_iter, desc=f"train sigma={sigma if not per_example else 'table'}", unit="epoch")
    for epoch in epoch_iter:
        perm = torch.randperm(N, generator=gen).to(device)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, N, batch_size):
            idx = perm[i:i + batch_size]
            sig = sig_all[idx] if per_example else sig_all
            noisy = ops.sample_noise(x_all[idx], sig, 1, ids=idx, sample_start=epoch, seed=seed,
                                     stream=ops.TRAINING_STREAM, validate=False)
            logits = model(noisy)
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * idx.numel()
            correct += int((logits.argmax(1) == y_all[idx]).sum())
            total += idx.numel()
        if progress:
            epoch_iter.set_postfix(loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        if log is not None:
            log.append({"epoch": epoch, "loss": loss_sum / total, "noisy_accuracy": correct / total})
    return model.eval()
