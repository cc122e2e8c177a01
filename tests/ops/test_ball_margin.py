"""The memory certificate's pairwise ball op: kernel vs twin (same bits), vs an
independent brute force, exact threshold and duplicate placements, CPU vs CUDA,
streaming, opcheck/compile, and the error paths."""
import math

import numpy as np
import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference
from helpers import cpu_and_cuda, gen

OP = torch.ops.smoothcert.ball_margin.default


def case(B, N, D, classes=3, seed=0, scale=1.0, offset=0.0):
    g = gen(seed)
    xq = torch.rand(B, D, generator=g) * scale + offset
    xm = torch.rand(N, D, generator=g) * scale + offset
    radius = torch.rand(N, generator=g, dtype=torch.float64) * scale * math.sqrt(D) * 0.3
    mem_class = torch.randint(0, classes, (N,), generator=g)
    query_class = torch.randint(-1, classes, (B,), generator=g)
    return xq, xm, radius, mem_class, query_class


def equal(a, b):
    return all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(a, b))


GRID = [(1, 1, 1), (3, 7, 5), (5, 40, 8), (9, 300, 13), (33, 257, 64), (4, 1000, 784), (2, 600, 3072), (70, 90, 9)]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("p", [2, 1])
@pytest.mark.parametrize("B, N, D", GRID, ids=str)
def test_kernel_matches_twin_bit_for_bit(B, N, D, p, device):
    args = case(B, N, D, seed=B + N + D)
    got = ops.ball_margin(*(t.to(device) for t in args), p=p)
    want = reference.ball_margin(*args, p=p)
    assert equal(got, want)
    assert all(t.device.type == device for t in got)


def brute_force(xq, xm, radius, mem_class, query_class, p):
    """Plain float64 numpy loops with numpy's own summation (an independent formula)."""
    q, m = xq.double().numpy(), xm.double().numpy()
    out = []
    for b in range(q.shape[0]):
        d = np.linalg.norm(q[b] - m, ord=p, axis=1)
        other = mem_class.numpy() != int(query_class[b])
        marg = np.where(other, d - radius.numpy(), np.inf)
        out.append((marg.min(), d.min(), marg, d))
    return out


@pytest.mark.parametrize("p", [1, 2])
def test_agrees_with_brute_force(p):
    args = case(12, 500, 100, seed=5)
    m, mi, n, ni = ops.ball_margin(*args, p=p)
    for b, (bm, bn, marg, d) in enumerate(brute_force(*args, p)):
        assert math.isclose(float(m[b]), bm, rel_tol=1e-12, abs_tol=1e-12)
        assert math.isclose(float(n[b]), bn, rel_tol=1e-12)
        assert abs(marg[int(mi[b])] - bm) <= 1e-12 * (1 + abs(bm)) and abs(d[int(ni[b])] - bn) <= 1e-12 * bn


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_large_norms_with_tiny_differences_stay_exact(device):
    # |x|^2 ~ 1e8 while distances are ~1e-1: float32 screening alone cannot tell the
    # pairs apart, so the exact recomputation decides every minimum.
    args = case(6, 400, 512, seed=9, scale=1e-2, offset=500.0)
    assert equal(ops.ball_margin(*(t.to(device) for t in args)), reference.ball_margin(*args))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("p", [1, 2])
