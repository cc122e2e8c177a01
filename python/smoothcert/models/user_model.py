"""The classifier ``smoothcert certify`` certifies, from one of three sources (docs/own_model.md).

* ``--model FILE.pt2``: a ``torch.export`` program (:mod:`.exported`; checked, no code runs);
* ``--model-factory module:function --weights FILE``: the user's own code builds the network,
  a ``state_dict`` loaded weights-only fills it;
* ``--model FILE``: a smoothcert checkpoint, or a zoo network's ``state_dict`` with ``--arch``.

Normalisation is never added on the user's behalf: everything but a smoothcert checkpoint
(which records its :class:`NormalizeLayer`) needs ``--normalize dataset|none|MEAN,STD``.
Error messages name the command-line options.
"""
from __future__ import annotations

import hashlib
import importlib
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .layers import NormalizeLayer

Stats = Tuple[Tuple[float, ...], Tuple[float, ...]]

NORMALIZE_HELP = ("dataset: the dataset's per-channel mean/std; none: the model takes [0, 1] pixels as they are "
                  "(it normalises in its own forward, or needs none); MEAN,STD: comma list of C means then C stds, "
                  "e.g. 0.1307,0.3081 or 0.49,0.48,0.45,0.25,0.24,0.26")


@dataclass
class LoadedModel:
    """A classifier ready to certify, with what it was built from.

    Attributes:
        model: ``[B, C, H, W]`` in [0, 1] -> ``[B, K]`` logits, on the CPU, eval mode.
        kind: ``checkpoint``, ``export``, ``factory`` or ``zoo-state-dict``.
        info: a checkpoint's metadata (``format, arch, dataset, num_classes, meta, tensors``);
            for other kinds ``meta`` and ``tensors`` are empty and ``dataset`` is None.
        record: plain-typed description for the run's configuration (:meth:`config`).
    """

    model: nn.Module
    kind: str
    info: Dict[str, Any]
    record: Dict[str, Any] = field(default_factory=dict)

    def config(self) -> Dict[str, Any]:
        """The sidecar's model keys: ``model_kind, arch, model_factory, normalize, model_sha256,
        weights_sha256`` (None where they do not apply)."""
        return {"model_kind": self.kind, **self.record}

    def describe(self) -> str:
        """One line for the log, e.g. ``factory nets:make (weights w.pt sha256 ab12cd34..), normalize none``."""
        r = self.record
        if self.kind == "factory":
            what = f"factory {r['model_factory']} (weights {r['weights']} sha256 {r['weights_sha256'][:12]}..)"
        else:
            name = {"checkpoint": "smoothcert checkpoint", "export": "export program",
                    "zoo-state-dict": f"state_dict of zoo arch {r['arch']}"}[self.kind]
            arch = f", arch {r['arch']}" if self.kind == "checkpoint" else ""
            what = f"{name} {r['model']} (sha256 {r['model_sha256'][:12]}..{arch})"
        return f"{what}, normalize {describe_normalize(r['normalize'])}"


def describe_normalize(norm: Any) -> str:
    """``none`` or ``mean 0.1307 std 0.3081`` (per channel, ``/``-separated)."""
    if norm == "none" or norm is None:
        return "none"
    return (f"mean {'/'.join(f'{v:g}' for v in norm['mean'])} std {'/'.join(f'{v:g}' for v in norm['std'])}"
            + (f" ({norm['source']})" if norm.get("source") else ""))


