"""The fused pair sampler (second-order smoothing's gradient estimator): its batch is
sample_noise's bit for bit, its dot products equal the twin's ordered float64 sums given
the kernel's noise, CPU equals CUDA, chunking and threads do not change them, opcheck, errors."""
import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference

from helpers import cpu_and_cuda, gen, noise_atol

OP = torch.ops.smoothcert.sample_noise_pairs.default
TABLES = {"scalar": (1, 1), "per_input": (3, 1), "per_element": (1, 70), "both": (3, 70)}


def _case(table_kind, seed=0):
    x = torch.rand(3, 2, 5, 7, generator=gen(seed))
    ids = torch.tensor([4, 9, 2 ** 32 - 1])
    table = torch.rand(TABLES[table_kind], generator=gen(seed + 1)) + 0.1
    return x, ids, table


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("table_kind", list(TABLES))
@pytest.mark.parametrize("samples, start", [(2, 0), (10, 4), (64, 1000)])
@pytest.mark.parametrize("clamp", [None, (0.0, 1.0)], ids=str)
@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_batch_is_sample_noise_and_dots_are_the_twins(noise, clamp, samples, start, table_kind, device):
    x, ids, table = _case(table_kind)
    kw = dict(ids=ids.to(device), sample_start=start, seed=2 ** 63 + 7, stream=1, noise=noise, clamp=clamp)
    sig = table.view(3, 2, 5, 7) if table_kind == "both" else (
        table.view(2, 5, 7) if table_kind == "per_element" else table.view(-1))
    batch, dots = ops.sample_noise_pairs(x.to(device), sig.to(device), samples, **kw)
    assert torch.equal(batch, ops.sample_noise(x.to(device), sig.to(device), samples, **kw))
    assert dots.shape == (3, samples // 2) and dots.dtype == torch.float64
    kw_cpu = {**kw, "ids": ids}
    eps = ops.sample_noise(torch.zeros_like(x), 1.0, samples, **{k: v for k, v in kw_cpu.items() if k != "clamp"})
    _, want = reference.sample_noise_pairs(x, sig, samples, eps=eps, **kw_cpu)
    assert torch.equal(dots.cpu(), want)
    # and within float32 rounding of the twin's own noise (|z| <= 6.7: products err by ~45 ulp)
    rb, rd = reference.sample_noise_pairs(x, sig, samples, **kw_cpu)
    torch.testing.assert_close(batch.cpu(), rb, atol=noise_atol(x, sig), rtol=0)
    torch.testing.assert_close(dots.cpu(), rd, atol=70 * 50 * 2e-7, rtol=0)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("out_dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dtypes_and_layouts_match_sample_noise(out_dtype, channels_last, device):
    x = torch.rand(2, 3, 4, 5, generator=gen(3)).to(device)
    kw = dict(seed=5, out_dtype=out_dtype, channels_last=channels_last)
    batch, dots = ops.sample_noise_pairs(x, 0.4, 6, **kw)
    want = ops.sample_noise(x, 0.4, 6, **kw)
    assert batch.dtype == out_dtype and torch.equal(batch, want)
    assert batch.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.equal(dots, ops.sample_noise_pairs(x, 0.4, 6, seed=5)[1])


def test_chunks_and_threads_do_not_change_the_dots():
    x = torch.rand(4, 49, generator=gen(1))
    full = ops.sample_noise_pairs(x, 0.25, 200, seed=9)[1]
    parts = [ops.sample_noise_pairs(x, 0.25, m, sample_start=s, seed=9)[1] for s, m in [(0, 2), (2, 98), (100, 100)]]
    assert torch.equal(torch.cat(parts, dim=1), full)
    one = torch.cat([ops.sample_noise_pairs(x[i:i + 1], 0.25, 200, ids=torch.tensor([i]), seed=9)[1]
                     for i in range(4)])
    assert torch.equal(one, full)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(ops.sample_noise_pairs(x, 0.25, 200, seed=9)[1], full)
    finally:
        torch.set_num_threads(threads)


def test_pairs_are_independent_draws_not_antithetic():
    x = torch.zeros(1, 3000)
    _, dots = ops.sample_noise_pairs(x, 1.0, 2000, seed=1)
    # E[z . z'] = 0 and Var = d for independent unit vectors: the mean of 1000 dots is
    # N(0, 3000/1000); an antithetic pairing would give -3000.
    assert abs(float(dots.mean())) < 6 * (3000 / 1000) ** 0.5


@pytest.mark.needs_cuda
def test_cuda_equals_cpu_on_a_wide_input():
    x = torch.rand(3, 3, 32, 32, generator=gen(2))
    cpu = ops.sample_noise_pairs(x, 0.5, 40, seed=11, sample_start=6)
    cuda = ops.sample_noise_pairs(x.cuda(), 0.5, 40, seed=11, sample_start=6)
    assert torch.equal(cuda[0].cpu(), cpu[0]) and torch.equal(cuda[1].cpu(), cpu[1])


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_opcheck(device):
    x = torch.rand(2, 3, 5, generator=gen(4)).to(device)
    ids = torch.tensor([1, 3], device=device)
    table = torch.full((1, 1), 0.3, device=device)
    torch.library.opcheck(OP, (x, ids, table, 8, 2, 3, 1, 0, None, None, None, False))
    torch.library.opcheck(OP, (x, ids, table, 4, 0, 3, 1, 1, 0.0, 1.0, torch.float16, False))


def test_compiles_fullgraph():
    x = torch.rand(2, 6, generator=gen(5))
    ids = torch.tensor([0, 1])
    table = torch.full((1, 1), 0.5)

    def f(x):
        b, d = OP(x, ids, table, 4, 0, 1, 1, 0, None, None, None, False)
        return b.sum(), d.sum()

    assert torch.compile(f, fullgraph=True)(x) == f(x)


@pytest.mark.parametrize("kw, msg", [
    (dict(samples=3), "even"),
    (dict(samples=4, sample_start=1), "even"),
    (dict(samples=4, noise="ssn"), "additive"),
])
def test_bad_arguments(kw, msg):
    x = torch.rand(2, 6)
    samples = kw.pop("samples")
    with pytest.raises(ValueError, match=msg):
        ops.sample_noise_pairs(x, 0.5, samples, **kw)


@pytest.mark.parametrize("args, msg", [
    ((4, 0, 2), "kind must be 0"),
    ((3, 0, 0), "even"),
    ((4, 2 ** 32, 0), "sample indices"),
])
def test_kernel_checks(args, msg):
    samples, start, kind = args
    x = torch.rand(2, 6)
    with pytest.raises(RuntimeError, match=msg):
        OP(x, torch.tensor([0, 1]), torch.full((1, 1), 0.5), samples, start, 0, 1, kind, None, None, None, False)
