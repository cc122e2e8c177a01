"""Gaussian dipole smoothing (Levine, Kumar, Goldstein & Feizi, "Tight
Second-Order Certificates for Randomized Smoothing", Sec. 4).

The dipole pass draws n/2 antithetic pairs ``x + eps``, ``x - eps`` with the fused
sampler's antithetic mode (one Philox draw feeds both rows; no second noise
tensor) on a stream of its own, and counts per pair whether both sides vote for
the selected class (``count_s``), only the + side (``count_n``, the paper's count)
or exactly one side (``count_x``, for the symmetric option). Theorem 3 turns the
lower bounds on C_S and C_N (alpha/2 each) into the ``dipole`` radius.

Beside it (``fo_*``) each row keeps Cohen's ``first-order`` certificate from an
independent plain estimation pass of the same n -- the row of
``--certificate first-order`` bit for bit (``first_order=False`` skips it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .. import ops
from ..stats import dipole
from ..engine import PairHits
from .family import Budget, register_certificate, require
from .gaussian import Smooth
from .results import CertifyResult


@dataclass
class DipoleResult:
    """Per-input results of :meth:`DipoleSmooth.certify_batch` (CPU, length B).

    Attributes:
        prediction, radius: ``[B]`` of the dipole certificate (-1 / 0.0 on abstain).
        count_s, count_n, count_x: ``[B]`` int64 pair counts (see the module docstring).
        bounds: ``cs_lower``, ``cn_lower`` ``[B]`` float64.
        first_order: the independent first-order :class:`CertifyResult`, or None.
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    count_s: torch.Tensor
    count_n: torch.Tensor
    count_x: torch.Tensor
    bounds: Dict[str, np.ndarray]
    sigma: torch.Tensor
    seconds: torch.Tensor
    n: int
    symmetric: bool
    first_order: Optional[CertifyResult]
    certificate: str = "dipole"
    norm: str = "l2"

    COLUMNS = {"count_s": int, "count_n": int, "count_x": int, "n_pairs": int, "cs_lower": float,
               "cn_lower": float, "symmetric": int, "sigma": float, "certificate": str, "norm": str}
    FO_COLUMNS = {"fo_count_a": int, "fo_n": int, "fo_pa_lower": float, "fo_predict": int, "fo_radius": float,
                  "fo_certificate": str}

    @property
    def pa_lower(self) -> torch.Tensor:
        return torch.as_tensor(self.bounds["cs_lower"] + self.bounds["cn_lower"])

    def fields(self, k: int) -> List[Any]:
        out = [int(self.count_s[k]), int(self.count_n[k]), int(self.count_x[k]), self.n // 2,
               repr(float(self.bounds["cs_lower"][k])), repr(float(self.bounds["cn_lower"][k])), int(self.symmetric),
               repr(float(self.sigma[k])), self.certificate, self.norm]
        fo = self.first_order
        if fo is not None:
            out += [int(fo.count_a[k]), fo.n, repr(float(fo.pa_lower[k])), int(fo.prediction[k]),
                    repr(float(fo.radius[k])), fo.certificate]
        return out


@register_certificate("dipole")
class DipoleSmooth(Smooth):
    """Gaussian smoothing certified with antithetic (dipole) pairs.

    Args:
        symmetric: bound C_N from the pairs where exactly one side votes for the class
            (``Bin(n/2, 2 C_N)``; valid and tighter, not the paper's count).
        first_order: also run the independent first-order estimation pass.
        Other arguments as :class:`Smooth`; sigma is one value per input; n must be even.
    """

    SEQUENTIAL = False
    SAMPLE_SPLIT = False  # its pair statistic is a reducer over the logits, not votes
    SEQUENTIAL_REFUSAL = "the dipole certificate needs the counts of antithetic pairs"

    name = "dipole"

    def __init__(self, base_classifier, num_classes, sigma, *, symmetric: bool = False, first_order: bool = True,
                 **kwargs):
        super().__init__(base_classifier, num_classes, sigma, **kwargs)
        self.symmetric = bool(symmetric)
        self.first_order = bool(first_order)


    def certify_table(self, X, ids, table, n0, n, alpha, batch_size) -> DipoleResult:
        if n % 2:
            raise ValueError(f"dipole smoothing needs an even n (n/2 antithetic pairs), got n={n}")
        if table.shape[1] != 1:
            raise ValueError("dipole smoothing needs isotropic noise (one sigma per input), not a per-element sigma")
        self.warn_small_n(n // 2, alpha / 2)  # n/2 pairs, each bound at alpha/2
        fo = super().certify_table(X, ids, table, n0, n, alpha, batch_size) if self.first_order else None
        B = X.shape[0]
        if fo is not None:
            sel, seconds = fo.selection_counts, fo.seconds.clone()
            fo.certificate = "first-order"
        else:
            sel, seconds = self.select(X, ids, table, n0, batch_size)
        top = sel.argmax(dim=1)
        t0 = time.perf_counter()
        pairs = PairHits(top.to(X.device))
        self.sampler(ops.DIPOLE_STREAM, batch_size, noise="antithetic-gaussian").draw(X, ids, table, n, reducer=pairs)
        cs, cn, cx = pairs.result()
        if B:
            seconds += (time.perf_counter() - t0) / B
        sig = self.radius_sigma(table, B)
        b = dipole.dipole_certify(cs.numpy(), cn.numpy(), cx.numpy(), n // 2, alpha, sig.numpy(),
                                  symmetric=self.symmetric)
        b = {k: np.asarray(v).reshape(-1) for k, v in b.items()}
        pred = torch.where(torch.as_tensor(b["abstain"]), torch.full_like(top, self.ABSTAIN), top)
        return DipoleResult(prediction=pred, radius=torch.as_tensor(b["radius"]), count_s=cs, count_n=cn,
                            count_x=cx, bounds=b, sigma=sig, seconds=seconds, n=n, symmetric=self.symmetric,
                            first_order=fo)

    def column_types(self) -> Dict[str, type]:
        return {**DipoleResult.COLUMNS, **(DipoleResult.FO_COLUMNS if self.first_order else {})}

    def config(self, budget: Budget) -> Dict[str, Any]:
        return {**super().config(budget), "certificate": "dipole", "symmetric": self.symmetric,
                "first_order": self.first_order}

    def generator(self) -> str:
        return self.GENERATOR + "; antithetic pairs (stream 8)"

    OPTION_DEFAULTS = {"dipole_symmetric": False, "no_first_order": False}

    @classmethod
    def add_arguments(cls, parser) -> None:
        g = parser.add_argument_group("dipole smoothing (--certificate dipole)")
        g.add_argument("--dipole-symmetric", action="store_true", default=None,
                       help="bound C_N from pairs where exactly one side votes for the class (valid, tighter; "
                       "not the paper's count)")
        g.add_argument("--no-first-order", action="store_true", default=None,
                       help="skip the independent first-order estimation pass (halves the work; no fo_* columns)")

    @classmethod
    def options_given(cls, args) -> List[str]:
        return ["--" + k.replace("_", "-") for k in cls.OPTION_DEFAULTS if getattr(args, k, None) is not None]

    @classmethod
    def from_args(cls, args, make_base) -> "DipoleSmooth":
        base = make_base()
        require(base, "--certificate dipole", noise="gaussian", norm="l2")
        return cls.from_base(base, symmetric=bool(getattr(args, "dipole_symmetric", False)),
                             first_order=not getattr(args, "no_first_order", False))
