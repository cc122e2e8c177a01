"""Backward formula of ``smoothcert::sample_noise``.

out[b * m + j] = clamp(x[b] + sigma[b] * eps[b, j]), so

* d out / d x     = 1 where the clamp is inactive (0 where it clipped), summed
  over the m samples of each input;
* d out / d sigma = eps where the clamp is inactive, summed over samples and
  over whichever of the input and element axes the sigma table broadcasts.

Splitting noise (kind 2) is piecewise constant in x (its x-gradient is 0)
and is not differentiable in sigma here.

The fused ``smoothcert::sample_noise_backward`` regenerates eps from the
forward's counters and sums over the samples in one pass (float64, a fixed
order: deterministic and equal on CPU and CUDA), so nothing of size
[B * m, D] is saved for the backward pass or built in it. Training methods
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
    none = (None,) * 11
    if kind == 2:
        if need_sigma:
            raise RuntimeError("sample_noise: splitting noise (noise='ssn') is not differentiable in sigma")
        return (torch.zeros_like(x) if need_x else None, None, None) + none[1:]
    B = x.shape[0]
    g = grad.float().contiguous()  # NCHW order, whatever the output's layout
    if not need_sigma and lo is None and hi is None:
        return (g.view(B, samples, -1).sum(dim=1).view_as(x), None, None) + none[1:]
    gx, gs = torch.ops.smoothcert.sample_noise_backward.default(
        g, x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic, lo, hi)
    grad_x = gx.to(x.dtype).view_as(x) if need_x else None
    grad_sigma = None
    if need_sigma:
        # The table's broadcast axes, summed in float64 (torch's reductions are deterministic).
        if sigma.shape[0] == 1:
            gs = gs.sum(dim=0, keepdim=True)
        if sigma.shape[1] == 1:
            gs = gs.sum(dim=1, keepdim=True)
        grad_sigma = gs.to(sigma.dtype).view_as(sigma)
    return (grad_x, None, grad_sigma) + none[1:]


torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)
