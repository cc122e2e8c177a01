"""smoothcert::sample_noise with noise="ssn" (independent splitting noise,
Levine & Feizi 2021, Theorem 2 in §4 and §4.3, sampled independently as in
their §5): kernel vs twin bit for bit on every CPU row filler, the float64
formula, the three cases of the lambda >= 1/2 form (Eq. 7), the Lipschitz basis
P[x~ != x~'] = |x - x'| / (2 lambda), determinism, autograd and CUDA."""
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference
from helpers import cpu_and_cuda, gen

SQRT3 = math.sqrt(3.0)
# lambda = sqrt(3) sigma: 0.17, 0.43, 0.50004 (just above 1/2), 0.87, 1.73, 6.06.
SIGMAS = [0.1, 0.25, 0.2887, 0.5, 1.0, 3.5]
DIMS = [7, 197, 784]  # a tail only; 3 blocks of 64 elements + 5; 12 blocks + 16


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the reference twin's many small ops crawl when a
    second OpenMP thread competes for a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def unit_x(B, D, seed=0):
    """``[B, D]`` inputs in [0, 1] including the ends and grid points."""
    x = torch.rand(B, D, generator=gen(seed))
    x.view(-1)[:3] = torch.tensor([0.0, 1.0, 0.5])[: x.numel()]
    if x.numel() > 8:
        x.view(-1)[3:8] = torch.tensor([1, 64, 127, 200, 254]) / 255.0
    return x


def ssn_u(B, samples, D, *, ids=None, sample_start=0, seed=0, stream=1, antithetic=False):
    """``[B, samples, D]`` the symmetric u in (-1, 1) of each element, rebuilt
    from the counter layout (quad, sample or pair, input id, stream) and Philox."""
    ids = torch.arange(B) if ids is None else ids.long()
    nq = (D + 3) // 4
    s = sample_start + torch.arange(samples)
    key = (s >> 1) if antithetic else s
    c0, c1, c2 = torch.broadcast_tensors(torch.arange(nq).view(1, 1, nq), key.view(1, samples, 1),
                                         ids.view(B, 1, 1))
    words = reference.philox4x32_10(c0, c1, c2, torch.full_like(c0, stream), seed & 0xFFFFFFFF, seed >> 32)
    u = reference.unit_noise(words, "ssn").reshape(B, samples, nq * 4)[..., :D]
    if antithetic:
        u = torch.where((s & 1).bool().view(1, samples, 1), -u, u)
    return u


def split64(x, lam, u):
    """Theorem 2, general case (§4.3), in float64: cuts at s + 2 lambda n, s = lambda (1 + u)."""
    x, u = x.double(), u.double()
    lam = torch.as_tensor(lam, dtype=torch.float64)
    s = lam * (1 + u)
    m = torch.ceil((x - s) / (2 * lam))
    up = torch.clamp(2 * lam * m + s, max=1.0)
    lo = torch.clamp(2 * lam * (m - 1) + s, min=0.0)
    return (up + lo) / 2, s, m


# ------------------------------------------------------------ kernel vs twin

@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("D", DIMS)
@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_matches_twin_bitwise(sigma, antithetic, D, device):
    x = unit_x(3, D, seed=D)
    kw = dict(sample_start=3, seed=2 ** 40 + 17, noise="ssn", antithetic=antithetic,
              ids=torch.tensor([5, 0, 2 ** 32 - 1]))
    got = ops.sample_noise(x.to(device), sigma, 7, **{**kw, "ids": kw["ids"].to(device)})
    want = reference.sample_noise(x, sigma, 7, **kw)
    assert got.device.type == device and got.shape == (21, D) and got.dtype == torch.float32
    assert torch.equal(got.cpu(), want)
    # The twin's split_value is applied to the kernel's own u, and u -> -u for
    # the odd rows of antithetic pairs.
    u = ssn_u(3, 7, D, ids=kw["ids"], sample_start=3, seed=kw["seed"], antithetic=antithetic)
    split = reference.split_value(x.view(3, 1, D), torch.tensor(sigma), u).reshape(21, D)
    assert torch.equal(got.cpu(), split)
    # Not a constant: different seeds give different noise.
    other = ops.sample_noise(x.to(device), sigma, 7, **{**kw, "ids": kw["ids"].to(device), "seed": 1})
    assert not torch.equal(other, got)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("sigma", [0.2, 1.0])
