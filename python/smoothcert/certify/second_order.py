"""Second-order smoothing (SoS; Levine, Kumar, Goldstein & Feizi, "Tight Second-Order
Certificates for Randomized Smoothing", Sec. 3, Theorems 1-2).

The estimation pass draws its n samples as n/2 disjoint independent pairs with
the fused pair sampler (:func:`smoothcert.ops.sample_noise_pairs`), which also
returns each pair's unit-noise dot product ``z . z'``: the same forward passes
give the vote count and the paired estimator of ``||grad p||^2`` (§2), so the
gradient costs no extra samples. The pairs' sums are exact integers
(``ceil(dot * 2^24)``), so the result does not depend on batching.

Each row carries two certificates from that one pass:

* ``second-order`` (the prefix): alpha split evenly, ``pA_lower`` at alpha/2 and
  an upper bound on the gradient norm at alpha/2, then Theorem 1's radius;
* ``first-order`` (``fo_*``): Cohen's radius at the full alpha from the same
  counts -- bit for bit the row of ``--certificate first-order``.

Each is a separate claim at level alpha; taking the larger of the two would need
its own share of alpha (docs/soundness.md).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np
import torch

from .. import ops, stats
from ..stats import second_order as sos
from ..engine import PairDotSums
from .family import Budget, register_certificate, require
from .gaussian import Smooth
from .results import CertifyResult


def _pairs_needed(dim: int, alpha_g: float) -> float:
    """Pairs at which Theorem 2's margin falls to 1/(2 pi) (small-deviation regime)."""
    return 16.0 * dim * math.log(1.0 / alpha_g) * (2.0 * math.pi) ** 2


def _scaled_upper(total: int) -> float:
    """An upper bound on ``total * 2^-DOT_SCALE_BITS`` as a float (int -> float may round)."""
    f = float(total)
    if int(f) < total:
        f = math.nextafter(f, math.inf)
    return math.ldexp(f, -sos.DOT_SCALE_BITS)


@dataclass
class SecondOrderResult:
    """Per-input results of :meth:`SecondOrderSmooth.certify_batch` (CPU, length B).

    Attributes:
        first_order: the :class:`CertifyResult` of Cohen's certificate from the same counts.
        prediction, radius: ``[B]`` of the second-order certificate (-1 / 0.0 on abstain).
        dot_sum: ``[B]`` float64 upper bound on ``sum_j f_j f'_j (z_j . z'_j)``.
        bounds: the arrays of :func:`smoothcert.stats.second_order.sos_certify`.
        dim: input dimension d.
    """

    first_order: CertifyResult
    prediction: torch.Tensor
    radius: torch.Tensor
    dot_sum: np.ndarray
    bounds: Dict[str, np.ndarray]
    dim: int
    certificate: str = "second-order"
    norm: str = "l2"

    COLUMNS = {"count_a": int, "n": int, "pa_lower": float, "dot_sum": float, "n_pairs": int, "grad_sq_raw": float,
               "grad_sq_margin": float, "grad_upper": float, "g_max": float, "grad_vacuous": int, "a_prime": float,
               "sigma": float, "dim": int, "certificate": str, "norm": str, "fo_predict": int, "fo_radius": float,
               "fo_pa_lower": float, "fo_certificate": str}

    @property
    def seconds(self) -> torch.Tensor:
        return self.first_order.seconds

    @property
    def pa_lower(self) -> torch.Tensor:
        return torch.as_tensor(self.bounds["pa_lower"])

    def fields(self, k: int) -> List[Any]:
        fo, b = self.first_order, self.bounds
        return [int(fo.count_a[k]), fo.n, repr(float(b["pa_lower"][k])), repr(float(self.dot_sum[k])), fo.n // 2,
                repr(float(b["grad_sq_raw"][k])), repr(float(b["grad_sq_margin"][k])),
                repr(float(b["grad_upper"][k])), repr(float(b["g_max"][k])), int(b["vacuous"][k]),
                repr(float(b["a_prime"][k])), repr(float(fo.sigma[k])), self.dim, self.certificate, self.norm,
                int(fo.prediction[k]), repr(float(fo.radius[k])), repr(float(fo.pa_lower[k])), fo.certificate]


