"""Drop-in front ends with the interfaces of other randomized-smoothing libraries,
backed by smoothcert's engine.

* :class:`smoothcert.compat.art.RandomizedSmoothing`: the constructor, ``certify`` and
  ``predict`` of the Adversarial Robustness Toolbox's ``PyTorchRandomizedSmoothing``
  (ART 1.20); see docs/compat.md for where it differs.

Nothing here imports those libraries: they are needed only to compare against.
"""
from .art import RandomizedSmoothing

__all__ = ["RandomizedSmoothing"]
