"""One derivation of every random stream's seed in training: :func:`derive_seed`.

Purposes are registered names (:data:`PURPOSES`), each with the keys it takes and its
formula. The formulas are the legacy ones every checkpoint so far was made with, kept as they
are so that old runs reproduce (and resume) bit for bit:

* ``"init"`` -- the model's initial weights (``torch.manual_seed``): the seed itself;
* ``"epoch"`` (key: epoch) -- the epoch's shuffle, then its augmentation, from one CPU
  generator: ``seed * 1_000_003 + epoch``;
* ``"uniform-sigma"`` (key: epoch) -- the epoch's sigma table ~ U(sigma_min, sigma_max)
  (Wang et al., sample-wise smoothing, Eq. 4): ``2^62 + seed * 1_000_003 + epoch``;
* ``"noise"`` and ``"sigma-opt"`` -- the counter-based sampler's training noise and DS2's
  OptimizeSigma draws: the seed itself, kept apart by their streams
  (``ops.TRAINING_STREAM``, ``ops.TRAIN_SIGMA_OPT_STREAM``), not by the seed.

The epoch key counts with the run's ``epoch_offset``. A new purpose needs a formula whose
values cannot meet another purpose's (e.g. its own tag in the high bits).
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Tuple

import torch

_MOD = 1 << 64
# Keeps the uniform-sigma generator of (seed, epoch) apart from the epoch generator of the
# same (seed, epoch): equal seeds would give equal streams.
_UNIFORM_SIGMA_TAG = 1 << 62


class Purpose(NamedTuple):
    keys: Tuple[str, ...]
    formula: Callable[..., int]


PURPOSES: Dict[str, Purpose] = {
    "init": Purpose((), lambda seed: seed),
    "epoch": Purpose(("epoch",), lambda seed, epoch: seed * 1_000_003 + epoch),
    "uniform-sigma": Purpose(("epoch",), lambda seed, epoch: _UNIFORM_SIGMA_TAG + seed * 1_000_003 + epoch),
    "noise": Purpose((), lambda seed: seed),
    "sigma-opt": Purpose((), lambda seed: seed),
}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_seed(seed) -> None:
    """ValueError unless ``seed`` is an int in ``[0, 2^64)`` (the counter-based sampler's key)."""
    if not (_is_int(seed) and 0 <= seed < _MOD):
        raise ValueError(f"seed must lie in [0, 2^64), got {seed!r}")


def derive_seed(seed: int, purpose: str, *keys: int) -> int:
    """The seed in ``[0, 2^64)`` of training's random stream ``purpose`` keyed by ``keys``.

    Args:
        seed: the run's seed, an int in ``[0, 2^64)``.
        purpose: a name of :data:`PURPOSES` (module docstring).
        keys: the purpose's keys, ints >= 0 (the epoch for ``"epoch"`` and ``"uniform-sigma"``).

    Values of 2^64 and above wrap modulo 2^64: the legacy formulas exceed the generator's
    range only for seeds above about 1.8e13, which could not seed a run before.
    """
    check_seed(seed)
    entry = PURPOSES.get(purpose)
    if entry is None:
        raise ValueError(f"unknown seed purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    if len(keys) != len(entry.keys):
        raise ValueError(f"seed purpose {purpose!r} takes the keys ({', '.join(entry.keys)}), got {len(keys)}")
    if not all(_is_int(k) and k >= 0 for k in keys):
        raise ValueError(f"seed keys must be ints >= 0, got {keys!r}")
    return entry.formula(seed, *keys) % _MOD


def generator(seed: int, purpose: str, *keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose, *keys))