@register_certificate("sos")
class SecondOrderSmooth(Smooth):
    """Gaussian smoothing certified with the second-order (gradient-norm) bound.

    Same constructor and API as :class:`Smooth` (``certify``, ``certify_batch``,
    ``predict``); sigma must be one value per input (isotropic noise). ``n`` must be
    even: the estimation samples form ``n/2`` disjoint pairs.
    """

    SEQUENTIAL = False
    SAMPLE_SPLIT = False  # its pair statistic is a reducer over the logits, not votes
    SEQUENTIAL_REFUSAL = "the second-order certificate also needs the pair dot-sum statistic"
    name = "sos"

    def certify_table(self, X, ids, table, n0, n, alpha, batch_size) -> SecondOrderResult:
        if n % 2:
            raise ValueError(f"second-order smoothing needs an even n (n/2 disjoint pairs), got n={n}")
        if table.shape[1] != 1:
            raise ValueError("second-order smoothing needs isotropic noise (one sigma per input), not a "
                             "per-element sigma")
        self.warn_small_n(n, alpha / 2)
        B = X.shape[0]
        dim = X[0].numel() if B else 1
        margin = float(sos.grad_sq_margin(max(1, n // 2), dim, alpha / 2))
        if margin >= 1.0 / (2.0 * math.pi):
            warnings.warn(f"n={n} samples at d={dim} give a gradient-norm margin ({margin:.3g} sigma^-2) above "
                          f"every possible G_max^2 (1/(2 pi sigma^2)): the second-order certificate will be the "
                          f"first-order one at alpha/2. It needs n > {_pairs_needed(dim, alpha / 2) * 2:.3g}.",
                          stacklevel=3)
        sel, seconds = self.select(X, ids, table, n0, batch_size)
        top = sel.argmax(dim=1)
        t0 = time.perf_counter()
        pairs = PairDotSums(top.to(X.device))
        est = self.sampler(ops.ESTIMATION_STREAM, batch_size, noise="gaussian-pairs").draw(
            X, ids, table, n, reducer=pairs).cpu()
        dots = pairs.result()
        if B:
            seconds += (time.perf_counter() - t0) / B
        count_a = est.gather(1, top.view(-1, 1)).view(-1)
        sig = self.radius_sigma(table, B)
        abstain, pa, radius = stats.certify_from_counts(count_a.numpy(), n, alpha, sig.numpy())
        fo_pred = torch.where(torch.as_tensor(abstain), torch.full_like(top, self.ABSTAIN), top)
        fo = CertifyResult(prediction=fo_pred, radius=torch.as_tensor(np.asarray(radius, np.float64)).view(-1),
                           count_a=count_a, pa_lower=torch.as_tensor(np.asarray(pa, np.float64)).view(-1),
                           sigma=sig, samples=torch.full((B,), n0 + n, dtype=torch.long), seconds=seconds,
                           selection_counts=sel, counts=est, n0=n0, n=n, alpha=alpha, certificate="first-order")
        dot_sum = np.array([_scaled_upper(t) for t in dots], dtype=np.float64)
        b = sos.sos_certify(count_a.numpy(), n, dot_sum, n // 2, dim, alpha, sig.numpy())
        b = {k: np.asarray(v).reshape(-1) for k, v in b.items()}
        pred = torch.where(torch.as_tensor(b["abstain"]), torch.full_like(top, self.ABSTAIN), top)
        return SecondOrderResult(first_order=fo, prediction=pred, radius=torch.as_tensor(b["radius"]),
                                 dot_sum=dot_sum, bounds=b, dim=dim)

    def column_types(self) -> Dict[str, type]:
        return dict(SecondOrderResult.COLUMNS)

    def config(self, budget: Budget) -> Dict[str, Any]:
        return {**super().config(budget), "certificate": "second-order"}

    def generator(self) -> str:
        return self.GENERATOR + "; disjoint pairs with unit-noise dot products (sample_noise_pairs)"

    @classmethod
    def from_args(cls, args, make_base) -> "SecondOrderSmooth":
        base = make_base()
        require(base, "--certificate sos", noise="gaussian", norm="l2")
        return cls.from_base(base)
