"""Choosing sigma.

* :mod:`.optimize` -- per input: the data-dependent optimiser of Alfarra et al. (Algorithm 1),
  used at certification time (:mod:`smoothcert.certify.ddrs`) and by DS2 training;
* :mod:`.fit` -- per element, one sigma per (dataset, model): Tecot et al.'s optimiser, with
  the sigma file of :mod:`.sigma_file` (the c0 sweep of ``smoothcert fit-sigma`` is the driver
  :mod:`smoothcert.drivers.fit_sigma`).
"""
from .fit import DATASET_DEFAULTS, FitConfig, SigmaParameter, surrogate
from .optimize import OptimizeSigma, SigmaResult, gaussian_soft_radius, uniform_soft_radius
from .sigma_file import load_sigma, save_sigma

__all__ = ["OptimizeSigma", "SigmaResult", "gaussian_soft_radius", "uniform_soft_radius", "DATASET_DEFAULTS",
           "FitConfig", "SigmaParameter", "surrogate", "load_sigma", "save_sigma"]
