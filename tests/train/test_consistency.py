"""Consistency regularisation (Jeong & Shin 2020) against a direct, loop-by-loop float64
implementation of its formula (value and gradient), its composition with SmoothAdv, and the
MACER warm start (the hinge is off for the first epochs, and old descriptions still rebuild)."""
import math

import pytest
import torch
import torch.nn.functional as F

from smoothcert import train as training
from smoothcert.train import losses


def direct(logits, y, m, lbd, eta):
    """mean_b [ mean_i CE_bi + lbd * mean_i KL(p_hat_b || p_bi) + eta * H(p_hat_b) ], one
    example and one copy at a time."""
    B = y.numel()
    total = 0.0
    for b in range(B):
        ps = [F.softmax(logits[b * m + i], dim=0) for i in range(m)]
        p_hat = sum(ps) / m
        ce = sum(-torch.log(p[y[b]]) for p in ps) / m
        kl = sum((p_hat * (torch.log(p_hat) - torch.log(p))).sum() for p in ps) / m
        ent = -(p_hat * torch.log(p_hat)).sum()
        total = total + ce + lbd * kl + eta * ent
    return total / B


class Linear(torch.nn.Module):
    def __init__(self, d=6, K=4):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = torch.nn.Parameter(torch.randn(d, K, generator=g, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.randn(K, generator=g, dtype=torch.float64))

    def forward(self, x):
        return x.flatten(1) @ self.w + self.b


def fixed_noise(eps):
    """``noise(x, m)`` with given draws ``eps`` ``[B * m, *S]`` (copies of one example consecutive)."""
    def noise(x, m):
        return x.repeat_interleave(m, dim=0) + eps
    return noise


@pytest.mark.parametrize("m,lbd,eta", [(2, 10.0, 0.5), (3, 5.0, 0.0), (4, 0.0, 1.5)])
def test_value_and_gradient_equal_a_direct_implementation(m, lbd, eta):
    g = torch.Generator().manual_seed(m)
    B, d = 5, 6
    x = torch.rand(B, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (B,), generator=g)
    eps = 0.7 * torch.randn(B * m, d, generator=g, dtype=torch.float64)
    a, b = Linear(), Linear()
    loss, _ = training.make_method("consistency", m=m, lbd=lbd, eta=eta)(a, x, y, 0.7, fixed_noise(eps))
    want = direct(b(x.repeat_interleave(m, dim=0) + eps), y, m, lbd, eta)
    assert math.isclose(float(loss.detach()), float(want.detach()), rel_tol=1e-12)
    loss.backward()
    want.backward()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=1e-12)


def test_terms_stay_finite_for_a_vanishing_mean_probability():
    logits = torch.tensor([[80.0, -80.0], [80.0, -80.0]], dtype=torch.float64, requires_grad=True)
    out = losses.consistency_terms(logits, 1, 2, 10.0, 0.5)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all() and float(out) < 1e-30


def test_smoothadv_adds_the_terms_over_its_copies():
    g = torch.Generator().manual_seed(0)
    B, m, d = 4, 3, 6
    x = torch.rand(B, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (B,), generator=g)
    eps = 0.5 * torch.randn(B * m, d, generator=g, dtype=torch.float64)
    plain = training.make_method("smoothadv", m=m, steps=0, epsilon=0.0, warmup=0)
    mixed = training.make_method("smoothadv", m=m, steps=0, epsilon=0.0, warmup=0, consistency=5.0,
                                 consistency_eta=0.3)
    l0, logits = plain(Linear(), x, y, 0.5, fixed_noise(eps))
    l1, _ = mixed(Linear(), x, y, 0.5, fixed_noise(eps))
    assert math.isclose(float(l1), float(l0 + losses.consistency_terms(logits, B, m, 5.0, 0.3)), rel_tol=1e-12)
    assert "consistency" not in training.describe(plain)  # older SmoothAdv states keep their description
    assert training.describe(mixed)["consistency"] == 5.0


def test_macer_warm_start_turns_the_hinge_off_first():
    loss = training.make_method("macer", k=2, lbd=12.0, warmup=2)
    assert [loss.epoch_kwargs(e)["lbd"] for e in range(4)] == [0.0, 0.0, 12.0, 12.0]
    assert "warmup" not in training.describe(training.make_method("macer"))  # older MACER states
    assert training.describe(loss)["warmup"] == 2
    # With lbd = 0 the loss is the soft smoothed classifier's CE alone.
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 6, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    eps = 0.3 * torch.randn(6, 6, generator=g, dtype=torch.float64)
    model = Linear()
    off, _ = loss(model, x, y, 0.25, fixed_noise(eps), lbd=0.0)
    p = F.softmax(model(x.repeat_interleave(2, dim=0) + eps), dim=1).view(3, 2, -1).mean(1)
    assert math.isclose(float(off), float(-torch.log(p[torch.arange(3), y] + 1e-10).mean()), rel_tol=1e-12)