def test_inputs_outside_unit_interval_match_twin(sigma, device):
    x = torch.rand(2, 197, generator=gen(3)) * 3 - 1
    # The wrapper refuses them (normalised inputs are a likely mistake); the kernel still matches its twin.
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ops.sample_noise(x.to(device), sigma, 5, seed=9, noise="ssn")
    got = ops.sample_noise(x.to(device), sigma, 5, seed=9, noise="ssn", antithetic=True, validate=False)
    assert torch.equal(got.cpu(), reference.sample_noise(x, sigma, 5, seed=9, noise="ssn", antithetic=True))


def _sigma_of(kind, B, S):
    g = gen(11)
    if kind == "per_input":
        return torch.rand(B, generator=g) * 1.5 + 0.05
    if kind == "per_element":
        return torch.rand(*S, generator=g) * 1.5 + 0.05  # mixes lambda < 1/2 and >= 1/2 in one row
    return torch.rand(B, *S, generator=g) * 1.5 + 0.05


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("antithetic", [False, True])
@pytest.mark.parametrize("sigma_kind", ["per_input", "per_element", "full"])
@pytest.mark.parametrize("S", [(7,), (197,), (3, 17, 19)], ids=str)
def test_sigma_tables_match_twin(S, sigma_kind, antithetic, device):
    B = 2
    x = unit_x(B, math.prod(S), seed=4).view(B, *S)
    sigma = _sigma_of(sigma_kind, B, S)
    kw = dict(seed=21, noise="ssn", antithetic=antithetic, sample_start=1)
    got = ops.sample_noise(x.to(device), sigma.to(device), 6, **kw)
    assert torch.equal(got.cpu(), reference.sample_noise(x, sigma, 6, **kw))
    # Element i of row b uses its own sigma: compare to scalar-sigma calls.
    flat = sigma.reshape(-1)
    for idx in (0, flat.numel() - 1):
        one = ops.sample_noise(x.to(device), float(flat[idx]), 6, **kw)
        if sigma_kind == "per_input":
            assert torch.equal(got.view(B, 6, -1)[idx].cpu(), one.view(B, 6, -1)[idx].cpu())
        elif sigma_kind == "per_element":
            assert torch.equal(got.view(B, 6, -1)[:, :, idx].cpu(), one.view(B, 6, -1)[:, :, idx].cpu())
        else:
            b, e = divmod(idx, math.prod(S))
            assert torch.equal(got.view(B, 6, -1)[b, :, e].cpu(), one.view(B, 6, -1)[b, :, e].cpu())


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("out_dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("per_element", [False, True])
def test_out_dtype_and_channels_last(per_element, channels_last, out_dtype, device):
    x = unit_x(2, 3 * 11 * 13, seed=5).view(2, 3, 11, 13)
    sigma = torch.rand(3, 11, 13, generator=gen(6)) + 0.05 if per_element else 0.75
    kw = dict(seed=3, noise="ssn", antithetic=True, sample_start=2, channels_last=channels_last,
              out_dtype=out_dtype)
    sig_dev = sigma.to(device) if per_element else sigma
    got = ops.sample_noise(x.to(device), sig_dev, 5, **kw)
    want = reference.sample_noise(x, sigma, 5, **kw)
    assert got.dtype == out_dtype
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert torch.equal(got.cpu(), want)
    f32 = ops.sample_noise(x.to(device), sig_dev, 5, seed=3, noise="ssn", antithetic=True, sample_start=2)
    assert torch.equal(got.contiguous(), f32.to(out_dtype))


def test_clamp_and_vector_vs_scalar_paths():
    """Contiguous float32 rows use the SIMD filler plus a scalar tail; other
    dtypes and layouts go through a scratch: all the same float32 bits."""
    x = unit_x(3, 4 * 13 * 11, seed=7).view(3, 4, 13, 11) * 1.2 - 0.1
    sigma = torch.rand(4, 13, 11, generator=gen(8)) * 0.6 + 0.05
    kw = dict(seed=77, noise="ssn", antithetic=True, sample_start=1, validate=False)
    vec = ops.sample_noise(x, sigma, 5, **kw)
    assert torch.equal(ops.sample_noise(x, sigma, 5, channels_last=True, **kw).contiguous(), vec)
    assert torch.equal(ops.sample_noise(x, sigma, 5, out_dtype=torch.float64, **kw).float(), vec)
    clamped = ops.sample_noise(x, sigma, 5, clamp=(0.1, 0.9), **kw)
    assert torch.equal(clamped, vec.clamp(0.1, 0.9))
    assert torch.equal(clamped, reference.sample_noise(x, sigma, 5, clamp=(0.1, 0.9), seed=77, noise="ssn", antithetic=True, sample_start=1))


# ----------------------------------------------------- the CPU row fillers

def filler_cases(sample_noise):
    """The filler test's outputs of ``sample_noise`` (the op or its twin), by case name."""
    x = torch.rand(3, 784, generator=gen(31))
    xs = torch.rand(2, 3, 17, 19, generator=gen(32))
    sig = torch.rand(3, 17, 19, generator=gen(33)) + 0.05
    out = {}
    for D in (7, 197, 784):
        for sigma in (0.1, 0.2887, 3.5):
            for anti in (False, True):
                out[f"{D}_{sigma}_{anti}"] = sample_noise(x[:, :D], sigma, 6, seed=2 ** 63 + 5, sample_start=3,
                                                          noise="ssn", antithetic=anti)
    out["per_element"] = sample_noise(xs, sig, 5, seed=1, noise="ssn", antithetic=True)
    out["full_clamp"] = sample_noise(xs, sig.expand(2, 3, 17, 19) * 0.5, 4, seed=2, noise="ssn", clamp=(0.2, 0.8))
    out["f16_cl"] = sample_noise(xs, 0.4, 3, seed=3, noise="ssn", out_dtype=torch.float16, channels_last=True)
    return out


_FILLER_SCRIPT = textwrap.dedent("""
    import sys, torch
    from smoothcert import ops
    from test_ssn_noise import filler_cases
    # Run by the test with a tmp_path; run by hand with a stray flag (`... -q`) it would
    # write a torch pickle named "-q" into the working directory.
    out_path = sys.argv[1] if len(sys.argv) == 2 else ""
    if not out_path.endswith(".pt"):
        sys.exit(f"usage: python -c SCRIPT OUT.pt (got arguments {sys.argv[1:]})")
    torch.save(filler_cases(ops.sample_noise), out_path)
""")


def _filler_twins():
    return filler_cases(reference.sample_noise)


@pytest.mark.slow
def test_every_cpu_filler_matches_twin(tmp_path):
    """SMOOTHCERT_CPU_BASELINE=1 / =2 (read once per process) force the baseline
    and AVX2 fillers; they, and the filler this process picked (AVX-512 where
    the CPU has it), must all write the twin's bits. The two child processes
    run concurrently."""
    here = os.path.dirname(os.path.abspath(__file__))
    procs = {}
    for forced in ("1", "2"):
        env = dict(os.environ, SMOOTHCERT_CPU_BASELINE=forced, OMP_NUM_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), env.get("PYTHONPATH", "")])  # + helpers
        path = tmp_path / f"filler{forced}.pt"
        procs[forced] = (path, subprocess.Popen([sys.executable, "-c", _FILLER_SCRIPT, str(path)], env=env,
                                                stderr=subprocess.PIPE))
    twins = _filler_twins()
    # The filler of this process (whatever SMOOTHCERT_CPU_BASELINE says here).
    here_out = filler_cases(ops.sample_noise)
    for key, want in twins.items():
        assert torch.equal(here_out[key], want), ("this process", key)
    for forced, (path, proc) in procs.items():
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
        got = torch.load(path)
        assert got.keys() == twins.keys()
        for key, want in twins.items():
            assert torch.equal(got[key], want), (forced, key)


