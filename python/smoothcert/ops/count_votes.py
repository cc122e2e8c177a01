"""Wrapper of ``smoothcert::count_votes_``: device-side vote counting."""
from __future__ import annotations

from typing import Optional

import torch


def count_votes_(logits: torch.Tensor, samples: int, counts: torch.Tensor,
                 nonfinite: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Adds the argmax of each logits row to its input's class counts, in place.

    Args:
        logits: ``[B * samples, K]`` floating point (row ``b * samples + j``
            belongs to input ``b``). Ties go to the lowest class index.
        samples: rows per input.
        counts: ``[B, K]`` int64, contiguous, same device; updated in place.
        nonfinite: optional ``[B]`` int64, contiguous, same device; adds, per
            input, the number of rows holding a NaN or +-inf logit (such rows
            still vote as ``torch.argmax`` would; the caller decides to refuse).

    Returns:
        ``counts``.
    """
    torch.ops.smoothcert.count_votes_.default(logits, samples, counts, nonfinite)
    return counts

