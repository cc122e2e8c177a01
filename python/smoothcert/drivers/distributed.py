"""Certifying one dataset with several processes on torch.distributed (``torchrun``).

Every result is a function of (seed, input index) alone, so which process certifies an input
does not matter: the K ranks of a ``torchrun --nproc_per_node=K -m smoothcert -- certify ...``
split the inputs, and rank 0 gathers their rows and writes the one TSV and sidecar, in dataset
order, byte for byte what one process writes (apart from the ``time`` column).

How (:func:`certify_sharded`):

* rank 0 alone touches the files: it locks ``out``, proves an existing file is this run's
  (header, sidecar, configuration) and finds what is left to do, exactly as
  :func:`~smoothcert.drivers.dataset.certify_dataset` does; every rank first checks that its
  configuration equals rank 0's (a rank launched with other options is refused, by name);
* the inputs left are cut into rounds; in a round each rank certifies every K-th input (round
  robin, so slow and fast inputs spread over the ranks), rank 0 gathers the rows, writes them in
  dataset order and flushes. A rank that dies loses at most the round in flight: torchrun's
  elastic restart (``--max-restarts``) starts every rank again, rank 0 resumes from the file,
  and no row is lost or written twice;
* an error on any rank is sent to all of them at the next gather, so every rank stops with it
  instead of waiting; a rank that hangs or dies outside a collective makes the others fail at
  the process group's timeout (``--dist-timeout``), never hang;
* an ordered family (:attr:`~smoothcert.certify.family.SmoothingFamily.ORDERED`: the
  data-dependent memory resolves each input against the ones before it) certifies contiguous
  blocks of the round on the ranks (its per-input work, ``certify_unordered``), and rank 0
  alone runs the ordered step (``resolve_ordered``) over the gathered blocks in dataset
  order, as one process would;
* a transductive family (sample-wise regions) shards its per-input stage rows the same way;
  rank 0 alone then runs the allocation over the whole set, as one process would;
* with ``split_samples`` (few inputs, very large n) every rank takes every input instead and
  draws its share of each counter range (:class:`SampleSplit`); the votes are summed with an
  all-reduce, so every rank holds the one-process counts and rank 0 writes them.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
from typing import Any, Dict, List, Optional

import torch

from ..certify.family import Budget, SmoothingFamily
from ..utils import progress as progress_bar
from . import dataset as ds

ROUND_PER_RANK = 64  # inputs per rank and round: the unit of work lost to a crash


class SampleSplit:
    """This rank's share of every draw (:class:`~smoothcert.engine.Sampler` ``split=``): of
    samples ``[start, start + num)``, rank r of K draws the r-th of K consecutive sub-ranges
    (whole units: pairs for pair-based noise), and :meth:`combine` sums every rank's votes with
    one all-reduce. The counts of disjoint counter ranges add up to the counts of the whole
    range, so the certificate is the one-process one; every rank must make the same draws in
    the same order (they all certify every input)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = int(rank), int(world)

    def part(self, start: int, num: int, unit: int = 1):
        units = num // unit
        a, b = self.rank * units // self.world, (self.rank + 1) * units // self.world
        return start + a * unit, (b - a) * unit

    def combine(self, votes: torch.Tensor, nonfinite: torch.Tensor):
        import torch.distributed as dist

        both = torch.cat([votes, nonfinite.view(-1, 1)], dim=1)
        dist.all_reduce(both, op=dist.ReduceOp.SUM)
        return both[:, :-1].contiguous(), both[:, -1].contiguous()


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher) with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device, timeout_s: float) -> torch.device:
    """Joins the process group torchrun describes (NCCL for CUDA, gloo otherwise) and returns
    this rank's device (``cuda`` becomes ``cuda:LOCAL_RANK``)."""
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError("this torch build has no torch.distributed; run one process")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=float(timeout_s))
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        store = _attempt_store(timeout)
        if store is not None:
            kwargs.update(store=store, rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
        dist.init_process_group(backend, timeout=timeout, **kwargs)
    return device


def _attempt_store(timeout: datetime.timedelta):
    """Under torchrun, the rendezvous store with keys of this restart attempt only (None elsewhere).

    torchrun's agent keeps one store across elastic restarts, and the ranks of a restarted
    group read the addresses the previous attempt's ranks published there: gloo then connects
    to the dead workers' ports ("connection refused") and the restart fails. A prefix per
    attempt (``TORCHELASTIC_RESTART_COUNT``) keeps each attempt's keys apart."""
    import torch.distributed as dist

    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None or "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
        return None
    hosted_by_agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == str(True)
    lead = int(os.environ.get("RANK", "0")) == 0 and not hosted_by_agent
    base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), int(os.environ["WORLD_SIZE"]),
                         is_master=lead, timeout=timeout, multi_tenant=lead)
    return dist.PrefixStore(f"smoothcert/attempt_{attempt}", base)


