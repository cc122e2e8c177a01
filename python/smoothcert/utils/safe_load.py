"""Weights-only reading of smoothcert's torch files, with one-line errors.

Every file smoothcert reads back (memories, sigma files, sigma tables, resume
states) goes through :func:`load_weights_only`: ``torch.load(weights_only=True)``,
so a file can hold only tensors and plain containers and never runs code, and
any way a file can be wrong (missing, empty, truncated, not a torch file, a
pickled object) becomes one :class:`ValueError` line
``"<path>: not <what>: <reason>"``. The loader's callers then check the
structure they expect and raise :func:`bad_file` errors of the same form.
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
from typing import Any, Iterable, Optional, Sequence

import torch


class MissingFileError(FileNotFoundError, ValueError):
    """A file that was named but does not exist (both a FileNotFoundError and a ValueError)."""


def bad_file(path, what: str, reason: str) -> ValueError:
    """The error for a file that is not ``what``: ``"<path>: not <what>: <reason>"``."""
    return ValueError(f"{os.fspath(path)}: not {what}: {reason}")


def describe(obj: Any) -> str:
    """A short description of a loaded object, for error messages."""
    if isinstance(obj, dict):
        keys = sorted(map(str, obj))
        more = ", ..." if len(keys) > 8 else ""
        return f"a dict with keys [{', '.join(keys[:8])}{more}]"
    if isinstance(obj, torch.Tensor):
        return f"a {obj.dtype} tensor of shape {list(obj.shape)}"
    return f"a {type(obj).__name__}"


def _reason(e: Exception) -> str:
    """Why ``torch.load`` failed, in a few words (torch's own text suggests
    ``weights_only=False``, which would let the file run code: never repeated)."""
    text = str(e)
    if isinstance(e, pickle.UnpicklingError):
        g = re.search(r"GLOBAL ([\w.]+)", text)
        if g:
            return (f"it pickles a Python object ({g.group(1)}), and only tensors and plain containers are "
                    "read (nothing in it was run)")
        return "not a torch file (unreadable as a weights-only pickle)"
    if isinstance(e, RuntimeError) and ("zip archive" in text or "PytorchStreamReader" in text):
        m = re.search(r"zip archive: ([^.]*)", text)
        return f"truncated or corrupted torch file ({m.group(1) if m else 'bad zip archive'})"
    if isinstance(e, EOFError):
        return "the file ends early (truncated)"
    if isinstance(e, OSError):
        return f"cannot be read ({e.strerror or type(e).__name__})"
    return f"not a torch file ({type(e).__name__})"


def load_weights_only(path, what: str, *, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``, every failure one line.

    Args:
        path: the file.
        what: what it should be, with its article (``"a smoothcert memory file"``).
        map_location: as for ``torch.load``.

    Raises:
        MissingFileError: ``path`` does not exist.
        ValueError: ``"<path>: not <what>: <reason>"`` for a directory, an empty,
            truncated or corrupted file, a file that is not a torch file, and a
            file pickling any object other than tensors and plain containers.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(f"{path}: not found (expected {what})")
    if os.path.isdir(path):
        raise bad_file(path, what, "it is a directory")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise bad_file(path, what, f"cannot be read ({e.strerror})") from None
    if size == 0:
        raise bad_file(path, what, "the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle-protocol notes are noise here
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any malformed byte stream; KeyboardInterrupt passes
        raise bad_file(path, what, _reason(e)) from None


def require_keys(path, what: str, obj: Any, keys: Iterable[str]) -> None:
    """ValueError unless ``obj`` is a dict holding every key of ``keys`` (names the missing ones)."""
    if not isinstance(obj, dict):
        raise bad_file(path, what, f"expected a dict, found {describe(obj)}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise bad_file(path, what, f"missing key{'s' if len(missing) > 1 else ''} "
                                   f"{', '.join(repr(k) for k in missing)}")


def require_tensor(path, what: str, value: Any, name: str, *, dtype: Optional[torch.dtype] = None,
                   shape: Optional[Sequence[int]] = None, floating: bool = False, finite: bool = False) -> torch.Tensor:
    """``value`` if it is a dense tensor of ``dtype`` (or any floating dtype with ``floating``),
    of ``shape`` (None entries match any size) and, with ``finite``, finite; else ValueError."""
    if not isinstance(value, torch.Tensor) or value.layout != torch.strided:
        raise bad_file(path, what, f"{name!r} must be a tensor, found {describe(value)}")
    if dtype is not None and value.dtype != dtype:
        raise bad_file(path, what, f"{name!r} must be {dtype}, found {value.dtype}")
    if floating and not value.is_floating_point():
        raise bad_file(path, what, f"{name!r} must be floating point, found {value.dtype}")
    if shape is not None and (value.dim() != len(shape) or any(s is not None and int(v) != int(s)
                                                               for v, s in zip(value.shape, shape))):
        want = ["*" if s is None else int(s) for s in shape]
        raise bad_file(path, what, f"{name!r} must have shape {want}, found {list(value.shape)}")
    if finite and value.numel() and not bool(torch.isfinite(value).all()):
        raise bad_file(path, what, f"{name!r} holds NaN or infinite values")
    return value


def is_int(v: Any) -> bool:
    """Whether ``v`` is a Python int (not a bool)."""
    return isinstance(v, int) and not isinstance(v, bool)
