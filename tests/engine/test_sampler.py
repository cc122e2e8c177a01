"""The public Monte-Carlo engine: draws are a function of (seed, stream, input index, sample
index) alone, so counter ranges and input subsets can be drawn separately and their votes add
up exactly; noise kinds and reducers plug into the one loop; no other module writes it."""
import os
import re

import pytest
import torch

from smoothcert import engine, ops
from smoothcert.engine import DssnOffsets, NoiseKind, PairDotSums, PairHits, Sampler, register_noise

from helpers import LinearClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def setup(B=5, D=16):
    w = torch.linspace(-1, 1, D)
    X = (torch.arange(B * D).view(B, D) % 7).float() / 7
    return LinearClassifier(w, 0.05), X, torch.arange(10, 10 + B), torch.full((1, 1), 0.8)


@pytest.mark.parametrize("noise", ["gaussian", "uniform", "ssn", "antithetic-gaussian", "gaussian-pairs"])
def test_counter_ranges_and_subsets_add_up_to_one_draw(noise):
    model, X, ids, table = setup()
    s = Sampler(model, 2, noise=noise, seed=7, stream=ops.ESTIMATION_STREAM, batch_size=64)
    whole = s.draw(X, ids, table, 300)
    assert int(whole.sum()) == 5 * 300
    parts = s.draw(X, ids, table, 100) + s.draw(X, ids, table, 200, start=100)
    assert torch.equal(whole, parts)
    # Any subset of inputs, any batch size: the same rows.
    sub = s.replace(batch_size=1000).draw(X[[3, 1]], ids[[3, 1]], table, 300)
    assert torch.equal(sub, whole[[3, 1]])
    # The draws depend on the seed and the stream.
    assert not torch.equal(s.replace(seed=8).draw(X, ids, table, 300), whole)
    assert not torch.equal(s.replace(stream=ops.SELECTION_STREAM).draw(X, ids, table, 300), whole)


class LocalSplit:
    """SampleSplit's share of a range without a process group (``combine`` keeps this rank's
    votes), so the ranks' shares can be drawn one after another and summed here."""

    def __init__(self, rank, world):
        from smoothcert.drivers.distributed import SampleSplit

        self.inner = SampleSplit(rank, world)
        self.ranges = []

    def part(self, start, num, unit=1):
        got = self.inner.part(start, num, unit)
        self.ranges.append(got)
        return got

    def combine(self, votes, nonfinite):
        return votes, nonfinite


@pytest.mark.parametrize("noise", ["gaussian", "antithetic-gaussian"])
@pytest.mark.parametrize("world", [2, 3])
def test_split_shares_of_a_range_add_up_to_the_whole_draw(noise, world):
    model, X, ids, table = setup()
    s = Sampler(model, 2, noise=noise, seed=7, stream=ops.ESTIMATION_STREAM, batch_size=64)
    whole = s.draw(X, ids, table, 302, start=40)
    splits = [LocalSplit(r, world) for r in range(world)]
    total = sum(s.replace(split=sp).draw(X, ids, table, 302, start=40) for sp in splits)
    assert torch.equal(total, whole)
    ranges = [sp.ranges[0] for sp in splits]
    assert ranges[0][0] == 40 and sum(m for _, m in ranges) == 302  # consecutive, disjoint, covering
    assert all(a + m == b for (a, m), (b, _) in zip(ranges, ranges[1:]))
    if noise == "antithetic-gaussian":  # whole pairs only
        assert all(a % 2 == 0 and m % 2 == 0 for a, m in ranges)


def test_a_split_draw_refuses_reducers_and_sequential_jobs():
    model, X, ids, table = setup()
    s = Sampler(model, 2, noise="gaussian-pairs", seed=7, batch_size=64, split=LocalSplit(0, 2))
    with pytest.raises(ValueError, match="only for vote counts"):
        s.draw(X, ids, table, 100, reducer=PairHits(torch.zeros(5, dtype=torch.long)))
    with pytest.raises(ValueError, match="cannot split"):
        list(engine.run_jobs(s.replace(noise="gaussian"), [], in_flight=4))


def test_votes_equal_the_kernel_twin_brute_force():
    model, X, ids, table = setup(B=3)
    s = Sampler(model, 2, seed=3, stream=ops.ESTIMATION_STREAM, batch_size=50)
    votes = s.draw(X, ids, table, 120, start=40)
    batch = ops.reference.sample_noise(X, 0.8, 120, ids=ids, sample_start=40, seed=3, stream=ops.ESTIMATION_STREAM)
    want = torch.zeros(3, 2, dtype=torch.long)
    for b, c in enumerate(model(batch).argmax(1).view(3, 120)):
        want[b] = torch.bincount(c, minlength=2)
    assert torch.equal(votes, want)


