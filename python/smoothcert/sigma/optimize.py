"""Batched OptimizeSigma (Alfarra et al., "Data Dependent Randomized Smoothing", Alg. 1;
the step-size and clamp of its App. A listing).

For each input x, starting at sigma0, K steps of plain gradient ascent on the soft
Monte-Carlo radius of the smoothed *soft* classifier:

    psi = mean_j softmax(f(x + sigma u_j)),  u_j fresh every step,
    p1, p2 = top-2 of psi (re-selected every step; ``fixed_class`` keeps the class
             of the first step, Eq. 2),  p~ = clamp(p, 0.02, 0.98),
    R(sigma) = sigma / 2 (Phi^-1(p~1) - Phi^-1(p~2))   (Gaussian; uniform noise:
             sqrt(3) sigma (p~1 - p~2), App. G),
    sigma <- max(sigma + lr dR/dsigma, min_sigma).

The gradient flows through the fused sampler (``sample_noise`` is differentiable
in sigma) with the current sigma every step -- the published listing froze the
noise at sigma0 (§1.4), a defect not reproduced here. The noise is keyed by
(seed, stream, input index, step * n + j), on a stream no certificate uses, so
sigma* depends on x and on that stream alone: the certification draws stay
independent of it. The classifier's parameters are not updated; call it in eval
mode (batch norm with running statistics) so samples stay independent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from .. import ops

SQRT3 = math.sqrt(3.0)


def gaussian_soft_radius(p1: torch.Tensor, p2: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``sigma / 2 (Phi^-1(p1) - Phi^-1(p2))``, the L2 radius of Eq. 1 (shapes broadcast)."""
    return sigma / 2 * (torch.special.ndtri(p1) - torch.special.ndtri(p2))


