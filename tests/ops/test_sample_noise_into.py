"""``sample_noise_into_`` (the engine's reusable batch buffer) writes exactly the values of
``sample_noise`` for every noise kind, dtype, layout and clamp, on CPU and CUDA, and refuses an
``out`` of the wrong shape, dtype, layout or device."""
import pytest
import torch

from smoothcert import ops

from helpers import cpu_and_cuda


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("noise,antithetic", [("gaussian", False), ("gaussian", True), ("uniform", False),
                                              ("ssn", False)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_into_equals_sample_noise(device, noise, antithetic, dtype, channels, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, channels, 5, 4, generator=g).to(device)
    ids = torch.tensor([4, 0, 9], device=device)
    table = (0.2 + torch.rand(3, 1, generator=g)).to(device)
    clamp = (0.0, 1.0) if noise == "gaussian" else None
    kw = dict(sample_start=6, seed=(1 << 63) + 5, stream=ops.ESTIMATION_STREAM, noise=noise, antithetic=antithetic,
              clamp=clamp, channels_last=channels_last)
    want = ops.sample_noise_table(x, ids, table, 8, out_dtype=dtype, **kw)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    big = torch.full((40, channels, 5, 4), float("nan"), dtype=dtype, device=device).contiguous(memory_format=fmt)
    out = ops.sample_noise_into_(big[:24], x, ids, table, 8, **kw)
    assert out.data_ptr() == big.data_ptr() and torch.equal(out, want)
    assert bool(big[24:].isnan().all())  # nothing written past the rows asked for


def test_into_refuses_a_bad_out():
    x, ids, table = torch.rand(2, 1, 4, 4), torch.arange(2), torch.full((1, 1), 0.5)
    kw = dict(sample_start=0, seed=0, stream=1)
    with pytest.raises(RuntimeError, match=r"out must have shape \[6, 1, 4, 4\]"):
        ops.sample_noise_into_(torch.empty(5, 1, 4, 4), x, ids, table, 3, **kw)
    with pytest.raises(RuntimeError, match="out must be float32, float16, bfloat16 or float64"):
        ops.sample_noise_into_(torch.empty(6, 1, 4, 4, dtype=torch.int32), x, ids, table, 3, **kw)
    with pytest.raises(RuntimeError, match="dense in contiguous"):
        ops.sample_noise_into_(torch.empty(6, 1, 4, 8)[..., ::2], x, ids, table, 3, **kw)
    x3 = torch.rand(2, 3, 4, 4)
    with pytest.raises(RuntimeError, match="dense in channels_last"):
        ops.sample_noise_into_(torch.empty(6, 3, 4, 4), x3, ids, table, 3, channels_last=True, **kw)


@pytest.mark.needs_cuda
def test_into_refuses_out_on_another_device():
    x, ids, table = torch.rand(2, 1, 4, 4), torch.arange(2), torch.full((1, 1), 0.5)
    with pytest.raises(RuntimeError, match="out is on cuda"):
        ops.sample_noise_into_(torch.empty(6, 1, 4, 4, device="cuda"), x, ids, table, 3, sample_start=0, seed=0,
                               stream=1)


def test_into_traces_with_fake_tensors():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x, ids, table = torch.rand(2, 1, 4, 4), torch.arange(2), torch.full((1, 1), 0.5)
        out = torch.empty(6, 1, 4, 4)
        torch.ops.smoothcert.sample_noise_into.default(x, ids, table, 3, 0, 0, 1, 0, False, None, None, False, out)
