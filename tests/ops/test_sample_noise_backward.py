"""The fused backward of sample_noise: against its twin (bit for bit given the kernels'
noise), CPU against CUDA, thread-count invariance, the chunked sums, opcheck and errors."""
import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference
from smoothcert.ops.sample_noise import NOISE_KINDS

from helpers import cpu_and_cuda, gen

OP = torch.ops.smoothcert.sample_noise_backward.default
TABLES = {"scalar": (1, 1), "per_input": (3, 1), "per_element": (1, 10), "both": (3, 10)}


def _case(table_kind, samples, seed=0):
    x = torch.rand(3, 2, 5, generator=gen(seed))
    ids = torch.tensor([4, 9, 2])
    table = torch.rand(TABLES[table_kind], generator=gen(seed + 1)) + 0.1
    g = torch.randn(3 * samples, 2, 5, generator=gen(seed + 2))
    return g, x, ids, table


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("table_kind", list(TABLES))
@pytest.mark.parametrize("samples", [1, 7, 600])  # 600: three chunks of the fixed-order sums
@pytest.mark.parametrize("clamp", [None, (0.0, 1.0), (None, 0.7)], ids=str)
@pytest.mark.parametrize("noise, antithetic", [("gaussian", False), ("gaussian", True), ("uniform", False)])
def test_matches_twin_given_the_kernels_noise(noise, antithetic, clamp, samples, table_kind, device):
    g, x, ids, table = _case(table_kind, samples)
    kw = dict(sample_start=5, seed=13, stream=1, noise=noise, antithetic=antithetic)
    lo, hi = clamp if clamp else (None, None)
    gx, gs = OP(g.to(device), x.to(device), ids.to(device), table.to(device), samples, 5, 13, 1,
                NOISE_KINDS[noise], antithetic, lo, hi)
    eps = ops.sample_noise(torch.zeros_like(x), 1.0, samples, ids=ids, **kw)
    rx, rs = reference.sample_noise_backward(g, x, ids, table, samples, clamp=clamp, eps=eps, **kw)
    assert torch.equal(gx.cpu(), rx) and torch.equal(gs.cpu(), rs)
    # and within float32 rounding of the twin's own noise
    tx, ts = reference.sample_noise_backward(g, x, ids, table, samples, clamp=clamp, **kw)
    torch.testing.assert_close(gs.cpu(), ts, rtol=1e-5, atol=1e-5 * samples ** 0.5)
    if clamp is None:
        torch.testing.assert_close(gx.cpu(), g.double().view(3, samples, 10).sum(1), rtol=0, atol=1e-12)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("samples", [3, 300, 1000])
def test_cpu_equals_cuda(samples):
    g, x, ids, table = _case("both", samples, seed=3)
    args = (samples, 2, 77, 3, 0, True, 0.0, 1.0)
    cpu = OP(g, x, ids, table, *args)
    cuda = OP(g.cuda(), x.cuda(), ids.cuda(), table.cuda(), *args)
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu, cuda))


def test_thread_count_does_not_change_the_bits():
    g, x, ids, table = _case("per_element", 40, seed=5)
    args = (40, 0, 1, 1, 0, False, None, None)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = OP(g, x, ids, table, *args)
        torch.set_num_threads(max(2, n))
        many = OP(g, x, ids, table, *args)
    finally:
        torch.set_num_threads(n)
    assert all(torch.equal(a, b) for a, b in zip(one, many))


def test_autograd_uses_it_and_reduces_the_broadcast_axes():
    x = torch.rand(4, 6, generator=gen(7)).requires_grad_()
    sigma = (torch.rand(6, generator=gen(8)) + 0.2).requires_grad_()
    out = ops.sample_noise(x, sigma, 9, seed=2, clamp=(0.0, 1.0))
    w = torch.randn(out.shape, generator=gen(9))
    gx, gs = torch.autograd.grad((out * w).sum(), [x, sigma])
    table = ops.sigma_table(sigma.detach(), x.detach())
    rx, rs = OP(w.contiguous(), x.detach(), torch.arange(4), table, 9, 0, 2, 1, 0, False, 0.0, 1.0)
    assert torch.equal(gx, rx.float()) and torch.equal(gs, rs.sum(0).float())


def test_opcheck_and_errors():
    g, x, ids, table = _case("per_element", 4)
    torch.library.opcheck(OP, (g, x, ids, table, 4, 0, 1, 1, 0, False, None, None),
                          test_utils=("test_schema", "test_faketensor"))
    with pytest.raises(RuntimeError, match="splitting noise"):
        OP(g, x, ids, table, 4, 0, 1, 1, 2, False, None, None)
    with pytest.raises(RuntimeError, match=r"grad must have shape \[B \* samples"):
        OP(g[:-1], x, ids, table, 4, 0, 1, 1, 0, False, None, None)
    with pytest.raises(RuntimeError, match="grad must be float32"):
        OP(g.double(), x, ids, table, 4, 0, 1, 1, 0, False, None, None)
    with pytest.raises(RuntimeError, match="sample_noise_backward: sigma"):
        OP(g, x, ids, torch.ones(2, 10), 4, 0, 1, 1, 0, False, None, None)