def uniform_soft_radius(p1: torch.Tensor, p2: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``lambda (p1 - p2)`` with ``lambda = sqrt(3) sigma``, the L1 objective of App. G."""
    return SQRT3 * sigma * (p1 - p2)


SOFT_RADIUS = {"gaussian": gaussian_soft_radius, "uniform": uniform_soft_radius}


@dataclass
class SigmaResult:
    """Output of :class:`OptimizeSigma` (CPU tensors of length B).

    Attributes:
        sigma: ``[B]`` float32 optimised sigma*.
        clipped: ``[B]`` int64 steps at which sigma hit ``min_sigma``.
        soft_radius: ``[B]`` float64 surrogate R(sigma) at the last step's sigma
            (before its update); diagnostic only, never a certificate.
    """

    sigma: torch.Tensor
    clipped: torch.Tensor
    soft_radius: torch.Tensor


@dataclass(frozen=True)
class OptimizeSigma:
    """Batched data-dependent sigma (see the module docstring).

    Attributes:
        steps: K, gradient steps (0 returns sigma0).
        lr: alpha, the step size (1e-4 in the paper).
        samples: n, noise draws per input per step (1 in the paper).
        clamp: ``(lo, hi)`` clamp of the top-2 probabilities.
        min_sigma: sigma is kept >= this (the paper has no constraint; steps where it
            binds are counted).
        fixed_class: keep the top class of the first step (Eq. 2) instead of
            re-selecting the top 2 every step (Alg. 1).
    """

    steps: int = 100
    lr: float = 1e-4
    samples: int = 1
    clamp: Tuple[float, float] = (0.02, 0.98)
    min_sigma: float = 1e-3
    fixed_class: bool = False

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"steps (K) must be an integer >= 0, got {self.steps!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"samples (n) must be an integer >= 1, got {self.samples!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {self.lr!r}")
        lo, hi = self.clamp
        if not 0.0 < lo < hi < 1.0:
            raise ValueError(f"clamp must satisfy 0 < lo < hi < 1, got {self.clamp!r}")
        if not (math.isfinite(self.min_sigma) and self.min_sigma > 0):
            raise ValueError(f"min_sigma must be finite and > 0, got {self.min_sigma!r}")

    def config(self) -> dict:
        return {"steps": self.steps, "lr": self.lr, "samples": self.samples, "clamp": list(self.clamp),
                "min_sigma": self.min_sigma, "fixed_class": self.fixed_class}

    def __call__(self, model: Callable[[torch.Tensor], torch.Tensor], X: torch.Tensor, sigma0: torch.Tensor, *,
                 ids: torch.Tensor, seed: int, stream: int = ops.SIGMA_OPT_STREAM, noise: str = "gaussian",
                 sample_start: int = 0, batch_size: int = 1000,
                 clamp_inputs: Optional[Tuple[Optional[float], Optional[float]]] = None) -> SigmaResult:
        """Optimises sigma for every input of ``X``.

        Args:
            model: maps ``[N, *S]`` raw inputs to ``[N, K]`` logits (eval mode).
            X: ``[B, *S]`` float32 inputs on the model's device.
            sigma0: ``[B]`` (or a number) starting sigma.
            ids: ``[B]`` int64 input indices keying the noise.
            seed, stream: the Philox key and this optimiser's stream.
            noise: ``"gaussian"`` or ``"uniform"`` (the objective follows the noise).
            sample_start: first noise counter (training offsets it per epoch).
            batch_size: classifier batch size (inputs x samples per forward).
            clamp_inputs: optional clamp of the noisy inputs (as the certifier's).

        Returns:
            :class:`SigmaResult`.
        """
        if noise not in SOFT_RADIUS:
            raise ValueError(f"data-dependent sigma needs noise that is differentiable in sigma "
                             f"({', '.join(SOFT_RADIUS)}), got {noise!r}")
        soft_radius = SOFT_RADIUS[noise]
        B = X.shape[0]
        X = X.float()
        sigma = torch.as_tensor(sigma0, dtype=torch.float32).to(X.device).expand(B).clone()
        ops.check_sigma(sigma.view(-1, 1))
        ids = ids.to(X.device)
        clipped = torch.zeros(B, dtype=torch.long)
        last = torch.zeros(B, dtype=torch.float64)
        step_inputs = max(1, batch_size // self.samples)
        lo, hi = self.clamp
        for g0 in range(0, B, step_inputs):
            g1 = min(B, g0 + step_inputs)
            s, c, r = self._optimise(model, X[g0:g1], sigma[g0:g1], ids[g0:g1], seed, stream, noise, sample_start,
                                     soft_radius, lo, hi, clamp_inputs)
            sigma[g0:g1], clipped[g0:g1], last[g0:g1] = s, c, r
        return SigmaResult(sigma=sigma.detach().cpu(), clipped=clipped, soft_radius=last)

    def _optimise(self, model, X, sigma, ids, seed, stream, noise, sample_start, soft_radius, lo, hi,
                  clamp_inputs):
        # Everything stays on X's device until the end: no host sync per step.
        G, n = X.shape[0], self.samples
        clipped = torch.zeros(G, dtype=torch.long, device=X.device)
        finite = torch.ones((), dtype=torch.bool, device=X.device)
        radius = torch.zeros(G, device=X.device)
        fixed = None
        rows = torch.arange(G, device=X.device)
        for step in range(self.steps):
            sig = sigma.detach().requires_grad_(True)
            # An explicit [G, 1] table: a 1-D sigma of length G would read as per-element when G == D.
            noisy = ops.sample_noise_table(X, ids, sig.view(G, 1), n, sample_start=sample_start + step * n,
                                           seed=seed, stream=stream, noise=noise, clamp=clamp_inputs)
            logits = model(noisy)
            psi = torch.softmax(logits.float(), dim=1).view(G, n, -1).mean(dim=1)  # [G, K]
            if self.fixed_class:
                if fixed is None:
                    fixed = psi.detach().argmax(dim=1)
                p1 = psi[rows, fixed]
                p2 = psi.scatter(1, fixed.view(-1, 1), float("-inf")).max(dim=1).values
            else:
                top = psi.topk(2, dim=1).values
                p1, p2 = top[:, 0], top[:, 1]
            radius = soft_radius(p1.clamp(lo, hi), p2.clamp(lo, hi), sig)
            (grad,) = torch.autograd.grad(radius.sum(), [sig])
            finite &= torch.isfinite(grad).all()
            new = sig.detach() + self.lr * grad
            hit = new < self.min_sigma
            clipped += hit.long()
            sigma = torch.where(hit, torch.full_like(new, self.min_sigma), new)
        if not bool(finite):
            raise FloatingPointError("non-finite sigma gradient (the classifier returned NaN/inf logits?)")
        return sigma.detach(), clipped.cpu(), radius.detach().double().cpu()