# -------------------------------------------------------- the formula itself

@pytest.mark.parametrize("sigma", SIGMAS)
def test_float64_formula_and_range(sigma):
    B, D, m = 2, 784, 64
    x = unit_x(B, D, seed=12)
    got = ops.sample_noise(x, sigma, m, seed=5, noise="ssn").view(B, m, D)
    assert bool((got >= 0).all()) and bool((got <= 1).all())
    u = ssn_u(B, m, D, seed=5)
    assert bool((u.abs() < 1).all())
    lam = SQRT3 * sigma
    want, s, mm = split64(x.view(B, 1, D), lam, u)
    # Away from a cut (where float32 rounding may pick the neighbouring piece)
    # the kernel is the float64 formula to float32 accuracy.
    t = (x.view(B, 1, D).double() - s) / (2 * lam)
    clear = (t - torch.round(t)).abs() > 1e-5
    assert clear.float().mean() > 0.999
    err = (got.double() - want).abs()[clear].max().item()
    assert err < 2e-6 * max(1.0, lam), err
    # The value is the midpoint of a piece holding x: x lies within half a
    # period of it, and within the piece [lo, up] for clear cases.
    up = torch.clamp(2 * lam * mm + s, max=1.0)
    lo = torch.clamp(2 * lam * (mm - 1) + s, min=0.0)
    xd = x.view(B, 1, D).double().expand_as(up)
    assert bool(((lo <= xd) & (xd <= up))[clear].all())
    assert bool(((got.double() - xd).abs() <= lam + 1e-6).all())


