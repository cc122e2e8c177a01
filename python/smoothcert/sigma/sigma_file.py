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

FORMAT = "smoothcert-sigma"
VERSION = 1


def check_sigma_tensor(sigma: torch.Tensor, what: str = "sigma") -> torch.Tensor:
    """``sigma`` as float32, or ValueError unless it is a floating tensor of at least one
    dimension whose values are all finite and > 0."""
    if not isinstance(sigma, torch.Tensor):
        raise ValueError(f"{what} must be a tensor of the shape of one input, got {type(sigma).__name__}")
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
    """``(sigma float32 [*S], meta)`` from a sigma file (or a bare tensor file)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"sigma file {path} does not exist")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, torch.Tensor):
        return check_sigma_tensor(obj, f"sigma in {path}"), {}
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ValueError(f"{path} is not a smoothcert sigma file (expected a tensor or a dict with "
                         f"format={FORMAT!r})")
    if obj.get("version") != VERSION:
        raise ValueError(f"{path}: sigma file version {obj.get('version')} is not supported (want {VERSION})")
    return check_sigma_tensor(obj["sigma"], f"sigma in {path}"), dict(obj.get("meta") or {})
