"""smoothcert::count_votes_: exact equality with the reference (argmax + per-input
bincount), tie and NaN rules of torch.argmax, accumulation, errors."""
import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference
from helpers import cpu_and_cuda, gen

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]


def raw(logits, samples, counts, nonfinite=None):
    torch.ops.smoothcert.count_votes_.default(logits, samples, counts, nonfinite)
    return counts


def make_logits(rows, K, dtype, contiguous=True, seed=0):
    """``[rows, K]`` logits; the non-contiguous variant is a transposed view."""
    if contiguous:
        return torch.randn(rows, K, generator=gen(seed)).to(dtype)
    return torch.randn(K, rows, generator=gen(seed)).to(dtype).t()


def start_counts(B, K, device, seed=1):
    return torch.randint(0, 5, (B, K), generator=gen(seed)).to(device)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("contiguous", [True, False])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("B", [0, 1, 4])
@pytest.mark.parametrize("samples", [1, 3, 50])
@pytest.mark.parametrize("K", [1, 2, 10, 1000])
def test_matches_reference(K, samples, B, dtype, contiguous, device):
    logits = make_logits(B * samples, K, dtype, contiguous, seed=K * 100 + samples).to(device)
    assert logits.is_contiguous() == contiguous or B * samples <= 1 or K == 1
    counts = start_counts(B, K, device)
    want = reference.count_votes_(logits.cpu(), samples, counts.cpu().clone())
    got = ops.count_votes_(logits, samples, counts)
    assert got is counts  # in place, returns its argument
    assert got.dtype == torch.int64 and got.device.type == device
    assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_sliced_and_strided_logits(device):
    big = torch.randn(40, 30, generator=gen(3)).to(device)
    for logits in (big[::2, 3:13], big[5:35, ::3], big.t()[:, :30]):
        samples = 5 if logits.shape[0] % 5 == 0 else 1
        counts = torch.zeros(logits.shape[0] // samples, logits.shape[1], dtype=torch.long, device=device)
        want = reference.count_votes_(logits.cpu(), samples, counts.cpu().clone())
        assert torch.equal(ops.count_votes_(logits, samples, counts).cpu(), want)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_ties_go_to_lowest_index(dtype, device):
    logits = torch.tensor([[1.0, 1.0, 0.0],
                           [0.0, 2.0, 2.0],
                           [3.0, 3.0, 3.0],
                           [-1.0, -5.0, -1.0],
                           [0.0, -0.0, 0.0],
                           [-0.0, 0.0, 0.0],
                           [float("-inf"), float("-inf"), float("-inf")],
                           [float("inf"), 1.0, float("inf")]], dtype=dtype, device=device)
    counts = torch.zeros(8, 3, dtype=torch.long, device=device)
    ops.count_votes_(logits, 1, counts, validate=False)
    winners = counts.argmax(dim=1).cpu()
    assert winners.tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert torch.equal(winners, logits.cpu().float().argmax(dim=1))
    assert torch.equal(counts.sum(dim=1).cpu(), torch.ones(8, dtype=torch.long))


def test_ties_from_low_precision_rounding():
    """float32 logits that differ only below bfloat16 precision tie after the cast."""
    logits = torch.tensor([[1.0, 1.0 + 2 ** -12, 0.5]] * 3)
    f32 = ops.count_votes_(logits, 3, torch.zeros(1, 3, dtype=torch.long))
    bf16 = ops.count_votes_(logits.bfloat16(), 3, torch.zeros(1, 3, dtype=torch.long))
    assert f32.tolist() == [[0, 3, 0]] and bf16.tolist() == [[3, 0, 0]]


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_float64_logits_compared_in_float64(device):
    """Doubles that round to the same float32 must not tie: the winner is the
    float64 argmax (a float32 comparison would silently give class 0)."""
    logits = torch.tensor([[1.0, 1.0 + 2 ** -40, 0.0],
                           [1e-300, 2e-300, 0.0],
                           [-1e-50, 0.0, -2e-50],
                           [1e300, 1e301, 1e302]], dtype=torch.float64, device=device)
    counts = ops.count_votes_(logits, 1, torch.zeros(4, 3, dtype=torch.long, device=device))
    assert counts.argmax(dim=1).tolist() == logits.argmax(dim=1).tolist() == [1, 1, 1, 2]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_nan_rows_follow_torch_argmax(dtype, device):
    nan, inf = float("nan"), float("inf")
    logits = torch.tensor([[nan, 1.0, 2.0],
                           [1.0, nan, 2.0],
                           [1.0, 2.0, nan],
                           [inf, nan, nan],
                           [nan, nan, nan],
                           [5.0, 1.0, 2.0]], dtype=dtype, device=device)
    counts = torch.zeros(6, 3, dtype=torch.long, device=device)
    ops.count_votes_(logits, 1, counts, validate=False)
    expect = logits.cpu().argmax(dim=1)
    assert expect.tolist() == [0, 1, 2, 1, 0, 0]  # NaN is the maximum, the first NaN wins
    assert torch.equal(counts.argmax(dim=1).cpu(), expect)
    assert torch.equal(counts.cpu(), reference.count_votes_(logits.cpu(), 1, torch.zeros(6, 3, dtype=torch.long)))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("samples", [1, 4, 64])
def test_nonfinite_rows_counted_per_input(samples, dtype, device):
    """The fused finiteness test counts, per input, the rows holding any NaN or
    +-inf, exactly as the reference; votes are unchanged by passing it."""
    B, K = 5, 7
    logits = make_logits(B * samples, K, torch.float32, seed=samples)
    spots = torch.randint(0, B * samples * K, (3 * B,), generator=gen(samples + 1))
    values = torch.tensor([float("nan"), float("inf"), float("-inf")]).repeat(B)
    logits.view(-1)[spots] = values
    logits = logits.to(dtype=dtype, device=device)
    nonfinite = torch.full((B,), 2, dtype=torch.long, device=device)
    counts = start_counts(B, K, device)
    plain = ops.count_votes_(logits, samples, start_counts(B, K, device), validate=False)
    ops.count_votes_(logits, samples, counts, nonfinite)
    want_nf = torch.full((B,), 2, dtype=torch.long)
    want = reference.count_votes_(logits.cpu(), samples, start_counts(B, K, "cpu"), want_nf)
    assert torch.equal(counts.cpu(), want) and torch.equal(plain, counts)
    assert torch.equal(nonfinite.cpu(), want_nf)
    bad_rows = (~torch.isfinite(logits.cpu().float()).all(dim=1)).view(B, samples).sum(dim=1)
    assert torch.equal(want_nf - 2, bad_rows) and int(bad_rows.sum()) > 0


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_finite_extremes_are_not_flagged(device):
    big = torch.finfo(torch.float32).max
    logits = torch.tensor([[big, -big, 0.0], [1e-45, -0.0, 3.0]], device=device)
    nonfinite = torch.zeros(2, dtype=torch.long, device=device)
    ops.count_votes_(logits, 1, torch.zeros(2, 3, dtype=torch.long, device=device), nonfinite)
    assert nonfinite.tolist() == [0, 0]


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_accumulates_across_calls(device):
    B, K, samples = 3, 7, 20
    counts = torch.zeros(B, K, dtype=torch.long, device=device)
    want = torch.zeros(B, K, dtype=torch.long)
    for seed in range(4):
        logits = make_logits(B * samples, K, torch.float32, seed=seed).to(device)
        ops.count_votes_(logits, samples, counts)
        reference.count_votes_(logits.cpu(), samples, want)
    assert torch.equal(counts.cpu(), want)
    assert torch.equal(counts.sum(dim=1).cpu(), torch.full((B,), 4 * samples))


def test_writes_only_into_counts_view_rows():
    """Counting into a row slice of a bigger table (as Smooth does) leaves other rows alone."""
    table = torch.zeros(6, 4, dtype=torch.long)
    logits = make_logits(2 * 5, 4, torch.float32, seed=9)
    ops.count_votes_(logits, 5, table[2:4])
    assert torch.equal(table[2:4], reference.count_votes_(logits, 5, torch.zeros(2, 4, dtype=torch.long)))
    assert int(table[:2].abs().sum() + table[4:].abs().sum()) == 0


def test_large_batch_thread_invariance():
    logits = make_logits(200_000, 10, torch.float32, seed=11)
    counts = ops.count_votes_(logits, 1000, torch.zeros(200, 10, dtype=torch.long))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.count_votes_(logits, 1000, torch.zeros(200, 10, dtype=torch.long))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(counts, one)
    assert torch.equal(counts, reference.count_votes_(logits, 1000, torch.zeros(200, 10, dtype=torch.long)))


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("device", cpu_and_cuda())
def test_errors(device):
    long = dict(dtype=torch.long, device=device)
    logits = torch.zeros(6, 3, device=device)
    cases = [
        ((torch.zeros(6, device=device), 1, torch.zeros(6, 3, **long)), "logits must be 2-D"),
        ((torch.zeros(6, 3, 1, device=device), 1, torch.zeros(6, 3, **long)), "logits must be 2-D"),
        ((logits, 1, torch.zeros(6, 4, **long)), "the classifier returned 3 classes but counts has 4"),
        ((logits, 2, torch.zeros(2, 3, **long)), "logits has 6 rows but counts has 2 inputs x 2 samples"),
        ((logits, 1, torch.zeros(5, 3, **long)), "logits has 6 rows"),
        ((logits, 1, torch.zeros(6, 3, dtype=torch.int32, device=device)), "counts must be int64"),
        ((logits, 1, torch.zeros(6, 3, dtype=torch.float32, device=device)), "counts must be int64"),
        ((logits, 0, torch.zeros(6, 3, **long)), "samples must be >= 1"),
        ((logits, -3, torch.zeros(6, 3, **long)), "samples must be >= 1"),
        ((logits, 1, torch.zeros(3, 6, **long).t()), "counts must be contiguous"),
        ((logits, 1, torch.zeros(18, **long)), "counts must be 2-D"),
        ((torch.zeros(6, 3, dtype=torch.long, device=device), 1, torch.zeros(6, 3, **long)),
         "logits must be floating point"),
    ]
    counts = torch.zeros(6, 3, **long)
    cases += [
        ((logits, 1, counts, torch.zeros(5, **long)), r"nonfinite must be \[B\] = \[6\]"),
        ((logits, 1, counts, torch.zeros(6, 1, **long)), "nonfinite must be"),
        ((logits, 1, counts, torch.zeros(6, dtype=torch.int32, device=device)), "nonfinite must be int64"),
        ((logits, 1, counts, torch.zeros(12, **long)[::2]), "nonfinite must be contiguous"),
    ]
    for args, msg in cases:
        counts_before = args[2].clone()
        with pytest.raises(RuntimeError, match=msg):
            raw(*args)
        assert torch.equal(args[2], counts_before)  # nothing written on error


@pytest.mark.needs_cuda
def test_mixed_devices_rejected():
    with pytest.raises(RuntimeError, match="count_votes_: logits on"):
        raw(torch.zeros(4, 3, device="cuda"), 1, torch.zeros(4, 3, dtype=torch.long))


@pytest.mark.needs_cuda
def test_nonfinite_on_another_device_rejected():
    logits = torch.zeros(4, 3, device="cuda")
    with pytest.raises(RuntimeError, match="count_votes_: nonfinite on"):
        raw(logits, 1, torch.zeros(4, 3, dtype=torch.long, device="cuda"), torch.zeros(4, dtype=torch.long))
