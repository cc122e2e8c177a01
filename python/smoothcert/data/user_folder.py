"""``image-folder``: a user's own images, one sub-folder per class (torchvision's ImageFolder layout).

``--data-root DIR`` holds ``DIR/<class>/<image>``, or ``DIR/train/<class>/<image>`` and
``DIR/test/<class>/<image>`` (``val/`` stands in for a missing ``test/``), which ``--split``
chooses between. Class ``k`` is the ``k``-th class folder name in sorted order.

Images are 8-bit grayscale (C = 1) or RGB (C = 3), decoded to float32 [0, 1] as
``uint8 / 255`` (exact: no resizing, no colour management). Every image of a split must
have one size and one channel count. Palette images become RGB; an alpha channel is
dropped only where it is fully opaque (a transparent pixel would take whatever colour
the file stores under it, so such files are refused). 16-bit, CMYK and other modes are
refused. Files without an image extension and hidden files are ignored, as torchvision
does; a file with an image extension that Pillow cannot decode is an error naming it.
Only the PNG, JPEG, BMP, PPM/PGM, TIFF and WebP decoders are used (never, e.g., EPS,
which would run Ghostscript).

Splits up to :data:`EAGER_LIMIT_BYTES` of float32 are decoded at load; larger ones are
a :class:`LazyImages` (decoded when indexed; the headers, sizes and modes are still
checked at load).
"""
from __future__ import annotations

import os
import struct
from functools import partial
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from .images import IMAGE_EXTENSIONS, LazyImages, _pil, check_same_classes
from .registry import Split, register_dataset

NAME = "image-folder"
FORMATS = ("PNG", "JPEG", "BMP", "PPM", "TIFF", "WEBP")
EAGER_LIMIT_BYTES = 1 << 30
_GRAY, _COLOUR = ("L", "1", "LA"), ("RGB", "P", "PA", "RGBA")
_EXPECT = "DIR/<class>/<image> or DIR/{train,test}/<class>/<image>"


def _decode_errors():
    Image = _pil()
    return (OSError, ValueError, SyntaxError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


def _open(path: str):
    try:
        return _pil().open(path, formats=FORMATS)
    except _decode_errors() as e:
        raise ValueError(f"{path}: cannot decode image ({'/'.join(FORMATS)} are read): {e}") from e


def _channels(img, path: str) -> int:
    """1 or 3, the channel count image ``img`` decodes to, or raise naming ``path``."""
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise ValueError(f"{path}: image has {frames} frames (animated or multi-page); store one image per file")
    if img.mode in _GRAY:
        return 1
    if img.mode in _COLOUR:
        return 3
    if img.mode.startswith(("I", "F")):
        raise ValueError(f"{path}: image mode {img.mode} (16/32-bit) is not read, only 8-bit grayscale or "
                         f"RGB; convert it to 8 bits, or store the arrays in an .npz (--dataset npz)")
    raise ValueError(f"{path}: image mode {img.mode} is not read, only 8-bit grayscale (L) or RGB; "
                     f"convert it first")


def decode(path: str, channels: int) -> Tensor:
    """One image file -> float32 [channels, H, W] equal to its uint8 pixels / 255."""
    with _open(path) as img:
        got = _channels(img, path)
        if got != channels:
            raise ValueError(f"{path}: image has {got} channel(s) ({img.mode}), expected {channels}")
        has_alpha = img.mode in ("LA", "PA", "RGBA") or (img.mode == "P" and "transparency" in img.info)
        target = ("LA" if channels == 1 else "RGBA") if has_alpha else ("L" if channels == 1 else "RGB")
        try:
            arr = np.asarray(img.convert(target), dtype=np.uint8)
        except _decode_errors() as e:
            raise ValueError(f"{path}: cannot decode image: {e}") from e
    if has_alpha:
        if arr[..., -1].min() < 255:
            raise ValueError(f"{path}: image has transparent pixels (alpha < 255); flatten it onto a "
                             f"background first (the colour under them is otherwise undefined)")
        arr = arr[..., :-1]
    arr = arr.reshape(arr.shape[0], arr.shape[1], channels).transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32) / 255.0)


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _class_dirs(directory: str) -> List[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and _visible(e.name))


