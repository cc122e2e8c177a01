"""The scheduler of sequential draws: each job sees the votes of exactly its own counter ranges
(the same as :meth:`Sampler.draw` with ``start=``), whatever the batch size, the number of jobs
in flight or what shares a batch; finished jobs leave in input order; batches stay full."""
import pytest
import torch

from smoothcert import ops
from smoothcert.engine import Job, Occupancy, Sampler, run_jobs

from helpers import LinearClassifier


class Scripted(Job):
    """Asks for a fixed list of (stream, samples) draws that depends on the input index."""

    def __init__(self, x, index, table, plan):
        super().__init__(x, index, table)
        self.plan, self.got = list(plan), []

    def request(self):
        return self.plan[len(self.got)] if len(self.got) < len(self.plan) else None

    def receive(self, stream, start, votes):
        self.got.append((stream, start, votes.clone()))


def make_jobs(X, table):
    out = []
    for i in range(X.shape[0]):
        plan = [(ops.SELECTION_STREAM, 7 + i), (ops.ESTIMATION_STREAM, 50 * (i % 3) + 1),
                (ops.ESTIMATION_STREAM, 333), (ops.SELECTION_STREAM, 5)][: 1 + i % 4]
        out.append(Scripted(X[i], 100 + i, table, plan))
    return out


def setup(B=9, D=12):
    w = torch.linspace(-1, 1, D)
    X = (torch.arange(B * D).view(B, D) % 5).float() / 5
    return LinearClassifier(w, 0.02), X, torch.full((1, 1), 0.7)


@pytest.mark.parametrize("noise", ["gaussian", "uniform", "ssn"])
@pytest.mark.parametrize("batch_size,in_flight", [(1, 1), (64, 3), (1000, 100), (17, 2)])
def test_every_draw_is_its_counter_range(noise, batch_size, in_flight):
    model, X, table = setup()
    s = Sampler(model, 2, noise=noise, seed=3, batch_size=batch_size)
    occ = Occupancy()
    done = list(run_jobs(s, make_jobs(X, table), in_flight=in_flight, occupancy=occ))
    assert [j.index for j in done] == [100 + i for i in range(X.shape[0])]
    for j in done:
        drawn = {}
        assert len(j.got) == len(j.plan)
        for (stream, num), (got_stream, start, votes) in zip(j.plan, j.got):
            assert got_stream == stream and start == drawn.get(stream, 0)
            ref = s.replace(stream=stream).draw(j.x[None], torch.tensor([j.index]), table, num, start=start)[0]
            assert torch.equal(votes, ref)
            drawn[stream] = start + num
    assert occ.rows == sum(n for j in done for _, n in j.plan)
    if batch_size == 1:
        assert occ.fraction == 1.0


def test_batches_stay_full_while_jobs_remain():
    model, X, table = setup(B=40)
    jobs = [Scripted(X[i], i, table, [(ops.ESTIMATION_STREAM, 10 + 37 * (i % 5))]) for i in range(40)]
    occ = Occupancy()
    list(run_jobs(Sampler(model, 2, batch_size=100), jobs, in_flight=8, occupancy=occ))
    total = sum(10 + 37 * (i % 5) for i in range(40))
    # Only the last batch may be partial.
    assert occ.batches == -(-total // 100) and occ.rows == total


def test_refusals():
    model, X, table = setup()
    with pytest.raises(ValueError, match="in_flight"):
        list(run_jobs(Sampler(model, 2), make_jobs(X, table), in_flight=0))
    with pytest.raises(ValueError, match="pairs"):
        list(run_jobs(Sampler(model, 2, noise="antithetic-gaussian"), make_jobs(X, table), in_flight=2))
    bad = Scripted(X[0], 0, table, [(ops.ESTIMATION_STREAM, 0)])
    with pytest.raises(ValueError, match="at least 1"):
        list(run_jobs(Sampler(model, 2), [bad], in_flight=2))

    def nan_model(x):
        return torch.full((x.shape[0], 2), float("nan"))
    with pytest.raises(ValueError, match="NaN/inf logits"):
        list(run_jobs(Sampler(nan_model, 2), make_jobs(X, table), in_flight=2))
