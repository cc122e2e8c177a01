"""smoothcert::sample_noise: kernel vs the pure-PyTorch twin, determinism and
chunking invariance, the AVX2 vs baseline fillers, noise statistics, errors."""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from scipy import stats as sps

from smoothcert import ops
from smoothcert.ops import reference
from helpers import cpu_and_cuda, gen, noise_atol, randn

SHAPES = [(0, 3), (1, 1), (2, 5), (3, 1, 5, 7), (2, 3, 17, 19), (1, 784), (4,)]  # (4,): scalar inputs
SQRT3 = math.sqrt(3.0)


def assert_noise_close(got, want, x, sigma):
    assert got.shape == want.shape and got.dtype == want.dtype
    torch.testing.assert_close(got.cpu(), want, atol=noise_atol(x, sigma), rtol=0)


def raw(x, ids, table, samples, sample_start=0, seed=0, stream=1, kind=0, antithetic=False,
        clamp_min=None, clamp_max=None, out_dtype=None, channels_last=False):
    return torch.ops.smoothcert.sample_noise.default(x, ids, table, samples, sample_start, seed, stream,
                                                     kind, antithetic, clamp_min, clamp_max, out_dtype,
                                                     channels_last)


# ------------------------------------------------------------ kernel vs reference

@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
@pytest.mark.parametrize("sample_start", [0, 5])
@pytest.mark.parametrize("samples", [0, 1, 6])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_reference(shape, samples, sample_start, noise, antithetic, device):
    x = randn(*shape, seed=1)
    kw = dict(sample_start=sample_start, seed=1234, stream=1, noise=noise, antithetic=antithetic)
    got = ops.sample_noise(x.to(device), 0.75, samples, **kw)
    want = reference.sample_noise(x, 0.75, samples, **kw)
    assert got.device.type == device
    assert got.shape == (shape[0] * samples, *shape[1:])
    assert_noise_close(got, want, x, 0.75)


def _sigma(kind, shape):
    B, S = shape[0], shape[1:]
    g = gen(7)
    if kind == "scalar":
        return 0.3
    if kind == "0d":
        return torch.tensor(1.7)
    if kind == "per_input":
        return torch.rand(B, generator=g) * 2 + 0.1
    if kind == "per_element":
        return torch.rand(*S, generator=g) * 2 + 0.1
    return torch.rand(B, *S, generator=g) * 2 + 0.1


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("clamp", [None, (-0.5, 0.5), (0.0, None), (None, 0.25)], ids=str)
@pytest.mark.parametrize("sigma_kind", ["scalar", "0d", "per_input", "per_element", "full"])
@pytest.mark.parametrize("shape", [(2, 5), (3, 1, 5, 7), (2, 3, 17, 19)], ids=str)
def test_sigma_shapes_and_clamp(shape, sigma_kind, clamp, device):
    x = randn(*shape, seed=2)
    sigma = _sigma(sigma_kind, shape)
    sig_dev = sigma.to(device) if isinstance(sigma, torch.Tensor) else sigma
    got = ops.sample_noise(x.to(device), sig_dev, 5, seed=99, clamp=clamp)
    want = reference.sample_noise(x, sigma, 5, seed=99, clamp=clamp)
    assert_noise_close(got, want, x, sigma)
    if clamp is not None:
        lo, hi = clamp
        assert lo is None or bool((got >= lo).all())
        assert hi is None or bool((got <= hi).all())


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("out_dtype", [torch.float16, torch.bfloat16, torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(1, 1), (2, 5), (2, 3, 17, 19)], ids=str)
def test_out_dtype(shape, out_dtype, device):
    x = randn(*shape, seed=3)
    got = ops.sample_noise(x.to(device), 0.5, 4, seed=5, out_dtype=out_dtype, antithetic=True)
    want = reference.sample_noise(x, 0.5, 4, seed=5, out_dtype=out_dtype, antithetic=True)
    assert got.dtype == out_dtype
    # The float32 values agree to a few ulp; rounding them to a narrower type can
    # then differ by one ulp of that type.
    torch.testing.assert_close(got.cpu(), want, atol=noise_atol(x, 0.5),
                               rtol=torch.finfo(out_dtype).eps if out_dtype != torch.float64 else 0)
    # Every dtype holds the float32 values rounded once (no recomputation).
    f32 = ops.sample_noise(x.to(device), 0.5, 4, seed=5, antithetic=True)
    assert torch.equal(got, f32.to(out_dtype))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("out_dtype", [None, torch.float16])
