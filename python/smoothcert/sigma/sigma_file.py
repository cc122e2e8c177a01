"""The sigma file: one per-element sigma (the shape of one input, raw [0, 1] pixel units)
with how it was fitted, written by ``smoothcert fit-sigma`` and read by
``smoothcert certify --sigma-file``.

A torch file (``torch.save``) of a dict ``{"format": "smoothcert-sigma", "version": 1,
"sigma": float32 [C, H, W], "meta": {...}}``; ``meta`` holds the dataset, the
split and indices it was fitted on, the model's sha256, c0, units and the
optimiser's settings (docs/formats.md). Loading uses ``weights_only=True``.
A bare tensor file is accepted too (its meta is empty).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import torch

from ..utils.safe_load import bad_file, describe, load_weights_only, require_keys

_WHAT = "a smoothcert sigma file"
FORMAT = "smoothcert-sigma"
VERSION = 1


def check_sigma_tensor(sigma: torch.Tensor, what: str = "sigma") -> torch.Tensor:
    """``sigma`` as float32, or ValueError unless it is a floating tensor of at least one
    dimension whose values are all finite and > 0."""
    if not isinstance(sigma, torch.Tensor) or sigma.layout != torch.strided:
        got = f"a {sigma.layout} tensor" if isinstance(sigma, torch.Tensor) else type(sigma).__name__
        raise ValueError(f"{what} must be a dense tensor of the shape of one input, got {got}")
    if not sigma.is_floating_point():
        raise ValueError(f"{what} must be floating point, got {sigma.dtype}")
    if sigma.dim() < 1 or sigma.numel() == 0:
        raise ValueError(f"{what} must have the shape of one input (e.g. [C, H, W]), got {list(sigma.shape)}")
    s = sigma.detach().float()
    bad = ~(torch.isfinite(s) & (s > 0))
    if bool(bad.any()):
        k = int(bad.sum())
        raise ValueError(f"{what} must be finite and > 0 everywhere; {k} of {s.numel()} elements are not "
                         f"(first: {s[bad].flatten()[0].item()})")
    return s


def save_sigma(path: str, sigma: torch.Tensor, meta: Dict[str, Any]) -> None:
    """Writes ``sigma`` (checked, float32, CPU) and ``meta`` to ``path`` atomically."""
    s = check_sigma_tensor(sigma).cpu().contiguous()
    tmp = path + ".tmp"
    torch.save({"format": FORMAT, "version": VERSION, "sigma": s, "meta": dict(meta)}, tmp)
    os.replace(tmp, path)


def load_sigma(path: str) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """``(sigma float32 [*S], meta)`` from a sigma file (or a bare tensor file).

    Raises:
        ValueError: ``"<path>: not a smoothcert sigma file: <reason>"`` (missing keys,
            a truncated or foreign file, a sigma that is not finite and > 0, ...).
    """
    obj = load_weights_only(path, _WHAT)
    if isinstance(obj, torch.Tensor):
        return _checked(path, obj), {}
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        found = f"format {obj.get('format')!r}" if isinstance(obj, dict) and "format" in obj else describe(obj)
        raise bad_file(path, _WHAT, f"expected a tensor or a dict with format {FORMAT!r}, found {found}")
    if obj.get("version") != VERSION:
        raise bad_file(path, _WHAT, f"version {obj.get('version')!r} is not supported (want {VERSION})")
    require_keys(path, _WHAT, obj, ("sigma",))
    meta = obj.get("meta")
    if meta is not None and not (isinstance(meta, dict) and isinstance(meta.get("fit", {}), (dict, type(None)))):
        raise bad_file(path, _WHAT, f"'meta' must be a dict (with 'fit' a dict), found {describe(meta)}")
    return _checked(path, obj["sigma"]), dict(meta or {})


def _checked(path: str, sigma: Any) -> torch.Tensor:
    try:
        return check_sigma_tensor(sigma, "sigma")
    except ValueError as e:
        raise bad_file(path, _WHAT, str(e)) from None
