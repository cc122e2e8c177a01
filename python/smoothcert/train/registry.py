"""The registries :func:`smoothcert.train.train` and ``smoothcert train`` read instead of
comparing names.

* :data:`LOSSES` -- training losses (:class:`smoothcert.train.losses.Loss`), keyed by
  ``--method`` / ``train(method=...)`` name; :func:`register_loss`.
* :data:`SIGMA_POLICIES` -- where each example's sigma comes from during training
  (:class:`smoothcert.train.policies.SigmaPolicy`), keyed by ``TrainConfig.sigma_mode``;
  :func:`register_sigma_policy`.
* :data:`TRAINING_NOISES` -- how a training step draws its noise
  (:class:`smoothcert.train.noises.TrainingNoise`), keyed by ``TrainConfig.noise``;
  :func:`register_training_noise`.
* :data:`RECIPES` -- ``smoothcert train --method`` values that run more than one loss
  pass (e.g. pretrain-finetune), :class:`Recipe`; :func:`register_recipe`.

A new strategy is one class that registers itself with the decorator; the loop and the
command line pick it up from here (its own CLI options included).
"""
from __future__ import annotations

import argparse
from typing import Callable, ClassVar, Dict, Iterator, List, Optional, Tuple


class Registry:
    """Names -> classes, in registration order (the order of ``--help`` and of choices).

    ``register(name)`` is a class decorator that also sets ``cls.name``; registering a
    taken name for another class is refused.
    """

    def __init__(self, what: str):
        self.what = what
        self._classes: Dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def deco(cls: type) -> type:
            have = self._classes.get(name)
            if have is not None and have is not cls:
                raise ValueError(f"{self.what} {name!r} is already registered ({have.__name__})")
            cls.name = name
            self._classes[name] = cls
            return cls
        return deco

    def unregister(self, name: str) -> None:
        """Removes ``name`` (plugins and tests that register temporarily)."""
        self._classes.pop(name, None)

    def get(self, name: str) -> type:
        """The class of ``name``, or ValueError naming the registered ones."""
        cls = self._classes.get(name)
        if cls is None:
            raise ValueError(f"unknown {self.what} {name!r}; known: {', '.join(self._classes)}")
        return cls

    def find(self, name: str) -> Optional[type]:
        return self._classes.get(name)

    def names(self) -> Tuple[str, ...]:
        return tuple(self._classes)

    def classes(self) -> List[type]:
        return list(self._classes.values())

    def __contains__(self, name) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._classes))

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._classes)})"


LOSSES = Registry("training method")
SIGMA_POLICIES = Registry("sigma mode")
TRAINING_NOISES = Registry("training noise")
RECIPES = Registry("training recipe")


def register_loss(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` (a :class:`~smoothcert.train.losses.Loss`) the loss of
    ``train(method=name)`` and ``smoothcert train --method name``."""
    if name in RECIPES:
        raise ValueError(f"{name!r} is already a training recipe (a --method value)")
    return LOSSES.register(name)


def register_sigma_policy(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` (a :class:`~smoothcert.train.policies.SigmaPolicy`) the
    policy of ``TrainConfig(sigma_mode=name)``."""
    return SIGMA_POLICIES.register(name)


def register_training_noise(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` (a :class:`~smoothcert.train.noises.TrainingNoise`) the
    noise of ``TrainConfig(noise=name)`` and ``smoothcert train --noise name``."""
    return TRAINING_NOISES.register(name)


def register_recipe(name: str) -> Callable[[type], type]:
    """Class decorator: makes ``cls`` (a :class:`Recipe`) the run of ``smoothcert train --method name``."""
    if name in LOSSES:
        raise ValueError(f"{name!r} is already a training loss (a --method value)")
    return RECIPES.register(name)


class Recipe:
    """A ``smoothcert train --method`` value that is more than one loss pass (the name of a
    loss runs that loss once, over ``--epochs``).

    Attributes:
        name: the registry key; HELP: its entry in ``--method``'s help.
    """

    name: ClassVar[str] = ""
    HELP: ClassVar[str] = ""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Adds the recipe's own options (an argument group)."""

    @classmethod
    def options_given(cls, args: argparse.Namespace) -> List[str]:
        """The recipe's own options set on the command line (refused under another --method)."""
        return []

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        raise NotImplementedError
