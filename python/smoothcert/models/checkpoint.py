"""Certifiable checkpoints: a model from :func:`build_model` plus plain-typed metadata.

Loaded with ``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from .. import data
from .layers import NormalizeLayer
from .zoo import build_model

CHECKPOINT_FORMAT = "smoothcert-checkpoint-v1"


def _plain(obj: Any, where: str) -> Any:
    # weights_only=True loading only accepts plain containers, so reject others early.
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str):
                raise TypeError(f"{where}: dict keys must be str, got {type(k).__name__}")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    raise TypeError(f"{where}: {type(obj).__name__} is not a plain Python type "
                    "(str/int/float/bool/list/dict/None)")


def save_checkpoint(path: str, model: nn.Module, *, arch: str, dataset: str,
                    meta: Optional[dict] = None, tensors: Optional[Dict[str, Tensor]] = None) -> None:
    """Atomically save a model made by :func:`build_model` with its metadata.

    Args:
        path: Destination file; written via ``path + ".tmp"`` and ``os.replace``.
        model: The full Sequential (normalize buffers included).
        arch: Architecture name in :data:`ARCHITECTURES`.
        dataset: Dataset name (fixes input shape, classes and normalisation).
        meta: Plain-typed details: training method, sigma, epochs, command line, ...
        tensors: Named tensors that belong with the model (e.g. DS2's per-example
            sigma table ``"sigma_table"``); :func:`load_checkpoint` returns them in
            ``info["tensors"]``.
    """
    if not (isinstance(model, nn.Sequential) and isinstance(model[0], NormalizeLayer)):
        raise ValueError("save_checkpoint expects the nn.Sequential from build_model "
                         "(NormalizeLayer first)")
    path = os.fspath(path)
    obj = {"format": CHECKPOINT_FORMAT, "arch": arch, "dataset": dataset,
           "num_classes": data.num_classes(dataset),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
           "meta": _plain(meta or {}, "meta")}
    if tensors:
        for k, v in tensors.items():
            if not (isinstance(k, str) and isinstance(v, Tensor)):
                raise TypeError(f"tensors must map names to tensors, got {k!r}: {type(v).__name__}")
        obj["tensors"] = {k: v.detach().cpu() for k, v in tensors.items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)  # readers never see a half-written checkpoint
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


_INFO_KEYS = ("format", "arch", "dataset", "num_classes", "meta")


def _read(path: str, map_location: Any = "cpu", mmap: bool = False) -> Any:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # pickle of arbitrary objects, not a torch file, ...
        if mmap:  # e.g. a legacy (non-zip) torch file, which cannot be memory-mapped
            return _read(path, map_location, mmap=False)
        raise ValueError(f"{path}: cannot load as a weights-only torch file: {e}") from e


def _not_ours(path: str, obj: Any) -> str:
    found = (f"dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, dict)
             else type(obj).__name__)
    return f"{path}: not a smoothcert checkpoint (no 'format' key; found {found})"


def _check_format(path: str, obj: Dict[str, Any]) -> None:
    if obj["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {obj['format']!r}, "
                         f"expected {CHECKPOINT_FORMAT!r}")
    missing = [k for k in _INFO_KEYS + ("state_dict",) if k not in obj]
    if missing:
        raise ValueError(f"{path}: corrupt checkpoint, missing keys {missing}")


def load_checkpoint(path: str, map_location: Any = "cpu", *, arch: Optional[str] = None,
                    dataset: Optional[str] = None) -> Tuple[nn.Sequential, Dict[str, Any]]:
    """Rebuild a model from a checkpoint, in eval mode.

    A raw ``state_dict`` file (of the full Sequential, or of the bare network, in
    which case the dataset's normalisation stats are used) is accepted when both
    ``arch`` and ``dataset`` are given.

    Returns:
        (model, info) where info has format, arch, dataset, num_classes, meta and tensors.
    """
    path = os.fspath(path)
    obj = _read(path, map_location)
    if isinstance(obj, dict) and "format" in obj:
        _check_format(path, obj)
        for key, given in (("arch", arch), ("dataset", dataset)):
            if given is not None and given != obj[key]:
                raise ValueError(f"{path}: checkpoint has {key}={obj[key]!r}, caller asked {given!r}")
        model = build_model(obj["arch"], obj["dataset"])
        model.load_state_dict(obj["state_dict"], strict=True)
        info = {k: obj[k] for k in _INFO_KEYS}
        info["tensors"] = dict(obj.get("tensors") or {})
    elif (arch is not None and dataset is not None and isinstance(obj, dict)
          and all(isinstance(v, Tensor) for v in obj.values())):
        model = build_model(arch, dataset)
        if "0.mean" in obj:
            model.load_state_dict(obj, strict=True)
        else:
            model[1].load_state_dict(obj, strict=True)
        info = {"format": None, "arch": arch, "dataset": dataset,
                "num_classes": data.num_classes(dataset), "meta": {}, "tensors": {}}
    else:
        raise ValueError(_not_ours(path, obj) + "; for a raw state_dict pass arch= and dataset=")
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, info


def checkpoint_info(path: str) -> Dict[str, Any]:
    """The metadata of a checkpoint written by :func:`save_checkpoint`, without building the model.

    Loads with ``weights_only=True`` (memory-mapped where possible, so the weights are
    not read into memory) and returns a dict with ``format``, ``arch``, ``dataset``,
    ``num_classes``, ``meta`` (what :func:`save_checkpoint` was given: training
    method, sigma, epochs, command line, ...) and ``tensors``. The dataset and architecture need not
    be known to this installation.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a weights-only torch file, or not a smoothcert checkpoint.
    """
    path = os.fspath(path)
    obj = _read(path, "cpu", mmap=True)
    if not (isinstance(obj, dict) and "format" in obj):
        raise ValueError(_not_ours(path, obj))
    _check_format(path, obj)
    info = {k: obj[k] for k in _INFO_KEYS}
    info["tensors"] = dict(obj.get("tensors") or {})
    return info