def parse_normalize(spec: Any, dataset: Optional[str], channels: Optional[int] = None,
                    option: str = "--normalize") -> Optional[Stats]:
    """The ``(mean, std)`` per channel that ``spec`` asks for, or None for no normalisation.

    Args:
        spec: ``"dataset"`` (the registry's statistics of ``dataset``), ``"none"``, a string
            ``"m1,...,mC,s1,...,sC"`` (C means, then C stds; C = 1 applies to every channel), or a
            ``(mean, std)`` pair of sequences.
        channels: C of the inputs, checked against the statistics when given.
    """
    from .. import data

    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "none":
            return None
        if text.lower() == "dataset":
            if dataset is None:
                raise ValueError(f"{option} dataset needs a dataset")
            stats = data.dataset_stats(dataset)
            mean, std = tuple(map(float, stats[0])), tuple(map(float, stats[1]))
        else:
            try:
                values = [float(v) for v in text.split(",")]
            except ValueError:
                raise ValueError(f"{option} {spec!r}: expected dataset, none or MEAN,STD (comma list of C means "
                                 f"then C stds, e.g. 0.1307,0.3081)") from None
            if len(values) < 2 or len(values) % 2:
                raise ValueError(f"{option} {spec!r}: {len(values)} numbers; MEAN,STD takes C means then C stds "
                                 f"(an even count, e.g. 0.1307,0.3081 for one channel)")
            half = len(values) // 2
            mean, std = tuple(values[:half]), tuple(values[half:])
    else:
        try:
            mean, std = (tuple(float(v) for v in spec[0]), tuple(float(v) for v in spec[1]))
        except (TypeError, IndexError, ValueError):
            raise ValueError(f"normalize={spec!r}: expected 'dataset', 'none', 'MEAN,STD' or a (mean, std) "
                             f"pair") from None
    if len(mean) != len(std) or not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
        raise ValueError(f"{option}: need equal numbers of finite means and stds > 0, got mean {mean} std {std}")
    if channels is not None and len(mean) not in (1, channels):
        raise ValueError(f"{option}: {len(mean)} channel(s) of statistics for inputs with {channels} channels")
    return mean, std


def normalize_record(stats: Optional[Stats], spec: Any) -> Any:
    """The sidecar's ``normalize`` value: ``"none"`` or ``{"mean", "std", "source"}``."""
    if stats is None:
        return "none"
    source = spec if isinstance(spec, str) and spec.strip().lower() == "dataset" else None
    return {"mean": list(stats[0]), "std": list(stats[1]), **({"source": "dataset"} if source else {})}


def with_normalize(net: nn.Module, stats: Optional[Stats]) -> nn.Module:
    """``net`` behind a :class:`NormalizeLayer` of ``stats`` (``net`` itself for None)."""
    return net if stats is None else nn.Sequential(NormalizeLayer(*stats), net)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_file(path: str, what: str = "model file") -> bytes:
    """The bytes of ``path``; FileNotFoundError/ValueError naming it when missing, a directory or empty."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a {what}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw:
        raise ValueError(f"{path}: file is empty (0 bytes), not a {what}")
    return raw


def state_dict_mismatch(model: nn.Module, state: Mapping[str, Tensor]) -> Optional[str]:
    """Why ``state`` does not fit ``model`` (first missing/unexpected keys, or a shape), or None."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    if missing:
        parts.append(f"missing keys {missing[:3]}" + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""))
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:3]}"
                     + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else ""))
        if all(k.startswith("module.") for k in unexpected):
            parts.append("saved from DataParallel? strip the 'module.' prefix")
    if not parts:
        for k, v in own.items():
            if tuple(state[k].shape) != tuple(v.shape):
                return f"shape mismatch at {k!r}: {list(state[k].shape)} in the file, {list(v.shape)} in the model"
        return None
    return "; ".join(parts)


