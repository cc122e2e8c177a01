"""Drivers: long runs composed from the layers below, resumable from what they wrote.

* :mod:`.dataset` -- :func:`certify_dataset`, certifying a dataset with any family into a
  resumable TSV and its sidecar (docs/formats.md);
* :mod:`.fit_sigma` -- :func:`fit_sigma_sweep`, the per-element sigma fit over a c0 sweep
  (fit, certify, sigma files, heat-maps).

Drivers may import every layer except :mod:`smoothcert.cli`; nothing below imports them.
"""
from .dataset import certify_dataset
from .fit_sigma import fit_sigma_sweep

__all__ = ["certify_dataset", "fit_sigma_sweep"]
