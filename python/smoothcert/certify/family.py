"""The interface every smoothing family implements, and the registry the CLI reads.

A family is one way of smoothing a classifier and certifying it: Gaussian
(:class:`~smoothcert.certify.gaussian.Smooth`), uniform, splitting noise, DSSN,
and wrappers such as data-dependent sigma with its memory. The dataset runner
(:func:`smoothcert.drivers.certify_dataset`) and the CLI only talk to this
interface, so a new family is one module that subclasses :class:`SmoothingFamily`
and registers itself with :func:`register_family` (or :func:`register_sigma_mode`
for a wrapper around another family).

What a family decides:

* how it draws or enumerates its classifier batches and which statistic it keeps
  (inside :meth:`SmoothingFamily.certify_group`);
* how the counts become a certificate (the :class:`GroupResult` it returns);
* what it writes to the result TSV after Cohen et al.'s six columns, with their types
  (:meth:`SmoothingFamily.column_types` and :meth:`GroupResult.fields`; the types go to the
  sidecar, which :mod:`smoothcert.analysis` reads, so analysis never names a family's columns);
* which settings determine its results (:meth:`SmoothingFamily.config`, stored in
  the TSV's sidecar and compared on resume), and any state it must rebuild to
  resume a run (:meth:`SmoothingFamily.resume`), and what it reports at the end
  (:meth:`SmoothingFamily.summary`, :meth:`SmoothingFamily.finish`).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import torch


@dataclass(frozen=True)
class Budget:
    """Sample sizes of a Monte-Carlo certificate (families that enumerate ignore them).

    Attributes:
        n0: selection samples; n: estimation samples; alpha: one-sided failure
        probability; batch_size: classifier batch size.
    """

    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    batch_size: int = 1000


class GroupResult(Protocol):
    """Per-input results of one :meth:`SmoothingFamily.certify_group` call (length B)."""

    prediction: torch.Tensor  # [B] int64, -1 = abstain
    radius: torch.Tensor  # [B] float64, never rounded up
    seconds: torch.Tensor  # [B] float64

    def fields(self, k: int) -> List[Any]:
        """The values of :meth:`SmoothingFamily.columns` for input ``k``."""


# Cohen et al.'s six leading TSV columns and their types.
PREFIX_TYPES: Dict[str, type] = {"idx": int, "label": int, "predict": int, "radius": float, "correct": int,
                                 "time": float}


class SmoothingFamily:
    """Base class of the smoothing families (see the module docstring).

    Subclasses get :attr:`name` (the registry key, e.g. ``"gaussian"``) from their
    registration, set the capability attributes below, and implement the methods.

    Capabilities (what wrappers and certificates need of the family they build on, checked by
    :func:`require`, never by comparing names or classes):

    * :attr:`NORM` -- ``"l2"`` or ``"l1"``, the norm of the radius;
    * :attr:`NOISE` -- the noise kind of :mod:`smoothcert.engine.noise` it samples (``""``
      for a wrapper or a family that enumerates);
    * :attr:`MONTE_CARLO` -- certifies from votes of noisy samples with Cohen et al.'s
      protocol (:class:`~smoothcert.certify.monte_carlo.MonteCarloFamily`'s public methods);
    * :attr:`SIGMA_GRADIENT` -- its noise is differentiable in sigma (data-dependent sigma
      optimises sigma through it).
    """

    ABSTAIN: ClassVar[int] = -1
    name: ClassVar[str] = ""
    NORM: ClassVar[str] = "l2"
    NOISE: ClassVar[str] = ""
    MONTE_CARLO: ClassVar[bool] = False
    SIGMA_GRADIENT: ClassVar[bool] = False
    GENERATOR: ClassVar[str] = ""  # how the noise is drawn, for the sidecar
    # A transductive family's certificates depend on the whole set of inputs: a
    # dataset run writes its per-input rows (:meth:`stage_columns`) to a stage file
    # and, once every input is done, the final rows from :meth:`allocate`.
    TRANSDUCTIVE: ClassVar[bool] = False
    # An ordered family's certificate of an input depends on the inputs certified before it
    # (in dataset order): it splits a group's work into :meth:`certify_unordered` (per input,
    # any process) and :meth:`resolve_ordered` (once, in dataset order).
    ORDERED: ClassVar[bool] = False

    def column_types(self) -> Dict[str, type]:
        """TSV columns written after ``idx label predict radius correct time``, in order, with
        their types (``int``, ``float`` or ``str``)."""
        raise NotImplementedError

    def columns(self) -> List[str]:
        """The names of :meth:`column_types`."""
        return list(self.column_types())

    def certify_group(self, X: torch.Tensor, ids: torch.Tensor, budget: Budget) -> GroupResult:
        """Certifies ``X`` ``[B, *S]`` whose dataset indices are ``ids`` ``[B]``."""
        raise NotImplementedError

    def certify_stream(self, inputs: Callable[[List[int]], torch.Tensor], ids: List[int],
                       budget: Budget) -> Iterator[Tuple[List[int], GroupResult]]:
        """Certifies dataset indices ``ids`` in order, yielding ``(ids of a group, its result)`` as
        groups finish; ``inputs(ids)`` returns their ``[len(ids), *S]`` inputs. By default groups
        of :meth:`group_size`; a family that schedules inputs itself (sequential sampling
        refills a finished input's slot) overrides it."""
        group = self.group_size(budget)
        for g0 in range(0, len(ids), group):
            part = ids[g0:g0 + group]
            yield part, self.certify_group(inputs(part), torch.tensor(part), budget)

    def certify_unordered(self, X: torch.Tensor, ids: torch.Tensor, budget: Budget) -> Any:
        """An :attr:`ORDERED` family's work on a group ``X`` ``[B, *S]`` that does not depend on
        other inputs: a picklable value (another process may compute it) that
        :meth:`resolve_ordered` turns into the group's result."""
        raise NotImplementedError

    def resolve_ordered(self, X: torch.Tensor, ids: torch.Tensor, partial: Any) -> GroupResult:
        """The ordered step of a group after every group before it in dataset order;
        ``certify_group`` is ``resolve_ordered(certify_unordered(...))``."""
        raise NotImplementedError

    def progress_note(self) -> Dict[str, str]:
        """What a dataset run's progress bar shows beside the count of inputs done."""
        return {}

    def group_size(self, budget: Budget) -> int:
        """Inputs per :meth:`certify_group` call in a dataset run (they share forward batches)."""
        return max(1, budget.batch_size // budget.n)

    def validate(self, budget: Budget) -> None:
        """Raises ValueError if this family cannot certify under ``budget`` (a dataset run
        calls it before it writes anything)."""

    def config(self, budget: Budget) -> Dict[str, Any]:
        """Every setting that determines this family's results under ``budget``."""
        raise NotImplementedError

    def generator(self) -> str:
        """How the noise is drawn (recorded in the sidecar)."""
        return self.GENERATOR

    def resume(self, rows: List[Dict[str, str]], inputs: Callable[[List[int]], torch.Tensor]) -> None:
        """Rebuilds the state of a stateful family from the completed rows of an
        interrupted run (``inputs(ids)`` returns their ``[len(ids), *S]`` inputs)."""

    def stage_column_types(self) -> Dict[str, type]:
        """Columns (with types) of a transductive family's per-input stage rows (after the prefix)."""
        return self.column_types()

    def stage_columns(self) -> List[str]:
        """The names of :meth:`stage_column_types`."""
        return list(self.stage_column_types())

    def allocation_keys(self) -> List[str]:
        """Keys of :meth:`config` that only the transductive allocation reads (a stage file
        shared by runs that differ in them is still valid)."""
        return []

    def allocate(self, rows: List[Dict[str, str]], inputs: Callable[[List[int]], torch.Tensor],
                 budget: Budget) -> GroupResult:
        """A transductive family's final results from its complete stage ``rows`` (without the
        label and correct columns), aligned with them."""
        raise NotImplementedError

    def with_sequential(self, sequential) -> "SmoothingFamily":
        """This family with sequential sample sizes (``smoothcert certify --sequential``; a
        :class:`~smoothcert.certify.sequential.Sequential`), or ValueError naming why it cannot.
        Only Monte-Carlo families whose certificate is one binomial count, and wrappers around
        them, can."""
        raise ValueError(f"--sequential needs a Monte-Carlo family (votes of noisy samples) whose certificate is "
                         f"one binomial count; --noise {self.name or type(self).__name__} is not")

    def with_sample_split(self, split) -> "SmoothingFamily":
        """This family drawing only its process's share of every input's samples (a
        :class:`~smoothcert.drivers.distributed.SampleSplit`; the votes are summed across the
        processes, so every certificate is the one-process one), or ValueError naming why not."""
        raise ValueError(f"--noise {self.name or type(self).__name__} cannot split one input's samples across "
                         "processes (only Monte-Carlo vote counts can be summed); shard the inputs instead "
                         "(leave out --split-samples)")

    def shard_state(self) -> Dict[str, Any]:
        """What a run on one process of several learned for :meth:`summary` (picklable)."""
        return {}

    def merge_shard_states(self, states: List[Dict[str, Any]]) -> None:
        """Adds the other processes' :meth:`shard_state` s to this one's (so that rank 0's
        :meth:`summary` covers the whole run)."""

    def finish(self) -> None:
        """Called at the end of a dataset run (e.g. to save a memory)."""

    def summary(self) -> Dict[str, Any]:
        """Run statistics worth reporting at the end (e.g. how often a memory fired)."""
        return {}

    # ------------------------------------------------------------ command line

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Adds this family's own ``smoothcert certify`` options (shared ones exist already)."""

    @classmethod
    def options_given(cls, args: argparse.Namespace) -> List[str]:
        """This family's own options set on the command line (refused when another family runs)."""
        return []

    @classmethod
    def from_args(cls, args: argparse.Namespace, model: Callable, num_classes: int, trained: Dict[str, Any],
                  out_dtype: Optional[torch.dtype]) -> "SmoothingFamily":
        """Builds the family from parsed CLI options; ``trained`` is the checkpoint's noise metadata."""
        raise NotImplementedError


def required_sigma(args: argparse.Namespace) -> float:
    """``args.sigma``, or ValueError when the command line gave none."""
    if getattr(args, "sigma", None) is None:
        raise ValueError("--sigma is required (the noise level)")
    return args.sigma


def require(base: SmoothingFamily, what: str, *, noise: Optional[str] = None, norm: Optional[str] = None,
            monte_carlo: bool = False, sigma_gradient: bool = False) -> None:
    """Refuses a ``base`` family without the capabilities ``what`` (a wrapper, certificate or
    option, e.g. ``"--certificate sos"``) needs, with one message naming both.

    Args:
        noise: the noise kind it must sample (e.g. ``"gaussian"``); norm: its radius' norm.
        monte_carlo: it must offer :class:`~smoothcert.certify.monte_carlo.MonteCarloFamily`'s methods.
        sigma_gradient: its noise must be differentiable in sigma.
    """
    got = f"--noise {getattr(base, 'name', '') or type(base).__name__}"
    if sigma_gradient and not (getattr(base, "MONTE_CARLO", False) and getattr(base, "SIGMA_GRADIENT", False)):
        able = [n for n, c in FAMILIES.items() if getattr(c, "MONTE_CARLO", False) and getattr(c, "SIGMA_GRADIENT", False)]
        raise ValueError(f"{what} needs a Monte-Carlo family whose noise is differentiable in sigma "
                         f"(--noise {' or '.join(able)}); {got} is not")
    if monte_carlo and not getattr(base, "MONTE_CARLO", False):
        raise ValueError(f"{what} needs a Monte-Carlo family (votes of noisy samples); {got} is not")
    if noise is not None and (getattr(base, "NOISE", "") != noise or (norm is not None and base.NORM != norm)):
        raise ValueError(f"{what} certifies {noise.capitalize()} noise ({(norm or base.NORM).upper()}); {got} is not")
    if noise is None and norm is not None and getattr(base, "NORM", None) != norm:
        raise ValueError(f"{what} certifies {norm.upper()} radii; {got} certifies {base.NORM.upper()}")


FAMILIES: Dict[str, type] = {}
SIGMA_MODES: Dict[str, Optional[type]] = {"fixed": None}


def _name(cls: type, name: str) -> None:
    # Registered subclasses get their own name; an unregistered one keeps its parent's.
    if "name" not in cls.__dict__:
        cls.name = name


def register_family(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` the family of ``smoothcert certify --noise name``."""
    def deco(cls: type) -> type:
        if name in FAMILIES and FAMILIES[name] is not cls:
            raise ValueError(f"smoothing family {name!r} is already registered ({FAMILIES[name].__name__})")
        FAMILIES[name] = cls
        _name(cls, name)
        return cls
    return deco


def register_sigma_mode(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` the family of ``smoothcert certify --sigma-mode name``.

    ``cls.from_args(args, make_base)`` builds it; ``make_base(**overrides)`` builds the
    ``--noise`` family with some options replaced (e.g. ``sigma=``), for a mode that wraps
    it or takes its settings. ``cls.options_given(args)`` lists the mode's own options set
    on the command line: they are refused under another mode, and select the mode when
    ``--sigma-mode`` is not given if ``cls.IMPLIED_BY_OPTIONS`` is true."""
    def deco(cls: type) -> type:
        SIGMA_MODES[name] = cls
        _name(cls, name)
        return cls
    return deco


CERTIFICATES: Dict[str, Optional[type]] = {"first-order": None}


def register_certificate(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` the family of ``smoothcert certify --certificate name``
    (a certificate other than the first-order one, e.g. second-order or dipole).

    ``cls.from_args(args, make_base)`` builds it from the ``--noise`` family that
    ``make_base()`` returns (it refuses a noise it cannot certify); options of its own
    that ``cls.options_given(args)`` lists are refused under another certificate."""
    def deco(cls: type) -> type:
        if name in CERTIFICATES and CERTIFICATES[name] not in (None, cls):
            raise ValueError(f"certificate {name!r} is already registered")
        CERTIFICATES[name] = cls
        _name(cls, name)
        return cls
    return deco


def add_family_arguments(parser: argparse.ArgumentParser, classes: Sequence[type]) -> None:
    """Each distinct ``add_arguments`` of ``classes`` once (subclasses may share their parent's)."""
    seen = set()
    for cls in classes:
        fn = cls.add_arguments.__func__
        if fn not in seen:
            seen.add(fn)
            cls.add_arguments(parser)
