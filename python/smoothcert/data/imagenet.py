"""ImageNet in the ImageFolder layout ``root/{train,val}/<wnid>/*.JPEG``, decoded lazily."""
from __future__ import annotations

import os
from typing import Optional

from . import images as _img
from .images import LazyImages
from .registry import _INFO, Split, register_dataset


@register_dataset("imagenet")
def _load_imagenet(split: str, root: Optional[str]) -> Split:
    """ImageFolder root/{train,val}/<wnid>/*.JPEG; "test" reads val. x is a :class:`LazyImages`.

    Both splits use the deterministic test transform (resize 256, center-crop 224):
    random training augmentation belongs to the training loop, not the dataset.
    """
    expect = "DIR with train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (ImageFolder layout)"
    if root is None:
        raise ValueError(f"imagenet needs a data directory: pass --data-root {expect}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"imagenet: data directory {root!r} does not exist; pass --data-root {expect}")
    here, other = (("train", "val") if split == "train" else ("val", "train"))
    folder = os.path.join(root, here)
    (c, h, w), k = _INFO["imagenet"]
    paths, y, names = _img.scan_image_folder("imagenet", folder, k)
    if os.path.isdir(os.path.join(root, other)):
        _img.check_same_classes("imagenet", os.path.join(root, "train"), os.path.join(root, "val"))
    return Split(LazyImages(paths, (c, h, w), root=folder), y, k, f"imagenet/{split}", classes=names)
