"""Per-input result records of the Monte-Carlo families (all CPU tensors of length B)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List

import torch


@dataclass
class CertifyResult:
    """Per-input results of :meth:`Smooth.certify_batch` (all CPU tensors, length B).

    Attributes:
        prediction: ``[B]`` int64 certified class, -1 on abstain.
        radius: ``[B]`` float64 certified radius (L2, or L1 when ``norm == "l1"``),
            0.0 on abstain (never rounded up).
        count_a: ``[B]`` int64 votes for the selected class among the n estimation samples.
        pa_lower: ``[B]`` float64 one-sided (1 - alpha) lower bound on pA.
        sigma: ``[B]`` float64 noise level the radius is based on (the smallest
            element of sigma for per-element noise).
        samples: ``[B]`` int64 classifier evaluations used (n0 + n).
        seconds: ``[B]`` float64 wall time (inputs sharing a batch share its time).
        selection_counts: ``[B, K]`` int64 votes of the n0 selection samples.
        counts: ``[B, K]`` int64 votes of the n estimation samples.
        certificate: kind of certificate (``"fixed-sigma"`` here).
    """

    prediction: torch.Tensor
    radius: torch.Tensor
    count_a: torch.Tensor
    pa_lower: torch.Tensor
    sigma: torch.Tensor
    samples: torch.Tensor
    seconds: torch.Tensor
    selection_counts: torch.Tensor
    counts: torch.Tensor
    n0: int
    n: int
    alpha: float
    certificate: str = "fixed-sigma"
    norm: str = "l2"

    COLUMNS = {"count_a": int, "n": int, "pa_lower": float, "sigma": float, "certificate": str, "norm": str}

    def fields(self, k: int) -> List[Any]:
        """TSV values of :attr:`COLUMNS` for input ``k`` (floats by ``repr``: exact)."""
        return [int(self.count_a[k]), self.n, repr(float(self.pa_lower[k])), repr(float(self.sigma[k])),
                self.certificate, self.norm]


@dataclass
class PredictResult:
    """Per-input results of :meth:`Smooth.predict_batch` (CPU tensors, length B).

    Attributes:
        prediction: ``[B]`` int64 predicted class, -1 on abstain.
        counts: ``[B, K]`` int64 votes of the n samples.
        pvalue: ``[B]`` float64 two-sided binomial-test p-value of top-1 vs top-2.
        samples: ``[B]`` int64 classifier evaluations used.
        seconds: ``[B]`` float64 wall time.
    """

    prediction: torch.Tensor
    counts: torch.Tensor
    pvalue: torch.Tensor
    samples: torch.Tensor
    seconds: torch.Tensor
    alpha: float = field(default=0.001)