@pytest.mark.parametrize("x_format", ["contiguous", "channels_last"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 17, 19), (3, 4, 5, 6)], ids=str)
def test_channels_last(shape, x_format, out_dtype, device):
    x = randn(*shape, seed=4)
    if x_format == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    got = ops.sample_noise(x.to(device), 0.5, 3, seed=8, channels_last=True, out_dtype=out_dtype)
    want = reference.sample_noise(x, 0.5, 3, seed=8, channels_last=True, out_dtype=out_dtype)
    assert got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got.cpu(), want, atol=noise_atol(x, 0.5),
                               rtol=0 if out_dtype is None else torch.finfo(out_dtype).eps)
    # Same values as the NCHW output, bit for bit (only the memory order differs).
    plain = ops.sample_noise(x.to(device), 0.5, 3, seed=8, out_dtype=out_dtype)
    assert plain.is_contiguous()
    assert torch.equal(got.contiguous(), plain)


def _noncontiguous(kind, device="cpu"):
    # the view is taken on the device: .to() of a sliced or expanded view would make it contiguous
    base = randn(4, 6, 20, seed=5).to(device)
    if kind == "transposed":
        return base.transpose(1, 2)  # [4, 20, 6]
    if kind == "sliced":
        return base[::2, :, 1::3]  # [2, 6, 7]
    if kind == "expanded":
        return base[:1, :1].expand(3, 5, 20)
    return base.permute(2, 0, 1)[:, :3]  # [20, 3, 6]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("kind", ["transposed", "sliced", "expanded", "permuted"])
def test_noncontiguous_x(kind, device):
    x = _noncontiguous(kind, device)
    assert not x.is_contiguous()
    got = ops.sample_noise(x, 0.4, 6, seed=3, sample_start=2)
    assert torch.equal(got, ops.sample_noise(x.contiguous(), 0.4, 6, seed=3, sample_start=2))
    assert_noise_close(got, reference.sample_noise(x.cpu(), 0.4, 6, seed=3, sample_start=2), x.cpu(), 0.4)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_noncontiguous_sigma_and_ids(device):
    x = randn(3, 40, seed=6).to(device)
    sig = (torch.rand(40, 3, generator=gen(1)) + 0.1).t().to(device)  # [3, 40] transposed
    ids = torch.tensor([9, 0, 5, 1, 7, 2], device=device)[::2]
    got = ops.sample_noise(x, sig, 4, ids=ids, seed=2)
    want = ops.sample_noise(x, sig.contiguous(), 4, ids=ids.contiguous(), seed=2)
    assert torch.equal(got, want)
    assert_noise_close(got, reference.sample_noise(x.cpu(), sig.cpu(), 4, ids=ids.cpu(), seed=2), x, sig)


@pytest.mark.parametrize("seed", [0, 1, 2 ** 32 + 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1])
def test_seeds_match_reference_across_the_64_bit_range(seed):
    x = randn(2, 37, seed=7)
    got = ops.sample_noise(x, 1.0, 3, seed=seed, stream=2 ** 32 - 1, ids=torch.tensor([0, 2 ** 32 - 1]))
    want = reference.sample_noise(x, 1.0, 3, seed=seed, stream=2 ** 32 - 1, ids=torch.tensor([0, 2 ** 32 - 1]))
    assert_noise_close(got, want, x, 1.0)


def test_large_sample_indices_match_reference():
    x = randn(1, 9, seed=8)
    for anti, start in [(False, 2 ** 32 - 3), (True, 2 ** 33 - 4)]:
        got = ops.sample_noise(x, 1.0, 3, sample_start=start, antithetic=anti)
        want = reference.sample_noise(x, 1.0, 3, sample_start=start, antithetic=anti)
        assert_noise_close(got, want, x, 1.0)


# ------------------------------------------------------- vectorised vs scalar paths

@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
@pytest.mark.parametrize("per_element", [False, True])
@pytest.mark.parametrize("clamp", [None, (-1.0, 1.0)], ids=str)
def test_vector_and_scalar_paths_identical(noise, per_element, clamp):
    """Contiguous float32 rows go through the SIMD filler (plus a scalar tail);
    channels_last and float64 outputs use the scalar path for every element.
    Both must write the same float32 bits."""
    x = randn(3, 4, 13, 11, seed=9)  # D = 572: 8 full blocks of 16 quads, then a tail
    sigma = torch.rand(4, 13, 11, generator=gen(2)) + 0.2 if per_element else 0.6
    kw = dict(seed=77, noise=noise, clamp=clamp, antithetic=True, sample_start=1)
    vec = ops.sample_noise(x, sigma, 5, **kw)
    assert torch.equal(ops.sample_noise(x, sigma, 5, channels_last=True, **kw).contiguous(), vec)
    assert torch.equal(ops.sample_noise(x, sigma, 5, out_dtype=torch.float64, **kw).float(), vec)


