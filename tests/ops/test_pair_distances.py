"""The region allocation's pairwise op: kernel vs twin (same bits) over a shape grid,
exact-threshold and duplicate placements, the tiled edge list vs brute force, CPU vs
CUDA, opcheck/compile, and the error paths."""
import math

import numpy as np
import pytest
import torch

from smoothcert import ops
from smoothcert.ops import reference
from helpers import cpu_and_cuda, gen

OP = torch.ops.smoothcert.pair_distances.default


def case(B, N, D, seed=0, frac=0.5):
    g = gen(seed)
    xq, xm = torch.rand(B, D, generator=g), torch.rand(N, D, generator=g)
    # Reaches around the typical distance, so both kept and dropped pairs occur.
    typical = math.sqrt(D / 6.0)
    rq = torch.rand(B, generator=g, dtype=torch.float64) * typical * frac * 2
    rm = torch.rand(N, generator=g, dtype=torch.float64) * typical * frac * 2
    return xq, xm, rq, rm


GRID = [(0, 5, 3), (5, 0, 3), (1, 1, 1), (3, 7, 5), (5, 40, 8), (9, 300, 13), (33, 257, 64), (6, 100, 784),
        (2, 70, 3072)]


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("B, N, D", GRID, ids=str)
def test_kernel_matches_twin_bit_for_bit(B, N, D, device):
    args = case(B, N, D, seed=B + N + D)
    got = ops.pair_distances(*(t.to(device) for t in args)).cpu()
    want = reference.pair_distances(*args)
    assert got.shape == (B, N) and got.dtype == torch.float64
    assert torch.equal(got, want)
    if B and N:
        kept = torch.isfinite(want)
        assert 0 < int(kept.sum()) < B * N or B * N < 4  # the grid exercises both sides


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_cpu_matches_cuda(device):
    if device == "cpu":
        pytest.skip("CPU vs CUDA needs a GPU")
    args = case(40, 500, 784, seed=3)
    assert torch.equal(ops.pair_distances(*args), ops.pair_distances(*(t.cuda() for t in args)).cpu())


def test_exact_threshold_is_strict_and_duplicates_kept():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    # D(0, 1) = 5 exactly: kept only when the reaches sum to more than 5.
    d = ops.pair_distances(x, x, torch.tensor([2.5, 2.5, 0.0], dtype=torch.float64),
                           torch.tensor([2.5, 2.5, 0.0], dtype=torch.float64))
    assert math.isinf(d[0, 1]) and math.isinf(d[1, 0])
    assert d[0, 2] == 0.0 and d[0, 0] == 0.0  # duplicates: distance 0 < 2.5
    assert math.isinf(d[2, 2])  # 0 < 0 + 0 is false
    d = ops.pair_distances(x, x, torch.tensor([2.5, 2.5 + 1e-12, 2.5], dtype=torch.float64),
                           torch.tensor([2.5, 2.5, 2.5], dtype=torch.float64))
    assert d[1, 0] == 5.0


def test_screening_never_drops_a_near_threshold_pair():
    # Far from the origin, float32 dot products lose every digit of a small distance;
    # the screening interval must still send the pair to the exact path.
    g = gen(7)
    base = torch.full((1, 512), 1000.0)
    x = torch.cat([base + 1e-3 * torch.rand(30, 512, generator=g)]).float()
    exact = reference.exact_distances(x.repeat_interleave(30, 0), x.repeat(30, 1)).view(30, 30)
    reach = torch.full((30,), float(exact[exact > 0].median()) / 2, dtype=torch.float64)
    assert torch.equal(ops.pair_distances(x, x, reach, reach), reference.pair_distances(x, x, reach, reach))


def brute_edges(x, reach):
    n = x.shape[0]
    d = reference.exact_distances(x.repeat_interleave(n, 0), x.repeat(n, 1)).view(n, n)
    out = [(i, j, float(d[i, j])) for i in range(n) for j in range(i + 1, n) if d[i, j] < reach[i] + reach[j]]
    return out


@pytest.mark.parametrize("tile", [None, 1, 7, 64])
def test_pair_edges_match_brute_force(tile):
    g = gen(11)
    x = torch.rand(60, 10, generator=g)
    x[10] = x[3]  # a duplicate pair
    reach = torch.rand(60, generator=g, dtype=torch.float64) * 0.8
    reach[5] = 0.0
    i, j, d = ops.pair_edges(x, reach, tile_rows=tile)
    got = list(zip(i.tolist(), j.tolist(), d.tolist()))
    assert got == brute_edges(x, reach)
    assert (3, 10, 0.0) in got


def test_opcheck_and_compile():
    args = case(5, 9, 16, seed=1)
    torch.library.opcheck(OP, (args[0], args[1], args[2], args[3]))
    f = torch.compile(lambda a, b, c, e: OP(a, b, c, e), fullgraph=True, backend="eager")
    assert torch.equal(f(*args), OP(*args))


def test_errors():
    x = torch.rand(4, 3)
    r = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="element shape"):
        ops.pair_distances(x, torch.rand(4, 2), r, r)
    with pytest.raises(ValueError, match="one entry per point"):
        ops.pair_distances(x, x, r[:3], r)
    with pytest.raises(ValueError, match="finite and >= 0"):
        ops.pair_distances(x, x, -r, r)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN|inf|finite"):
        ops.pair_distances(bad, x, r, r)
    with pytest.raises(ValueError, match="finite and >= 0"):
        ops.pair_edges(x, torch.tensor([1.0, float("inf"), 0.0, 0.0], dtype=torch.float64))
    with pytest.raises(RuntimeError, match="float64"):
        OP(x, x, r.float(), r)
    with pytest.raises(RuntimeError, match="2-D"):
        OP(x.view(-1), x, r, r)