def finish() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def log(msg: str) -> None:
    """One line to stderr, prefixed with this rank (``[rank r/K]``)."""
    import torch.distributed as dist

    if dist.is_initialized():
        msg = f"[rank {dist.get_rank()}/{dist.get_world_size()}] {msg}"
    print(msg, file=sys.stderr, flush=True)


def _gather(payload: Any) -> Optional[List[Any]]:
    """Every rank's ``payload`` on rank 0 (None elsewhere)."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    out = [None] * world if rank == 0 else None
    dist.gather_object(payload, out, dst=0)
    return out


def _broadcast(payload: Any) -> Any:
    import torch.distributed as dist

    box = [payload]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _raise_if_any(errors: Optional[List[Optional[str]]]) -> None:
    """Raises on every rank when any rank failed: rank 0 holds the gathered ``errors`` (None
    elsewhere) and tells the others the first."""
    first = _broadcast(next((e for e in errors if e), None) if errors is not None else None)
    if first:
        raise ValueError(first)


def agree(error: Optional[str]) -> None:
    """Every rank calls it once it is ready (``error`` None) or has failed (its message): a
    rank whose own step succeeded raises the first failure of another rank, so no rank waits
    for one that already stopped. A rank that failed should raise its own error after this."""
    import torch.distributed as dist

    got = _gather(None if error is None else f"rank {dist.get_rank()}: {error}")
    first = _broadcast(next((e for e in got if e), None) if got is not None else None)
    if first and error is None:
        raise ValueError(f"another rank failed: {first}")


def check_same_config(config: Dict[str, Any]) -> None:
    """Refuses, on every rank, a run whose ranks were given different configurations."""
    text = json.dumps(config, sort_keys=True, default=str)
    got = _gather(text)
    err = None
    if got is not None:
        ref = json.loads(got[0])
        for r, other in enumerate(got):
            if other != got[0]:
                o = json.loads(other)
                keys = sorted(k for k in set(ref) | set(o) if ref.get(k) != o.get(k))
                err = (f"rank {r} was started with another configuration than rank 0 (differs in "
                       f"{', '.join(keys)}): every rank must get the same command line")
                break
    _raise_if_any([err] if got is not None else None)


def certify_sharded(family: SmoothingFamily, x, y: torch.Tensor, indices: List[int], *, budget: Budget, out: str,
                    config: Dict, progress: bool = True, device: Optional[torch.device] = None,
                    stage: Optional[str] = None, round_per_rank: int = ROUND_PER_RANK,
                    split_samples: bool = False) -> int:
    """:func:`~smoothcert.drivers.dataset.certify_dataset` over the ranks of the initialised
    process group (module docstring); every rank calls it with the same arguments.
    ``split_samples``: every rank draws 1/K of each input's samples instead of certifying 1/K
    of the inputs. Returns the rows rank 0 wrote (0 on the other ranks)."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    err = None
    try:
        if split_samples:
            family = family.with_sample_split(SampleSplit(rank, world))
        family.validate(budget)
        config = {**config, **family.config(budget)}
    except Exception as e:  # noqa: BLE001 - sent to every rank, then raised on each
        err = str(e) if isinstance(e, ValueError) else f"rank {rank}: {type(e).__name__}: {e}"
    _raise_if_any(_gather(err))
    check_same_config({**config, "indices": list(indices)})
    transductive = bool(getattr(family, "TRANSDUCTIVE", False))
    rows_file = (stage or ds.stage_path(out)) if transductive else out
    header = ds.PREFIX + (family.stage_columns() if transductive else family.columns())
    with contextlib.ExitStack() as held:
        todo, sink, out_side, err = None, None, None, None
        if rank == 0:
            try:
                ds._check_target(out)
                if transductive:
                    ds._check_target(rows_file, "--stage")
                held.enter_context(ds._locked(out))
                if transductive and os.path.abspath(rows_file) != os.path.abspath(out):
                    held.enter_context(ds._locked(rows_file))
                state, out_side, row_side = _prepare(family, out, rows_file, header, config, transductive, indices)
                done = {int(r["idx"]) for r in state.rows}
                if state.rows and not transductive:
                    family.resume(state.rows, lambda ids: ds._inputs(x, ids, device))
                todo = [i for i in indices if i not in done]
                sink = held.enter_context(_closing(ds._Appender(rows_file, header, state, row_side)))
            except Exception as e:  # noqa: BLE001 - sent to every rank, then raised on each
                err = str(e) if isinstance(e, ValueError) else f"rank 0: {type(e).__name__}: {e}"
        _raise_if_any([err] if rank == 0 else None)
        todo = _broadcast(todo)
        how = "every input's samples split" if split_samples else "inputs sharded"
        log(f"{len(todo)} of {len(indices)} inputs to certify, {how} over {world} ranks"
            + (f"; {len(indices) - len(todo)} already in {rows_file}" if rank == 0 and len(todo) < len(indices) else ""))
        written = _rounds(family, x, y, indices, todo, budget, sink, progress and rank == 0, device,
                          max(1, int(round_per_rank)) * world, split_samples)
        # Under split_samples every rank saw every input: rank 0's own state is the whole run's.
        states = _gather({} if split_samples else family.shard_state())
        err = None
        if rank == 0:
            try:
                if not split_samples:
                    family.merge_shard_states(states[1:])
                sink.finish()
                if transductive:
                    written = ds._allocate(family, x, y, indices, rows_file, header, out, budget, device, out_side)
                family.finish()
                summary = family.summary()
                if os.path.exists(out + ".json"):
                    with open(out + ".json") as f:
                        side = json.load(f)
                    side["summary"] = {**side.get("summary", {}), **summary, "processes": world,
                                       **({"split_samples": True} if split_samples else {})}
                    ds._write_json(out + ".json", side)
            except Exception as e:  # noqa: BLE001 - the other ranks learn of it, then each raises it
                err = f"rank 0: {type(e).__name__}: {e}"
        _raise_if_any([err] if rank == 0 else None)
    return written if rank == 0 else 0


