"""Uniform additive smoothing for L1 (Lee et al. 2019; Yang et al. 2020), and the
Monte-Carlo L1 certificate it shares with randomized splitting noise.

Levine & Feizi (ICML 2021, Sec. 3 and Sec. 4): with noise
U(-lambda, lambda)^d or splitting noise of period 2 lambda, every class
probability is ``1/(2 lambda)``-Lipschitz in L1, so Cohen-style CERTIFY
(selection with n0 samples, estimation with n fresh samples) gives the L1 radius
``2 lambda (pA_lower - 1/2)``, ``lambda = sqrt(3) sigma`` (sigma is the RMS).

Neither L1 Monte-Carlo family abstains by default (as in the paper): the
prediction is the selection vote's winner, and an input whose bound does not
exceed 1/2 gets radius 0 (``pa_lower`` tells it apart from a certified one).
"""
from __future__ import annotations

import numpy as np

from .. import stats
from ..stats import l1 as stats_l1
from .family import Budget, register_family, required_sigma
from .monte_carlo import MonteCarloFamily


class L1MonteCarlo(MonteCarloFamily):
    """Cohen-style CERTIFY with an L1 radius ``2 lambda (pA_lower - 1/2)`` and, by default, no abstention."""

    NORM = "l1"
    SEQUENTIAL = True

    def __init__(self, base_classifier, num_classes, sigma, *, abstain: bool = False, **kwargs):
        super().__init__(base_classifier, num_classes, sigma, **kwargs)
        self.abstain = bool(abstain)

    def _slack(self, dim: int, sigma: np.ndarray) -> np.ndarray:
        return np.zeros_like(sigma, dtype=np.float64)

    def certificate(self, count_a, n, alpha, sigma, dim):
        """L1 radius ``2 lambda (pA_lower - 1/2)`` (Levine & Feizi 2021, Sec. 3), less the slack."""
        pa = np.atleast_1d(np.asarray(stats.clopper_pearson_lower(count_a, n, alpha), dtype=np.float64))
        abstain, r = self.radius_from_lower(pa, sigma, dim)
        return abstain, pa, r

    def radius_from_lower(self, pa_lower, sigma, dim):
        """The L1 radius of any valid lower bound (abstain only with ``abstain=True``)."""
        pa = np.atleast_1d(np.asarray(pa_lower, dtype=np.float64))
        r = stats_l1.l1_radius(pa, sigma, slack=self._slack(dim, np.asarray(sigma, dtype=np.float64)))
        certified = r > 0
        abstain = ~certified if self.abstain else np.zeros_like(certified)
        return abstain, np.where(certified, r, 0.0)

    def config(self, budget: Budget):
        return {**super().config(budget), "noise": self.NOISE, "abstain": self.abstain}

    @classmethod
    def add_arguments(cls, parser) -> None:
        parser.add_argument("--abstain", action="store_true",
                            help="uniform/ssn: abstain when pA_lower <= 1/2 (the paper never abstains)")

    @classmethod
    def from_args(cls, args, model, num_classes, trained, out_dtype):
        return cls(model, num_classes, required_sigma(args), seed=args.seed, out_dtype=out_dtype, abstain=args.abstain)


@register_family("uniform")
class UniformSmooth(L1MonteCarlo):
    """Uniform additive smoothing for L1 (Lee et al. 2019; Yang et al. 2020).

    The smoothed classifier votes over ``x + U(-lambda, lambda)^d`` with
    ``lambda = sqrt(3) sigma`` (sigma is the noise's RMS, as in the papers; the
    noisy input is not clipped). ``certify(x, n0, n, alpha, batch_size)`` and
    ``predict(x, n, alpha, batch_size)`` keep Cohen et al.'s signatures;
    ``certify`` returns ``(class, l1_radius)`` with radius
    ``2 lambda (pA_lower - 1/2)`` (0.0 when not certified; ``abstain=True``
    returns ``ABSTAIN`` there instead of the selected class). Other keyword
    arguments as :class:`smoothcert.Smooth`.
    """

    NOISE = "uniform"
    SIGMA_GRADIENT = True
    GENERATOR = "Philox-4x32-10, uniform on 2^23 symmetric points (smoothcert)"
