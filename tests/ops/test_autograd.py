"""Backward of sample_noise (x and sigma), against autograd through the float64
reference twin, plus opcheck's autograd-registration checks."""
import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference
from helpers import cpu_and_cuda, gen

SIGMA_SHAPES = {"scalar": (), "per_input": (3,), "per_element": (2, 5), "both": (3, 2, 5)}


def _reference_grads(x, sigma, w, samples, **kw):
    """d/dx and d/dsigma of sum(w * clamp(x + sigma * eps)) in float64."""
    clamp = kw.pop("clamp", None)
    x2 = x.detach().double().cpu().requires_grad_()
    s2 = sigma.detach().double().cpu().requires_grad_()
    B, D = x.shape[0], x[0].numel()
    z = reference.sample_noise(torch.zeros_like(x).cpu(), 1.0, samples, **kw).double().view(B, samples, D)
    table = ops.sigma_table(s2, x2)  # keeps the graph (float32 cast is exact on these values)
    v = x2.reshape(B, 1, D) + table.double().view(table.shape[0], 1, table.shape[1]) * z
    if clamp is not None:
        v = v.clamp(*clamp)
    return torch.autograd.grad((v.reshape(w.shape) * w.double().cpu()).sum(), [x2, s2])


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("sigma_kind", list(SIGMA_SHAPES))
@pytest.mark.parametrize("clamp", [None, (0.0, 1.0), (None, 0.8)], ids=str)
@pytest.mark.parametrize("noise, antithetic", [("gaussian", False), ("gaussian", True), ("uniform", False)])
def test_grad_matches_reference(noise, antithetic, clamp, sigma_kind, device):
    x = torch.rand(3, 2, 5, generator=gen(1)).to(device).requires_grad_()
    sigma = (torch.rand(SIGMA_SHAPES[sigma_kind], generator=gen(2)) + 0.2).to(device).requires_grad_()
    kw = dict(seed=11, sample_start=3, noise=noise, antithetic=antithetic, clamp=clamp)
    out = ops.sample_noise(x, sigma, 4, **kw)
    w = torch.randn(out.shape, generator=gen(3)).to(device)
    gx, gs = torch.autograd.grad((out * w).sum(), [x, sigma])
    rx, rs = _reference_grads(x, sigma, w, 4, **kw)
    assert gx.shape == x.shape and gs.shape == sigma.shape
    torch.testing.assert_close(gx.double().cpu(), rx, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gs.double().cpu(), rs, atol=1e-5, rtol=1e-5)


def test_grad_through_half_output_and_channels_last():
    x = torch.rand(2, 3, 4, 4, generator=gen(4)).requires_grad_()
    out = ops.sample_noise(x, 0.5, 3, out_dtype=torch.bfloat16, channels_last=True)
    (gx,) = torch.autograd.grad(out.float().sum(), [x])
    torch.testing.assert_close(gx, torch.full_like(x, 3.0))  # identity per sample, summed over 3


def test_only_x_needs_grad_and_no_grad_on_constants():
    x = torch.rand(2, 6, generator=gen(5)).requires_grad_()
    out = ops.sample_noise(x, 0.3, 5)
    (gx,) = torch.autograd.grad(out.sum(), [x])
    torch.testing.assert_close(gx, torch.full_like(x, 5.0))
    plain = ops.sample_noise(x.detach(), 0.3, 5)
    assert not plain.requires_grad


def test_opcheck_with_gradients():
    x = torch.rand(3, 7, generator=gen(6)).requires_grad_()
    ids = torch.arange(3) * 2
    sigma = (torch.rand(3, 1, generator=gen(7)) + 0.1).requires_grad_()
    args = (x, ids, sigma, 4, 1, 9, 1, 0, True, None, None, None, False)
    torch.library.opcheck(torch.ops.smoothcert.sample_noise.default, args,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