@pytest.mark.parametrize("sigma", [0.2887, 0.5, 1.0, 3.5])
def test_three_cases_large_lambda(sigma):
    """lambda >= 1/2 (Levine & Feizi's Theorem 2, Eq. 7): s >= 1 gives exactly 1/2, x <= s < 1
    gives s / 2 and x > s gives (1 + s) / 2."""
    B, D, m = 2, 784, 64
    x = unit_x(B, D, seed=13)
    got = ops.sample_noise(x, sigma, m, seed=6, noise="ssn", antithetic=True).view(B, m, D).double()
    s = SQRT3 * sigma * (1 + ssn_u(B, m, D, seed=6, antithetic=True).double())
    xd = x.view(B, 1, D).double().expand_as(s)
    tol = 1e-6
    no_info = s >= 1 + tol
    low = (s < 1 - tol) & (xd < s - tol)
    high = xd > s + tol
    assert int(no_info.sum()) > 0 and int(low.sum()) > 0 and int(high.sum()) > 0
    assert (no_info | low | high).float().mean() > 0.999
    assert bool((got[no_info] == 0.5).all())
    assert (got[low] - s[low] / 2).abs().max() < 1e-6
    assert (got[high] - (1 + s[high]) / 2).abs().max() < 1e-6


def _binomial_ok(count, p, z=5.0):
    """|count - sum p| within z standard deviations of a sum of Bernoullis with
    success probabilities p (a tensor, one per trial)."""
    p = p.double()
    mean = float(p.sum())
    sd = math.sqrt(float((p * (1 - p)).sum()))
    return abs(count - mean) <= z * sd + 1e-9, (count, mean, sd)


