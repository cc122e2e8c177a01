"""Training losses of the randomized-smoothing literature, one per method.

Every loss has the signature ``loss(model, x, y, sigma, noise) -> (loss, logits)``:

* ``model`` maps ``[N, *S]`` inputs in the raw input space to logits ``[N, K]``;
* ``x`` ``[B, *S]`` clean (possibly augmented) inputs, ``y`` ``[B]`` labels;
* ``sigma`` a float or a per-example tensor ``[B]`` (data-dependent and
  sample-wise smoothing train with one sigma per example);
* ``noise(x, m)`` returns ``[B * m, *S]`` = ``x[b] + sigma_b * eps_bj`` from the
  fused counter-based sampler, differentiable in ``x`` (row ``b * m + j``);
  the training loop keys it by (seed, example index, epoch), so calling it
  twice in one step returns the same draws;
* the returned ``logits`` ``[B', K]`` (with their labels ``y.repeat_interleave``
  where ``B' > B``) only feed the progress bar's accuracy.

Formulas follow ``shared/specs/seed-000-ddrs.md`` §2 (Cohen, SmoothAdv, MACER)
and ``seed-001-dssn.md`` (stability training).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Noise = Callable[[Tensor, int], Tensor]
Sigma = Union[float, Tensor]


def _per_example(sigma: Sigma, B: int, like: Tensor) -> Tensor:
    """sigma as ``[B]`` float32 on ``like``'s device."""
    if isinstance(sigma, Tensor) and sigma.numel() > 1:
        return sigma.to(device=like.device, dtype=torch.float32).view(B)
    return torch.full((B,), float(sigma), device=like.device)


def gaussian(model, x: Tensor, y: Tensor, sigma: Sigma, noise: Noise) -> Tuple[Tensor, Tensor]:
    """Gaussian data augmentation (Cohen et al. 2019): CE(f(x + sigma eps), y), one draw."""
    logits = model(noise(x, 1))
    return F.cross_entropy(logits, y), logits


@dataclass
class SmoothAdv:
    """SmoothAdv with PGD (Salman et al. 2019), as upstream ``PGD_L2``.

    m noise draws delta_j are fixed for the step; T PGD steps maximise
    -log(mean_j softmax(f(x' + delta_j))_y) over the L2 ball of radius
    ``epsilon`` around x (no random start, model in eval mode, gradient
    normalised per example, step 2 epsilon / T, clip to [lo, hi], project);
    then CE(f(x' + delta_j), y) averaged over j trains the model.

    Attributes:
        m: noise draws per example; steps: T; epsilon: the ball's radius (the
        training loop ramps it up linearly over ``warmup`` epochs).
        clip: valid input range of the raw input space.
    """

    m: int = 1
    steps: int = 2
    epsilon: float = 0.25
    warmup: int = 10
    clip: Tuple[float, float] = (0.0, 1.0)

    def epsilon_at(self, epoch: int) -> float:
        """Upstream's ramp: min(epsilon, (epoch + 1) * epsilon / warmup)."""
        if self.warmup <= 0:
            return self.epsilon
        return min(self.epsilon, (epoch + 1) * self.epsilon / self.warmup)

    def __call__(self, model, x, y, sigma, noise, *, epsilon: float = None) -> Tuple[Tensor, Tensor]:
        eps_ball = self.epsilon if epsilon is None else epsilon
        B, m = x.shape[0], self.m
        delta = noise(torch.zeros_like(x), m).detach()  # [B*m, *S]: sigma_b * eps_bj
        y_rep = y.repeat_interleave(m)
        x_adv = x.detach()
        if eps_ball > 0 and self.steps > 0:
            was_training = model.training
            model.eval()
            step = 2.0 * eps_ball / self.steps
            for _ in range(self.steps):
                x_adv = x_adv.clone().requires_grad_(True)
                logits = model(x_adv.repeat_interleave(m, dim=0) + delta)
                probs = F.softmax(logits, dim=1).view(B, m, -1).mean(dim=1)
                loss = F.nll_loss(torch.log(probs + 1e-20), y)
                (grad,) = torch.autograd.grad(loss, [x_adv])
                norm = grad.view(B, -1).norm(dim=1).clamp_min(1e-12).view(B, *([1] * (x.dim() - 1)))
                x_adv = x_adv.detach() + step * grad / norm
                x_adv = x_adv.clamp(*self.clip)
                diff = x_adv - x
                dnorm = diff.view(B, -1).norm(dim=1).view(B, *([1] * (x.dim() - 1)))
                x_adv = (x + diff * torch.clamp(eps_ball / dnorm.clamp_min(1e-12), max=1.0)).detach()
            model.train(was_training)
        logits = model(x_adv.repeat_interleave(m, dim=0) + delta)
        return F.cross_entropy(logits, y_rep), logits


