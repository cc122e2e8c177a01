"""Certifiable checkpoints: a model from :func:`build_model` plus plain-typed metadata.

Loaded with ``torch.load(weights_only=True)``: a checkpoint cannot run code.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .. import data
from ..utils.arrays import set_input_spec
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
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a checkpoint")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: file is empty (0 bytes), not a checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # pickle of arbitrary objects, not a torch file, ...
        if mmap:  # e.g. a legacy (non-zip) torch file, which cannot be memory-mapped
            return _read(path, map_location, mmap=False)
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text:
            # torch's own advice (weights_only=False) would run the file's code: not repeated here.
            raise ValueError(f"{path}: cannot be loaded weights-only: it holds pickled Python objects (a whole "
                             "model saved with torch.save(model)?), which smoothcert never unpickles, since "
                             "unpickling runs code; save "
                             "model.state_dict() or a torch.export program instead (docs/own_model.md)") from None
        first = text.splitlines()[0] if text else type(e).__name__
        raise ValueError(f"{path}: cannot load as a weights-only torch file: {first}") from None


def _not_ours(path: str, obj: Any) -> str:
    found = (f"dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, dict)
             else type(obj).__name__)
    return f"{path}: not a smoothcert checkpoint (no 'format' key; found {found})"


def check_format(path: str, obj: Dict[str, Any]) -> None:
    """Raise ValueError unless ``obj`` (a loaded file with a ``format`` key) is a complete checkpoint."""
    if obj["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: unsupported checkpoint format {obj['format']!r}, "
                         f"expected {CHECKPOINT_FORMAT!r}")
    missing = [k for k in _INFO_KEYS + ("state_dict",) if k not in obj]
    if missing:
        raise ValueError(f"{path}: corrupt checkpoint, missing keys {missing}")



def model_from_checkpoint(path: str, obj: Dict[str, Any]) -> Tuple[nn.Sequential, Dict[str, Any]]:
    """(model on the CPU in eval mode, info) of a loaded checkpoint ``obj`` (checked by :func:`check_format`)."""
    from .user_model import load_weights

    model = build_model(obj["arch"], obj["dataset"])
    load_weights(model, obj["state_dict"], path, f"arch {obj['arch']} on {obj['dataset']}")
    info = {k: obj[k] for k in _INFO_KEYS}
    info["tensors"] = dict(obj.get("tensors") or {})
    return model.eval(), info


def check_normalize_matches(path: str, recorded: Tuple[Sequence[float], Sequence[float]], spec: Any,
                            dataset: Optional[str], channels: Optional[int], option: str = "normalize") -> None:
    """Raise ValueError unless ``spec`` asks for the normalisation ``recorded`` in the file.

    The values are compared as float32, the dtype :class:`NormalizeLayer` stores them in.
    """
    from .user_model import describe_normalize, parse_normalize

    try:
        asked = parse_normalize(spec, dataset, channels, option)
    except ValueError as e:  # e.g. `dataset` for a dataset without statistics
        asked, why = None, str(e)
    else:
        why = None
    rec = (torch.tensor(recorded[0], dtype=torch.float32), torch.tensor(recorded[1], dtype=torch.float32))

    def same(values: Sequence[float], r: Tensor) -> bool:
        a = torch.tensor(values, dtype=torch.float32)
        return a.numel() in (1, r.numel()) and torch.equal(a.expand_as(r) if a.numel() == 1 else a, r)

    if asked is not None and same(asked[0], rec[0]) and same(asked[1], rec[1]):
        return
    shown = describe_normalize({"mean": rec[0].tolist(), "std": rec[1].tolist()})
    raise ValueError(f"{path}: the file records its normalisation ({shown}), which {option} {spec} "
                     f"does not match{f' ({why})' if why else ''}; omit {option} to use the recorded one")


def load_checkpoint(path: str, map_location: Any = "cpu", *, arch: Optional[str] = None,
                    dataset: Optional[str] = None, normalize: Any = None) -> Tuple[nn.Module, Dict[str, Any]]:
    """Rebuild a model from a checkpoint, in eval mode.

    A smoothcert checkpoint records its architecture, dataset and :class:`NormalizeLayer`;
    ``arch``/``dataset``, when given, must match them, and so must ``normalize``.

    A raw ``state_dict`` file (of the full Sequential of :func:`build_model`, or of the bare
    network) is accepted when ``arch``, ``dataset`` and ``normalize`` are all given:
    normalisation is never added unasked, since the network may normalise in its own
    forward. ``normalize`` is ``"dataset"`` (the dataset's mean/std), ``"none"`` (the bare
    network is returned) or ``(mean, std)`` per channel (or ``"m1,..,mC,s1,..,sC"``); a
    state_dict of the full Sequential carries its own statistics, which must match.

    Returns:
        (model, info) where info has format, arch, dataset, num_classes, meta and tensors.
    """
    from .. import data
    from .user_model import load_weights, with_normalize

    path = os.fspath(path)
    obj = _read(path, map_location)
    if isinstance(obj, dict) and "format" in obj:
        check_format(path, obj)
        for key, given in (("arch", arch), ("dataset", dataset)):
            if given is not None and given != obj[key]:
                raise ValueError(f"{path}: checkpoint has {key}={obj[key]!r}, caller asked {given!r}")
        model, info = model_from_checkpoint(path, obj)
        if normalize is not None:
            check_normalize_matches(path, (model[0].mean.flatten().tolist(), model[0].std.flatten().tolist()),
                                    normalize, obj["dataset"], None)
    elif (arch is not None and dataset is not None and isinstance(obj, dict)
          and all(isinstance(v, Tensor) for v in obj.values())):
        if normalize is None:
            raise ValueError(f"{path}: a raw state_dict needs normalize= ('dataset', 'none' or (mean, std)): "
                             "none is added unasked, since the network may normalise in its own forward")
        from .user_model import parse_normalize

        stats = parse_normalize(normalize, dataset, data.input_shape(dataset)[0], "normalize")
        full = build_model(arch, dataset)
        if "0.mean" in obj:
            check_normalize_matches(path, (obj["0.mean"].flatten().tolist(), obj["0.std"].flatten().tolist()),
                                    normalize, dataset, None)
            load_weights(full, obj, path, f"arch {arch}")
            model = full
        else:
            load_weights(full[1], obj, path, f"arch {arch}")
            model = with_normalize(full[1], stats)
        info = {"format": None, "arch": arch, "dataset": dataset,
                "num_classes": data.num_classes(dataset), "meta": {}, "tensors": {}}
    else:
        raise ValueError(_not_ours(path, obj) + "; for a raw state_dict pass arch=, dataset= and normalize=")
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    # every registry dataset is pixels in [0, 1]; certifiers check inputs against this
    set_input_spec(model, data.input_shape(info["dataset"]), (0.0, 1.0))
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
    check_format(path, obj)
    info = {k: obj[k] for k in _INFO_KEYS}
    info["tensors"] = dict(obj.get("tensors") or {})
    return info
