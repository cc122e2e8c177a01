"""Draws for inputs that stop at different times, in full forward batches.

A :class:`Job` is one input's sequence of draws, each decided from the votes of the ones before
(sequential sample sizes: draw to the next checkpoint, look, stop or go on). :func:`run_jobs`
keeps up to ``in_flight`` jobs open and fills every forward batch with the next samples of the
open jobs, oldest first; a job that finishes leaves and the next input of the source takes its
slot (slot refill). Every draw of a job is the counter range after its previous draws on that
stream, so a job sees the same votes whatever else shares its batches, the batch size or the
number of jobs in flight: results stay a function of (seed, stream, input index).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import torch

from .sampler import Sampler, bad_logits


class Job:
    """One input's draws (subclass and implement :meth:`request` and :meth:`receive`).

    Attributes:
        x: ``[*S]`` float32 input, checked, on the model's device.
        index: the input index keying its noise.
        table: ``[1, 1 | D]`` float32 sigma row (or None for a kind without sigma).
    """

    def __init__(self, x: torch.Tensor, index: int, table: Optional[torch.Tensor]):
        self.x, self.index, self.table = x, int(index), table
        self.seconds = 0.0  # wall time of the batches it shared, split by rows

    def request(self) -> Optional[Tuple[int, int]]:
        """``(stream, samples)`` of the next draw, or None when the job is done."""
        raise NotImplementedError

    def receive(self, stream: int, start: int, votes: torch.Tensor) -> None:
        """The ``[K]`` int64 CPU votes of samples ``[start, start + samples)`` on ``stream``."""
        raise NotImplementedError


@dataclass
class Occupancy:
    """How full the forward batches of a :func:`run_jobs` call were."""

    batches: int = 0
    rows: int = 0
    capacity: int = 0

    @property
    def fraction(self) -> float:
        """Rows run over rows the batches could hold (1.0 = every batch full)."""
        return self.rows / self.capacity if self.capacity else 1.0


@dataclass
class _Slot:
    """An open job and its current draw: samples ``[first, end)`` of ``stream``, drawn up to ``pos``."""

    job: Job
    order: int
    stream: int = 0
    first: int = 0
    pos: int = 0
    end: int = 0
    votes: Optional[torch.Tensor] = None
    drawn: Dict[int, int] = field(default_factory=dict)  # samples drawn so far per stream


def run_jobs(sampler: Sampler, jobs: Iterable[Job], *, in_flight: int,
             occupancy: Optional[Occupancy] = None) -> Iterator[Job]:
    """Runs ``jobs`` to completion and yields them in the order given.

    Args:
        sampler: noise kind, seed, clamp, dtype, layout and batch size of every draw (its
            ``stream`` is replaced by each request's).
        jobs: the inputs, taken lazily as slots free up.
        in_flight: most jobs open at once (memory is ``in_flight`` inputs and vote rows).
        occupancy: filled with the batch statistics as the run goes.

    Raises ValueError if the classifier returns NaN/inf logits for a sample of a job.
    """
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    if sampler.noise.PAIRS:
        raise ValueError(f"noise kind {sampler.noise.name!r} draws pairs; sequential draws take single samples")
    if sampler.split is not None:  # each job's draws follow its own votes: no fixed range to split
        raise ValueError("sequential draws cannot split an input's samples across processes; shard the inputs")
    occ = occupancy if occupancy is not None else Occupancy()
    B, K = sampler.batch_size, sampler.num_classes
    writers: Dict[int, object] = {}
    source = iter(jobs)
    open_: List[_Slot] = []
    finished: Dict[int, Job] = {}
    taken = next_out = 0
    exhausted = False
    buf = None
    count = torch.ops.smoothcert.count_votes_.default
    with torch.no_grad():
        while True:
            while not exhausted and len(open_) < in_flight:
                job = next(source, None)
                if job is None:
                    exhausted = True
                    break
                slot = _Slot(job, taken)
                taken += 1
                if _advance(slot, K):
                    open_.append(slot)
                else:
                    finished[slot.order] = job
            while next_out in finished:
                yield finished.pop(next_out)
                next_out += 1
            if not open_:
                if exhausted:
                    return
                continue
            t0 = time.perf_counter()
            plan, rows = [], 0
            for slot in open_:
                take = min(slot.end - slot.pos, B - rows)
                plan.append((slot, take))
                rows += take
                if rows == B:
                    break
            x0 = open_[0].job.x
            if buf is None:
                fmt = torch.channels_last if sampler.channels_last and x0.dim() == 3 else torch.contiguous_format
                buf = torch.empty((B, *x0.shape), dtype=sampler.out_dtype or torch.float32, device=x0.device,
                                  memory_format=fmt)
            segs = _segments(plan)
            r = 0
            for group in segs:
                stream, start, m = group[0][0].stream, group[0][0].pos, group[0][1]
                write = writers.get(stream)
                if write is None:
                    write = writers[stream] = _writer(sampler, stream)
                X = torch.stack([s.job.x for s, _ in group])
                ids = torch.tensor([s.job.index for s, _ in group], dtype=torch.long, device=X.device)
                tables = [s.job.table for s, _ in group]
                table = None if tables[0] is None else torch.cat(tables)
                write(buf[r:r + len(group) * m], X, ids, table, m, start)
                r += len(group) * m
            batch = buf[:rows]
            logits = sampler.model(batch)
            if not isinstance(logits, torch.Tensor) or logits.shape != (rows, K):
                bad_logits(logits, rows, K)
            votes = torch.zeros(len(plan), K, dtype=torch.long, device=batch.device)
            nonfinite = torch.zeros(len(plan), dtype=torch.long, device=batch.device)
            r = g = 0
            for group in segs:
                m = group[0][1]
                count(logits[r:r + len(group) * m], m, votes[g:g + len(group)], nonfinite[g:g + len(group)])
                r += len(group) * m
                g += len(group)
            occ.batches += 1
            occ.rows += rows
            occ.capacity += B
            # One host transfer per batch: the jobs decide on the CPU from these votes.
            host = torch.cat([votes, nonfinite.view(-1, 1)], dim=1).cpu()
            votes, nonfinite = host[:, :K], host[:, K]
            if bool(nonfinite.any()):
                i = int(nonfinite.nonzero()[0, 0])
                raise ValueError(f"the base classifier returned NaN/inf logits for {int(nonfinite[i])} noisy "
                                 f"samples of input {plan[i][0].job.index}; refusing to count their votes")
            dt = time.perf_counter() - t0
            for i, (slot, take) in enumerate(plan):
                slot.job.seconds += dt * take / rows
                slot.votes += votes[i]
                slot.pos += take
                if slot.pos == slot.end:
                    slot.job.receive(slot.stream, slot.first, slot.votes)
                    slot.drawn[slot.stream] = slot.end
                    if not _advance(slot, K):
                        finished[slot.order] = slot.job
            open_ = [slot for slot in open_ if slot.order not in finished]


def _advance(slot: _Slot, K: int) -> bool:
    """Opens the job's next draw on the slot; False when the job is done."""
    req = slot.job.request()
    if req is None:
        return False
    stream, num = int(req[0]), int(req[1])
    if num < 1:
        raise ValueError(f"a job asked for {num} samples; a draw needs at least 1")
    slot.stream = stream
    slot.first = slot.pos = slot.drawn.get(stream, 0)
    slot.end = slot.first + num
    slot.votes = torch.zeros(K, dtype=torch.long)
    return True


def _segments(plan):
    """Consecutive plan entries that share (stream, first sample, samples): one noise call each."""
    out = []
    for slot, take in plan:
        if out and (out[-1][0][0].stream, out[-1][0][0].pos, out[-1][0][1]) == (slot.stream, slot.pos, take):
            out[-1].append((slot, take))
        else:
            out.append([(slot, take)])
    return out


def _writer(sampler: Sampler, stream: int):
    bind_into = getattr(sampler.noise, "bind_into", None)
    if bind_into is None:
        raise ValueError(f"noise kind {sampler.noise.name!r} cannot write into a shared batch: sequential "
                         "draws need an additive noise kind")
    return bind_into(seed=sampler.seed, stream=stream, clamp=sampler.clamp, channels_last=sampler.channels_last)