@pytest.mark.parametrize("sigma", [0.2887, 0.5, 1.0, 3.5])
def test_case_frequencies_large_lambda(sigma):
    """P[x~ = 1/2] = (2 lambda - 1) / (2 lambda), P[x~ < 1/2] = (1 - x) / (2 lambda)
    and P[x~ > 1/2] = x / (2 lambda), over many independent draws."""
    lam = SQRT3 * sigma
    B, D, m = 2, 784, 200
    x = torch.rand(B, D, generator=gen(14)) * 0.999  # x < 1, so x > s >= 1 never happens
    got = ops.sample_noise(x, sigma, m, seed=7, noise="ssn").view(B, m, D)
    xx = x.view(B, 1, D).expand(B, m, D).reshape(-1).double()
    g = got.reshape(-1)
    for mask, p in ((g == 0.5, torch.full_like(xx, (2 * lam - 1) / (2 * lam))),
                    (g < 0.5, (1 - xx) / (2 * lam)),
                    (g > 0.5, xx / (2 * lam))):
        ok, info = _binomial_ok(int(mask.sum()), p)
        assert ok, info
    # Antithetic pairs use s and 2 lambda - s. For lambda > 1 they cannot both
    # lie below 1, so at most one copy of a pair differs from 1/2.
    if lam > 1:
        pair = ops.sample_noise(x, sigma, 2 * m, seed=7, noise="ssn", antithetic=True).view(B, m, 2, D)
        assert int(((pair[:, :, 0] != 0.5) & (pair[:, :, 1] != 0.5)).sum()) == 0
        assert int((pair != 0.5).sum()) > 0


