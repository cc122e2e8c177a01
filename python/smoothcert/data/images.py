"""Image-file datasets for :mod:`smoothcert.data` (package-private; use ``smoothcert.data``).

Holds the pieces that decode image files with Pillow: :class:`LazyImages`, a
sequence of images decoded on access (ImageNet does not fit in memory), the
CIFAR-10 PNG folder reader and the ImageFolder scanner. Everything here returns
plain tensors / sequences; :mod:`smoothcert.data` wraps them into a ``Split``.
"""

from __future__ import annotations

import os
import re
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

# torchvision's IMG_EXTENSIONS, so a folder that works with ImageFolder works here.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

Index = Union[int, slice, Sequence[int], np.ndarray, Tensor]


def _pil():
    # Imported lazily: Pillow is only needed by the image-file datasets.
    from PIL import Image
    return Image


def pil_to_tensor(img) -> Tensor:
    """RGB PIL image of size (W, H) -> float32 [3, H, W] in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)  # [H, W, 3]
    return torch.from_numpy(arr.transpose(2, 0, 1).astype(np.float32) / 255.0)


def resize_center_crop(img, resize: int = 256, crop: int = 224):
    """Resize the shorter side to ``resize`` (bilinear), then center-crop ``crop`` x ``crop``.

    Follows torchvision's ``Resize(resize)`` + ``CenterCrop(crop)`` integer rounding,
    so images match the Cohen et al. / torchvision ImageNet test pipeline.
    """
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.convert("RGB").resize((new_w, new_h), _pil().BILINEAR)
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    return img.crop((left, top, left + crop, top + crop))


def imagenet_transform(path: str, resize: int = 256, crop: int = 224) -> Tensor:
    """Decode one image file -> float32 [3, crop, crop] in [0, 1] (ImageNet test transform)."""
    Image = _pil()
    try:
        with Image.open(path) as img:
            return pil_to_tensor(resize_center_crop(img, resize, crop))
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: cannot decode image: {e}") from e


class LazyImages:
    """A read-only sequence of N image files, decoded when indexed.

    Stands in for an in-memory ``[N, C, H, W]`` tensor as ``Split.x``:
    ``x[i]`` gives ``[C, H, W]``; ``x[slice]``, ``x[[i, j]]`` and ``x[LongTensor]``
    give a stacked ``[k, C, H, W]``; ``x.shape`` is ``(N, C, H, W)``. All float32
    in [0, 1].

    Args:
        paths: the N image files, in dataset order.
        item_shape: (C, H, W) that ``load`` produces.
        load: ``path -> [C, H, W]`` float32 tensor; defaults to the ImageNet
            test transform (resize 256, center-crop 224).
        root: the folder the paths are relative to in :meth:`Split.fingerprint`
            (so a moved copy of the same files has the same fingerprint); None:
            the paths' common parent.
    """

    dtype = torch.float32

    def __init__(self, paths: Sequence[str], item_shape: Tuple[int, int, int],
                 load: Callable[[str], Tensor] = imagenet_transform, root: Optional[str] = None):
        self.paths: List[str] = list(paths)
        self.item_shape = tuple(int(s) for s in item_shape)
        self.load = load
        self.root = root

    def relative_path(self, i: int) -> str:
        """Path of image ``i`` relative to ``root``, with ``/`` separators."""
        if self.root is None:  # computed once: commonpath is O(N)
            self.root = (os.path.commonpath(self.paths) if len(self.paths) > 1
                         else os.path.dirname(self.paths[0]))
        return os.path.relpath(self.paths[i], self.root).replace(os.sep, "/")

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), *self.item_shape))

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"LazyImages(n={len(self)}, item_shape={self.item_shape})"

    def _one(self, i: int) -> Tensor:
        n = len(self.paths)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} images")
        t = self.load(self.paths[i])
        if tuple(t.shape) != self.item_shape:
            raise ValueError(f"{self.paths[i]}: loaded shape {tuple(t.shape)}, expected {self.item_shape}")
        return t

    def _positions(self, index: Index) -> List[int]:
        if isinstance(index, slice):
            return list(range(*index.indices(len(self))))
        arr = index.cpu().numpy() if isinstance(index, Tensor) else np.asarray(index)
        if arr.dtype == np.bool_:  # a mask, as tensors accept
            if arr.shape != (len(self),):
                raise IndexError(f"boolean mask of shape {arr.shape} for {len(self)} images")
            return np.flatnonzero(arr).tolist()
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"LazyImages indices must be an int, a slice or a 1-D integer "
                            f"sequence/tensor, got {type(index).__name__} of shape {arr.shape}")
        return arr.astype(np.int64).tolist()

    def __getitem__(self, index: Index) -> Tensor:
        if isinstance(index, (int, np.integer)) or (isinstance(index, Tensor) and index.ndim == 0
                                                     and not index.is_floating_point()):
            return self._one(int(index))
        pos = self._positions(index)
        if not pos:
            return torch.empty((0, *self.item_shape), dtype=self.dtype)
        return torch.stack([self._one(i) for i in pos])

    def __iter__(self):
        return (self._one(i) for i in range(len(self)))


_CIFAR_PNG = re.compile(r"^cifar10_(\d+)_(\d+)\.png$")


def cifar_png_files(directory: str) -> List[Tuple[int, int, str]]:
    """(index, label, path) of the ``cifar10_<index>_<label>.png`` files in ``directory``, by index."""
    found = []
    for name in os.listdir(directory):
        m = _CIFAR_PNG.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), os.path.join(directory, name)))
    found.sort()
    dup = [a[2] for a, b in zip(found, found[1:]) if a[0] == b[0]]
    if dup:
        raise ValueError(f"cifar10: duplicate image index in {directory!r}: {dup[0]}")
    return found


def read_cifar_pngs(directory: str, num_classes: int = 10) -> Tuple[Tensor, Tensor]:
    """Read a ``cifar10_<index>_<label>.png`` folder (32x32 RGB) ordered by index.

    Returns:
        x float32 [N, 3, 32, 32] in [0, 1] and y int64 [N].
    """
    files = cifar_png_files(directory)
    if not files:
        raise FileNotFoundError(f"cifar10: no files named cifar10_<index>_<label>.png in {directory!r}")
    Image = _pil()
    xs, ys = [], []
    for _, label, path in files:
        if label >= num_classes:
            raise ValueError(f"{path}: label {label} out of range, expected 0..{num_classes - 1}")
        try:
            with Image.open(path) as img:
                if img.size != (32, 32):
                    raise ValueError(f"{path}: image is {img.size[0]}x{img.size[1]}, "
                                     "expected 32x32 for cifar10")
                xs.append(pil_to_tensor(img))
        except OSError as e:
            raise ValueError(f"{path}: cannot decode PNG: {e}") from e
        ys.append(label)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.int64)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _class_dirs(directory: str) -> List[str]:
    return sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))


def scan_image_folder(name: str, directory: str, max_classes: int) -> Tuple[List[str], Tensor, List[str]]:
    """Scan an ImageFolder ``directory/<class>/<image>``; classes are the sorted folder names.

    Returns:
        (paths [N], labels int64 [N], class names), paths sorted by (class, file name).
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{name}: image folder {directory!r} does not exist; expected "
                                f"{directory}/<wnid>/<image>{{{','.join(IMAGE_EXTENSIONS)}}}")
    classes = _class_dirs(directory)
    if not classes:
        loose = any(_is_image(f) for f in os.listdir(directory))
        hint = (" (images lie directly in it: sort them into one sub-folder per class)" if loose else "")
        raise ValueError(f"{name}: empty ImageFolder {directory!r}: no class sub-folders{hint}; "
                         f"expected {directory}/<wnid>/*.JPEG")
    if len(classes) > max_classes:
        raise ValueError(f"{name}: {directory!r} has {len(classes)} class folders, expected at most "
                         f"{max_classes}")
    paths, labels = [], []
    for k, c in enumerate(classes):
        sub = os.path.join(directory, c)
        files = sorted(f for f in os.listdir(sub) if _is_image(f))
        paths += [os.path.join(sub, f) for f in files]
        labels += [k] * len(files)
    if not paths:
        raise ValueError(f"{name}: empty ImageFolder {directory!r}: its {len(classes)} class folders "
                         f"hold no images with extensions {', '.join(IMAGE_EXTENSIONS)}")
    return paths, torch.tensor(labels, dtype=torch.int64), classes


def check_same_classes(name: str, a: str, b: str) -> None:
    """Raise if ImageFolders ``a`` and ``b`` (both existing) have different class folders.

    Labels are positions in the sorted folder list, so differing lists would
    silently give the same class different labels in train and test.
    """
    ca, cb = _class_dirs(a), _class_dirs(b)
    if ca and cb and ca != cb:
        only_a, only_b = sorted(set(ca) - set(cb))[:3], sorted(set(cb) - set(ca))[:3]
        raise ValueError(f"{name}: class folders differ between {a!r} ({len(ca)}) and {b!r} ({len(cb)}); "
                         f"e.g. only in the first: {only_a}, only in the second: {only_b}")
