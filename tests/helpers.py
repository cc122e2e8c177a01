"""Shared test factories (importable from bench/ too, so no pytest fixtures here).

* :func:`cpu_and_cuda` -- the device parametrisation of every op test.
* :class:`LinearClassifier` -- a 2-class linear model whose smoothed classifier
  has a closed form, the oracle of the end-to-end tests.
"""
from __future__ import annotations

import math

import pytest
import torch
from scipy import special

F32_EPS = torch.finfo(torch.float32).eps


def interrupt_optimizer_after(monkeypatch, steps: int):
    """Makes the ``steps``-th ``torch.optim.SGD.step`` raise KeyboardInterrupt (a crash in
    the middle of training); returns a function that restores the real step."""
    real_step, calls = torch.optim.SGD.step, []

    def dying_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == steps:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", dying_step)
    return lambda: monkeypatch.setattr(torch.optim.SGD, "step", real_step)


def cpu_and_cuda():
    """Device parametrisation: CUDA cases are marked and skipped without a GPU."""
    return ("cpu", pytest.param("cuda", marks=pytest.mark.needs_cuda))


def gen(seed: int) -> torch.Generator:
    """A CPU generator with a fixed seed (tests never touch the global RNG)."""
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def noise_atol(x: torch.Tensor, sigma) -> float:
    """Absolute tolerance of kernel vs reference noise: a few float32 ulp of the
    largest value the output can take (|x| + sigma * 7 bounds |x + sigma z|)."""
    xmax = float(x.abs().max()) if x.numel() else 0.0
    smax = float(torch.as_tensor(sigma).abs().max()) if torch.as_tensor(sigma).numel() else 0.0
    return 4 * F32_EPS * max(xmax + 7 * smax, 1.0)


class LinearClassifier(torch.nn.Module):
    """``f(x) = argmax([-s, s])`` with ``s = w . x.flatten(1) + b``.

    The score is accumulated element by element in float64 in a fixed order, the
    same for every row, so each row's logits do not depend on the batch size or
    on the other rows: batched, chunked and single-input runs see the same votes.

    Under Gaussian noise ``N(0, sigma^2 I)`` the smoothed classifier predicts
    the class of ``sign(w . x + b)`` with probability
    ``pA = Phi(|w . x + b| / (sigma ||w||))`` and its exact L2 robust radius is
    ``|w . x + b| / ||w||`` (``sigma Phi^-1(pA)``).

    Ties (``s == 0``) go to class 0, like ``torch.argmax``.
    """

    def __init__(self, w: torch.Tensor, b: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float64).flatten().clone(),
                                    requires_grad=False)
        self.b = torch.nn.Parameter(torch.tensor(float(b), dtype=torch.float64), requires_grad=False)
        self.eval()

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """``[N]`` float64 ``w . x + b``, accumulated in a fixed per-row order."""
        x = x.flatten(1).to(torch.float64)
        if x.shape[1] != self.w.numel():
            raise ValueError(f"expected {self.w.numel()} features, got {x.shape[1]}")
        s = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        for j in range(x.shape[1]):
            s = s + x[:, j] * self.w[j]
        return s + self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.score(x)
        return torch.stack([-s, s], dim=1)

    # ---------------------------------------------------------------- oracles

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """``[N]`` float64 signed distance ``(w . x + b) / ||w||`` of each clean input."""
        return self.score(x) / torch.linalg.vector_norm(self.w)

    def true_class(self, x: torch.Tensor) -> torch.Tensor:
        """``[N]`` int64 class of the smoothed classifier (1 iff w . x + b > 0)."""
        return (self.score(x) > 0).long()

    def true_radius(self, x: torch.Tensor) -> torch.Tensor:
        """``[N]`` float64 exact L2 robust radius ``|w . x + b| / ||w||``."""
        return self.margin(x).abs()

    def true_pa(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """``[N]`` float64 ``Phi(|w . x + b| / (sigma ||w||))``; sigma a number or ``[N]``."""
        z = self.true_radius(x) / torch.as_tensor(sigma, dtype=torch.float64)
        return torch.as_tensor(special.ndtr(z.numpy()), dtype=torch.float64)


def inputs_at_radii(clf: LinearClassifier, radii, seed: int = 0) -> torch.Tensor:
    """``[len(radii), d]`` float32 inputs at the given signed distances from the
    decision boundary of ``clf`` (random directions along the boundary)."""
    w = clf.w.detach()
    d = w.numel()
    u = w / torch.linalg.vector_norm(w)
    radii = torch.as_tensor(radii, dtype=torch.float64)
    along = torch.randn(len(radii), d, generator=gen(seed), dtype=torch.float64)
    along = along - (along @ u)[:, None] * u  # orthogonal to w
    base = -float(clf.b) / float(torch.linalg.vector_norm(w)) * u  # a point on the boundary
    return (base + along + radii[:, None] * u).float()


def sigma_for_pa(pa: float, radius: float) -> float:
    """The sigma at which an input at distance ``radius`` has ``pA = pa``."""
    return radius / float(special.ndtri(pa)) if pa > 0.5 else math.inf


def rows_without_time(path):
    """A result TSV's rows (header first) as lists of fields, without the wall-clock ``time``
    column: what must be identical between two runs of the same certification."""
    with open(path) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    t = rows[0].index("time")
    return [r[:t] + r[t + 1:] for r in rows]