@pytest.mark.parametrize("sigma", [0.1, 0.25, 0.5, 1.0, 3.5])
def test_change_probability_is_distance_over_two_lambda(sigma):
    """Basis of the Lipschitz bound (Theorem 2's proof, Eq. 9 and App. A): with a shared split value,
    P[x~ != x~'] = min(|x - x'| / (2 lambda), 1) for x, x' in [0, 1]."""
    lam = SQRT3 * sigma
    D, m = 600, 200
    g = gen(15)
    deltas = torch.tensor([0.01, 0.05, 0.1, 0.2, 0.3, 0.5]).repeat(D // 6)
    a = torch.rand(D, generator=g) * (1 - deltas)
    pair = torch.stack([a, a + deltas])  # rows of one id share their u
    out = ops.sample_noise(pair, sigma, m, seed=8, noise="ssn", ids=torch.tensor([3, 3])).view(2, m, D)
    differ = out[0] != out[1]  # [m, D]
    p = torch.clamp(deltas.double() / (2 * lam), max=1.0)
    for d in deltas.unique():
        cols = deltas == d
        ok, info = _binomial_ok(int(differ[:, cols].sum()), p[cols].repeat(m))
        assert ok, (float(d), info)
    # A different id gives independent noise: the values then differ far more often.
    indep = ops.sample_noise(pair, sigma, m, seed=8, noise="ssn", ids=torch.tensor([3, 4])).view(2, m, D)
    assert (indep[0] != indep[1]).float().mean() > differ.float().mean() + 0.1


# ----------------------------------------------------------- determinism

@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("antithetic", [False, True])
def test_chunking_and_batch_order(antithetic, device):
    B, S, m = 4, (3, 7, 5), 10
    x = torch.rand(B, *S, generator=gen(16)).to(device)
    ids = torch.tensor([11, 3, 7, 2 ** 31], device=device)
    kw = dict(seed=99, noise="ssn", antithetic=antithetic, ids=ids)
    full = ops.sample_noise(x, 0.4, m, **kw)
    assert torch.equal(ops.sample_noise(x, 0.4, m, **kw), full)
    full = full.view(B, m, *S)
    for cut in (1, 3, 4, 9):
        a = ops.sample_noise(x, 0.4, cut, **kw).view(B, cut, *S)
        b = ops.sample_noise(x, 0.4, m - cut, sample_start=cut, **kw).view(B, m - cut, *S)
        assert torch.equal(torch.cat([a, b], dim=1), full), cut
    perm = torch.tensor([2, 0, 3, 1], device=device)
    shuffled = ops.sample_noise(x[perm], 0.4, m, **{**kw, "ids": ids[perm]}).view(B, m, *S)
    assert torch.equal(shuffled, full[perm])
    one = ops.sample_noise(x[2:3], 0.4, m, **{**kw, "ids": ids[2:3]}).view(1, m, *S)
    assert torch.equal(one[0], full[2])
    assert not torch.equal(ops.sample_noise(x, 0.4, m, **{**kw, "seed": 100}).view(B, m, *S), full)
    assert not torch.equal(ops.sample_noise(x, 0.4, m, stream=2, **kw).view(B, m, *S), full)


def test_thread_count_invariance():
    x = torch.rand(4, 3000, generator=gen(17))
    one = ops.sample_noise(x, 0.5, 16, seed=4, noise="ssn")
    torch.set_num_threads(2)  # restored by _one_thread
    assert torch.equal(ops.sample_noise(x, 0.5, 16, seed=4, noise="ssn"), one)


# --------------------------------------------------------------- autograd

@pytest.mark.parametrize("sigma_kind", ["scalar", "per_element"])
def test_grad_x_is_zero(sigma_kind):
    x = torch.rand(3, 2, 5, generator=gen(18)).requires_grad_()
    sigma = 0.4 if sigma_kind == "scalar" else torch.rand(2, 5, generator=gen(19)) + 0.1
    out = ops.sample_noise(x, sigma, 4, seed=2, noise="ssn", antithetic=True)
    assert out.requires_grad
    w = torch.randn(out.shape, generator=gen(20))
    (gx,) = torch.autograd.grad((out * w).sum(), [x])
    assert gx.shape == x.shape and gx.dtype == x.dtype
    assert torch.equal(gx, torch.zeros_like(x))
    # For contrast, uniform noise has the identity Jacobian in x.
    (gu,) = torch.autograd.grad(ops.sample_noise(x, sigma, 4, noise="uniform").sum(), [x])
    assert torch.equal(gu, torch.full_like(x, 4.0))


@pytest.mark.parametrize("sigma_shape", [(), (3,), (2, 5)])
def test_grad_sigma_raises(sigma_shape):
    x = torch.rand(3, 2, 5, generator=gen(21)).requires_grad_()
    sigma = (torch.rand(sigma_shape, generator=gen(22)) + 0.2).requires_grad_()
    out = ops.sample_noise(x, sigma, 4, seed=2, noise="ssn")
    with pytest.raises(RuntimeError, match="not differentiable in sigma"):
        torch.autograd.grad(out.sum(), [sigma])
    out = ops.sample_noise(x, sigma, 4, seed=2, noise="ssn")
    with pytest.raises(RuntimeError):
        out.sum().backward()


# --------------------------------------------------------------------- CUDA

@pytest.mark.needs_cuda
@pytest.mark.parametrize("D", DIMS)
def test_cuda_matches_cpu_bitwise(D):
    B = 3
    x = unit_x(B, D, seed=23)
    sig_e = torch.rand(D, generator=gen(24)) + 0.05
    sig_full = torch.rand(B, D, generator=gen(25)) + 0.05
    ids = torch.tensor([0, 9, 2 ** 32 - 1])
    for sigma in SIGMAS + [sig_e, sig_full]:
        for anti in (False, True):
            for out_dtype in (None, torch.float16, torch.bfloat16, torch.float64):
                kw = dict(seed=2 ** 63 + 1, sample_start=5, noise="ssn", antithetic=anti, out_dtype=out_dtype)
                cpu = ops.sample_noise(x, sigma, 9, ids=ids, **kw)
                sig_gpu = sigma.cuda() if isinstance(sigma, torch.Tensor) else sigma
                gpu = ops.sample_noise(x.cuda(), sig_gpu, 9, ids=ids.cuda(), **kw)
                assert gpu.is_cuda and torch.equal(gpu.cpu(), cpu), (sigma, anti, out_dtype)
    x4 = unit_x(2, 3 * 11 * 13, seed=26).view(2, 3, 11, 13)
    for cl in (False, True):
        cpu = ops.sample_noise(x4, 0.3, 4, seed=1, noise="ssn", channels_last=cl, clamp=(0.1, 0.9))
        gpu = ops.sample_noise(x4.cuda(), 0.3, 4, seed=1, noise="ssn", channels_last=cl, clamp=(0.1, 0.9))
        assert gpu.stride() == cpu.stride() and torch.equal(gpu.cpu(), cpu)
