"""Sequential certification: each input draws estimation samples until its answer is decided.

Cohen et al.'s CERTIFY with the fixed n replaced by an anytime-valid confidence sequence
(:mod:`smoothcert.stats.sequential`): the top class is still *selected* with n0 samples of the
selection stream (independent of everything after); estimation samples of the estimation
stream are then drawn up to checkpoints ``n_1 < ... < n_J = n_max`` of a grid fixed in
advance, and at each checkpoint a stopping rule (:data:`STOPPING_RULES`) looks at the count of
the selected class and stops or goes on. The certificate is the family's radius of the
confidence sequence's lower bound at the stopping checkpoint, which holds with probability
``>= 1 - alpha`` at every checkpoint at once, so at the data-dependent stopping time too.

The estimation samples are the same counter range ``[0, n_stop)`` a fixed-n run draws, so a
run that never stops early sees exactly the fixed-n votes (its bound is the sequence's, a
little below Clopper-Pearson's at n). Inputs run through :func:`smoothcert.engine.run_jobs`:
forward batches stay full while inputs stop at different times, and each row is a function
of (seed, input index) alone.

Eligible: families whose certificate is a function of one binomial count
(:attr:`~smoothcert.certify.monte_carlo.MonteCarloFamily.SEQUENTIAL`).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Iterable, Iterator, List, Optional, Union

import numpy as np
import torch

from .. import ops
from ..engine import Job, Occupancy, check_int, run_jobs
from ..stats import sequential as seq
from .family import Budget, SmoothingFamily, require
from .results import CertifyResult

STOPPING_RULES: Dict[str, type] = {}


def register_rule(name: str):
    """Class decorator: makes ``cls`` the stopping rule ``--sequential name``."""
    def deco(cls):
        STOPPING_RULES[name] = cls
        cls.name = name
        return cls
    return deco


class StoppingRule:
    """When an input stops; a rule never changes what is certified at stopping, only when."""

    name: ClassVar[str] = ""
    OPTION: ClassVar[str] = ""  # its one command-line option (``--radius``, ``--tol``)
    HINT: ClassVar[str] = ""

    def status(self, cs: seq.ConfidenceSequence, k: int, n: int, radius: Callable, target) -> Optional[str]:
        """None to go on, else the stop reason written to the ``stop`` column."""
        raise NotImplementedError

    def target(self, position: int, index: int):
        """This rule's parameter for the input at ``position`` of the call, of input index
        ``index`` (the ``target`` column)."""
        raise NotImplementedError

    def per_position(self) -> bool:
        """Whether :meth:`target` depends on the position (which a resumed dataset run shifts)."""
        return False

    def final_share(self) -> Optional[float]:
        """The share of alpha grid Clopper-Pearson keeps for ``n_max`` unless told otherwise
        (None: the grid's spending weights ``n_max`` like every checkpoint)."""
        return None

    def config(self) -> Dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def options(cls) -> List[str]:
        """Its command-line options (argparse destinations)."""
        return [cls.OPTION]

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "StoppingRule":
        if getattr(args, cls.OPTION, None) is None:
            raise ValueError(f"--sequential {cls.name} needs --{cls.OPTION} ({cls.HINT})")
        return cls(getattr(args, cls.OPTION))


@register_rule("decide")
class Decide(StoppingRule):
    """Stop once ``radius >= r`` is proven (``stop = certified``) or cannot be reached at
    ``n_max`` even at the upper bound's frequency (``futile``; also ``n_max`` reached).

    Args:
        radius: r: one number; a ``[B]`` tensor/array (one radius per input, in the order of
            the inputs certified); or a dict ``{input index: radius}`` (a dataset run:
            :func:`read_radii` reads one from a file).
    """

    OPTION, HINT = "radius", "the radius to certify"

    def __init__(self, radius: Union[float, torch.Tensor, np.ndarray, Dict[int, float]], source: str = ""):
        self.by_index = None
        if isinstance(radius, dict):
            self.by_index = {int(i): float(v) for i, v in radius.items()}
            r = np.asarray(list(self.by_index.values()), dtype=np.float64)
            if not self.by_index:
                raise ValueError("the decide rule got no radii")
        else:
            r = np.asarray(radius.detach().cpu() if isinstance(radius, torch.Tensor) else radius, dtype=np.float64)
        if r.ndim > 1 or not np.all(np.isfinite(r)) or np.any(r <= 0):
            raise ValueError(f"the decide rule needs finite radii > 0 (one number, one per input, or one per "
                             f"input index), got {radius if r.size < 8 else r!r}")
        self.radius, self.source = r, source

    def target(self, position: int, index: int) -> float:
        if self.by_index is not None:
            if index not in self.by_index:
                raise ValueError(f"the decide rule has no radius for input index {index}"
                                 + (f" (in {self.source})" if self.source else ""))
            return self.by_index[index]
        if self.radius.ndim == 0:
            return float(self.radius)
        if position >= self.radius.shape[0]:
            raise ValueError(f"the decide rule has {self.radius.shape[0]} radii but input {position} needs one")
        return float(self.radius[position])

    def per_position(self) -> bool:
        return self.by_index is None and self.radius.ndim == 1

    @classmethod
    def options(cls) -> List[str]:
        return ["radius", "radius_file"]

    @classmethod
    def from_args(cls, args):
        path = getattr(args, "radius_file", None)
        if path is None:
            return super().from_args(args)
        if getattr(args, "radius", None) is not None:
            raise ValueError("give --radius (one for every input) or --radius-file (one per input), not both")
        import hashlib

        radii = read_radii(path)
        with open(path, "rb") as f:  # the sidecar names the file's content, so a resume sees a change
            digest = hashlib.sha256(f.read()).hexdigest()
        return cls(radii, source=f"{path} sha256:{digest}")

    def status(self, cs, k, n, radius, target):
        s = int(seq.decide(cs, k, n, radius, target))
        return None if s == seq.CONTINUE else ("certified" if s == seq.CERTIFIED else "futile")

    def config(self):
        r = self.radius
        if self.by_index is not None:
            return {"rule": self.name, "radius": f"per input index [{len(self.by_index)}]",
                    "radius_file": self.source or None}
        return {"rule": self.name, "radius": float(r) if r.ndim == 0 else f"per input [{r.shape[0]}]"}


def read_radii(path: str) -> Dict[int, float]:
    """``{input index: radius}`` from a TSV with ``idx`` and ``radius`` columns (for instance a
    result file of an earlier run), for :class:`Decide`; ValueError names a bad file or row."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t")
            if not reader.fieldnames or "idx" not in reader.fieldnames or "radius" not in reader.fieldnames:
                raise ValueError(f"{path}: a radius file needs tab-separated 'idx' and 'radius' columns, got "
                                 f"{reader.fieldnames}")
            out: Dict[int, float] = {}
            for line, row in enumerate(reader, start=2):
                try:
                    i, r = int(row["idx"]), float(row["radius"])
                except (TypeError, ValueError):
                    raise ValueError(f"{path}:{line}: idx {row.get('idx')!r} and radius {row.get('radius')!r} must "
                                     "be an integer and a number") from None
                if i in out and out[i] != r:
                    raise ValueError(f"{path}:{line}: input index {i} has two radii ({out[i]!r} and {r!r})")
                if not (math.isfinite(r) and r > 0):
                    raise ValueError(f"{path}:{line}: the radius of input {i} must be finite and > 0 (decide "
                                     f"proves radius >= r), got {r!r}")
                out[i] = r
    except OSError as e:
        raise ValueError(f"cannot read the radius file {path}: {e.strerror}") from None
    if not out:
        raise ValueError(f"{path}: no radii")
    return out


@register_rule("estimate")
class Estimate(StoppingRule):
    """Stop once more samples up to ``n_max`` could add less than ``tol`` of the radius
    reachable there (``stop = estimated``, or ``n_max``).

    Args:
        tol: relative tolerance in (0, 1), e.g. 0.01.
    """

    OPTION, HINT = "tol", "e.g. 0.01"

    def __init__(self, tol: float):
        tol = float(tol)
        if not (0 < tol < 1):
            raise ValueError(f"the estimate rule needs 0 < tol < 1, got {tol!r}")
        self.tol = tol

    def target(self, position: int, index: int) -> float:
        return self.tol

    def final_share(self) -> float:
        # An input that runs to n_max keeps 1 - 10 tol of alpha there: the radius it loses
        # against a fixed-n run (about 0.01 ln(1/share) of itself at n = 10^5, alpha = 10^-3)
        # stays near a tenth of tol, while tol still leaves early checkpoints alpha to stop
        # with. Chosen on a development set disjoint from the bench's images
        # (bench/sequential_design.py; results/sequential/design.md).
        return min(0.99, max(0.5, 1.0 - 10.0 * self.tol))

    def status(self, cs, k, n, radius, target):
        if not bool(seq.estimate(cs, k, n, radius, target)):
            return None
        return "n_max" if n >= cs.n_max else "estimated"

    def config(self):
        return {"rule": self.name, "tol": self.tol}


@dataclass(frozen=True)
class Sequential:
    """How sequential certification draws: the rule, the confidence sequence and its grid.

    Args:
        rule: a :class:`StoppingRule` (:class:`Decide` or :class:`Estimate`).
        cs: confidence sequence name (``"grid-cp"`` default, ``"mixture"``).
        first: first checkpoint; ratio: geometric grid ratio (the last checkpoint is n_max,
            the ``n`` of the call).
        in_flight: inputs open at once (default: enough to fill a batch at the first checkpoint).
        final: grid-cp only: the share of alpha kept for ``n_max`` (default: the rule's
            :meth:`StoppingRule.final_share`: by the spending for decide, ``1 - 10 tol`` in
            [0.5, 0.99] for estimate).
    """

    rule: StoppingRule
    cs: str = "grid-cp"
    first: int = 100
    ratio: float = 2.0
    in_flight: Optional[int] = None
    final: Optional[float] = None

    def __post_init__(self):
        if not isinstance(self.rule, StoppingRule):
            raise ValueError(f"sequential= needs a stopping rule (Decide(radius) or Estimate(tol)), got {self.rule!r}")
        if self.cs not in seq.CONFIDENCE_SEQUENCES:
            raise ValueError(f"unknown confidence sequence {self.cs!r}; choose one of "
                             f"{', '.join(seq.CONFIDENCE_SEQUENCES)}")
        check_int("first", self.first, 1)
        if self.in_flight is not None:
            check_int("in_flight", self.in_flight, 1)
        self.sequence(max(self.first, 2), 0.5)  # refuses a bad final share (or one the sequence has no use for)

    def sequence(self, n_max: int, alpha: float) -> seq.ConfidenceSequence:
        grid = seq.geometric_grid(min(self.first, n_max), n_max, self.ratio)
        final = self.final
        if final is None and getattr(seq.CONFIDENCE_SEQUENCES[self.cs], "FINAL_SHARE", False):
            final = self.rule.final_share()
        return seq.confidence_sequence(self.cs, alpha, grid, **({} if final is None else {"final": final}))

    def label(self) -> str:
        """The certificate label of its rows."""
        return f"sequential-{self.rule.name}"

    def config(self, n_max: int, alpha: float) -> Dict[str, Any]:
        return {**self.rule.config(), **self.sequence(n_max, alpha).config(), "first": self.first,
                "ratio": self.ratio}

    def slots(self, batch_size: int) -> int:
        return self.in_flight or max(2, -(-batch_size // self.first) + 1)


@dataclass
class SequentialResult(CertifyResult):
    """:class:`CertifyResult` of a sequential run; ``n`` is ``n_max`` and the per-input
    estimation samples are ``n_used``.

    Attributes (beyond CertifyResult's):
        n_used: ``[B]`` int64 estimation samples drawn before stopping (``samples = n0 + n_used``).
        stop: why each input stopped (``certified``/``futile`` for decide, ``estimated``/``n_max``).
        target: ``[B]`` float64 the rule's parameter (r for decide, tol for estimate).
    """

    n_used: torch.Tensor = None
    stop: List[str] = field(default_factory=list)
    target: torch.Tensor = None

    EXTRA_COLUMNS = {"n_max": int, "stop": str, "target": float}  # after a family's own columns
    COLUMNS = {**CertifyResult.COLUMNS, **EXTRA_COLUMNS}

    def fields(self, k: int) -> List[Any]:
        return [int(self.count_a[k]), int(self.n_used[k]), repr(float(self.pa_lower[k])), repr(float(self.sigma[k])),
                self.certificate, self.norm, self.n, self.stop[k], repr(float(self.target[k]))]


class CertifyJob(Job):
    """One input of a sequential CERTIFY: selection, then estimation checkpoint by checkpoint."""

    def __init__(self, x, index, table, position: int, n0: int, cs: seq.ConfidenceSequence, rule: StoppingRule,
                 radius: Callable, target):
        super().__init__(x, index, table)
        self.position, self.n0, self.cs, self.rule, self.radius, self.target = position, n0, cs, rule, radius, target
        self.selection: Optional[torch.Tensor] = None
        self.counts: Optional[torch.Tensor] = None
        self.top = -1
        self.k = self.n = 0
        self.next = 0  # index of the next checkpoint
        self.stop: Optional[str] = None

    def request(self):
        if self.selection is None:
            return ops.SELECTION_STREAM, self.n0
        if self.stop is not None:
            return None
        return ops.ESTIMATION_STREAM, int(self.cs.checkpoints[self.next]) - self.n

    def receive(self, stream, start, votes):
        if stream == ops.SELECTION_STREAM:
            self.selection = votes.clone()
            self.top = int(votes.argmax())  # ties to the lowest index, as fixed-n CERTIFY
            self.counts = torch.zeros_like(votes)
            return
        self.counts += votes
        self.n = int(self.cs.checkpoints[self.next])
        self.k = int(self.counts[self.top])
        self.next += 1
        self.stop = self.rule.status(self.cs, self.k, self.n, self.radius, self.target)


def certify_jobs(family, inputs: Iterable, n0: int, n_max: int, alpha: float, batch_size: int,
                 sequential: Sequential, occupancy: Optional[Occupancy] = None) -> Iterator[CertifyJob]:
    """Finished :class:`CertifyJob` s, in input order, of ``inputs``: ``(position, x [*S], index,
    sigma row [1, 1 | D])`` checked by the family (:meth:`MonteCarloFamily.prepare`)."""
    cs = sequential.sequence(n_max, alpha)
    rule = sequential.rule

    def jobs():
        for pos, x, index, row in inputs:
            sig = float(family.radius_sigma(row, 1)[0])
            radius = (lambda pa, s=sig, d=x.numel(): family.radius_from_lower(np.asarray(pa, dtype=np.float64),
                                                                              np.float64(s), d)[1])
            yield CertifyJob(x, index, row, pos, n0, cs, rule, radius, rule.target(pos, index))

    sampler = family.sampler(ops.ESTIMATION_STREAM, batch_size)
    yield from run_jobs(sampler, jobs(), in_flight=sequential.slots(batch_size), occupancy=occupancy)


def results_of(family, done: List[CertifyJob], n0: int, n_max: int, alpha: float,
               sequential: Sequential) -> SequentialResult:
    """The :class:`SequentialResult` of finished jobs (in their order)."""
    B, K = len(done), family.num_classes
    cs = done[0].cs if done else sequential.sequence(n_max, alpha)
    k = np.asarray([j.k for j in done], dtype=np.int64)
    n = np.asarray([j.n for j in done], dtype=np.int64)
    sig = (torch.cat([family.radius_sigma(j.table, 1) for j in done]) if done
           else torch.zeros(0, dtype=torch.float64))
    pa = np.asarray(cs.lower(k, n), dtype=np.float64).reshape(-1) if B else np.zeros(0)
    abstain, radius = family.radius_from_lower(pa, sig.numpy(), done[0].x.numel() if B else 1)
    abstain = np.asarray(abstain, dtype=bool).reshape(-1)
    top = torch.tensor([j.top for j in done], dtype=torch.long)
    pred = torch.where(torch.as_tensor(abstain), torch.full_like(top, family.ABSTAIN), top)
    stack = lambda rows: torch.stack(rows) if rows else torch.zeros(0, K, dtype=torch.long)  # noqa: E731
    return SequentialResult(
        prediction=pred, radius=torch.as_tensor(np.asarray(radius, dtype=np.float64)).view(-1),
        count_a=torch.as_tensor(k), pa_lower=torch.as_tensor(pa), sigma=sig,
        samples=torch.as_tensor(n + n0), seconds=torch.tensor([j.seconds for j in done], dtype=torch.float64),
        selection_counts=stack([j.selection for j in done]), counts=stack([j.counts for j in done]),
        n0=n0, n=n_max, alpha=alpha, certificate=sequential.label(), norm=family.NORM,
        n_used=torch.as_tensor(n), stop=[j.stop for j in done],
        target=torch.tensor([float(j.target) for j in done], dtype=torch.float64))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``smoothcert certify``'s sequential options."""
    g = parser.add_argument_group("sequential sample sizes (anytime-valid; --n is n_max)")
    g.add_argument("--sequential", choices=sorted(STOPPING_RULES),
                   help="stop each input's sampling once decided: 'decide' whether radius >= --radius, or "
                        "'estimate' the radius to --tol")
    g.add_argument("--radius", type=float, help="decide: the radius to certify")
    g.add_argument("--radius-file", help="decide: one radius per input, from a TSV with 'idx' and 'radius' columns "
                                         "(e.g. an earlier result file); instead of --radius")
    g.add_argument("--tol", type=float, help="estimate: stop when more samples could add less than this fraction "
                                             "of the radius reachable at n_max (e.g. 0.01)")
    g.add_argument("--cs", choices=sorted(seq.CONFIDENCE_SEQUENCES),
                   help="confidence sequence (default grid-cp: Clopper-Pearson on a geometric grid, alpha spent "
                        "over it; mixture: beta-binomial mixture martingale)")
    g.add_argument("--first-checkpoint", type=int, help="first estimation checkpoint (default 100)")
    g.add_argument("--checkpoint-ratio", type=float, help="ratio of the geometric checkpoint grid (default 2)")
    g.add_argument("--final-share", type=float, help="grid-cp: share of alpha kept for the last checkpoint n_max "
                                                     "(default: by the spending for decide, 1 - 10 tol in "
                                                     "[0.5, 0.99] for estimate)")


def from_args(args: argparse.Namespace) -> Optional[Sequential]:
    """The :class:`Sequential` of the parsed options, or None; a sequential option without
    ``--sequential`` (or the other rule's) is refused."""
    given = [o for o, k in (("--radius", "radius"), ("--radius-file", "radius_file"), ("--tol", "tol"), ("--cs", "cs"),
                            ("--first-checkpoint", "first_checkpoint"), ("--checkpoint-ratio", "checkpoint_ratio"),
                            ("--final-share", "final_share"))
             if getattr(args, k, None) is not None]
    rule = getattr(args, "sequential", None)
    if rule is None:
        if given:
            raise ValueError(f"{', '.join(given)}: only with --sequential (decide or estimate)")
        return None
    cls = STOPPING_RULES[rule]
    for other in STOPPING_RULES.values():
        for opt in other.options():
            if other is not cls and getattr(args, opt, None) is not None:
                raise ValueError(f"--{opt.replace('_', '-')} belongs to --sequential {other.name}, not {rule}")
    made = cls.from_args(args)
    return Sequential(made, cs=args.cs or "grid-cp", first=args.first_checkpoint or 100,
                      ratio=args.checkpoint_ratio or 2.0, final=args.final_share)


def certify_checked(base, X: torch.Tensor, ids: torch.Tensor, table: torch.Tensor, n0: int, n: int, alpha: float,
                    batch_size: int, sequential: Optional[Sequential]) -> CertifyResult:
    """``base``'s CERTIFY of checked inputs at a sigma ``table``: fixed n
    (:meth:`~smoothcert.certify.monte_carlo.MonteCarloFamily.certify_table`) or sequential (n is
    n_max), for wrappers that choose sigma per input."""
    if sequential is None:
        return base.certify_table(X, ids, table, n0, n, alpha, batch_size)
    return base.certify_sequential(X, ids, table, n0, n, alpha, batch_size, sequential)


def samples_used(res: CertifyResult, k: int) -> int:
    """Estimation samples input ``k`` of ``res`` used (its own for a sequential run)."""
    n_used = getattr(res, "n_used", None)
    return res.n if n_used is None else int(n_used[k])


def labelled(label: str, res: CertifyResult) -> str:
    """A wrapper's certificate ``label``, marked sequential when ``res`` is a sequential run's."""
    return label if getattr(res, "n_used", None) is None else f"{label}-{res.certificate}"


def wrapper_columns(sequential: Optional[Sequential], *others: str) -> Dict[str, type]:
    """The columns a wrapper adds for a sequential run (its ``n`` column holds the primary
    certificate's samples per input): the primary's stop reason, each other certificate's
    samples and stop reason (``others``: their column prefixes), n_max and the rule's target."""
    if sequential is None:
        return {}
    out: Dict[str, type] = {"stop": str}
    for name in others:
        out.update({f"{name}_n": int, f"{name}_stop": str})
    return {**out, "n_max": int, "target": float}


def wrapper_fields(sequential: Optional[Sequential], k: int, primary: CertifyResult,
                   *others: CertifyResult) -> List[Any]:
    """The values of :func:`wrapper_columns` for input ``k``."""
    if sequential is None:
        return []
    out: List[Any] = [primary.stop[k]]
    for res in others:
        out += [samples_used(res, k), res.stop[k]]
    return out + [primary.n, repr(float(primary.target[k]))]


def check_dataset_rule(sequential: Sequential) -> None:
    """Refuses a rule whose targets follow the position of the inputs: a dataset run resumes
    part-way, which would shift them (key them by input index instead)."""
    if sequential.rule.per_position():
        raise ValueError("a dataset run needs decide radii keyed by input index (Decide({index: radius}) or "
                         "--radius-file), not one per position; per-position radii go to certify_batch(..., "
                         "sequential=Sequential(Decide(radii)))")


SPLIT_REFUSAL = ("a sequential run stops each input when its own votes decide it; its samples are not split across "
                 "processes: shard the inputs instead (leave out --split-samples)")


class SequentialFamily(SmoothingFamily):
    """A Monte-Carlo family certified sequentially (``smoothcert certify --sequential``): its
    dataset run keeps every input of the split in one scheduler, so a finished input's slot is
    refilled by the next one and forward batches stay full.

    Args:
        base: a family with :attr:`~smoothcert.certify.monte_carlo.MonteCarloFamily.SEQUENTIAL`.
        sequential: the rule and confidence sequence.
    """

    def __init__(self, base, sequential: Sequential):
        require(base, "--sequential", monte_carlo=True)
        base.check_sequential(sequential)
        check_dataset_rule(sequential)
        self.base, self.sequential = base, sequential
        self.name, self.NORM, self.num_classes = base.name, base.NORM, base.num_classes
        self.occupancy = Occupancy()
        self.samples: List[int] = []
        self.stops: Dict[str, int] = {}
        self.n_max = 0

    def column_types(self) -> Dict[str, type]:
        return self.base.sequential_column_types()

    def validate(self, budget: Budget) -> None:
        self.base.validate(budget)

    def config(self, budget: Budget) -> Dict[str, Any]:
        return {**self.base.config(budget), "sequential": self.sequential.config(budget.n, budget.alpha)}

    def generator(self) -> str:
        return self.base.generator()

    def resume(self, rows, inputs) -> None:
        self.base.resume(rows, inputs)
        for r in rows:
            self._count(int(r["n"]), r["stop"])

    def certify_group(self, X, ids, budget: Budget) -> SequentialResult:
        return self.base.certify_batch(X, budget.n0, budget.n, budget.alpha, budget.batch_size, indices=ids,
                                       sequential=self.sequential)

    def certify_stream(self, inputs: Callable[[List[int]], torch.Tensor], ids: List[int], budget: Budget):
        base, n0, n, alpha = self.base, budget.n0, budget.n, budget.alpha
        self.n_max = n
        base.warn_small_n(n, alpha)

        def source():
            for pos, i in enumerate(ids):
                X, idx, table = base.prepare(inputs([i]), torch.tensor([i]))
                yield pos, X[0], int(idx[0]), table

        for job in certify_jobs(base, source(), n0, n, alpha, budget.batch_size, self.sequential, self.occupancy):
            res = base.sequential_result(results_of(base, [job], n0, n, alpha, self.sequential))
            self._count(job.n, job.stop)
            yield [ids[job.position]], res

    def with_sample_split(self, split):
        raise ValueError(SPLIT_REFUSAL)

    def shard_state(self) -> Dict[str, Any]:
        o = self.occupancy
        return {"samples": list(self.samples), "stops": dict(self.stops), "occupancy": (o.batches, o.rows, o.capacity)}

    def merge_shard_states(self, states) -> None:
        for st in states:
            self.samples += st["samples"]
            for k, v in st["stops"].items():
                self.stops[k] = self.stops.get(k, 0) + v
            b, r, c = st["occupancy"]
            self.occupancy.batches += b
            self.occupancy.rows += r
            self.occupancy.capacity += c

    def _count(self, n: int, stop: str) -> None:
        self.samples.append(n)
        self.stops[stop] = self.stops.get(stop, 0) + 1

    def progress_note(self) -> Dict[str, str]:
        if not self.samples:
            return {}
        mean = float(np.mean(self.samples))
        note = {"mean_n": f"{mean:.0f}"}
        if self.n_max:
            note["samples_saved"] = f"{1 - mean / self.n_max:.0%}"
        if self.occupancy.batches:
            note["batches_full"] = f"{self.occupancy.fraction:.0%}"
        return note

    def summary(self) -> Dict[str, Any]:
        out = dict(self.base.summary())
        if self.samples:
            s = np.asarray(self.samples, dtype=np.float64)
            out.update(mean_samples=round(float(s.mean()), 1), median_samples=float(np.median(s)),
                       p90_samples=float(np.percentile(s, 90)), stops=dict(sorted(self.stops.items())))
        if self.occupancy.batches:
            out["batch_occupancy"] = round(self.occupancy.fraction, 4)
        return out

    def finish(self) -> None:
        self.base.finish()
