"""Non-uniform (anisotropic, per-element sigma) Gaussian smoothing (Tecot et al.;
"Robustness Verification with Non-Uniform Randomized Smoothing", Sec. 4).

The noise is ``N(0, diag(sigma^2))`` with one sigma per input element, the
same for every input (fitted on training data by :mod:`smoothcert.sigma.fit`
and frozen before any test-time draw, so the certificate is Cohen's
Neyman-Pearson argument for one fixed noise distribution). CERTIFY is Cohen's
with the noise ``sigma * z`` -- the same fused sampler, the same streams and
counts -- and certifies the ellipsoid ``||delta / sigma||_2 < R``,
``R = Phi^-1(pA_lower)`` (:mod:`smoothcert.stats.ellipsoid`). The TSV prefix's
radius is the largest L2 ball inside it, ``R min sigma`` (also an L1 ball), so
with a constant sigma a row equals :class:`Smooth`'s bit for bit.

Selected by ``smoothcert certify --sigma-file F`` (``--sigma-mode anisotropic``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from ..sigma.sigma_file import check_sigma_tensor, load_sigma
from ..stats import ellipsoid
from ..engine import check_alpha, one_input
from .family import Budget, register_sigma_mode, require
from .gaussian import Smooth
from .results import CertifyResult


@dataclass
class AnisotropicResult:
    """Per-input results of :meth:`AnisotropicSmooth.certify_batch` (CPU, length B).

    Attributes:
        base: the :class:`CertifyResult` (counts, ``pa_lower``; ``radius`` = ``R min sigma``).
        normalized_radius: ``[B]`` float64 R (ellipsoid radius in units of sigma).
        o_ca: ``[B]`` float64 log certified volume (``-inf`` on abstain).
        r_geo: ``[B]`` ``R geomean(sigma)``; r_linf: ``[B]`` inscribed L-inf half-width.
        r_two_sided: ``[B]`` two-sided normalised radius, or None when not requested.
        sigma: the run's :class:`~smoothcert.stats.ellipsoid.SigmaSummary`.
    """

    base: CertifyResult
    normalized_radius: torch.Tensor
    o_ca: torch.Tensor
    r_geo: torch.Tensor
    r_linf: torch.Tensor
    r_two_sided: Optional[torch.Tensor]
    sigma: ellipsoid.SigmaSummary
    certificate: str = "anisotropic"
    norm: str = "l2"

    COLUMNS = {"count_a": int, "n": int, "pa_lower": float, "normalized_radius": float, "o_ca": float,
               "r_geo": float, "r_linf": float, "sigma_min": float, "sigma_mean": float, "sigma_geomean": float,
               "certificate": str, "norm": str}

    @property
    def prediction(self) -> torch.Tensor:
        return self.base.prediction

    @property
    def radius(self) -> torch.Tensor:
        return self.base.radius

    @property
    def seconds(self) -> torch.Tensor:
        return self.base.seconds

    @property
    def pa_lower(self) -> torch.Tensor:
        return self.base.pa_lower

    def fields(self, k: int) -> List[Any]:
        s, b = self.sigma, self.base
        n_used = getattr(b, "n_used", None)  # a sequential run: samples per input, then its columns
        out = [int(b.count_a[k]), b.n if n_used is None else int(n_used[k]), repr(float(b.pa_lower[k])),
               repr(float(self.normalized_radius[k])), repr(float(self.o_ca[k])), repr(float(self.r_geo[k])),
               repr(float(self.r_linf[k])), repr(s.minimum), repr(s.mean), repr(s.geomean), self.certificate,
               self.norm]
        if self.r_two_sided is not None:
            out.append(repr(float(self.r_two_sided[k])))
        if n_used is not None:
            out += [b.n, b.stop[k], repr(float(b.target[k]))]
        return out


@register_sigma_mode("anisotropic")
class AnisotropicSmooth(Smooth):
    """Gaussian smoothing with a per-element sigma, certifying ellipsoids.

    Args:
        base_classifier: maps ``[N, *S]`` raw inputs to ``[N, K]`` logits.
        num_classes: K.
        sigma: ``S`` float tensor (the shape of one input), finite and > 0, in the
            classifier's raw input units.
        two_sided: also compute the two-sided bound of Theorem 3.1
            (:func:`smoothcert.stats.ellipsoid.two_sided_radius`).
        sigma_source: description of where sigma came from (for the sidecar).
        Other keywords as :class:`Smooth`.
    """

    name = "anisotropic"

    def __init__(self, base_classifier, num_classes: int, sigma: torch.Tensor, *, two_sided: bool = False,
                 sigma_source: Optional[str] = None, **kwargs):
        sigma = check_sigma_tensor(sigma)
        super().__init__(base_classifier, num_classes, sigma, **kwargs)
        self.summary_stats = ellipsoid.SigmaSummary(sigma)
        self.two_sided = bool(two_sided)
        self.sigma_source = sigma_source

    # ----------------------------------------------------------------- public API

    # R = Phi^-1(pA_lower) is a function of the selected class's count alone; a decide radius is
    # the L2 ball R min sigma of the radius column.
    SEQUENTIAL = True

    def certify_batch(self, X: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                      *, indices: Optional[Union[torch.Tensor, int]] = None, sequential=None) -> AnisotropicResult:
        """CERTIFY for ``X`` ``[B, *S]`` (``S`` = sigma's shape): :class:`AnisotropicResult`
        (``sequential=`` as :meth:`smoothcert.Smooth.certify_batch`; the ellipsoid of the
        confidence sequence's bound at stopping)."""
        base = super().certify_batch(X, n0, n, alpha, batch_size, indices=indices, sequential=sequential)
        return base if sequential is not None else self._extend(base)

    def check_sequential(self, sequential) -> None:
        super().check_sequential(sequential)
        if self.two_sided:
            raise ValueError("--two-sided cannot be certified sequentially: the two-sided bound needs the runner-up's "
                             "count too (a union bound over classes), not one binomial count")

    def sequential_result(self, res) -> AnisotropicResult:
        return self._extend(res)

    def sequential_column_types(self) -> Dict[str, type]:
        from .sequential import SequentialResult

        return {**AnisotropicResult.COLUMNS, **SequentialResult.EXTRA_COLUMNS}

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int,
                *, index: Optional[int] = None) -> Tuple[int, float]:
        """One input ``S``: ``(class, R)`` -- the normalised radius of the certified ellipsoid
        (``||delta / sigma||_2 < R``); ``(ABSTAIN, 0.0)`` on abstain."""
        res = self.certify_batch(one_input(x), n0, n, alpha, batch_size, indices=self.input_index(index))
        return int(res.prediction[0]), float(res.normalized_radius[0])

    def contains(self, delta: torch.Tensor, R) -> torch.Tensor:
        """``[B]`` bool: ``delta`` ``[B, *S]`` provably lies strictly inside the ellipsoid
        ``||delta / sigma||_2 < R`` (``R`` ``[B]`` or a number; float64, with a rounding margin,
        so points within a few ulps of the surface answer False)."""
        delta = torch.as_tensor(delta)
        if delta.dim() == self.sigma.dim():
            delta = delta.unsqueeze(0)
        R = np.broadcast_to(np.asarray(torch.as_tensor(R, dtype=torch.float64).cpu()), (delta.shape[0],))
        return torch.as_tensor(ellipsoid.ellipsoid_margin(delta, self.sigma, R) > 0)

    # ----------------------------------------------------------- family interface

    def column_types(self) -> Dict[str, type]:
        return {**AnisotropicResult.COLUMNS, **({"r_two_sided": float} if self.two_sided else {})}

    def certify_group(self, X, ids, budget: Budget) -> AnisotropicResult:
        return self.certify_batch(X, budget.n0, budget.n, budget.alpha, budget.batch_size, indices=ids)

    def config(self, budget: Budget) -> Dict[str, Any]:
        s = self.summary_stats
        return {**super().config(budget), "sigma_mode": "anisotropic", "sigma_file": self.sigma_source,
                "sigma_shape": list(self.sigma.shape), "sigma_min": s.minimum, "sigma_mean": s.mean,
                "sigma_geomean": s.geomean, "two_sided": self.two_sided}

    def generator(self) -> str:
        return self.GENERATOR + "; per-element sigma"

    OPTION_DEFAULTS = {"sigma_file": None, "two_sided": False}
    IMPLIED_BY_OPTIONS = True  # --sigma-file alone selects this mode (it can mean nothing else)

    @classmethod
    def add_arguments(cls, parser) -> None:
        g = parser.add_argument_group("per-element sigma (--sigma-mode anisotropic)")
        g.add_argument("--sigma-file", help="sigma file from smoothcert fit-sigma (one sigma per input element); "
                       "certifies ellipsoids ||delta / sigma|| < R and implies --sigma-mode anisotropic")
        g.add_argument("--two-sided", action="store_true", default=None,
                       help="also write the two-sided bound (Phi^-1(pA) - Phi^-1(pB)) / 2 (union bound over classes)")

    @classmethod
    def options_given(cls, args) -> List[str]:
        return ["--" + k.replace("_", "-") for k in cls.OPTION_DEFAULTS if getattr(args, k, None) is not None]

    @classmethod
    def from_args(cls, args, make_base) -> "AnisotropicSmooth":
        if not getattr(args, "sigma_file", None):
            raise ValueError("--sigma-mode anisotropic needs --sigma-file F (from smoothcert fit-sigma)")
        if getattr(args, "sigma", None) is not None:
            raise ValueError("--sigma and --sigma-file contradict each other: the sigma file holds the noise level")
        sigma, meta = load_sigma(args.sigma_file)
        fit = meta.get("fit") or {}
        if fit.get("dataset") == getattr(args, "dataset", None) and fit.get("split") == getattr(args, "split", None):
            raise ValueError(f"{args.sigma_file} was fitted on {fit['dataset']}/{fit['split']}, the split being "
                             "certified: a sigma chosen with these points makes the certificate data-dependent. "
                             "Certify another split (fit-sigma fits on train)")
        # The base family only lends its classifier, seed and dtype; it is built at sigma's mean.
        base = make_base(sigma=ellipsoid.SigmaSummary(sigma).mean)
        require(base, "--sigma-file", noise="gaussian", norm="l2")
        with open(args.sigma_file, "rb") as f:
            source = f"{args.sigma_file} sha256:{hashlib.sha256(f.read()).hexdigest()}"
        return cls(base.base_classifier, base.num_classes, sigma, seed=base.seed, out_dtype=base.out_dtype,
                   channels_last=base.channels_last, clamp=base.clamp, two_sided=bool(args.two_sided),
                   sigma_source=source)

    # ----------------------------------------------------------------- internals

    def prepare(self, X: torch.Tensor, indices):
        if isinstance(X, torch.Tensor) and tuple(X.shape[1:]) != tuple(self.sigma.shape):
            raise ValueError(f"inputs must be [B, *S] with S = sigma's shape {list(self.sigma.shape)}, "
                             f"got {list(X.shape)}")
        return super().prepare(X, indices)

    def _extend(self, base: CertifyResult) -> AnisotropicResult:
        s = self.summary_stats
        R = np.asarray(ellipsoid.normalized_radius(base.pa_lower.numpy()), dtype=np.float64).reshape(-1)
        R = np.where(base.prediction.numpy() < 0, 0.0, R)
        o = ellipsoid.log_volume(R, s)
        two = None
        if self.two_sided:
            top = base.selection_counts.argmax(dim=1)
            two = ellipsoid.two_sided_radius(base.counts.numpy(), top.numpy(), base.n, check_alpha(base.alpha))
            two = torch.as_tensor(np.where(base.prediction.numpy() < 0, 0.0, two))
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)).view(-1)  # noqa: E731
        label = "anisotropic" if getattr(base, "n_used", None) is None else f"anisotropic-{base.certificate}"
        return AnisotropicResult(base=base, normalized_radius=t(R), o_ca=t(o), r_geo=t(ellipsoid.geometric_radius(o, s)),
                                 r_linf=t(ellipsoid.linf_halfwidth(R, s)), r_two_sided=two, sigma=s,
                                 certificate=label)