def _class_files(folder: str) -> Tuple[List[str], List[str]]:
    """(image paths, ignored paths) under ``folder``, recursively, sorted by relative path."""
    images, ignored = [], []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if _visible(d))
        for f in files:
            if _visible(f):
                (images if f.lower().endswith(IMAGE_EXTENSIONS) else ignored).append(os.path.join(here, f))
    key = lambda p: os.path.relpath(p, folder).split(os.sep)  # noqa: E731
    return sorted(images, key=key), sorted(ignored, key=key)


def scan(directory: str) -> Tuple[List[str], Tensor, List[str]]:
    """(paths [N], labels int64 [N], class names) of an image folder ``directory/<class>/...``."""
    classes = _class_dirs(directory)
    if not classes:
        loose = [f for f in os.listdir(directory) if _visible(f) and f.lower().endswith(IMAGE_EXTENSIONS)]
        hint = (f" ({len(loose)} images lie directly in it: sort them into one sub-folder per class)"
                if loose else "")
        raise ValueError(f"{NAME}: {directory!r} has no class sub-folders{hint}; expected {_EXPECT}")
    paths, labels, ignored = [], [], []
    for k, c in enumerate(classes):
        found, skipped = _class_files(os.path.join(directory, c))
        paths += found
        labels += [k] * len(found)
        ignored += skipped
    if not paths:
        what = (f"; ignored {len(ignored)} other files such as {ignored[0]!r}" if ignored else "")
        raise ValueError(f"{NAME}: {directory!r}: its {len(classes)} class folders hold no images with "
                         f"extensions {', '.join(IMAGE_EXTENSIONS)}{what}")
    return paths, torch.tensor(labels, dtype=torch.int64), classes


def check_images(paths: List[str]) -> Tuple[int, int, int]:
    """(C, H, W) shared by every image, read from the headers; raise naming the first that differs."""
    first = None
    for path in paths:
        with _open(path) as img:
            c, (w, h) = _channels(img, path), img.size
            mode = img.mode
        if first is None:
            first = (path, c, w, h, mode)
            continue
        p0, c0, w0, h0, m0 = first
        if (w, h) != (w0, h0):
            raise ValueError(f"{path}: image is {w}x{h} (width x height) but {p0} is {w0}x{h0}; all images "
                             f"must have one size (resize them first)")
        if c != c0:
            raise ValueError(f"{path}: image has {c} channel(s) ({mode}) but {p0} has {c0} ({m0}); all images "
                             f"must be grayscale or all RGB")
    return first[1], first[3], first[2]


def _split_folder(root: str, split: str) -> Tuple[str, Optional[str]]:
    """(folder of ``split``, folder of the other split or None)."""
    present = [d for d in ("train", "test", "val") if os.path.isdir(os.path.join(root, d))]
    if not present:
        return root, None  # the folder is the split, for --split train and test alike
    test = "test" if "test" in present else ("val" if "val" in present else None)
    want, other = ("train", test) if split == "train" else (test, "train" if "train" in present else None)
    if want is None or want not in present:
        expected = "train/" if split == "train" else "test/ or val/"
        raise FileNotFoundError(f"{NAME}: {root!r} has split folders {', '.join(p + '/' for p in present)} "
                                f"but none for --split {split} (expected {expected})")
    return os.path.join(root, want), (os.path.join(root, other) if other else None)


@register_dataset(NAME, from_data=True)
def load_image_folder(split: str, root: Optional[str]) -> Split:
    """Split of a user's image folder; ``x`` in memory up to :data:`EAGER_LIMIT_BYTES`, else lazy."""
    if root is None:
        raise ValueError(f"{NAME} needs a folder: pass --data-root {_EXPECT}")
    if not os.path.exists(root):
        raise FileNotFoundError(f"{NAME}: data folder {root!r} does not exist; pass --data-root {_EXPECT}")
    if not os.path.isdir(root):
        raise ValueError(f"{NAME}: {root!r} is a file, not a folder; pass --data-root {_EXPECT} "
                         f"(for arrays in an .npz use --dataset npz)")
    folder, other = _split_folder(root, split)
    if other is not None:
        check_same_classes(NAME, folder, other)
    paths, y, classes = scan(folder)
    c, h, w = check_images(paths)
    load = partial(decode, channels=c)
    if len(paths) * c * h * w * 4 > EAGER_LIMIT_BYTES:
        x = LazyImages(paths, (c, h, w), load=load, root=folder)
    else:
        x = torch.empty((len(paths), c, h, w), dtype=torch.float32)
        for i, p in enumerate(paths):
            x[i] = load(p)
    return Split(x, y, len(classes), f"{NAME}/{split}", classes=classes)
