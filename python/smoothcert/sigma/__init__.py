"""Choosing sigma per input: the data-dependent optimiser of Alfarra et al. (Algorithm 1),
used at certification time (:mod:`smoothcert.certify.ddrs`) and by DS2 training."""
from .optimize import OptimizeSigma, SigmaResult, gaussian_soft_radius, uniform_soft_radius

__all__ = ["OptimizeSigma", "SigmaResult", "gaussian_soft_radius", "uniform_soft_radius"]
