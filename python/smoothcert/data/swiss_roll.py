"""The 2-D Swiss-roll problem of Levine et al.'s second-order smoothing paper (§3, Fig. 2; the
generator settings follow the authors' released code): scikit-learn's ``make_swiss_roll`` (generated, works
offline, ``root`` is ignored), features = columns (0, 2) / 10, label = 1[t > 3 pi].
Train: 1,000 points (``noise=1.0, random_state=1``); test: 100 (``random_state=2``).

The inputs are points of the plane, not images: ``x`` is ``[N, 1, 1, 2]`` and not in [0, 1];
the noise is added to them as they are (no normalisation: mean 0, std 1)."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from .registry import DATASET_STATS, Split, register_dataset

DATASET_STATS["swiss-roll"] = ((0.0,), (1.0,))


@register_dataset("swiss-roll", shape=(1, 1, 2), classes=2)
def _load_swiss_roll(split: str, root: Optional[str]) -> Split:
    from sklearn.datasets import make_swiss_roll

    n, seed = (1000, 1) if split == "train" else (100, 2)
    pts, t = make_swiss_roll(n_samples=n, noise=1.0, random_state=seed)
    x = torch.from_numpy((pts[:, [0, 2]] / 10.0).astype(np.float32)).view(n, 1, 1, 2)
    y = torch.from_numpy((t > 3 * math.pi).astype(np.int64))
    return Split(x, y, 2, f"swiss-roll/{split}")
