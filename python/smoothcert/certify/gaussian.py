"""Gaussian randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019).

The smoothed classifier g(x) = argmax_c P(f(x + eps) = c), eps ~ N(0, sigma^2 I),
is certified with Cohen et al.'s CERTIFY: the top class is *selected* with n0
samples, its probability is *estimated* with n fresh samples, and
pA_lower = one-sided (1 - alpha) Clopper-Pearson bound gives the L2 radius
sigma * Phi^-1(pA_lower) (abstain when pA_lower < 1/2).

The protocol itself (selection, estimation, PREDICT) is :class:`MonteCarloFamily`'s; this
family adds the Gaussian noise and the L2 radius. Noise comes from the counter-based
sampler (:class:`smoothcert.engine.Sampler`) keyed by (seed, stream, input index, sample
index, element): selection, estimation and prediction use different streams, so they are
independent draws, and every result is a function of the seed and the input index alone,
whatever the batch size or the way inputs are packed. (The classifier's own arithmetic may
still depend on the batch size; see docs/soundness.md.)
"""
from __future__ import annotations

import numpy as np

from .. import stats
from .family import register_family, required_sigma
from .monte_carlo import MonteCarloFamily


@register_family("gaussian")
class Smooth(MonteCarloFamily):
    """A Gaussian-smoothed classifier with Cohen et al.'s PREDICT and CERTIFY.

    Arguments as :class:`~smoothcert.certify.monte_carlo.MonteCarloFamily`; a per-element
    sigma certifies the L2 ball of its smallest value. ``certify(x, n0, n, alpha,
    batch_size)`` returns ``(class, radius)``, ``predict(x, n, alpha, batch_size)`` the class
    (``Smooth.ABSTAIN`` = -1 on abstain); ``certify_batch``/``predict_batch`` take ``[B, *S]``.
    """

    NOISE = "gaussian"
    NORM = "l2"
    SIGMA_GRADIENT = True
    GENERATOR = "Philox-4x32-10, Box-Muller (smoothcert)"
    SEQUENTIAL = True

    def certificate(self, count_a: np.ndarray, n: int, alpha: float, sigma: np.ndarray, dim: int):
        """Cohen et al. Thm. 1: radius ``sigma Phi^-1(pA_lower)``, abstain when pA_lower <= 1/2."""
        return stats.certify_from_counts(count_a, n, alpha, sigma)

    def radius_from_lower(self, pa_lower, sigma, dim):
        """Cohen et al. Thm. 1 from any valid lower bound: :func:`smoothcert.stats.gaussian_radius`."""
        pa = np.asarray(pa_lower, dtype=np.float64)
        return pa < 0.5, np.asarray(stats.gaussian_radius(pa, sigma), dtype=np.float64)

    @classmethod
    def from_args(cls, args, model, num_classes, trained, out_dtype):
        return cls(model, num_classes, required_sigma(args), seed=args.seed, out_dtype=out_dtype)
