"""smoothcert::dssn_batch (deterministic splitting noise, Levine & Feizi 2021,
§4.1 and Corollary 1): kernel vs the pure-PyTorch twin bit for bit, an
independent float64 check of Corollary 1's general-case formula (App. A,
Eqs. 47-48), the counting argument of Corollary 1's proof, the uniform marginal
of the split values, chunking invariance, argument errors, opcheck and CUDA."""

import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference
from helpers import cpu_and_cuda, gen

OP = torch.ops.smoothcert.dssn_batch.default

# (q, L): both regimes (L < q is lambda < 1/2), the edges L = 1, 2, q - 1, q,
# q + 1, 2q + 3 and the q = 255 levels of the paper's sigma table.
Q255_LEVELS = [1, 2, 50, 132, 220, 254, 255, 256, 441, 513, 883, 3091]
CASES = ([(255, L) for L in Q255_LEVELS] + [(7, L) for L in (1, 2, 6, 7, 8, 17)]
         + [(1000, L) for L in (333, 1000, 2003)] + [(1, 1), (1, 2), (1, 5)])


@pytest.fixture(autouse=True)
def _one_thread():
    """Runs each test on one intra-op thread: these are small tensors, and on a
    busy 2-core machine a second OpenMP thread makes every op wait for a
    descheduled peer. test_channels_last_input_and_thread_count uses two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def grid_pixels(q: int, seed: int = 0, top: int = None) -> torch.Tensor:
    """``[2, n]`` int64 pixels: row 0 is 0..top, row 1 a permutation of it."""
    top = q if top is None else top
    X = torch.arange(top + 1)
    return torch.stack([X, X[torch.randperm(top + 1, generator=gen(seed))]])


def to_grid(X: torch.Tensor, q: int) -> torch.Tensor:
    """float32 grid values i / q, correctly rounded."""
    return (X.double() / q).float()


def rand_v(D: int, L: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, L, (D,), generator=gen(seed), dtype=torch.int32)


def int_units(X: torch.Tensor, k: torch.Tensor, L: int, q: int) -> torch.Tensor:
    """4q times the DSSN value, in int64, from floor division (independent of
    the C-style truncation used by the kernel and the twin)."""
    m = -torch.div(k - X, L, rounding_mode="floor")  # ceil((X - k) / L)
    U = 2 * (m * L + k) + 1
    return torch.clamp(U, max=2 * q) + torch.clamp(U - 2 * L, min=0)


def float64_value(X: torch.Tensor, k: torch.Tensor, L: int, q: int) -> torch.Tensor:
    """Corollary 1's general-case formula (App. A, Eqs. 47-48) in float64 with s = (k + 1/2) / q
    and 2 lambda = L / q."""
    x = X.double() / q
    s = (k.double() + 0.5) / q
    two_lam = L / q
    m = torch.ceil((x - s) / two_lam)
    up = torch.clamp(two_lam * m + s, max=1.0)
    lo = torch.clamp(two_lam * (m - 1) + s, min=0.0)
    return (up + lo) / 2


# ------------------------------------------------------------ kernel vs twin

@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("q, L", CASES, ids=str)
def test_matches_twin_every_pixel_and_offset(q, L, device):
    """Every pixel 0..q meets every split index k (all L offsets, random v)."""
    X = grid_pixels(q, seed=L)
    D = X.shape[1]
    v = rand_v(D, L, seed=q + L)
    offsets = torch.arange(L)
    x = to_grid(X, q)
    got = ops.dssn_batch(x.to(device), v.to(device), offsets.to(device), L, q)
    want = reference.dssn_batch(x, v, offsets, L, q)
    assert got.device.type == device and got.dtype == torch.float32
    assert got.shape == (2 * L, D)
    assert torch.equal(got.cpu(), want)
    if q >= 255:  # uint8 pixels (the kernel needs q >= 255 for them)
        Xu = grid_pixels(q, seed=L, top=min(q, 255))
        vu = rand_v(Xu.shape[1], L, seed=q + L)
        got_u = ops.dssn_batch(Xu.to(torch.uint8).to(device), vu.to(device), offsets.to(device), L, q)
        want_f = ops.dssn_batch(to_grid(Xu, q).to(device), vu.to(device), offsets.to(device), L, q)
        assert torch.equal(got_u, want_f)
        assert torch.equal(got_u.cpu(), reference.dssn_batch(Xu.to(torch.uint8), vu, offsets, L, q))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("L", [132, 441])
@pytest.mark.parametrize("xkind", ["float", "uint8"])
def test_per_example_offsets(xkind, L, device):
    q, B, nb = 255, 3, 9
    X = torch.randint(0, q + 1, (B, 2, 5, 7), generator=gen(2))
    x = to_grid(X, q) if xkind == "float" else X.to(torch.uint8)
    D = 70
    v = rand_v(D, L, seed=3)
    offsets = torch.randint(0, L, (B, nb), generator=gen(4))
    got = ops.dssn_batch(x.to(device), v.to(device), offsets.to(device), L, q).cpu()
    assert got.shape == (B * nb, 2, 5, 7)
    assert torch.equal(got, reference.dssn_batch(x, v, offsets, L, q))
    # Row b * nb + j is image b under offset offsets[b, j].
    for b in range(B):
        for j in (0, nb - 1, 4):
            one = ops.dssn_batch(x[b:b + 1].to(device), v.to(device), offsets[b, j:j + 1].to(device), L, q)
            assert torch.equal(got[b * nb + j], one[0].cpu()), (b, j)
    # Shared offsets: [nb], [1, nb] and [B, nb] with equal rows agree.
    shared = offsets[0]
    a = ops.dssn_batch(x.to(device), v.to(device), shared.to(device), L, q)
    assert torch.equal(a, ops.dssn_batch(x.to(device), v.to(device), shared.view(1, -1).to(device), L, q))
    assert torch.equal(a, ops.dssn_batch(x.to(device), v.to(device), shared.expand(B, nb).to(device), L, q))
    assert not torch.equal(a.cpu(), got)  # per-example offsets do matter


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("L", [132, 883])
@pytest.mark.parametrize("out_dtype", [None, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("xkind", ["float", "uint8"])
def test_normalisation_dtype_layout(xkind, channels_last, out_dtype, L, device):
    q = 255
    X = torch.randint(0, q + 1, (2, 3, 5, 6), generator=gen(5))
    X[0, :, 0, :] = 0
    X[0, :, 1, :] = q
    x = to_grid(X, q) if xkind == "float" else X.to(torch.uint8)
    v = rand_v(90, L, seed=6)
    offsets = torch.randint(0, L, (2, 7), generator=gen(7))
    mean = torch.tensor([0.4914, 0.4822, 0.4465])
    std = torch.tensor([0.2023, 0.1994, 0.2010])
    dev = lambda t: t.to(device)  # noqa: E731
    kw = dict(out_dtype=out_dtype, channels_last=channels_last)
    dt = out_dtype or torch.float32
    for norm in ({}, dict(mean=mean, std=std)):
        got = ops.dssn_batch(dev(x), dev(v), dev(offsets), L, q,
                             **{k: dev(t) for k, t in norm.items()}, **kw)
        want = reference.dssn_batch(x, v, offsets, L, q, **norm, **kw)
        assert got.dtype == dt and got.shape == (14, 3, 5, 6)
        assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        assert torch.equal(got.cpu(), want)
        # The same values as the plain float32 NCHW output, rounded once.
        plain = ops.dssn_batch(dev(x), dev(v), dev(offsets), L, q, **{k: dev(t) for k, t in norm.items()})
        assert torch.equal(got.contiguous(), plain.to(dt))
    # Fused normalisation uses channel c's constants for channel c.
    raw = ops.dssn_batch(x, v, offsets, L, q)
    normed = ops.dssn_batch(x, v, offsets, L, q, mean=mean, std=std)
    assert torch.equal(normed, (raw - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))


def test_normalisation_two_d_input_is_per_element():
    """For x [B, D] the 'channel' axis is the element axis: mean and std are [D]."""
    q, L = 255, 50
    X = torch.randint(0, q + 1, (2, 11), generator=gen(8))
    v = rand_v(11, L, seed=9)
    offsets = torch.arange(0, L, 7)
    mean = torch.rand(11, generator=gen(10))
    std = torch.rand(11, generator=gen(11)) + 0.1
    raw = ops.dssn_batch(to_grid(X, q), v, offsets, L, q)
    got = ops.dssn_batch(to_grid(X, q), v, offsets, L, q, mean=mean, std=std)
    assert torch.equal(got, (raw - mean) / std)
    assert torch.equal(got, reference.dssn_batch(to_grid(X, q), v, offsets, L, q, mean=mean, std=std))


def test_channels_last_input_and_thread_count():
    q, L = 255, 220
    X = torch.randint(0, q + 1, (3, 4, 6, 5), generator=gen(12))
    x = to_grid(X, q)
    v = rand_v(120, L, seed=13)
    offsets = torch.arange(L)
    want = ops.dssn_batch(x, v, offsets, L, q)
    assert torch.equal(ops.dssn_batch(x.contiguous(memory_format=torch.channels_last), v, offsets, L, q), want)
    assert torch.equal(ops.dssn_batch(x.transpose(2, 3).contiguous().transpose(2, 3), v, offsets, L, q), want)
    torch.set_num_threads(2)  # restored by _one_thread; several parallel_for tasks
    assert torch.equal(ops.dssn_batch(x, v, offsets, L, q), want)
    assert torch.equal(ops.dssn_batch(x, v, offsets, L, q, channels_last=True).contiguous(), want)


# ------------------------------------------------- the formula, independently

@pytest.mark.parametrize("q, L", CASES, ids=str)
def test_float64_formula_and_quarter_units(q, L):
    X = grid_pixels(q, seed=L + 1)
    D = X.shape[1]
    v = rand_v(D, L, seed=2 * L + q)
    offsets = torch.arange(L)
    out = ops.dssn_batch(to_grid(X, q), v, offsets, L, q).view(2, L, D)
    k = (v.long().view(1, 1, D) + offsets.view(1, L, 1)) % L  # [1, L, D]
    Xb = X.view(2, 1, D)
    want = float64_value(Xb, k, L, q)
    err = (out.double() - want).abs().max().item()
    assert err < 1e-6, err
    # Every value is the float32 quotient of an integer in [0, 4q] by 4q.
    T = torch.round(out.double() * (4 * q))
    assert ((out.double() * (4 * q) - T).abs() <= 1e-3).all()
    assert bool((T >= 0).all()) and bool((T <= 4 * q).all())
    assert torch.equal(out, T.float() / torch.tensor(float(4 * q)))
    assert torch.equal(T.long(), int_units(Xb, k, L, q).expand_as(T))
    # Values lie in [0, 1].
    assert bool((out >= 0).all()) and bool((out <= 1).all())


@pytest.mark.parametrize("L", [255, 256, 441, 3091])
def test_fast_path_form_for_large_lambda(L):
    """For L >= q, value = ([X > k] + min((2k+1)/(2q), 1)) / 2 (Corollary 1, lambda >= 0.5 case, Eq. 14)."""
    q = 255
    X = torch.arange(q + 1)
    v = torch.zeros(q + 1, dtype=torch.int32)
    out = ops.dssn_batch(X.to(torch.uint8).view(1, -1), v, torch.arange(L), L, q).double()  # [L, q+1]
    k = torch.arange(L).view(L, 1).double()
    want = ((X.view(1, -1) > k).double() + torch.clamp((2 * k + 1) / (2 * q), max=1.0)) / 2
    assert (out - want).abs().max().item() < 1e-6
    # k >= q carries no information: exactly 1/2 for every pixel.
    assert bool((out[q:] == 0.5).all())


# ------------------------------ Corollary 1's proof (§4.1): the counting argument

def change_counts(q: int, L: int, v0s) -> torch.Tensor:
    """``[len(v0s), q+1, q+1]``: for each fixed v_i, the number of offsets b in
    [0, L) for which pixel X and pixel X' get different noisy values.

    For a fixed offset the value is non-decreasing in X (checked), so two
    pixels share a value iff they lie in the same run of equal values; the
    count of offsets where they share one is then a product of run indicators."""
    n = len(v0s)
    X = torch.arange(q + 1).repeat(n)
    v = torch.tensor(v0s, dtype=torch.int32).repeat_interleave(q + 1)
    out = ops.dssn_batch(to_grid(X, q).view(1, -1), v, torch.arange(L), L, q)
    codes = torch.round(out.double() * 4 * q).long().view(L, n, q + 1)
    assert bool((codes[..., 1:] >= codes[..., :-1]).all()), "noisy value not monotone in the pixel"
    runs = torch.cat([torch.zeros(L, n, 1, dtype=torch.long),
                      (codes[..., 1:] != codes[..., :-1]).long().cumsum(-1)], dim=-1)  # run index
    one_hot = torch.nn.functional.one_hot(runs).to(torch.float64)  # [L, n, q+1, runs]
    same = torch.einsum("bnxr,bnyr->nxy", one_hot, one_hot)
    return L - same.round().long()


def _check_counts(counts, q, L):
    X = torch.arange(q + 1)
    delta = (X.view(-1, 1) - X.view(1, -1)).abs()
    assert bool((counts <= delta).all()), f"more than |X - X'| offsets change a coordinate (q={q}, L={L})"
    if L >= q:
        assert torch.equal(counts, delta.expand_as(counts))
    # The exact count: the |X - X'| half-steps between X and X' hit min(|X - X'|, L) split indices.
    assert torch.equal(counts, torch.clamp(delta, max=L).expand_as(counts))


@pytest.mark.parametrize("L", [1, 2, 50, 132, 220, 254, 255, 256, 441, 883, 3091])
def test_counting_argument_q255(L):
    q = 255
    v0s = [0, (L * 7) // 11 % L, L - 1]
    _check_counts(change_counts(q, L, v0s), q, L)


def test_counting_argument_q32_every_level():
    q = 32
    g = gen(14)
    for L in range(1, 2 * q + 8):
        v0s = [0, int(torch.randint(0, L, (1,), generator=g)), L - 1]
        _check_counts(change_counts(q, L, v0s), q, L)


# --------------------------------------------------- uniform marginal of s_i

@pytest.mark.parametrize("q, L", [(255, 132), (255, 255), (255, 441), (255, 3091), (7, 3), (7, 20)], ids=str)
def test_split_values_uniform_on_half_steps(q, L):
    """Over the L offsets, coordinate i sees every split index k = 0..L-1 once:
    (a) for random v, each element's values over b are, as a multiset, those
    of k = 0..L-1; (b) for any fixed v_i, the whole map X -> value under offset
    b is the one of k = (v_i + b) mod L, and these maps cover the L split
    indices once each."""
    X = grid_pixels(q, seed=15)[1]  # every pixel once, shuffled
    D = q + 1
    v = rand_v(D, L, seed=16)
    offsets = torch.arange(L)
    out = ops.dssn_batch(to_grid(X, q).view(1, -1), v, offsets, L, q)
    got = torch.round(out.double() * 4 * q).long()  # [L, D]
    every_k = int_units(X.view(1, D), torch.arange(L).view(L, 1), L, q)  # [L, D]
    assert torch.equal(got.sort(dim=0).values, every_k.sort(dim=0).values)
    # (b): element-wise maps of a single v_i, as rows [b, X].
    for vi in sorted({0, L // 3, L - 1}):
        Xall = torch.arange(q + 1)
        rows = ops.dssn_batch(to_grid(Xall, q).view(1, -1), torch.full((q + 1,), vi, dtype=torch.int32),
                              offsets, L, q)
        rows = torch.round(rows.double() * 4 * q).long()
        table = int_units(Xall.view(1, -1), torch.arange(L).view(L, 1), L, q)  # row k
        assert torch.equal(rows, table[(vi + offsets) % L])
        ug, cg = torch.unique(rows, dim=0, return_counts=True)
        ut, ct = torch.unique(table, dim=0, return_counts=True)
        assert torch.equal(ug, ut) and torch.equal(cg, ct)


# ------------------------------------------------------------- chunking

@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("L", [132, 441])
def test_chunking_invariance(L, device):
    q, B = 255, 2
    X = torch.randint(0, q + 1, (B, 3, 4, 4), generator=gen(17))
    x = to_grid(X, q).to(device)
    v = rand_v(48, L, seed=18).to(device)
    full = ops.dssn_batch(x, v, torch.arange(L, device=device), L, q).view(B, L, 3, 4, 4)
    for a in (1, 100, L - 1):
        lo = ops.dssn_batch(x, v, torch.arange(a, device=device), L, q).view(B, a, 3, 4, 4)
        hi = ops.dssn_batch(x, v, torch.arange(a, L, device=device), L, q).view(B, L - a, 3, 4, 4)
        assert torch.equal(torch.cat([lo, hi], dim=1), full)
    perm = torch.randperm(L, generator=gen(19))
    shuffled = ops.dssn_batch(x, v, perm.to(device), L, q).view(B, L, 3, 4, 4)
    assert torch.equal(shuffled, full[:, perm.to(device)])
    # Per-example chunks: image b's row block only depends on its own offsets.
    per = torch.stack([torch.arange(10, 20), torch.arange(30, 40)]).to(device)
    got = ops.dssn_batch(x, v, per, L, q).view(B, 10, 3, 4, 4)
    assert torch.equal(got[0], full[0, 10:20]) and torch.equal(got[1], full[1, 30:40])


def test_empty_cases():
    q, L = 255, 10
    x = torch.zeros(2, 5)
    v = torch.zeros(5, dtype=torch.int32)
    assert ops.dssn_batch(x, v, torch.zeros(0, dtype=torch.int64), L, q).shape == (0, 5)
    assert ops.dssn_batch(torch.zeros(0, 5), v, torch.arange(3), L, q).shape == (0, 5)


# --------------------------------------------------------------- validation

def test_check_grid():
    q = 255
    X = torch.arange(q + 1)
    assert torch.equal(ops.check_grid(to_grid(X, q), q), X.to(torch.int32))
    assert ops.check_grid(to_grid(X, q), q).dtype == torch.int32
    assert torch.equal(ops.check_grid(X.to(torch.uint8), q), X.to(torch.int32))
    for q2 in (1, 7, 4095, 65535):
        X2 = torch.arange(q2 + 1)
        assert torch.equal(ops.check_grid(to_grid(X2, q2), q2), X2.to(torch.int32))
    bad = to_grid(X, q).clone()
    bad[17] += 0.3 / q
    with pytest.raises(ValueError, match="not on the grid"):
        ops.check_grid(bad, q)
    for value in (-1.0 / q, 1.0 + 1.0 / q, 0.5):
        with pytest.raises(ValueError, match="not on the grid"):
            ops.check_grid(torch.tensor([0.0, value]), q)
    with pytest.raises(ValueError, match="not on the grid"):
        ops.check_grid(torch.tensor([3.5 / 7]), 7)  # a half-step
    with pytest.raises(ValueError):
        ops.check_grid(torch.tensor([float("nan")]), q)
    with pytest.raises(ValueError, match=r"outside \[0, q=7\]"):
        ops.check_grid(torch.tensor([3, 8], dtype=torch.int32), 7)
    with pytest.raises(ValueError, match="outside"):
        ops.check_grid(torch.tensor([-1, 0], dtype=torch.int64), 7)
    with pytest.raises(ValueError):
        ops.check_grid(torch.zeros(3), 0)


def _args(q=255, L=50):
    x = to_grid(torch.randint(0, q + 1, (2, 3, 2, 2), generator=gen(20)), q)
    v = rand_v(12, L, seed=21)
    offsets = torch.randint(0, L, (2, 4), generator=gen(22))
    return x, v, offsets, L, q


def test_wrapper_value_errors():
    x, v, offsets, L, q = _args()
    ops.dssn_batch(x, v, offsets, L, q)  # the valid call
    off_grid = x.clone()
    off_grid[1, 2, 1, 0] += 0.4 / q
    with pytest.raises(ValueError, match="grid"):
        ops.dssn_batch(off_grid, v, offsets, L, q)
    for bad_v in (L, -1):
        vb = v.clone()
        vb[5] = bad_v
        with pytest.raises(ValueError, match="v must lie in"):
            ops.dssn_batch(x, vb, offsets, L, q)
    for bad_o in (L, -1):
        ob = offsets.clone()
        ob[1, 3] = bad_o
        with pytest.raises(ValueError, match="offsets must lie in"):
            ops.dssn_batch(x, v, ob, L, q)
    for bad_L in (0, -3, 2.0, True):
        with pytest.raises(ValueError):
            ops.dssn_batch(x, v, offsets, bad_L, q)
    with pytest.raises(ValueError):
        ops.dssn_batch(x, v, offsets, L, 0)
    with pytest.raises(ValueError, match="float32"):
        ops.dssn_batch(x.double(), v, offsets, L, q)
    with pytest.raises(ValueError):
        ops.dssn_batch(torch.tensor([[3, 300]], dtype=torch.int32), v[:2], offsets[:1], L, q)
    with pytest.raises(ValueError, match="both mean and std"):
        ops.dssn_batch(x, v, offsets, L, q, std=torch.ones(3))
    with pytest.raises(RuntimeError, match="both mean and std"):
        OP(x, v, offsets.view(1, -1) if offsets.dim() == 1 else offsets, L, q, None, torch.ones(3), None, False)


def test_wrapper_mean_without_std():
    x, v, offsets, L, q = _args()
    with pytest.raises(ValueError, match="both mean and std"):
        ops.dssn_batch(x, v, offsets, L, q, mean=torch.zeros(3))


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_raw_op_errors(device):
    x, v, offsets, L, q = _args()
    x, v, offsets = x.to(device), v.to(device), offsets.to(device)
    d = dict(device=device)
    OP(x, v, offsets, L, q, None, None, None, False)  # the valid call
    bad_calls = {
        "float64 x": (x.double(), v, offsets, L, q, None, None, None, False),
        "int32 x": (x.mul(q).round().int(), v, offsets, L, q, None, None, None, False),
        "int64 v": (x, v.long(), offsets, L, q, None, None, None, False),
        "int32 offsets": (x, v, offsets.int(), L, q, None, None, None, False),
        "1-D offsets": (x, v, offsets[0], L, q, None, None, None, False),
        "offsets batch 3 != B": (x, v, torch.zeros(3, 2, dtype=torch.long, **d), L, q, None, None, None, False),
        "v length": (x, v[:-1], offsets, L, q, None, None, None, False),
        "L = 0": (x, v, offsets, 0, q, None, None, None, False),
        "L too big": (x, v, offsets, 1 << 22, q, None, None, None, False),
        "q = 0": (x, v, offsets, L, 0, None, None, None, False),
        "uint8 with q < 255": (x.mul(q).round().to(torch.uint8) // 40, v, offsets, L, 7, None, None, None, False),
        "mean without std": (x, v, offsets, L, q, torch.zeros(3, **d), None, None, False),
        "std without mean": (x, v, offsets, L, q, None, torch.ones(3, **d), None, False),
        "mean shape": (x, v, offsets, L, q, torch.zeros(4, **d), torch.ones(4, **d), None, False),
        "mean float64": (x, v, offsets, L, q, torch.zeros(3, dtype=torch.float64, **d),
                         torch.ones(3, dtype=torch.float64, **d), None, False),
        "int out_dtype": (x, v, offsets, L, q, None, None, torch.int32, False),
        "channels_last 3-D": (x.view(2, 3, 4), v, offsets, L, q, None, None, None, True),
        "0-D x": (torch.tensor(0.0, **d), v[:1], offsets, L, q, None, None, None, False),
    }
    for name, args in bad_calls.items():
        with pytest.raises(RuntimeError):
            OP(*args)
            pytest.fail(f"no error for {name}")


# ------------------------------------------------------------------ opcheck

def _opcheck_cases(device):
    q = 255
    d = dict(device=device)
    x4 = to_grid(torch.randint(0, q + 1, (2, 3, 4, 5), generator=gen(23)), q).to(device)
    xu = torch.randint(0, 256, (3, 2, 3, 3), generator=gen(24)).to(torch.uint8).to(device)
    mean, std = torch.tensor([0.5, 0.4, 0.3], **d), torch.tensor([0.2, 0.25, 0.3], **d)
    return {
        "shared": (x4, rand_v(60, 50).to(device), torch.arange(0, 50, 9, **d).view(1, -1), 50, q,
                   None, None, None, False),
        "per_example_norm_bf16_cl": (x4, rand_v(60, 441).to(device),
                                     torch.randint(0, 441, (2, 3), generator=gen(25)).to(device), 441, q,
                                     mean, std, torch.bfloat16, True),
        "uint8_f64": (xu, rand_v(18, 300).to(device), torch.arange(5, **d).view(1, -1), 300, q,
                      None, None, torch.float64, False),
        "two_d_empty_nb": (x4.view(2, -1), rand_v(60, 7).to(device), torch.zeros(1, 0, dtype=torch.long, **d),
                           7, q, None, None, None, False),
    }


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("case", ["shared", "per_example_norm_bf16_cl", "uint8_f64", "two_d_empty_nb"])
def test_opcheck(case, device):
    args = _opcheck_cases(device)[case]
    utils = ("test_schema", "test_autograd_registration", "test_faketensor")
    if case == "shared":
        utils = utils + ("test_aot_dispatch_dynamic",)
    torch.library.opcheck(OP, args, test_utils=utils)


# --------------------------------------------------------------------- CUDA

@pytest.mark.needs_cuda
@pytest.mark.parametrize("L", [1, 132, 255, 256, 3091])
def test_cuda_matches_cpu_bitwise(L):
    q = 255
    X = torch.randint(0, q + 1, (3, 3, 9, 11), generator=gen(26))
    X.view(-1)[: q + 1] = torch.arange(q + 1)
    v = rand_v(297, L, seed=27)
    offsets = torch.randint(0, L, (3, 17), generator=gen(28))
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    for x in (to_grid(X, q), X.to(torch.uint8)):
        for off in (offsets, offsets[0], torch.arange(L)):
            for out_dtype in (None, torch.float16, torch.bfloat16, torch.float64):
                for cl in (False, True):
                    for norm in ({}, dict(mean=mean, std=std)):
                        cpu = ops.dssn_batch(x, v, off, L, q, out_dtype=out_dtype, channels_last=cl, **norm)
                        gpu = ops.dssn_batch(x.cuda(), v.cuda(), off.cuda(), L, q, out_dtype=out_dtype,
                                             channels_last=cl, **{k: t.cuda() for k, t in norm.items()})
                        assert gpu.is_cuda and gpu.dtype == cpu.dtype and gpu.stride() == cpu.stride()
                        assert torch.equal(gpu.cpu(), cpu), (x.dtype, off.shape, out_dtype, cl, bool(norm))