@contextlib.contextmanager
def _closing(sink):
    try:
        yield sink
    finally:
        sink.close()


def _prepare(family, out, rows_file, header, config, transductive, indices):
    """Rank 0: the existing rows and the sidecars to write (as certify_dataset decides them)."""
    final = ds._inspect(out, ds.header_of(family)) if transductive else None
    state = ds._inspect(rows_file, header)
    out_side = None
    if transductive:
        stage_config = {k: v for k, v in config.items() if k not in family.allocation_keys()}
        out_side = ds._record_if(ds._config_to_write(out, final, config), config, family)
        row_side = ds._record_if(ds._config_to_write(rows_file, state, stage_config), stage_config, family, stage=True)
        wanted = set(indices)
        if any(int(r["idx"]) not in wanted for r in state.rows):
            raise ValueError(f"{rows_file} holds inputs outside this run's set; a transductive certificate depends "
                             "on the whole set, so remove it or choose another --out")
    else:
        row_side = ds._record_if(ds._config_to_write(out, state, config), config, family)
    return state, out_side, row_side


def _rounds(family, x, y, indices, todo, budget, sink, progress, device, per_round, split) -> int:
    """Certifies ``todo`` round by round; rank 0 writes each round's rows in dataset order."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    ordered = bool(getattr(family, "ORDERED", False))
    inputs = lambda ids: ds._inputs(x, ids, device)  # noqa: E731
    bar = progress_bar(total=len(indices), initial=len(indices) - len(todo), desc=f"certify ({world} ranks)",
                       unit="input") if progress else None
    written = 0
    for r0 in range(0, len(todo), per_round):
        part = todo[r0:r0 + per_round]
        if split:
            mine = part  # every rank draws its share of every input's samples
        elif ordered:  # contiguous blocks: rank 0 resolves them one after the other
            size = -(-len(part) // world)
            mine = part[rank * size:(rank + 1) * size]
        else:
            mine = part[rank::world]  # round robin spreads slow and fast inputs
        payload, err = None, None
        try:
            payload = _certify_part(family, inputs, y, mine, budget, ordered)
        except Exception as e:  # noqa: BLE001 - sent to every rank, then raised on each
            err = f"rank {rank}: {type(e).__name__}: {e}"
        # Under split every rank holds the same results: only rank 0's travel (none at all).
        got = _gather((None if split and rank else payload, err))
        _raise_if_any([g[1] for g in got] if got is not None else None)
        err = None
        if rank == 0:
            try:
                lines: Dict[int, str] = {}
                for pl, _ in (got[:1] if split else got):
                    lines.update(_resolve(family, inputs, y, pl) if ordered else pl)
                sink.write([lines[i] for i in part])
            except Exception as e:  # noqa: BLE001
                err = f"rank 0: {type(e).__name__}: {e}"
        _raise_if_any([err] if rank == 0 else None)
        written += len(part)
        if bar is not None:
            note = family.progress_note()
            if note:
                bar.set_postfix(**note)
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return written


def _certify_part(family, inputs, y, ids, budget, ordered):
    """This rank's work on ``ids``: their rows ``{index: line}``, or for an ordered family the
    per-group values of ``certify_unordered`` (``[(ids of a group, value)]``, in order)."""
    if ordered:
        group = family.group_size(budget)
        parts = [ids[g0:g0 + group] for g0 in range(0, len(ids), group)]
        return [(part, family.certify_unordered(inputs(part), torch.tensor(part), budget)) for part in parts]
    lines = {}
    for part, res in family.certify_stream(inputs, ids, budget):
        lines.update(_lines(res, part, y))
    return lines


def _resolve(family, inputs, y, groups) -> Dict[int, str]:
    """Rank 0: an ordered family's rows of one rank's groups, resolved in order."""
    lines = {}
    for ids, value in groups:
        lines.update(_lines(family.resolve_ordered(inputs(ids), torch.tensor(ids), value), ids, y))
    return lines


def _lines(res, ids, y) -> Dict[int, str]:
    return dict(zip(ids, ds._lines(res, ids, y)))