_BASELINE_SCRIPT = textwrap.dedent("""
    import sys, torch
    from smoothcert import ops
    from helpers import randn
    x = randn(3, 3, 17, 19, seed=11)
    sig = torch.rand(3, 17, 19, generator=torch.Generator().manual_seed(3)) + 0.1
    out = {}
    for noise in ["gaussian", "uniform"]:
        out[noise] = ops.sample_noise(x, 0.5, 6, seed=2 ** 63 + 5, noise=noise, sample_start=3)
        out[noise + "_elem_clamp_anti"] = ops.sample_noise(x, sig, 6, seed=1, noise=noise, clamp=(-1.0, 2.0),
                                                           antithetic=True)
    out["wide"] = ops.sample_noise(randn(2, 5000, seed=1), 1.0, 4, seed=3)
    # Run by the test with a tmp_path; run by hand with a stray flag (`... -q`) it would
    # write a torch pickle named "-q" into the working directory.
    out_path = sys.argv[1] if len(sys.argv) == 2 else ""
    if not out_path.endswith(".pt"):
        sys.exit(f"usage: python -c SCRIPT OUT.pt (got arguments {sys.argv[1:]})")
    torch.save(out, out_path)
""")


@pytest.mark.slow
@pytest.mark.parametrize("forced", ["1", "2"])
def test_baseline_filler_writes_identical_bits(tmp_path, forced):
    """SMOOTHCERT_CPU_BASELINE=1 (read once per process) forces the baseline row
    filler and =2 the AVX2 one; they must write the same bits as the filler this
    process picked (AVX-512 where the CPU has it)."""
    path = tmp_path / "baseline.pt"
    env = dict(os.environ, SMOOTHCERT_CPU_BASELINE=forced)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), env.get("PYTHONPATH", "")])  # + helpers
    subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT, str(path)], env=env, check=True, timeout=120)
    base = torch.load(path)
    here_out = {}
    x = randn(3, 3, 17, 19, seed=11)
    sig = torch.rand(3, 17, 19, generator=gen(3)) + 0.1
    for noise in ["gaussian", "uniform"]:
        here_out[noise] = ops.sample_noise(x, 0.5, 6, seed=2 ** 63 + 5, noise=noise, sample_start=3)
        here_out[noise + "_elem_clamp_anti"] = ops.sample_noise(x, sig, 6, seed=1, noise=noise,
                                                                clamp=(-1.0, 2.0), antithetic=True)
    here_out["wide"] = ops.sample_noise(randn(2, 5000, seed=1), 1.0, 4, seed=3)
    assert base.keys() == here_out.keys()
    for k in base:
        assert torch.equal(base[k], here_out[k]), k


# ------------------------------------------------------ determinism and invariance

@pytest.mark.parametrize("device", cpu_and_cuda())
def test_same_seed_same_bits(device):
    x = randn(3, 2, 9, 9, seed=12).to(device)
    a = ops.sample_noise(x, 0.5, 8, seed=42)
    for _ in range(3):
        assert torch.equal(ops.sample_noise(x, 0.5, 8, seed=42), a)


def test_thread_count_invariance():
    x = randn(4, 3000, seed=13)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.sample_noise(x, 0.5, 16, seed=4)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(ops.sample_noise(x, 0.5, 16, seed=4), one)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
@pytest.mark.parametrize("antithetic", [False, True])
def test_chunking_invariance(antithetic, noise, device):
    B, S = 3, (2, 7, 5)
    x = randn(B, *S, seed=14).to(device)
    kw = dict(seed=5, noise=noise, antithetic=antithetic)
    full = ops.sample_noise(x, 0.5, 7, **kw).view(B, 7, *S)
    a = ops.sample_noise(x, 0.5, 3, sample_start=0, **kw).view(B, 3, *S)
    b = ops.sample_noise(x, 0.5, 4, sample_start=3, **kw).view(B, 4, *S)
    assert torch.equal(torch.cat([a, b], dim=1), full)
    singles = [ops.sample_noise(x, 0.5, 1, sample_start=j, **kw).view(B, 1, *S) for j in range(7)]
    assert torch.equal(torch.cat(singles, dim=1), full)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("sigma_kind", ["scalar", "per_input", "full"])
