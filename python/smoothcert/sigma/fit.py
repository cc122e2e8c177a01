"""Fitting one per-element sigma for a (dataset, model) pair (Tecot et al. Alg. 1;
"Robustness Verification with Non-Uniform Randomized Smoothing", Secs. 4.2-4.3).

The base model is frozen (eval mode); only sigma is trained, with Adam, to
maximise the mean log certified volume of the training points the smoothed
classifier gets right:

    p^_b  = mean_j softmax(f(x_b + sigma * z_bj))[c_b]            (n0 = ``samples`` draws)
    O_b   = sum_i log(sigma_i + 1e-9) + D log(Phi^-1(clamp(p^_b, 1e-7, 1 - 1e-7)) + 1e-9)
    mask  = [hard vote of the same n0 draws == c_b] and [p^_b >= 1/2]   (no gradient)
    loss  = - sum_b mask_b O_b / sum_b mask_b    (the step is skipped when no point qualifies)

The noise is the fused sampler's, keyed by (seed, ``FIT_SIGMA_STREAM``, training
index, sub-epoch * n0 + j), and its gradient in sigma is the sampler's backward
(the noise is regenerated from its counters, nothing of size B * n0 * D is kept
between the passes). No certification stream is used, and only training
indices are drawn, so a fitted sigma is independent of every test-time draw.

Parametrisations: ``"abs"`` (the authors' code: the Adam parameter is sigma
itself and ``|p|``, floored, is used) or ``"log"`` (``sigma = exp(p)``; Adam's
learning rate is then a relative step). ``units="standardized"`` makes the
parameter (c0, the learning rate) live in the units of normalised inputs,
``sigma_pixel = std_channel * sigma``, as the paper's MNIST/Fashion-MNIST/ImageNet
values do; sigma files always hold pixel units.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .. import ops
from ..ops.checks import check_int, check_seed

# App. B of the paper: inputs per step, Adam lr, lr decay per sub-epoch, c0 grid step,
# sub-epochs per c0, and the units its sigma values are in. n0 = 32 draws (paper §5).
DATASET_DEFAULTS: Dict[str, Dict] = {
    "mnist": dict(batch_size=128, lr=1e-3, decay=0.5, c0_step=0.1, sub_epochs=5, units="standardized"),
    "fashion-mnist": dict(batch_size=128, lr=1e-3, decay=0.5, c0_step=0.1, sub_epochs=5, units="standardized"),
    "cifar10": dict(batch_size=32, lr=5e-3, decay=0.8, c0_step=0.01, sub_epochs=10, units="pixel"),
    "imagenet": dict(batch_size=2, lr=1e-3, decay=0.8, c0_step=0.01, sub_epochs=10, units="standardized"),
    "kitti": dict(batch_size=2, lr=5e-3, decay=0.8, c0_step=0.01, sub_epochs=10, units="pixel"),
}
GENERIC_DEFAULTS = dict(batch_size=128, lr=1e-3, decay=0.5, c0_step=0.1, sub_epochs=5, units="pixel")
PARAMS = ("abs", "log")
UNITS = ("pixel", "standardized")


@dataclass(frozen=True)
class FitConfig:
    """Settings of one fit (one c0).

    Attributes:
        c0: initial constant sigma, in ``units``.
        lr: Adam learning rate; decay: its factor after every sub-epoch.
        batch_size: inputs per step; samples: n0 noise draws per input.
        sub_epochs: passes over the fitting set.
        param: ``"abs"`` or ``"log"``; floor: lower bound of ``|p|`` under ``"abs"``.
        units: ``"pixel"`` or ``"standardized"`` (see the module docstring).
        seed: Philox key of the noise and of the minibatch order.
    """

    c0: float
    lr: float = 1e-3
    decay: float = 0.5
    batch_size: int = 128
    samples: int = 32
    sub_epochs: int = 5
    param: str = "abs"
    floor: float = 1e-6
    units: str = "pixel"
    seed: int = 0

    def __post_init__(self):
        for name in ("c0", "lr", "decay", "floor"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0, got {v!r}")
        for name in ("batch_size", "samples", "sub_epochs"):
            check_int(name, getattr(self, name), 1)
        check_seed(self.seed)
        if self.param not in PARAMS:
            raise ValueError(f"param must be one of {PARAMS}, got {self.param!r}")
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, got {self.units!r}")

    def to_dict(self) -> Dict:
        return asdict(self)


class SigmaParameter(nn.Module):
    """The trainable sigma: ``forward()`` gives sigma ``[*S]`` in pixel units.

    Args:
        shape: ``S``, the shape of one input (``[C, H, W]``).
        config: :class:`FitConfig` (c0, param, floor, units).
        scale: ``[C]`` per-channel std of the normalised units (``units="standardized"``).
    """

    def __init__(self, shape: Sequence[int], config: FitConfig, scale: Optional[Sequence[float]] = None):
        super().__init__()
        self.param, self.floor = config.param, config.floor
        init = config.c0 if config.param == "abs" else math.log(config.c0)
        self.p = nn.Parameter(torch.full(tuple(shape), float(init)))
        s = torch.ones(shape[0] if len(shape) else 1)
        if config.units == "standardized":
            if scale is None or len(scale) != len(s):
                raise ValueError(f"units='standardized' needs one std per channel ({len(s)}), got {scale!r}")
            s = torch.tensor([float(v) for v in scale])
        self.register_buffer("scale", s.view(-1, *([1] * (len(shape) - 1))))

    def forward(self) -> torch.Tensor:
        if self.param == "abs":
            return self.scale * self.p.abs().clamp_min(self.floor)
        return self.scale * self.p.exp()


@dataclass
class Surrogate:
    """One minibatch of the objective (length B unless noted).

    Attributes:
        loss: scalar to minimise, or None when no input qualifies.
        mask: ``[B]`` bool, the inputs that count; p_hat: ``[B]`` mean softmax of the label.
        o_ca: ``[B]`` float64 surrogate log volume (detached; meaningful where ``mask``).
    """

    loss: Optional[torch.Tensor]
    mask: torch.Tensor
    p_hat: torch.Tensor
    o_ca: torch.Tensor


def surrogate(model: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, y: torch.Tensor, ids: torch.Tensor,
              sigma: torch.Tensor, samples: int, *, seed: int, sample_start: int,
              stream: int = ops.FIT_SIGMA_STREAM) -> Surrogate:
    """The masked objective of Alg. 1 for ``X`` ``[B, *S]`` with labels ``y`` ``[B]``.

    ``sigma`` ``[*S]`` (pixel units) carries the gradient; the noise of input ``b``
    is keyed by ``(seed, stream, ids[b], sample_start + j)``.
    """
    B, D = X.shape[0], sigma.numel()
    noisy = ops.sample_noise_table(X, ids, sigma.reshape(1, D), samples, sample_start=sample_start, seed=seed,
                                   stream=stream)
    logits = model(noisy).float()
    K = logits.shape[1]
    logp = torch.log_softmax(logits, dim=1).view(B, samples, K)
    label_logp = logp.gather(2, y.view(B, 1, 1).expand(B, samples, 1)).squeeze(2)  # [B, n0]
    p_hat = torch.exp(torch.logsumexp(label_logp, dim=1) - math.log(samples))
    votes = torch.zeros(B, K, dtype=torch.long, device=X.device)
    votes.scatter_add_(1, logits.detach().argmax(dim=1).view(B, samples), torch.ones(B, samples, dtype=torch.long,
                                                                                      device=X.device))
    mask = (votes.argmax(dim=1) == y) & (p_hat.detach() >= 0.5)
    log_sum = torch.log(sigma + 1e-9).sum()
    z = torch.special.ndtri(p_hat.clamp(1e-7, 1 - 1e-7))
    o = log_sum + D * torch.log(z.clamp_min(0) + 1e-9)
    loss = -(o * mask).sum() / mask.sum() if bool(mask.any()) else None
    return Surrogate(loss=loss, mask=mask, p_hat=p_hat.detach(), o_ca=o.detach().double())


def fit_sub_epoch(model: nn.Module, sigma_param: SigmaParameter, optimizer: torch.optim.Optimizer, X: torch.Tensor,
                  y: torch.Tensor, ids: torch.Tensor, config: FitConfig, sub_epoch: int,
                  progress: Optional[Callable] = None) -> Dict[str, float]:
    """One pass over ``X`` ``[N, *S]`` (labels ``y`` ``[N]``, training indices ``ids`` ``[N]``).

    The minibatch order is a permutation seeded by ``(seed, sub_epoch)``; every input
    draws its noise at sample counters ``sub_epoch * n0 ..``. Returns the pass's
    statistics (steps, skipped steps, share of qualifying inputs, their mean surrogate O_CA).
    """
    N = X.shape[0]
    order = torch.from_numpy(np.random.default_rng([config.seed, sub_epoch]).permutation(N))
    steps = skipped = qualifying = 0
    o_sum = 0.0
    device = sigma_param.p.device
    for b0 in range(0, N, config.batch_size):
        sel = order[b0:b0 + config.batch_size]
        xb, yb, ib = X[sel].to(device).float(), y[sel].to(device), ids[sel].to(device)
        out = surrogate(model, xb, yb, ib, sigma_param(), config.samples, seed=config.seed,
                        sample_start=sub_epoch * config.samples)
        if out.loss is None:
            skipped += 1
        else:
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            steps += 1
            q = out.mask
            qualifying += int(q.sum())
            o_sum += float(out.o_ca[q].sum())
        if progress is not None:
            progress(len(sel))
    return {"steps": steps, "skipped": skipped, "qualifying": qualifying / max(1, N),
            "train_o_ca": o_sum / max(1, qualifying)}


@contextlib.contextmanager
def frozen(model: nn.Module):
    """``model`` in eval mode with its parameters' ``requires_grad`` off (restored on exit)."""
    state = [(p, p.requires_grad) for p in model.parameters()]
    training = model.training
    model.eval()
    for p, _ in state:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, r in state:
            p.requires_grad_(r)
        model.train(training)
