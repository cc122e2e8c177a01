"""torch.library.opcheck on every op, the fake (meta) kernels, and
torch.compile(fullgraph=True) of a sample -> classify -> count pipeline.

Compilation is slow on small CPUs, so there are only two compile tests."""
import pytest
import torch

from smoothcert import ops
from helpers import cpu_and_cuda, gen, randn

SAMPLE_NOISE = torch.ops.smoothcert.sample_noise.default
SAMPLE_NOISE_INTO = torch.ops.smoothcert.sample_noise_into.default
COUNT_VOTES = torch.ops.smoothcert.count_votes_.default
CUDA_VERSION = torch.ops.smoothcert.cuda_version.default


def noise_args(device, shape=(3, 2, 5, 7), samples=4, sigma_shape=(1, 1), sample_start=0, seed=7, stream=1,
               kind=0, antithetic=False, clamp=(None, None), out_dtype=None, channels_last=False):
    x = randn(*shape, seed=1).to(device)
    ids = torch.arange(shape[0], device=device) * 3
    sigma = (torch.rand(*sigma_shape, generator=gen(2)) + 0.1).to(device)
    return (x, ids, sigma, samples, sample_start, seed, stream, kind, antithetic, clamp[0], clamp[1], out_dtype,
            channels_last)


NOISE_CASES = {
    "default": {},
    "per_input_element_sigma": dict(sigma_shape=(3, 70)),
    "uniform_antithetic_offset": dict(kind=1, antithetic=True, sample_start=3, seed=-5),
    "clamp_half": dict(clamp=(0.0, 1.0), out_dtype=torch.float16, sigma_shape=(3, 1)),
    "channels_last_bf16": dict(channels_last=True, out_dtype=torch.bfloat16),
    "channels_last_f64": dict(channels_last=True, out_dtype=torch.float64, sigma_shape=(1, 70)),
    "channels_last_unit_dims": dict(shape=(2, 1, 1, 7), channels_last=True),
    "two_d": dict(shape=(2, 33)),
    "empty_batch": dict(shape=(0, 5)),
    "zero_samples": dict(samples=0),
}


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("case", list(NOISE_CASES))
def test_opcheck_sample_noise(case, device):
    torch.library.opcheck(SAMPLE_NOISE, noise_args(device, **NOISE_CASES[case]))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype, rows, samples, K", [(torch.float32, 12, 3, 10), (torch.float16, 5, 5, 2),
                                                     (torch.float64, 8, 1, 1), (torch.bfloat16, 0, 2, 4)],
                         ids=str)
def test_opcheck_count_votes(dtype, rows, samples, K, device):
    logits = torch.randn(rows, K, generator=gen(3)).to(dtype=dtype, device=device)
    counts = torch.zeros(rows // samples, K, dtype=torch.long, device=device)
    torch.library.opcheck(COUNT_VOTES, (logits, samples, counts))
    nonfinite = torch.zeros(rows // samples, dtype=torch.long, device=device)
    torch.library.opcheck(COUNT_VOTES, (logits, samples, counts, nonfinite))


def test_opcheck_cuda_version():
    torch.library.opcheck(CUDA_VERSION, ())


@pytest.mark.parametrize("case", ["default", "channels_last_bf16", "channels_last_unit_dims", "two_d", "empty_batch"])
def test_fake_kernel_metadata_matches_real(case):
    args = noise_args("cpu", **NOISE_CASES[case])
    real = SAMPLE_NOISE(*args)
    meta = SAMPLE_NOISE(*[a.to("meta") if isinstance(a, torch.Tensor) else a for a in args])
    assert meta.device.type == "meta"
    assert (meta.shape, meta.dtype, meta.stride()) == (real.shape, real.dtype, real.stride())
    with torch._subclasses.fake_tensor.FakeTensorMode() as mode:
        fake = SAMPLE_NOISE(*[mode.from_tensor(a) if isinstance(a, torch.Tensor) else a for a in args])
    assert (fake.shape, fake.dtype, fake.stride()) == (real.shape, real.dtype, real.stride())


# ---------------------------------------------------------------- torch.compile

def _pipeline(x, ids, sigma, weight, bias, counts, samples: int, start: int):
    """Noisy copies -> a linear classifier -> votes, as Smooth does it."""
    batch = SAMPLE_NOISE(x, ids, sigma, samples, start, 1234, 1, 0, False, -1.0, 2.0, None, False)
    logits = torch.nn.functional.linear(batch.flatten(1), weight, bias)
    COUNT_VOTES(logits, samples, counts)
    return batch, logits


@pytest.mark.slow
def test_compile_fullgraph_pipeline_matches_eager():
    torch._dynamo.reset()
    B, S, K, samples = 4, (3, 4, 4), 10, 16
    x = randn(B, *S, seed=4)
    ids = torch.tensor([5, 0, 9, 2])
    sigma = torch.full((1, 1), 0.5)
    weight, bias = randn(K, 48, seed=5) * 0.2, randn(K, seed=6)
    compiled = torch.compile(_pipeline, fullgraph=True)
    for start in (0, 16):  # second call: same graph, new scalar input
        eager_counts = torch.zeros(B, K, dtype=torch.long)
        comp_counts = torch.zeros(B, K, dtype=torch.long)
        eb, el = _pipeline(x, ids, sigma, weight, bias, eager_counts, samples, start)
        cb, cl = compiled(x, ids, sigma, weight, bias, comp_counts, samples, start)
        assert torch.equal(cb, eb)
        torch.testing.assert_close(cl, el)
        assert torch.equal(comp_counts, eager_counts)
        assert int(comp_counts.sum()) == B * samples
    torch._dynamo.reset()


def test_compile_aot_eager_wrappers_and_layouts():
    """The Python wrappers trace without graph breaks too (cheap backend)."""
    torch._dynamo.reset()

    def fn(x, counts):
        batch = ops.sample_noise(x, 0.25, 3, ids=torch.arange(2) + 7, seed=3, channels_last=True,
                                 out_dtype=torch.float16, validate=False)
        logits = batch.float().mean(dim=(2, 3))
        ops.count_votes_(logits, 3, counts, validate=False)
        return batch

    x = randn(2, 3, 5, 5, seed=8)
    eager_counts, comp_counts = torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long)
    want = fn(x, eager_counts)
    got = torch.compile(fn, fullgraph=True, backend="aot_eager")(x, comp_counts)
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(got, want) and torch.equal(comp_counts, eager_counts)
    torch._dynamo.reset()


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("case", list(NOISE_CASES))
def test_opcheck_sample_noise_into(case, device):
    args = noise_args(device, **NOISE_CASES[case])
    out = SAMPLE_NOISE(*args)
    torch.library.opcheck(SAMPLE_NOISE_INTO, (*args[:11], args[12], torch.empty_like(out)))