def test_batch_invariance(sigma_kind, device):
    """Each input's noise depends on its id only, not on its batch or position."""
    B, S = 5, (3, 11)
    x = randn(B, *S, seed=15).to(device)
    ids = torch.tensor([17, 3, 2 ** 32 - 1, 0, 8], device=device)
    sigma = _sigma(sigma_kind, (B, *S))
    sigma = sigma.to(device) if isinstance(sigma, torch.Tensor) else sigma
    batched = ops.sample_noise(x, sigma, 4, ids=ids, seed=6)
    for b in range(B):
        sb = sigma[b:b + 1] if isinstance(sigma, torch.Tensor) else sigma
        one = ops.sample_noise(x[b:b + 1], sb, 4, ids=ids[b:b + 1], seed=6)
        assert torch.equal(one, batched[4 * b:4 * b + 4])
    perm = torch.tensor([3, 1, 4, 0, 2], device=device)
    sp = sigma[perm] if isinstance(sigma, torch.Tensor) else sigma
    shuffled = ops.sample_noise(x[perm], sp, 4, ids=ids[perm], seed=6).view(B, 4, *S)
    assert torch.equal(shuffled, batched.view(B, 4, *S)[perm])


def _eps(**kw):
    x = torch.zeros(2, 64)
    args = dict(seed=1, stream=1, ids=torch.tensor([0, 1]), sample_start=0)
    args.update(kw)
    return ops.sample_noise(x, 1.0, 4, **args)


@pytest.mark.parametrize("change", [dict(seed=2), dict(seed=1 + 2 ** 32), dict(stream=0), dict(stream=2),
                                    dict(ids=torch.tensor([2, 3])), dict(sample_start=4)], ids=str)
def test_different_keys_give_different_noise(change):
    base, other = _eps(), _eps(**change)
    assert float((base == other).float().mean()) < 0.01


def test_inputs_and_samples_get_distinct_noise():
    z = ops.sample_noise(torch.zeros(3, 50), 1.0, 4).view(12, 50)
    assert torch.unique(z, dim=0).shape[0] == 12
    assert float((z[:, None] == z[None]).float().mean(-1).fill_diagonal_(0).max()) < 0.05


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_antithetic_pairs_negate(noise):
    x = randn(3, 45, seed=16)
    out = ops.sample_noise(x, 0.7, 8, antithetic=True, noise=noise).view(3, 4, 2, 45)
    d = out - x.view(3, 1, 1, 45)
    torch.testing.assert_close(d[:, :, 1], -d[:, :, 0], atol=noise_atol(x, 0.7), rtol=0)
    z = ops.sample_noise(torch.zeros(3, 45), 1.0, 8, antithetic=True, noise=noise).view(3, 4, 2, 45)
    assert torch.equal(z[:, :, 1], -z[:, :, 0])  # exact with x = 0
    # Pair p (copies 2p, 2p+1) is +-eps_p, eps_p being the plain draw of sample index p.
    plain = ops.sample_noise(torch.zeros(3, 45), 1.0, 4, noise=noise).view(3, 4, 45)
    assert torch.equal(z[:, :, 0], plain)


# ---------------------------------------------------------------- statistics

def _unit_noise(noise, n_inputs=8, samples=25, d=1000, seed=0):
    z = ops.sample_noise(torch.zeros(n_inputs, d), 1.0, samples, seed=seed, noise=noise)
    return z.view(n_inputs, samples, d).double()


def _z_corr(a, b):
    """z-score of the sample correlation of two flat arrays (≈ N(0, 1) if independent)."""
    a, b = a - a.mean(), b - b.mean()
    r = float((a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()))
    return r * math.sqrt(a.numel())


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_moments(noise):
    z = _unit_noise(noise).flatten()
    n = z.numel()  # 200k
    assert abs(float(z.mean())) * math.sqrt(n) < 4.5
    var = float(z.var())
    var_se = math.sqrt(2.0 / n) if noise == "gaussian" else math.sqrt(0.8 / n)  # Var(z^2) = 2 and 4/5
    assert abs(var - 1.0) / var_se < 4.5
    kurt = float((z ** 4).mean())
    assert kurt == pytest.approx(3.0 if noise == "gaussian" else 1.8, abs=0.05)
    assert abs(float((z ** 3).mean())) < 0.03


