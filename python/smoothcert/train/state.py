"""The resumable training state ``<out>.state``: weights, optimiser and scheduler state,
history, the loss description, the config and the sigma policy's table (DS2), written
atomically after every epoch; a resume refuses a state that is not exactly what
:func:`save_state` writes for this model and these settings."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import torch
from torch import Tensor

from ..utils import safe_load
from .config import TrainConfig, plain_config

STATE_FORMAT = "smoothcert-train-state-v1"


def state_path(out: str) -> str:
    return out + ".state"


def checkpoint_epochs(out: str) -> Optional[int]:
    from ..models import checkpoint_info

    try:
        return checkpoint_info(out)["meta"].get("epochs_done")
    except (FileNotFoundError, ValueError):
        return None


def save_state(out: str, model, opt, sched, epochs_done: int, history: List[dict], cfg: TrainConfig,
                method: Dict[str, Any], sigma_table: Optional[Tensor] = None) -> None:
    tmp = state_path(out) + ".tmp"
    torch.save({"format": STATE_FORMAT, "epochs_done": epochs_done, "optimizer": opt.state_dict(),
                "sigma_table": None if sigma_table is None else sigma_table.detach().float().cpu().clone(),
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "scheduler": sched.state_dict(), "history": history, "method": method,
                "config": plain_config(cfg)}, tmp)
    os.replace(tmp, state_path(out))


def resume(out: str, model, opt, sched, cfg: TrainConfig, method: Dict[str, Any], device,
            n_examples: Optional[int] = None) -> tuple:
    """Loads weights and optimiser state from ``out + ".state"``; returns (next epoch, history,
    the DS2 sigma table ``[n_examples]`` or None). A state file that is not exactly what
    :func:`save_state` writes for this model is refused with one line that names it and
    says to delete it."""
    path = state_path(out)
    what = "a smoothcert training state (delete it to restart the training)"
    state = safe_load.load_weights_only(path, what, map_location=device)
    if not (isinstance(state, dict) and state.get("format") == STATE_FORMAT):
        have = repr(state.get("format")) if isinstance(state, dict) else safe_load.describe(state)
        raise safe_load.bad_file(path, what, f"expected format {STATE_FORMAT!r}, found {have}")
    safe_load.require_keys(path, what, state,
                           ("epochs_done", "optimizer", "model", "scheduler", "history", "method", "config"))
    for key, kind in (("config", dict), ("model", dict), ("optimizer", dict), ("scheduler", dict), ("history", list)):
        if not isinstance(state[key], kind):
            raise safe_load.bad_file(path, what, f"{key!r} must be a {kind.__name__}, "
                                                 f"found {safe_load.describe(state[key])}")
    if not (safe_load.is_int(state["epochs_done"]) and state["epochs_done"] >= 0):
        raise safe_load.bad_file(path, what, f"'epochs_done' must be an int >= 0, found {state['epochs_done']!r}")
    saved = state["config"]
    now = plain_config(cfg)
    # More epochs may be added to a step schedule; a cosine schedule depends on the total.
    defaults = vars(TrainConfig())  # states written before a field existed used its default
    differ = sorted(k for k in now if saved.get(k, defaults[k]) != now[k]
                    and not (k == "epochs" and cfg.schedule == "step"))
    if state.get("method") != method:
        differ.append(f"method {state.get('method')} != {method}")
    if differ:
        raise ValueError(f"{out}: resuming a run with different settings ({', '.join(differ)}); "
                         "use another --out or remove the old files")
    for k, v in state["model"].items():
        t = safe_load.require_tensor(path, what, v, f"model.{k}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise safe_load.bad_file(path, what, f"the weight 'model.{k}' holds NaN or infinite values")
    _check_optimizer(path, what, state["optimizer"], opt)
    _check_scheduler(path, what, state["scheduler"], sched)
    table = state.get("sigma_table")
    if table is not None:
        table = safe_load.require_tensor(path, what, table, "sigma_table", dtype=torch.float32, finite=True,
                                         shape=[n_examples])
        if table.numel() and not bool((table > 0).all()):
            raise safe_load.bad_file(path, what, "'sigma_table' must be > 0 everywhere")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        reason = " ".join(str(e).split())[:300]  # torch's message spans lines
        raise safe_load.bad_file(path, what, f"it does not fit this model ({reason})") from None
    return int(state["epochs_done"]), list(state["history"]), table


def _check_optimizer(path: str, what: str, sd: Dict[str, Any], opt) -> None:
    """ValueError unless ``sd`` is an optimiser state of ``opt``'s groups whose per-parameter
    tensors (momentum buffers) have their parameters' shapes."""
    groups = sd.get("param_groups")
    if not (isinstance(sd.get("state"), dict) and isinstance(groups, list) and len(groups) == len(opt.param_groups)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)):
        raise safe_load.bad_file(path, what, "'optimizer' is not the state of this run's optimiser")
    shapes = {}
    for g, mine in zip(groups, opt.param_groups):
        if len(g["params"]) != len(mine["params"]) or not all(safe_load.is_int(i) for i in g["params"]):
            raise safe_load.bad_file(path, what, "'optimizer' holds another number of parameters than the model")
        shapes.update({i: tuple(p.shape) for i, p in zip(g["params"], mine["params"])})
    for i, entry in sd["state"].items():
        if i not in shapes or not isinstance(entry, dict):
            raise safe_load.bad_file(path, what, f"'optimizer' holds state for an unknown parameter {i!r}")
        for name, v in entry.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0 and tuple(v.shape) != shapes[i]:
                raise safe_load.bad_file(path, what, f"'optimizer' {name} of parameter {i} has shape "
                                                     f"{list(v.shape)}, the parameter {list(shapes[i])}")
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
                raise safe_load.bad_file(path, what, f"'optimizer' {name} of parameter {i} holds NaN or "
                                                     "infinite values")


def _check_scheduler(path: str, what: str, sd: Dict[str, Any], sched) -> None:
    """ValueError unless ``sd`` holds ``last_epoch`` and, for every key it shares with
    ``sched.state_dict()``, a value of the same kind (keys differ across torch versions)."""
    mine = sched.state_dict()
    if not safe_load.is_int(sd.get("last_epoch")):
        raise safe_load.bad_file(path, what, f"'scheduler' is not the state of this run's {type(sched).__name__}")
    number = (int, float)
    for k, v in mine.items():
        if k not in sd:
            continue
        w = sd[k]
        same = (isinstance(v, number) and isinstance(w, number) and not isinstance(w, bool)) or type(w) is type(v)
        if isinstance(v, (list, tuple)) and same:
            same = len(w) == len(v)
        if not same:
            raise safe_load.bad_file(path, what, f"'scheduler' {k} is {type(w).__name__}, "
                                                 f"expected {type(v).__name__}")