def test_points_exactly_at_threshold_distances(device, p):
    # Integer coordinates: every distance is exact. Stored balls around e_0 * k.
    D = 10
    xm = torch.zeros(6, D)
    for k in range(6):
        xm[k, 0] = 3.0 * k
    radius = torch.tensor([1.0, 2.0, 1.5, 3.0, 0.0, 2.0], dtype=torch.float64)
    mem_class = torch.tensor([0, 1, 0, 1, 2, 1])
    q = torch.zeros(4, D)
    q[0, 0] = 1.0   # touching ball 0 from inside its boundary: D=1 = R_0 -> margin exactly 0
    q[1, 0] = 6.0   # a duplicate of stored point 2
    q[2, 0] = 4.5   # halfway between stored 1 (R 2) and 2 (R 1.5): margins 1.5-2 = -0.5 and 1.5-1.5 = 0
    q[3, 0] = 12.0  # duplicate of stored point 4 (radius 0)
    qc = torch.tensor([1, 0, 2, -1])
    m, mi, n, ni = (t.cpu() for t in ops.ball_margin(*(t.to(device) for t in (q, xm, radius, mem_class, qc)), p=p))
    assert (float(m[0]), int(mi[0])) == (0.0, 0) and (float(n[0]), int(ni[0])) == (1.0, 0)
    assert (float(n[1]), int(ni[1])) == (0.0, 2)  # duplicate
    assert (float(m[1]), int(mi[1])) == (0.0, 3)  # same-class ball 2 excluded; ball 3: 3 - 3 (ball 1: 3 - 2)
    assert (float(m[2]), int(mi[2])) == (-0.5, 1)
    # abstain: every ball counts; balls 3 (D 3, R 3) and 4 (D 0, R 0) tie at 0: the lower index
    assert (float(m[3]), int(mi[3])) == (0.0, 3) and (float(n[3]), int(ni[3])) == (0.0, 4)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_ties_go_to_the_lowest_index(device):
    xm = torch.zeros(5, 3)
    xm[:, 0] = torch.tensor([2.0, -2.0, 2.0, 0.0, -2.0])
    radius = torch.tensor([0.5, 0.5, 0.5, 0.0, 0.5], dtype=torch.float64)
    mem_class = torch.tensor([1, 1, 1, 0, 1])
    q = torch.zeros(1, 3)
    m, mi, n, ni = ops.ball_margin(q.to(device), xm.to(device), radius.to(device), mem_class.to(device),
                                   torch.tensor([0], device=device))
    assert (float(m[0]), int(mi[0])) == (1.5, 0) and (float(n[0]), int(ni[0])) == (0.0, 3)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_empty_sets(device):
    xq, xm, radius, mc, _ = case(3, 4, 6)
    same = torch.full((3,), 1)
    m, mi, n, ni = ops.ball_margin(xq.to(device), xm.to(device), radius.to(device), torch.ones(4, dtype=torch.long,
                                   device=device), same.to(device))
    assert torch.isinf(m).all() and (mi == -1).all() and torch.isfinite(n).all()
    m, mi, n, ni = ops.ball_margin(xq.to(device), xm[:0].to(device), radius[:0].to(device), mc[:0].to(device),
                                   same.to(device))
    assert torch.isinf(m).all() and torch.isinf(n).all() and (mi == -1).all() and (ni == -1).all()
    out = ops.ball_margin(xq[:0].to(device), xm.to(device), radius.to(device), mc.to(device), same[:0].to(device))
    assert all(t.shape == (0,) for t in out)


def test_independent_of_thread_count_and_isa(monkeypatch):
    args = case(40, 700, 200, seed=3)
    base = ops.ball_margin(*args)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert equal(ops.ball_margin(*args), base)
    finally:
        torch.set_num_threads(old)
    monkeypatch.setenv("SMOOTHCERT_CPU_BASELINE", "1")
    assert equal(ops.ball_margin(*args), base)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_streamed_memory_matches_one_call(device):
    xq, xm, radius, mc, qc = case(7, 1001, 33, seed=4)
    one = ops.ball_margin(xq.to(device), xm.to(device), radius, mc, qc)
    # The memory stays on the host; chunks of 100 rows go to the queries' device.
    streamed = ops.ball_margin(xq.to(device), xm, radius, mc, qc, chunk_rows=100)
    assert equal(one, streamed)


@pytest.mark.needs_cuda
def test_cpu_and_cuda_give_the_same_bits():
    for B, N, D in GRID:
        args = case(B, N, D, seed=B * N)
        for p in (1, 2):
            assert equal(ops.ball_margin(*args, p=p), ops.ball_margin(*(t.cuda() for t in args), p=p))


@pytest.mark.needs_cuda
def test_more_query_tiles_than_a_grid_dimension_holds():
    # 4.3M queries are 67188 tiles of 64, past gridDim.y's 65535: every query, the
    # last ones included, must still be screened (nearest is finite for N > 0).
    args = case(4_300_000, 3, 2, seed=11)
    assert equal(ops.ball_margin(*args), ops.ball_margin(*(t.cuda() for t in args)))


NEG_NAN, INF = math.copysign(math.nan, -1.0), math.inf


def skip_non_finite_minima(xq, xm, radius, mem_class, query_class, p):
    """The kernels' rule for non-finite values, in plain floats: a NaN never wins, nor does +inf
    (an empty set gives (+inf, -1)), -inf can; ties go to the lowest index."""
    out = ([], [], [], [])
    for b in range(xq.shape[0]):
        t = xq[b].double() - xm.double()
        d = (t * t).sum(1).sqrt() if p == 2 else t.abs().sum(1)  # exact: small integer coordinates
        best = {"margin": (INF, -1), "nearest": (INF, -1)}
        for i in range(xm.shape[0]):
            di, ri = float(d[i]), float(radius[i])
            if di < best["nearest"][0]:
                best["nearest"] = (di, i)
            if int(mem_class[i]) != int(query_class[b]) and di - ri < best["margin"][0]:
                best["margin"] = (di - ri, i)
        for k, v in enumerate(best["margin"] + best["nearest"]):
            out[k].append(v)
    return (torch.tensor(out[0], dtype=torch.float64), torch.tensor(out[1]),
            torch.tensor(out[2], dtype=torch.float64), torch.tensor(out[3]))