def test_gaussian_ks_and_tails():
    z = _unit_noise("gaussian", seed=3).flatten().numpy()
    assert np.isfinite(z).all()
    assert sps.kstest(z, "norm").pvalue > 1e-3
    assert np.abs(z).max() <= 6.67  # Box-Muller with u1 >= 2^-32
    # tail mass beyond 3 sigma: 0.0027 of the draws
    tail = float((np.abs(z) > 3).mean())
    assert abs(tail - 0.0026998) < 4.5 * math.sqrt(0.0027 / z.size)


def test_uniform_ks_and_support():
    z = _unit_noise("uniform", seed=4).flatten().numpy()
    assert sps.kstest(z, "uniform", args=(-SQRT3, 2 * SQRT3)).pvalue > 1e-3
    assert np.abs(z).max() < SQRT3 * (1 + 1e-6)


@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_no_lag1_correlation(noise):
    z = _unit_noise(noise, seed=5)
    assert abs(_z_corr(z[:, :, :-1], z[:, :, 1:])) < 4.5  # adjacent elements
    assert abs(_z_corr(z[:, :-1], z[:, 1:])) < 4.5  # adjacent samples
    assert abs(_z_corr(z[:-1], z[1:])) < 4.5  # adjacent inputs
    # squares too (Box-Muller pairs share a radius only through u1)
    assert abs(_z_corr(z[:, :, :-1] ** 2, z[:, :, 1:] ** 2)) < 4.5


def test_quad_lanes_each_standard_normal():
    z = _unit_noise("gaussian", seed=6).reshape(-1, 4)  # lanes of a Philox quad
    for lane in range(4):
        v = z[:, lane].numpy()
        assert sps.kstest(v, "norm").pvalue > 1e-3, lane
        assert abs(v.mean()) * math.sqrt(v.size) < 4.5
    for i in range(4):
        for j in range(i + 1, 4):
            assert abs(_z_corr(z[:, i], z[:, j])) < 4.5, (i, j)


def test_antithetic_marginals_standard_normal():
    z = ops.sample_noise(torch.zeros(4, 1000), 1.0, 20, antithetic=True, seed=9).view(4, 20, 1000)
    assert sps.kstest(z[:, 1::2].flatten().numpy(), "norm").pvalue > 1e-3


@pytest.mark.parametrize("sigma", [0.12, 3.0])
def test_sigma_scales_noise(sigma):
    x = torch.full((2, 5000), 0.25)
    d = (ops.sample_noise(x, sigma, 10, seed=2).double() - 0.25) / sigma
    assert abs(float(d.std()) - 1.0) < 4.5 * math.sqrt(0.5 / d.numel())


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("sigma", [0.0, -0.5, float("nan"), float("inf"), torch.tensor([0.5, -1.0]),
                                   torch.tensor([0.5, float("nan")])], ids=str)
def test_bad_sigma_value(sigma):
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        ops.sample_noise(torch.zeros(2, 3), sigma, 1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_x(bad):
    x = torch.zeros(2, 3)
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN/inf"):
        ops.sample_noise(x, 1.0, 1)


@pytest.mark.parametrize("shape", [(3,), (2, 4), (2, 5), (1, 2, 2), (4, 1), (2, 2, 5)], ids=str)
def test_wrong_sigma_shape(shape):
    with pytest.raises(ValueError, match="sigma must be a number or have shape"):
        ops.sample_noise(torch.zeros(2, 5, 2), torch.ones(shape), 1)


@pytest.mark.parametrize("ids", [[-1, 0], [0, 2 ** 32]], ids=str)
def test_ids_out_of_range(ids):
    with pytest.raises(ValueError, match=r"input indices must lie in \[0, 2\^32\)"):
        ops.sample_noise(torch.zeros(2, 3), 1.0, 1, ids=torch.tensor(ids))


def test_bad_noise_name():
    with pytest.raises(ValueError, match="noise must be one of"):
        ops.sample_noise(torch.zeros(2, 3), 1.0, 1, noise="laplace")


def test_bad_seed_and_counts():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="seed must lie in"):
        ops.sample_noise(x, 1.0, 1, seed=-1)
    with pytest.raises(ValueError, match="seed must lie in"):
        ops.sample_noise(x, 1.0, 1, seed=2 ** 64)
    with pytest.raises(ValueError, match="samples and sample_start must be >= 0"):
        ops.sample_noise(x, 1.0, -1)
    with pytest.raises(ValueError, match="samples and sample_start must be >= 0"):
        ops.sample_noise(x, 1.0, 1, sample_start=-2)