def load_weights(model: nn.Module, state: Mapping[str, Tensor], path: str, what: str) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-line error naming ``path`` and ``what``."""
    why = state_dict_mismatch(model, state)
    if why is None:
        try:
            model.load_state_dict(state, strict=True)
            return
        except Exception as e:  # noqa: BLE001 - e.g. a dtype the module refuses
            why = f"{type(e).__name__}: {str(e).splitlines()[0]}"
    raise ValueError(f"{path}: weights do not fit {what}: {why}")


def is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())


def _import_factory(spec: str):
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model-factory {spec!r}: expected module:function, e.g. mypkg.nets:make")
    cwd = os.getcwd()
    # The current directory is searched for this import only, as `python -m` would.
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(f"--model-factory {spec}: cannot import {module_name} ({e}); it is looked up on "
                         f"sys.path and in the current directory {cwd}") from None
    except Exception as e:  # noqa: BLE001 - the user's module failed: one line with its error
        raise ValueError(f"--model-factory {spec}: importing {module_name} failed: {type(e).__name__}: {e}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--model-factory {spec}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"--model-factory {spec}: {attr} is not callable")
    return obj


def build_from_factory(spec: str) -> nn.Module:
    """``function()`` of ``--model-factory module:function`` (called with no arguments)."""
    fn = _import_factory(spec)
    try:
        net = fn()
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"--model-factory {spec}: calling it with no arguments failed: "
                         f"{type(e).__name__}: {e}") from None
    if not isinstance(net, nn.Module):
        raise ValueError(f"--model-factory {spec}: returned {type(net).__name__}, not a torch.nn.Module")
    return net


def load_torch_file(path: str, raw: Optional[bytes] = None, what: str = "model file") -> Any:
    """``torch.load(weights_only=True)`` of ``path``; a pickled object is refused with the three ways in."""
    import io

    raw = read_file(path, what) if raw is None else raw
    try:
        return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        text = str(e)
        if "Weights only load failed" in text or "Unsupported global" in text:
            raise ValueError(f"{path}: holds pickled Python objects (a whole model saved with torch.save(model)?), "
                             f"which smoothcert never unpickles, since unpickling runs code. Bring the model as "
                             f"(a) a torch.export program: torch.export.save(torch.export.export(model, (x,)), "
                             f"'model.pt2'), then --model model.pt2; (b) your own code plus weights: "
                             f"torch.save(model.state_dict(), 'w.pt'), then --model-factory module:function "
                             f"--weights w.pt; (c) a zoo architecture's state_dict with --arch") from None
        first = text.splitlines()[0] if text else type(e).__name__
        raise ValueError(f"{path}: not a torch file ({first})") from None


def _record(kind: str, **kw) -> Dict[str, Any]:
    base = {"arch": None, "model_factory": None, "model": None, "model_sha256": None, "weights": None,
            "weights_sha256": None}
    base.update(kw)
    return base


def _need_normalize(normalize: Optional[str], what: str, dataset: str) -> str:
    if normalize is None:
        raise ValueError(f"--normalize is required for {what}: smoothcert adds no normalisation on its own, since "
                         f"the model may normalise inside its own forward; pass --normalize none if it does (or "
                         f"takes [0, 1] pixels), --normalize dataset for {dataset}'s mean/std, or --normalize "
                         f"MEAN,STD")
    return normalize


def load_cli_model(*, model: Optional[str], arch: Optional[str], factory: Optional[str],
                   weights: Optional[str], normalize: Optional[str], dataset: str,
                   input_shape: Sequence[int], num_classes: int) -> LoadedModel:
    """The classifier of ``smoothcert certify``'s options (messages name the options).

    Args:
        model, arch, factory, weights, normalize: ``--model``, ``--arch``, ``--model-factory``,
            ``--weights``, ``--normalize`` (None when not given).
        dataset: ``--dataset`` (for ``--normalize dataset``).
        input_shape: (C, H, W) of one input of the data to certify (builds ``--arch`` networks).
        num_classes: the data's class count (output size of ``--arch`` networks).
    """
    from . import checkpoint as ckpt
    from .exported import is_export_archive, load_exported
    from .zoo import ARCHITECTURES

    channels = int(input_shape[0])
    if factory is not None:
        if model is not None or arch is not None:
            raise ValueError("--model-factory builds the model: give it --weights, not --model or --arch")
        if weights is None:
            raise ValueError("--model-factory needs --weights FILE (a state_dict: torch.save(model.state_dict(), "
                             "FILE)), so the run records which weights it certified")
        spec = _need_normalize(normalize, "--model-factory", dataset)
        stats = parse_normalize(spec, dataset, channels)
        raw = read_file(weights, "weights file")
        state = load_torch_file(weights, raw, "weights file")
        if isinstance(state, dict) and "format" in state and "state_dict" in state:
            raise ValueError(f"{weights}: is a smoothcert checkpoint; pass it as --model {weights} "
                             f"(without --model-factory)")
        if isinstance(state, dict) and is_tensor_dict(state.get("state_dict")):
            state = state["state_dict"]  # the {"state_dict": ..., "epoch": ...} layout of training scripts
        if not is_tensor_dict(state):
            found = f"dict with keys {sorted(map(str, state))[:5]}" if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{weights}: --weights takes a state_dict (torch.save(model.state_dict(), FILE)), "
                             f"found {found}")
        net = build_from_factory(factory)
        load_weights(net, state, weights, f"--model-factory {factory}")
        rec = _record("factory", model_factory=factory, weights=weights, weights_sha256=hashlib.sha256(raw).hexdigest(),
                      normalize=normalize_record(stats, spec))
        return LoadedModel(with_normalize(net, stats).eval(), "factory", _empty_info(num_classes), rec)
    if weights is not None:
        raise ValueError("--weights goes with --model-factory; a zoo state_dict is given as --model FILE --arch NAME")
    if model is None:
        raise ValueError("give the model: --model FILE (a smoothcert checkpoint, a torch.export program, or a "
                         "state_dict with --arch) or --model-factory module:function --weights FILE")
    raw = read_file(model)
    sha = hashlib.sha256(raw).hexdigest()
    if is_export_archive(raw):
        if arch is not None:
            raise ValueError(f"{model} is a torch.export program; it brings its architecture, drop --arch")
        spec = _need_normalize(normalize, "a torch.export program", dataset)
        stats = parse_normalize(spec, dataset, channels)
        net = load_exported(model, raw)
        rec = _record("export", model=model, model_sha256=sha, normalize=normalize_record(stats, spec))
        return LoadedModel(with_normalize(net, stats), "export", _empty_info(num_classes), rec)
    obj = load_torch_file(model, raw)
    if isinstance(obj, dict) and "format" in obj:
        ckpt.check_format(model, obj)
        if arch is not None and arch != obj["arch"]:
            raise ValueError(f"{model}: the checkpoint is of arch {obj['arch']!r}, not --arch {arch}; drop --arch")
        net, info = ckpt.model_from_checkpoint(model, obj)
        recorded = (tuple(float(v) for v in net[0].mean.flatten()), tuple(float(v) for v in net[0].std.flatten()))
        if normalize is not None:
            ckpt.check_normalize_matches(model, recorded, normalize, obj["dataset"], channels, "--normalize")
        rec = _record("checkpoint", arch=obj["arch"], model=model, model_sha256=sha,
                      normalize={"mean": list(recorded[0]), "std": list(recorded[1]), "source": "checkpoint"})
        return LoadedModel(net, "checkpoint", info, rec)
    if not is_tensor_dict(obj):
        found = (f"dict with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, dict) else type(obj).__name__)
        raise ValueError(f"{model}: not a smoothcert checkpoint (no 'format' key; found {found}); for a state_dict "
                         f"of a zoo network pass --arch NAME --normalize dataset|none|MEAN,STD, for your own "
                         f"network --model-factory module:function --weights {model} --normalize ..., or export "
                         f"it (torch.export.save) and pass the .pt2 as --model")
    if arch is None:
        raise ValueError(f"{model}: a state_dict without its architecture: pass --arch NAME (zoo: "
                         f"{', '.join(sorted(ARCHITECTURES))}) or --model-factory module:function --weights {model}")
    if arch not in ARCHITECTURES:
        raise ValueError(f"--arch {arch}: unknown; known: {', '.join(sorted(ARCHITECTURES))}")
    spec = _need_normalize(normalize, f"a state_dict with --arch {arch}", dataset)
    stats = parse_normalize(spec, dataset, channels)
    try:
        net = ARCHITECTURES[arch](int(num_classes), channels, (int(input_shape[1]), int(input_shape[2])))
    except ValueError as e:
        raise ValueError(f"--arch {arch} for {dataset} inputs {list(input_shape)}: {e}") from None
    if "0.mean" in obj and "0.std" in obj:  # build_model's whole Sequential: its NormalizeLayer is in the file
        ckpt.check_normalize_matches(model, (tuple(obj["0.mean"].flatten().tolist()),
                                             tuple(obj["0.std"].flatten().tolist())), spec, dataset, channels,
                                     "--normalize")
        full = nn.Sequential(NormalizeLayer(*stats), net) if stats is not None else None
        load_weights(full, obj, model, f"--arch {arch}")
        built = full
    else:
        load_weights(net, obj, model, f"--arch {arch}")
        built = with_normalize(net, stats)
    rec = _record("zoo-state-dict", arch=arch, model=model, model_sha256=sha, normalize=normalize_record(stats, spec))
    return LoadedModel(built.eval(), "zoo-state-dict", _empty_info(num_classes, arch), rec)


def _empty_info(num_classes: int, arch: Optional[str] = None) -> Dict[str, Any]:
    return {"format": None, "arch": arch, "dataset": None, "num_classes": int(num_classes), "meta": {},
            "tensors": {}}
