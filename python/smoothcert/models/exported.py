"""Loading a ``torch.export`` program file (``torch.export.save``, ``.pt2``) without running its code.

``torch.export.load`` is not safe on hostile files (checked on torch 2.13): it unpickles
tensor-subclass weights and constants with ``weights_only=False``, falls back to
``weights_only=False`` when the archive's example inputs fail a weights-only load,
``pickle.loads`` opaque constants, loads AOTInductor shared libraries, and resolves a graph
node's target to any callable reachable as an attribute of ``torch``, ``operator`` or
``math`` (``torch.os.system`` among them). :func:`load_exported` therefore checks the archive
first, from the same bytes it then hands to ``torch.export.load``: only plain tensors stored
raw, example inputs that load weights-only, and graphs whose nodes call ATen/prims
operators, higher-order operators or symbolic-shape arithmetic.
"""
from __future__ import annotations

import io
import json
from typing import Any, Iterable

import torch
from torch import Tensor, nn

# Targets the deserializer maps to Python callables that only do shape arithmetic.
_SYMBOLIC = {"_operator." + n for n in ("eq", "ne", "le", "ge", "lt", "gt", "neg", "pos", "mul", "add", "sub",
                                         "floordiv", "mod", "pow", "truediv", "and_", "or_", "lshift", "rshift",
                                         "getitem")}
_SYMBOLIC |= {"math.trunc", "torch.sym_not", "torch.sym_int", "torch.sym_float", "torch.sym_ite", "torch.sym_max",
              "torch.sym_min", "torch.sym_sqrt"}
_OP_PREFIXES = ("torch.ops.aten.", "torch.ops.prims.", "torch.ops.higher_order.")


class ExportedModel(nn.Module):
    """A loaded export program as a classifier: ``[B, C, H, W] -> [B, K]`` logits.

    Train/eval mode was fixed when the program was exported (dropout, batch-norm
    statistics), so :meth:`train` only records the flag; ``torch.export``'s module
    refuses ``eval()``.
    """

    def __init__(self, program: nn.Module):
        super().__init__()
        self.program = program
        self.training = False

    def train(self, mode: bool = True) -> "ExportedModel":
        self.training = bool(mode)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.program(x)


def is_export_archive(raw: bytes) -> bool:
    """Whether ``raw`` is a ``torch.export.save`` archive (a zip with an ``archive_format`` record)."""
    if raw[:4] != b"PK\x03\x04":
        return False
    try:
        names = torch._C.PyTorchFileReader(io.BytesIO(raw)).get_all_records()
    except Exception:  # noqa: BLE001 - not a zip torch can read: not an archive
        return False
    return "archive_format" in names and "data.pkl" not in names


def _targets(obj: Any) -> Iterable[str]:
    # Nested graphs (higher-order operators' branches) sit anywhere below "graph_module".
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "target" and isinstance(v, str):
                yield v
            else:
                yield from _targets(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _targets(v)


def _refuse(path: str, why: str) -> ValueError:
    return ValueError(f"{path}: export program refused: {why}; smoothcert loads only export programs of "
                      f"plain tensors and ATen operators, since anything else in a .pt2 runs code when loaded")


def check_archive(path: str, raw: bytes) -> None:
    """Raise ValueError unless the archive in ``raw`` holds nothing that runs code when loaded."""
    from torch.export.pt2_archive import constants as C

    reader = torch._C.PyTorchFileReader(io.BytesIO(raw))
    names = reader.get_all_records()
    version = reader.get_record(C.ARCHIVE_VERSION_PATH).decode() if C.ARCHIVE_VERSION_PATH in names else None
    if version != C.ARCHIVE_VERSION_VALUE:
        raise _refuse(path, f"archive version is not {C.ARCHIVE_VERSION_VALUE} (saved by another torch release?)")
    for name in names:
        if name.startswith((C.AOTINDUCTOR_DIR, C.EXECUTORCH_DIR, C.MTIA_DIR)):
            raise _refuse(path, f"it holds compiled code ({name})")
        if name.startswith((C.WEIGHTS_DIR, C.CONSTANTS_DIR)) and name.endswith(".pt"):
            raise _refuse(path, f"it holds pickled legacy weights ({name})")
    models = [n for n in names if n.startswith(C.MODELS_DIR) and n.endswith(".json")]
    if not models:
        raise _refuse(path, "it holds no program")
    for model in models:
        key = model[len(C.MODELS_DIR):-len(".json")]
        for fmt in (C.WEIGHTS_CONFIG_FILENAME_FORMAT, C.CONSTANTS_CONFIG_FILENAME_FORMAT):
            cfg_name = fmt.format(key)
            if cfg_name not in names:
                raise _refuse(path, f"{cfg_name} is missing")
            for fqn, meta in json.loads(reader.get_record(cfg_name).decode()).get("config", {}).items():
                if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(
                        (C.WEIGHT_FILENAME_PREFIX, C.TENSOR_CONSTANT_FILENAME_PREFIX)):
                    raise _refuse(path, f"{fqn!r} is a pickled object or custom class, not a plain tensor")
        sample = C.SAMPLE_INPUTS_FILENAME_FORMAT.format(key)
        if sample in names:
            blob = reader.get_record(sample)
            if blob:
                try:  # the same call torch makes first; passing it means torch never falls back to pickle
                    torch.load(io.BytesIO(blob), weights_only=True)
                except Exception as e:  # noqa: BLE001
                    raise _refuse(path, f"its example inputs are not plain tensors ({type(e).__name__})") from None
        program = json.loads(reader.get_record(model).decode())
        for target in _targets(program.get("graph_module", program)):
            if not (target.startswith(_OP_PREFIXES) or target in _SYMBOLIC):
                raise _refuse(path, f"a graph node calls {target!r}")


def check_graph(path: str, module: nn.Module) -> None:
    """Raise ValueError unless every call in the graphs of ``module`` (an export program's
    ``graph_module``, nested graphs included) is an operator or shape arithmetic."""
    import math
    import operator

    roots = {"_operator": operator, "math": math, "torch": torch}
    allowed = {getattr(roots[name.split(".")[0]], name.split(".")[1]) for name in _SYMBOLIC}
    for gm in module.modules():
        graph = getattr(gm, "graph", None)
        if not isinstance(graph, torch.fx.Graph):
            continue
        for node in graph.nodes:
            if node.op in ("call_module", "call_method"):
                raise _refuse(path, f"graph node {node.name} is a {node.op}")
            if node.op != "call_function":
                continue
            t = node.target
            ok = isinstance(t, (torch._ops.OpOverload, torch._ops.HigherOrderOperator)) or t in allowed
            if isinstance(t, torch._ops.OpOverload) and t.namespace not in ("aten", "prims"):
                ok = False
            if not ok:
                raise _refuse(path, f"graph node {node.name} calls {t!r}")


def load_exported(path: str, raw: bytes) -> ExportedModel:
    """The program in ``raw`` (the bytes of ``path``), checked, then loaded with ``torch.export.load``."""
    try:
        check_archive(path, raw)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged archive: say so in one line
        raise ValueError(f"{path}: damaged export program ({type(e).__name__}: {e})") from None
    try:
        ep = torch.export.load(io.BytesIO(raw))
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: torch.export.load failed ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    check_graph(path, ep.graph_module)  # the program as loaded; .module() only adds torch's own guards
    return ExportedModel(ep.module())