def test_float64_x_converted_by_wrapper_but_rejected_by_raw_op():
    x = randn(2, 7, seed=17, dtype=torch.float64)
    got = ops.sample_noise(x, 0.5, 3)
    assert got.dtype == torch.float32
    assert torch.equal(got, ops.sample_noise(x.float(), 0.5, 3))
    for dt in (torch.float64, torch.float16, torch.int32):
        with pytest.raises(RuntimeError, match="x must be float32"):
            raw(x.to(dt), torch.arange(2), torch.ones(1, 1), 1)


def test_raw_op_structural_checks():
    x, ids, sig = torch.zeros(2, 3), torch.arange(2), torch.ones(1, 1)
    cases = [
        (dict(x=torch.zeros(())), "x must have a batch dimension"),
        (dict(ids=torch.arange(3)), r"ids must have shape \[B\]"),
        (dict(ids=torch.arange(2, dtype=torch.int32)), "ids must be int64"),
        (dict(table=torch.ones(1)), "sigma must be 2-D"),
        (dict(table=torch.ones(1, 1, dtype=torch.float64)), "sigma must be float32"),
        (dict(table=torch.ones(3, 1)), r"sigma.size\(0\) must be 1 or B"),
        (dict(table=torch.ones(1, 2)), r"sigma.size\(1\) must be 1 or D"),
        (dict(samples=-1), "samples must be >= 0"),
        (dict(sample_start=-1), "sample_start must be >= 0"),
        (dict(sample_start=2 ** 32, samples=1), "sample indices must stay below"),
        (dict(stream=2 ** 32), "stream must fit in 32 bits"),
        (dict(stream=-1), "stream must fit in 32 bits"),
        (dict(kind=3), "kind must be 0"),
        (dict(channels_last=True), "channels_last needs 4-D x"),
        (dict(clamp_min=1.0, clamp_max=0.0), r"clamp_min \(1\) > clamp_max \(0\)"),
        (dict(out_dtype=torch.int32), "out_dtype must be float32, float16, bfloat16 or float64"),
    ]
    for change, msg in cases:
        args = dict(x=x, ids=ids, table=sig, samples=1)
        args.update(change)
        with pytest.raises(RuntimeError, match=msg):
            raw(**args)


def test_wrapper_errors_reach_kernel_checks():
    with pytest.raises(RuntimeError, match="channels_last needs 4-D x"):
        ops.sample_noise(torch.zeros(2, 3, 4), 1.0, 1, channels_last=True)
    with pytest.raises(RuntimeError, match=r"clamp_min .* > clamp_max"):
        ops.sample_noise(torch.zeros(2, 3), 1.0, 1, clamp=(0.5, -0.5))


@pytest.mark.needs_cuda
def test_mixed_devices_rejected():
    x = torch.zeros(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match="must be on one device"):
        raw(x, torch.arange(2), torch.ones(1, 1, device="cuda"), 1)
    with pytest.raises(RuntimeError, match="must be on one device"):
        raw(x, torch.arange(2, device="cuda"), torch.ones(1, 1), 1)


@pytest.mark.needs_cuda
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("out_dtype", [None, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("noise", ["gaussian", "uniform"])
def test_cpu_and_cuda_agree(noise, out_dtype, channels_last):
    # Bit for bit: Philox counters, our own log/sincos and no FMA contraction on either side.
    x = randn(3, 3, 17, 19, seed=18)
    sig = torch.rand(3, 17, 19, generator=gen(4)) + 0.1
    kw = dict(seed=2 ** 63 + 1, noise=noise, antithetic=True, clamp=(-2.0, 2.0), out_dtype=out_dtype,
              channels_last=channels_last)
    cpu = ops.sample_noise(x, sig, 6, **kw)
    cuda = ops.sample_noise(x.cuda(), sig.cuda(), 6, **kw)
    assert cuda.dtype == cpu.dtype and torch.equal(cuda.cpu(), cpu)


def test_nan_clamp_bound_rejected():
    with pytest.raises(RuntimeError, match="clamp bounds must not be NaN"):
        ops.sample_noise(torch.rand(2, 3), 0.5, 2, clamp=(float("nan"), None))
