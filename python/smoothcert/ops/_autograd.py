"""Backward formula of ``smoothcert::sample_noise``.

out[b * m + j] = clamp(x[b] + sigma[b] * eps[b, j]), so

* d out / d x     = 1 where the clamp is inactive (0 where it clipped), summed
  over the m samples of each input;
* d out / d sigma = eps where the clamp is inactive, summed over samples and
  over whichever of the input and element axes the sigma table broadcasts.

Splitting noise (kind 2) is piecewise constant in x (its x-gradient is 0)
and is not differentiable in sigma here.

eps is recomputed bit-exactly by the same counter-based op (x = 0, sigma = 1),
so nothing of size [B * m, D] is saved for the backward pass. Training methods
(SmoothAdv's PGD on the input, data-dependent and per-element sigma
optimisation) differentiate through the noisy batch this way.
"""
from __future__ import annotations

import torch

_OP = "smoothcert::sample_noise"


def _setup_context(ctx, inputs, output):
    (x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic, clamp_min, clamp_max,
     _out_dtype, _channels_last) = inputs
    ctx.save_for_backward(x, ids, sigma)
    ctx.args = (samples, sample_start, seed, stream, kind, antithetic, clamp_min, clamp_max)


def _backward(ctx, grad):
    x, ids, sigma = ctx.saved_tensors
    samples, sample_start, seed, stream, kind, antithetic, lo, hi = ctx.args
    need_x, need_sigma = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    if kind == 2:
        if need_sigma:
            raise RuntimeError("sample_noise: splitting noise (noise='ssn') is not differentiable in sigma")
        return (torch.zeros_like(x) if need_x else None,) + (None,) * 12
    B, D = x.shape[0], x[0].numel() if x.shape[0] else 1
    g = grad.float().contiguous().view(B, samples, -1)  # [B, m, D]
    clamped = lo is not None or hi is not None
    eps = None
    if need_sigma or clamped:
        unit = torch.ones(1, 1, dtype=torch.float32, device=x.device)
        eps = torch.ops.smoothcert.sample_noise.default(
            torch.zeros_like(x), ids, unit, samples, sample_start, seed, stream, kind, antithetic,
            None, None, None, False).view(B, samples, -1)
    if clamped:
        v = x.reshape(B, 1, -1) + sigma.view(sigma.shape[0], 1, sigma.shape[1]) * eps
        inside = torch.ones_like(v, dtype=torch.bool)
        if lo is not None:
            inside &= v >= lo
        if hi is not None:
            inside &= v <= hi
        g = g * inside
    grad_x = g.sum(dim=1).view_as(x) if need_x else None
    grad_sigma = None
    if need_sigma:
        gs = g * eps  # [B, m, D]
        gs = gs.sum(dim=1)  # [B, D]
        if sigma.shape[0] == 1:
            gs = gs.sum(dim=0, keepdim=True)
        if sigma.shape[1] == 1:
            gs = gs.sum(dim=1, keepdim=True)
        grad_sigma = gs.view_as(sigma)
    return grad_x, None, grad_sigma, None, None, None, None, None, None, None, None, None, None


torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)
