"""Wrapper of ``smoothcert::count_votes_``: device-side vote counting."""
from __future__ import annotations

from typing import Optional

import torch

from ..utils.arrays import as_tensor


def count_votes_(logits: torch.Tensor, samples: int, counts: torch.Tensor,
                 nonfinite: Optional[torch.Tensor] = None, *, validate: bool = True) -> torch.Tensor:
    """Adds the argmax of each logits row to its input's class counts, in place.

    Args:
        logits: ``[B * samples, K]`` floating point (row ``b * samples + j``
            belongs to input ``b``). Ties go to the lowest class index.
        samples: rows per input.
        counts: ``[B, K]`` int64, contiguous, same device; updated in place (a
            NumPy int64 array is updated in place too: it shares its memory).
        nonfinite: optional ``[B]`` int64, contiguous, same device; adds, per
            input, the number of rows holding a NaN or +-inf logit (such rows
            still vote as ``torch.argmax`` would; the caller decides to refuse).
        validate: without ``nonfinite``, refuse logits holding NaN/inf before
            counting anything (one host sync): a NaN row would otherwise vote
            for the class of its first NaN. ``validate=False`` counts them as
            ``torch.argmax`` would (and traces under ``torch.compile(fullgraph=True)``).

    Any argument may be a NumPy or DLPack array (zero-copy).

    Returns:
        ``counts``.
    """
    logits = as_tensor(logits, "logits")
    counts = as_tensor(counts, "counts")
    if nonfinite is not None:
        nonfinite = as_tensor(nonfinite, "nonfinite")
    elif validate and logits.numel() and not bool(torch.isfinite(logits).all()):
        rows = int((~torch.isfinite(logits).all(dim=1)).sum())
        raise ValueError(f"count_votes_: {rows} of {logits.shape[0]} logits rows hold NaN/inf; refusing to count "
                         "them as votes (pass nonfinite= to tally them per input, or validate=False)")
    torch.ops.smoothcert.count_votes_.default(logits, samples, counts, nonfinite)
    return counts