NON_FINITE = {  # (tensor, index, value) entries to overwrite
    "radius -nan": [("radius", 0, NEG_NAN)],
    "radius +nan": [("radius", 1, math.nan)],
    "radius every nan": [("radius", i, NEG_NAN if i % 2 else math.nan) for i in range(4)],
    "radius +inf": [("radius", 3, INF)],
    "radius every -inf": [("radius", i, -INF) for i in range(4)],
    "memory -nan": [("xm", (1, 0), NEG_NAN)],
    "memory +nan": [("xm", (2, 1), math.nan)],
    "memory +inf": [("xm", (0, 0), INF)],
    "query -nan": [("xq", (0, 1), NEG_NAN)],
    "query +nan": [("xq", (1, 1), math.nan)],
    "query -inf": [("xq", (1, 0), -INF)],
}


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("poison", list(NON_FINITE), ids=str)
def test_non_finite_values_without_validation(poison, p, device):
    # A NaN with its sign bit set sorts below every number as an unsigned key: the
    # CUDA minima must skip it (and +inf) exactly where the CPU kernel does.
    t = {"xq": torch.tensor([[0.0, 0.0], [3.0, 0.0]]),
         "xm": torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [4.0, 0.0]]),
         "radius": torch.tensor([0.5, 0.25, 1.0, 2.0], dtype=torch.float64)}
    for name, idx, value in NON_FINITE[poison]:
        t[name][idx] = value
        assert math.copysign(1.0, float(t[name][idx])) == math.copysign(1.0, value)  # the sign bit survived
    args = (t["xq"], t["xm"], t["radius"], torch.tensor([1, 1, 0, 1]), torch.tensor([0, -1]))
    got = ops.ball_margin(*(a.to(device) for a in args), p=p, validate=False)
    assert equal(got, skip_non_finite_minima(*args, p))
    if "nan" not in poison:  # the twin's min() propagates NaN, so it is the oracle only without one
        assert equal(got, reference.ball_margin(*args, p=p))


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("p", [1, 2])
def test_opcheck(device, p):
    args = tuple(t.to(device) for t in case(5, 30, 12, seed=2))
    torch.library.opcheck(OP, args + (p,))


def test_compiles_fullgraph():
    args = case(4, 50, 16, seed=1)
    fn = torch.compile(lambda *a: OP(*a, 2), fullgraph=True)
    assert equal(fn(*args), OP(*args, 2))


def test_bad_inputs_are_refused():
    xq, xm, radius, mc, qc = case(3, 10, 6)
    with pytest.raises(ValueError, match="p .the norm."):
        ops.ball_margin(xq, xm, radius, mc, qc, p=3)
    with pytest.raises(ValueError, match="element shape"):
        ops.ball_margin(xq, xm[:, :5], radius, mc, qc)
    with pytest.raises(ValueError, match="NaN"):
        ops.ball_margin(torch.where(torch.arange(6) == 2, float("nan"), xq), xm, radius, mc, qc)
    with pytest.raises(ValueError, match="stored points contains .* NaN"):
        ops.ball_margin(xq, torch.where(torch.arange(6) == 2, float("inf"), xm[:1]).expand(10, 6), radius, mc, qc)
    with pytest.raises(ValueError, match="finite and >= 0"):
        ops.ball_margin(xq, xm, -radius, mc, qc)
    with pytest.raises(ValueError, match="abstentions are never stored"):
        ops.ball_margin(xq, xm, radius, mc - 5, qc)
    with pytest.raises(ValueError, match="one entry per stored point"):
        ops.ball_margin(xq, xm, radius[:3], mc, qc)
    with pytest.raises(RuntimeError, match="float32"):
        OP(xq.double(), xm.double(), radius, mc, qc, 2)
    with pytest.raises(RuntimeError, match="float64"):
        OP(xq, xm, radius.float(), mc, qc, 2)
    with pytest.raises(RuntimeError, match="p must be 1 or 2"):
        OP(xq, xm, radius, mc, qc, 0)