def test_pair_reducers_equal_brute_force():
    model, X, ids, table = setup(B=4)
    top = torch.tensor([0, 1, 1, 0])
    hits = PairHits(top)
    Sampler(model, 2, noise="antithetic-gaussian", seed=2, stream=ops.DIPOLE_STREAM, batch_size=33).draw(
        X, ids, table, 80, reducer=hits)
    batch = ops.sample_noise(X, 0.8, 80, ids=ids, seed=2, stream=ops.DIPOLE_STREAM, antithetic=True)
    h = (model(batch).argmax(1).view(4, 40, 2) == top.view(4, 1, 1))
    cs, cn, cx = hits.result()
    assert torch.equal(cs, (h[..., 0] & h[..., 1]).sum(1)) and torch.equal(cn, (h[..., 0] & ~h[..., 1]).sum(1))
    assert torch.equal(cx, (h[..., 0] ^ h[..., 1]).sum(1))
    dots = PairDotSums(top)
    Sampler(model, 2, noise="gaussian-pairs", seed=2, batch_size=33).draw(X, ids, table, 80, reducer=dots)
    batch, d = ops.sample_noise_pairs(X, 0.8, 80, ids=ids, seed=2)
    both = (model(batch).argmax(1).view(4, 40, 2) == top.view(4, 1, 1)).all(2)
    want = torch.ceil(torch.where(both, d, torch.zeros_like(d)) * 2.0 ** 24).long().sum(1).tolist()
    assert dots.result() == want


def test_pair_kinds_refuse_odd_ranges():
    model, X, ids, table = setup()
    with pytest.raises(ValueError, match="whole pairs"):
        Sampler(model, 2, noise="gaussian-pairs").draw(X, ids, table, 11)


def test_dssn_offsets_enumerate_without_seed_or_sigma():
    model, X, ids, _ = setup(B=2)
    X = torch.round(X * 16) / 16
    L, q = 12, 16
    v = ops.dssn_offsets(L, 16, 0)
    s = Sampler(model, 2, noise=DssnOffsets(v, L, q), batch_size=5)
    votes = s.draw(X, ids, None, L)
    assert torch.equal(votes, s.replace(seed=99, batch_size=100).draw(X, ids, None, L))
    batch = ops.dssn_batch(X, v, torch.arange(L).view(1, L), L, q)
    want = torch.stack([torch.bincount(r, minlength=2) for r in model(batch).argmax(1).view(2, L)])
    assert torch.equal(votes, want)


def test_a_registered_noise_kind_plugs_into_the_loop():
    @register_noise("test-zero-noise")
    class Zero(NoiseKind):
        NEEDS_SIGMA = False

        def bind(self, *, seed, stream, clamp, out_dtype, channels_last):
            return lambda x, ids, table, m, start: (x.repeat_interleave(m, dim=0), None)

    try:
        model, X, ids, _ = setup()
        votes = Sampler(model, 2, noise="test-zero-noise").draw(X, ids, None, 9)
        clean = model(X).argmax(1)
        assert torch.equal(votes.argmax(1), clean) and bool((votes.max(1).values == 9).all())
    finally:
        engine.NOISES.pop("test-zero-noise")
    with pytest.raises(ValueError, match="unknown noise kind"):
        Sampler(model, 2, noise="test-zero-noise")


def test_bad_logits_and_nonfinite_are_refused():
    _, X, ids, table = setup()
    with pytest.raises(ValueError, match=r"logits of shape \[64, 2\]"):
        Sampler(lambda b: torch.zeros(b.shape[0], 3), 2, batch_size=64).draw(X, ids, table, 64)
    with pytest.raises(ValueError, match="NaN/inf logits for 64 of 64 noisy samples of input 10"):
        Sampler(lambda b: torch.full((b.shape[0], 2), float("nan")), 2).draw(X, ids, table, 64)
    with pytest.raises(RuntimeError, match="base classifier failed on a noisy batch"):
        Sampler(torch.nn.Linear(3, 2), 2).draw(X, ids, table, 4)


def test_no_module_outside_the_engine_counts_votes():
    """The vote loop lives in smoothcert/engine only (ops holds the kernels' wrappers)."""
    pat = re.compile(r"count_votes_|sample_noise_pairs_table|dssn_batch\.default|\bvote\(")
    found = []
    pkg = os.path.join(ROOT, "python", "smoothcert")
    for d, _, files in os.walk(pkg):
        rel = os.path.relpath(d, pkg).split(os.sep)[0]
        if rel in ("engine", "ops"):
            continue
        for f in files:
            if f.endswith(".py") and f != "__init__.py":
                for i, line in enumerate(open(os.path.join(d, f)), 1):
                    if pat.search(line):
                        found.append(f"{rel}/{f}:{i}")
    assert found == []
