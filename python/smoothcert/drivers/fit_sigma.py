"""The c0 sweep of ``smoothcert fit-sigma``: for every initial constant c0, a fresh
sigma and Adam, ``sub_epochs`` passes over the fitting set with the learning
rate decayed after each, and after every pass (and before the first: the
isotropic sigma = c0) CERTIFY on held-out training images for the clean
accuracy and mean O_CA, a sigma file and its heat-map.

The split: the last ``val_count`` images of the training split are held out for
this evaluation (and the choice of c0 or sub-epoch), the fit uses the first
``fit_count`` of the others. Test images are never read.

Resumable: the state (sigma, Adam, the record so far) is saved after every
pass; rerunning the same command continues where it stopped, and a changed
setting is refused. Layout of ``out_dir`` in docs/formats.md.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..utils import progress as progress_bar
from ..utils.safe_load import bad_file, describe, is_int, load_weights_only, require_keys, require_tensor
from ..sigma.fit import FitConfig, SigmaParameter, fit_sub_epoch, frozen
from ..sigma.sigma_file import save_sigma

STATE = "fit_state.pt"
RECORD = "fit.json"


def c0_name(c0: float) -> str:
    return f"c0_{c0:g}"


def fit_sigma_sweep(model: torch.nn.Module, train_x: torch.Tensor, train_y: torch.Tensor, *, c0s: Sequence[float],
                    base: FitConfig, out_dir: str, scale: Optional[Sequence[float]], num_classes: int,
                    meta: Dict[str, Any], val_count: int = 1000, fit_count: Optional[int] = None,
                    eval_budget=(64, 512, 0.001, 1000), stop_accuracy: Optional[float] = None,
                    device: torch.device = torch.device("cpu"), progress: bool = True) -> List[Dict[str, Any]]:
    """Fits sigma for every c0 of ``c0s`` in turn (see the module docstring).

    Args:
        model: the frozen base classifier (raw [0, 1] inputs, normalisation inside).
        train_x: ``[N, *S]`` training images in [0, 1]; train_y: ``[N]`` labels.
        c0s: initial constants (in ``base.units``), fitted in this order.
        base: settings shared by all c0 (its ``c0`` is replaced).
        out_dir: where sigma files, heat-maps, the record and the state go.
        scale: per-channel std for ``units="standardized"``.
        num_classes: K; meta: dataset/model description stored in every sigma file.
        val_count, fit_count: held-out images (the last ones) and fitting images (the first).
        eval_budget: ``(n0, n, alpha, batch_size)`` of the held-out CERTIFY.
        stop_accuracy: stop the sweep after a c0 whose isotropic held-out accuracy is at or below this.

    Returns:
        the record: one dict per (c0, sub-epoch), sub-epoch 0 being the constant c0.
    """
    from ..analysis.sigma_maps import border_centre_ratio, is_image, save_sigma_map
    from ..certify.anisotropic import AnisotropicSmooth

    N = train_x.shape[0]
    if not 0 < val_count < N:
        raise ValueError(f"val_count must lie in [1, {N - 1}] (the held-out training images), got {val_count}")
    fit_count = N - val_count if fit_count is None else int(fit_count)
    if not 0 < fit_count <= N - val_count:
        raise ValueError(f"fit_count must lie in [1, {N - val_count}], got {fit_count}")
    fit_ids = torch.arange(fit_count)
    val_ids = torch.arange(N - val_count, N)
    shape = tuple(train_x.shape[1:])
    fit_info = {**meta, "split": "train", "fit_indices": [0, fit_count], "val_indices": [N - val_count, N]}
    settings = {"c0s": [float(c) for c in c0s], "base": {k: v for k, v in base.to_dict().items() if k != "c0"},
                "fit": fit_info, "eval_budget": list(eval_budget), "stop_accuracy": stop_accuracy, "scale": scale}
    os.makedirs(out_dir, exist_ok=True)
    state = _load_state(out_dir, settings, shape)
    Xf, yf = train_x[:fit_count], train_y[:fit_count]
    Xv = train_x[N - val_count:].to(device).float()
    yv = train_y[N - val_count:]
    n0, n, alpha, eval_batch = eval_budget
    total = sum(base.sub_epochs * fit_count for _ in c0s)
    bar = progress_bar(total=total, initial=state["done_inputs"], desc="fit-sigma", unit="input") if progress else None

    def evaluate(sigma: torch.Tensor, c0: float, sub_epoch: int, extra: Dict[str, Any]) -> Dict[str, Any]:
        t0 = time.perf_counter()
        smooth = AnisotropicSmooth(model, num_classes, sigma.detach().cpu(), seed=base.seed)
        res = smooth.certify_batch(Xv, n0, n, alpha, eval_batch, indices=val_ids)
        correct = (res.prediction == yv).numpy()
        o = res.o_ca.numpy()
        d = os.path.join(out_dir, c0_name(c0))
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, f"sigma_e{sub_epoch}.pt")
        s = sigma.detach().cpu()
        save_sigma(path, s, {"fit": fit_info, "c0": c0, "sub_epoch": sub_epoch, "config": replace(base, c0=c0).to_dict()})
        if is_image(s):
            save_sigma_map(s, os.path.join(d, f"sigma_e{sub_epoch}.png"),
                           title=f"|sigma|, c0 = {c0:g}, sub-epoch {sub_epoch}")
        rec = {"c0": c0, "sub_epoch": sub_epoch, "val_accuracy": float(correct.mean()),
               "val_mean_o_ca": float(o[correct].mean()) if correct.any() else float("nan"),
               "val_abstain": float((res.prediction < 0).float().mean()),
               "sigma_mean": float(s.mean()), "sigma_geomean": float(s.double().log().mean().exp()),
               "sigma_min": float(s.min()), "sigma_max": float(s.max()),
               "border_centre_ratio": border_centre_ratio(s) if is_image(s) else float("nan"), "sigma_file": os.path.relpath(path, out_dir),
               "eval_seconds": time.perf_counter() - t0, **extra}
        return rec

    with frozen(model):
        for ci, c0 in enumerate(c0s):
            if ci < state["c0_index"]:
                continue
            cfg = replace(base, c0=float(c0))
            param = SigmaParameter(shape, cfg, scale).to(device)
            opt = torch.optim.Adam(param.parameters(), lr=cfg.lr)
            start = 0
            if state["param"] is not None:
                param.p.data.copy_(state["param"].to(device))
                opt.load_state_dict(state["adam"])
                start = state["sub_epoch"]
            if not any(r["c0"] == cfg.c0 and r["sub_epoch"] == 0 for r in state["record"]):
                with torch.no_grad():
                    state["record"].append(evaluate(param(), cfg.c0, 0, {"isotropic": True}))
                _save_state(out_dir, settings, state, ci, 0, param, opt)
            for e in range(start, cfg.sub_epochs):
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * cfg.decay ** e
                t0 = time.perf_counter()
                stats = fit_sub_epoch(model, param, opt, Xf, yf, fit_ids, cfg, e,
                                      progress=bar.update if bar is not None else None)
                stats["fit_seconds"] = time.perf_counter() - t0
                stats["lr"] = cfg.lr * cfg.decay ** e
                with torch.no_grad():
                    state["record"].append(evaluate(param(), cfg.c0, e + 1, {"isotropic": False, **stats}))
                state["done_inputs"] += fit_count
                _save_state(out_dir, settings, state, ci, e + 1, param, opt)
            save_sigma(os.path.join(out_dir, c0_name(c0), "sigma.pt"), param().detach().cpu(),
                       {"fit": fit_info, "c0": cfg.c0, "sub_epoch": cfg.sub_epochs, "config": cfg.to_dict()})
            state["param"], state["adam"] = None, None
            _save_state(out_dir, settings, state, ci + 1, 0, None, None)
            iso = [r for r in state["record"] if r["c0"] == cfg.c0 and r["sub_epoch"] == 0]
            if stop_accuracy is not None and iso and iso[0]["val_accuracy"] <= stop_accuracy:
                break
    if bar is not None:
        bar.close()
    return state["record"]


def _load_state(out_dir: str, settings: Dict[str, Any], shape: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """The resume state in ``out_dir`` (a fresh one if there is none); ``shape`` is ``S``, the
    shape of sigma. A state file that is not exactly what :func:`_save_state` writes is refused
    with one line that names it and says to delete it."""
    path = os.path.join(out_dir, STATE)
    fresh = {"c0_index": 0, "sub_epoch": 0, "param": None, "adam": None, "record": [], "done_inputs": 0}
    if not os.path.exists(path):
        return fresh
    what = "a smoothcert fit-sigma state (delete it to restart the fit)"
    st = load_weights_only(path, what)
    require_keys(path, what, st, ("settings", *fresh))
    if not isinstance(st["settings"], dict):
        raise bad_file(path, what, f"'settings' must be a dict, found {describe(st['settings'])}")
    if json.dumps(st["settings"], sort_keys=True, default=str) != json.dumps(settings, sort_keys=True, default=str):
        raise ValueError(f"{out_dir} holds a fit-sigma run with other settings; remove it or choose another --out")
    c0s = settings.get("c0s", [])
    for key, top in (("c0_index", len(c0s)), ("sub_epoch", settings.get("base", {}).get("sub_epochs")),
                     ("done_inputs", None)):
        v = st[key]
        if not (is_int(v) and v >= 0 and (top is None or v <= top)):
            raise bad_file(path, what, f"{key!r} must be an int in [0, {'inf' if top is None else top}], found {v!r}")
    if not (isinstance(st["record"], list) and all(isinstance(r, dict) and "c0" in r and "sub_epoch" in r
                                                   for r in st["record"])):
        raise bad_file(path, what, "'record' must be a list of per-sub-epoch dicts")
    if (st["param"] is None) != (st["adam"] is None):
        raise bad_file(path, what, "'param' and 'adam' must both be set or both be None")
    if st["param"] is not None:
        p = require_tensor(path, what, st["param"], "param", dtype=torch.float32, finite=True,
                           shape=None if shape is None else list(shape))
        _check_adam(path, what, st["adam"], p.shape)
    return {k: st[k] for k in fresh}


def _check_adam(path: str, what: str, adam: Any, shape) -> None:
    """ValueError unless ``adam`` is the state dict of an Adam over one parameter of ``shape``."""
    ok = isinstance(adam, dict) and isinstance(adam.get("state"), dict) and isinstance(adam.get("param_groups"), list)
    groups = adam["param_groups"] if ok else []
    if not (ok and len(groups) == 1 and isinstance(groups[0], dict) and groups[0].get("params") == [0]
            and set(adam["state"]) <= {0} and isinstance(adam["state"].get(0, {}), dict)):
        raise bad_file(path, what, "'adam' is not the state of an Adam optimiser over sigma")
    for name, v in adam["state"].get(0, {}).items():
        if name in ("exp_avg", "exp_avg_sq"):
            require_tensor(path, what, v, f"adam {name}", dtype=torch.float32, shape=list(shape), finite=True)
        elif name == "step":
            require_tensor(path, what, v, "adam step", finite=True)
            if v.numel() != 1:
                raise bad_file(path, what, "'adam step' must be one number")


def _save_state(out_dir, settings, state, c0_index, sub_epoch, param, opt) -> None:
    state.update(c0_index=c0_index, sub_epoch=sub_epoch,
                 param=None if param is None else param.p.detach().cpu().clone(),
                 adam=None if opt is None else opt.state_dict())
    tmp = os.path.join(out_dir, STATE + ".tmp")
    torch.save({"settings": settings, **state}, tmp)
    os.replace(tmp, os.path.join(out_dir, STATE))
    with open(os.path.join(out_dir, RECORD + ".tmp"), "w") as f:
        json.dump({"settings": settings, "record": state["record"]}, f, indent=1, default=_json_default)
    os.replace(os.path.join(out_dir, RECORD + ".tmp"), os.path.join(out_dir, RECORD))


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    raise TypeError(type(o).__name__)
