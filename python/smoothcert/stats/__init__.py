"""The statistics layer: exact binomial bounds (:mod:`.binomial`) and, per norm, how
vote counts become a certified radius (:mod:`.l2` Gaussian, :mod:`.l1` uniform,
splitting and deterministic splitting noise), the second-order and dipole certificates
(:mod:`.second_order`, :mod:`.dipole`), per-element sigma's ellipsoids (:mod:`.ellipsoid`) and
anytime-valid confidence sequences with their stopping rules (:mod:`.sequential`).

Alpha convention
----------------
``alpha`` is always the ONE-SIDED failure probability, as in Cohen, Rosenfeld &
Kolter (2019): ``P(pA < pA_lower) <= alpha``. Cohen et al.'s reference code
computes it as ``statsmodels proportion_confint(nA, n, alpha=2*alpha,
method="beta")[0]`` = ``scipy.stats.beta.ppf(alpha, nA, n - nA + 1)``. rs4a
(Yang et al. 2020) passes ``alpha`` straight to the two-sided interval, i.e. uses
``alpha/2`` per side, which is more conservative for the same nominal ``alpha``.

Radii are never rounded up: every positive radius is stepped down one ulp.
"""
from . import dipole, l1, second_order, sequential
from .binomial import binom_test_pvalue, clopper_pearson_lower, clopper_pearson_upper, min_samples_to_certify
from .l2 import ABSTAIN, certify_from_counts, gaussian_radius, predict_from_counts

__all__ = ["ABSTAIN", "clopper_pearson_lower", "clopper_pearson_upper", "binom_test_pvalue", "gaussian_radius",
           "certify_from_counts", "predict_from_counts", "min_samples_to_certify", "l1", "second_order", "dipole",
           "sequential"]
