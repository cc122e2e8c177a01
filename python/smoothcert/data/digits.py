"""scikit-learn's 8x8 digits (ships inside the wheel: works offline, ``root`` is ignored)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .registry import Split, register_dataset


@register_dataset("digits")
def _load_digits(split: str, root: Optional[str]) -> Split:
    from sklearn.datasets import load_digits  # ships inside the wheel: works offline

    bunch = load_digits()
    images, labels = bunch.images, bunch.target  # [1797, 8, 8] float64 in 0..16, [1797]
    order = np.random.Generator(np.random.PCG64(0)).permutation(len(images))
    idx = order[:1297] if split == "train" else order[1297:]
    x = torch.from_numpy((images[idx] / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(labels[idx].astype(np.int64))
    return Split(x, y, 10, f"digits/{split}")