@dataclass
class Macer:
    """MACER (Zhai et al. 2020): CE of the soft smoothed classifier plus a hinge
    on its soft certified radius.

    With k draws, g = mean_j softmax(f(x + delta_j)) and g_beta the same with
    logits scaled by beta: L_C = -log(g_y + 1e-10); for examples where
    argmax g_beta = y, xi = Phi^-1(top1 g_beta) - Phi^-1(top2 g_beta) and
    L_R = sigma / 2 * max(gamma - xi, 0) (non-finite terms dropped, as
    upstream); L = mean(L_C + lbd * L_R).
    """

    k: int = 16
    lbd: float = 12.0
    gamma: float = 8.0
    beta: float = 16.0

    def __call__(self, model, x, y, sigma, noise) -> Tuple[Tensor, Tensor]:
        B, k = x.shape[0], self.k
        logits = model(noise(x, k))  # [B*k, K]
        K = logits.shape[1]
        g = F.softmax(logits, dim=1).view(B, k, K).mean(dim=1)
        loss_c = -torch.log(g.gather(1, y.view(-1, 1)).squeeze(1) + 1e-10)
        g_beta = F.softmax(self.beta * logits, dim=1).view(B, k, K).mean(dim=1)
        top2 = g_beta.topk(2, dim=1)
        sig = _per_example(sigma, B, x)
        # Select the examples whose hinge is active and finite first, then
        # differentiate through those alone: a masked-out NaN would still
        # poison the gradient of a where().
        with torch.no_grad():
            xi = torch.special.ndtri(top2.values[:, 0]) - torch.special.ndtri(top2.values[:, 1])
            keep = (top2.indices[:, 0] == y) & torch.isfinite(xi) & (xi < self.gamma)
        p = top2.values[keep]
        hinge = sig[keep] / 2 * (self.gamma - (torch.special.ndtri(p[:, 0]) - torch.special.ndtri(p[:, 1])))
        return (loss_c.sum() + self.lbd * hinge.sum()) / B, logits


@dataclass
class Stability:
    """Stability training (Li et al. 2019, in the form DSSN uses): two noisy
    copies, CE(P(x1), y) + weight * KL(P(x1) || P(x2))."""

    weight: float = 6.0

    def __call__(self, model, x, y, sigma, noise) -> Tuple[Tensor, Tensor]:
        B = x.shape[0]
        logits = model(noise(x, 2)).view(B, 2, -1)
        l1, l2 = logits[:, 0], logits[:, 1]
        logp1, logp2 = F.log_softmax(l1, dim=1), F.log_softmax(l2, dim=1)
        kl = (logp1.exp() * (logp1 - logp2)).sum(dim=1).mean()
        return F.cross_entropy(l1, y) + self.weight * kl, l1


METHODS = ("gaussian", "smoothadv", "macer", "stability")


def samples_per_step(method) -> int:
    """Noise draws per example per step (the training loop reserves this many counters)."""
    if isinstance(method, SmoothAdv):
        return method.m
    if isinstance(method, Macer):
        return method.k
    if isinstance(method, Stability):
        return 2
    return 1
