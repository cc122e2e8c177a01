"""Pretrain-to-finetune training of sample-wise smoothing (Wang et al., "Pretrain-to-Finetune
Adversarial Training via Sample-wise Randomized Smoothing", Algorithm 1, Eqs. 4-5).

1. **Pretrain** ``pretrain_epochs`` epochs with ``sigma_mode="uniform"``: every
   example trains at a fresh sigma ~ U(sigma_min, sigma_max) in every epoch.
2. **Select** sigma_j^train for every training example over the grid
   ``{t * sigma_step} ∩ [sigma_min, sigma_max]`` by Eq. 5 (largest radius among
   the sigmas that classify x_j as its label, ``select_samples`` draws per
   (x_j, sigma) on :data:`ops.TRAIN_SAMPLEWISE_STREAM`; no such sigma -> the
   smallest), once, with the stage-1 weights.
3. **Fine-tune** ``finetune_epochs`` epochs from the stage-1 weights at that fixed
   per-example table, with its own lr (the paper: 0.1 then 0.001).

Both stages use the same loss (default SmoothAdv with each example's own sigma).
Stage 2 re-keys its draws after stage 1's (``TrainConfig.epoch_offset``) so it
does not replay stage 1's noise and shuffles. With ``out`` every stage is
resumable and a rerun ends with the weights of an uninterrupted run:

* ``<out>.pretrain`` (+ ``.state``): stage 1's checkpoint and training state;
* ``<out>.sigma.pt.partial`` while the selection runs (saved after every chunk
  of ``select_chunk`` examples), then ``<out>.sigma.pt`` (both atomic);
* ``<out>`` (+ ``.state``): stage 2, the final checkpoint.

Every file records the settings it was made with; a rerun with other settings is
refused rather than mixed in.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from .. import ops
from ..data import Split
from ..engine import Sampler
from ..sigma.samplewise import GRID_STEP, check_grid_values, select_sigma, sigma_grid
from ..utils import safe_load
from ..train.loop import TrainConfig, check_sigma_range, describe, make_method, train

SELECTION_FORMAT = "smoothcert-train-sigma-v1"
METHOD = "pretrain-finetune"

Save = Callable[[str, torch.nn.Module, Dict[str, Any]], None]


@dataclass
class PretrainFinetuneConfig:
    """The two stages and the selection pass between them.

    Attributes:
        sigma_min, sigma_max: stage 1's uniform range; also bounds the grid.
        sigma_step, include_min: the grid (:func:`smoothcert.sigma.samplewise.sigma_grid`).
        pretrain_epochs, pretrain_lr / finetune_epochs, finetune_lr: each stage's
            epochs and initial lr (its schedule is the shared one of the base
            :class:`TrainConfig`, counted from the stage's first epoch).
        finetune_warmup: SmoothAdv's epsilon warm-up in stage 2 (default 0: the
            stage-1 model was already trained at the full epsilon) [choice].
        select_samples, alpha: draws per (example, grid sigma) and the level of
            the Clopper-Pearson bound of the selection.
        select_batch: forward batch of the selection; select_chunk: examples per
            resumable unit of the selection.
    """

    sigma_min: float
    sigma_max: float
    sigma_step: float = GRID_STEP
    include_min: bool = False
    pretrain_epochs: int = 30
    finetune_epochs: int = 30
    pretrain_lr: float = 0.1
    finetune_lr: float = 0.001
    finetune_warmup: int = 0
    select_samples: int = 500
    alpha: float = 0.001
    select_batch: int = 1000
    select_chunk: int = 256

    def check(self) -> None:
        check_sigma_range(self.sigma_min, self.sigma_max)
        for name in ("pretrain_epochs", "finetune_epochs", "select_samples", "select_batch", "select_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("pretrain_lr", "finetune_lr"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0, got {v}")
        if self.finetune_warmup < 0:
            raise ValueError(f"finetune_warmup must be >= 0, got {self.finetune_warmup}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha}")
        self.grid()  # an empty grid or a bad step raises here

    def grid(self) -> Tensor:
        """``[T]`` float64 ascending candidate sigmas."""
        return sigma_grid(self.sigma_min, self.sigma_max, self.sigma_step, include_min=self.include_min)

    def stages(self, base: TrainConfig) -> Tuple[TrainConfig, TrainConfig]:
        """(stage 1, stage 2) configs from the shared settings of ``base`` (its epochs,
        lr and sigma settings are replaced)."""
        if base.sigma_mode != "fixed" or base.sigma_min is not None or base.sigma_max is not None:
            raise ValueError("pretrain-finetune sets the sigma of each stage itself; give a base config with "
                             f"sigma_mode 'fixed' and no sigma range (got {base.sigma_mode!r})")
        if base.noise != "gaussian":
            raise ValueError(f"pretrain-finetune trains and selects with Gaussian noise, got {base.noise!r}")
        if base.epoch_offset != 0:
            raise ValueError("pretrain-finetune sets epoch_offset itself")
        pre = dataclasses.replace(base, epochs=self.pretrain_epochs, lr=self.pretrain_lr, sigma_mode="uniform",
                                  sigma_min=float(self.sigma_min), sigma_max=float(self.sigma_max))
        fine = dataclasses.replace(base, epochs=self.finetune_epochs, lr=self.finetune_lr,
                                   epoch_offset=self.pretrain_epochs)
        return pre, fine

    def finetune_loss(self, loss: Callable) -> Callable:
        """Stage 2's loss: stage 1's with ``finetune_warmup`` for SmoothAdv."""
        # Any loss with an epsilon warm-up (a ``warmup`` field) gets stage 2's.
        if dataclasses.is_dataclass(loss) and any(f.name == "warmup" for f in dataclasses.fields(loss)):
            return dataclasses.replace(loss, warmup=self.finetune_warmup)
        return loss


@dataclass
class TrainSelection:
    """sigma_j^train of N training examples over a grid of T values (CPU tensors).

    Attributes:
        grid: ``[T]`` float64; choice: ``[N]`` int64 index into it;
        sigma: ``[N]`` float32 ``grid[choice]``, the fine-tuning table;
        best: ``[N]`` float64 radius R*h at the chosen sigma (0: no grid sigma
            classifies the example, which fell back to ``grid[0]``).
        pretrain_sha256: hash of the weights it was selected with (None if unknown).
    """

    grid: Tensor
    choice: Tensor
    sigma: Tensor
    best: Tensor
    pretrain_sha256: Optional[str] = None

    def histogram(self) -> List[int]:
        """Examples per grid sigma, ``[T]``."""
        return torch.bincount(self.choice, minlength=self.grid.numel()).tolist()

    def no_correct(self) -> int:
        """Examples that no grid sigma classifies correctly."""
        return int((self.best == 0).sum())


@dataclass
class PretrainFinetuneResult:
    """The fine-tuned model (eval mode), the selection, and the final checkpoint's meta
    (plain values and the ``"sigma_table"`` tensor)."""

    model: torch.nn.Module
    selection: TrainSelection
    meta: Dict[str, Any]


def weights_sha256(model: torch.nn.Module) -> str:
    """Hash of every state-dict entry's name and bytes."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _plain_config(cfg) -> Dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}


def _write(path: str, obj: Dict[str, Any]) -> None:
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a crash leaves the old file or the new one, never half of one


def _differences(saved: Dict[str, Any], now: Dict[str, Any], prefix: str = "") -> List[str]:
    """Names of the settings that differ, nested dicts spelled ``outer.inner``."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(prefix + k)
    return out


def _load_selection(path: str, expect: Dict[str, Any], n: int, sha: Optional[str]) -> Dict[str, Any]:
    """A selection (or partial one) written by ``record``, refused with one line naming the
    file unless it has exactly that structure and ``n`` examples."""
    what = "a smoothcert training-set sigma selection (delete it to recompute it)"
    obj = safe_load.load_weights_only(path, what)
    if not (isinstance(obj, dict) and obj.get("format") == SELECTION_FORMAT):
        have = repr(obj.get("format")) if isinstance(obj, dict) else safe_load.describe(obj)
        raise safe_load.bad_file(path, what, f"expected format {SELECTION_FORMAT!r}, found {have}")
    safe_load.require_keys(path, what, obj, ("config", "pretrain_sha256", "done", "grid", "choice", "sigma", "best"))
    if not isinstance(obj["config"], dict):
        raise safe_load.bad_file(path, what, f"'config' must be a dict, found {safe_load.describe(obj['config'])}")
    differ = _differences(obj["config"], expect)
    if sha is not None and obj.get("pretrain_sha256") != sha:
        differ.append("the stage-1 weights")
    choice = safe_load.require_tensor(path, what, obj["choice"], "choice", dtype=torch.int64, shape=[None])
    if differ or choice.shape != (n,):
        raise ValueError(f"{path}: made with different settings ({', '.join(differ) or 'examples'}); "
                         "use another --out or remove the old files")
    grid = safe_load.require_tensor(path, what, obj["grid"], "grid", dtype=torch.float64, shape=[None], finite=True)
    sigma = safe_load.require_tensor(path, what, obj["sigma"], "sigma", dtype=torch.float32, shape=[n], finite=True)
    safe_load.require_tensor(path, what, obj["best"], "best", dtype=torch.float64, shape=[n])
    if not (safe_load.is_int(obj["done"]) and 0 <= obj["done"] <= n):
        raise safe_load.bad_file(path, what, f"'done' must be an int in [0, {n}], found {obj['done']!r}")
    if grid.numel() == 0 or not bool((grid > 0).all()):
        raise safe_load.bad_file(path, what, "'grid' must hold sigmas > 0")
    if n and (bool(((choice < 0) | (choice >= grid.numel())).any()) or not torch.equal(sigma, grid[choice].float())):
        raise safe_load.bad_file(path, what, "'choice' and 'sigma' do not index its grid")
    return obj


def select_training_sigma(model: torch.nn.Module, split: Split, grid: Tensor, *, samples: int = 500,
                          alpha: float = 0.001, batch_size: int = 1000, seed: int = 0,
                          device: Union[str, torch.device] = "cpu", chunk: int = 256, path: Optional[str] = None,
                          expect: Optional[Dict[str, Any]] = None, progress: bool = True) -> TrainSelection:
    """sigma_j^train of every example of ``split`` (Eq. 5, the label used), in chunks.

    Args:
        model: the stage-1 classifier on ``device`` (put in eval mode).
        split: ``split.x`` ``[N, *S]``, ``split.y`` ``[N]``; example j's noise is keyed by j.
        grid: ``[T]`` candidate sigmas.
        path: with it, the finished selection goes there and the chunks done so far
            to ``path + ".partial"``; either resumes a rerun. ``expect`` (plain
            settings) is stored with them and must match on a rerun.
    """
    grid = check_grid_values(grid)
    N, expect = len(split), dict(expect or {})
    sha = weights_sha256(model)
    partial = None if path is None else path + ".partial"
    if path is not None and os.path.exists(path):
        obj = _load_selection(path, expect, N, sha)
        if os.path.exists(partial):
            os.remove(partial)  # left by a crash between the final write and this cleanup
        return TrainSelection(obj["grid"], obj["choice"], obj["sigma"], obj["best"], sha)
    choice = torch.zeros(N, dtype=torch.long)
    best = torch.zeros(N, dtype=torch.float64)
    done = 0
    if partial is not None and os.path.exists(partial):
        obj = _load_selection(partial, expect, N, sha)
        done, choice, best = int(obj["done"]), obj["choice"].clone(), obj["best"].clone()

    def record(p: str, upto: int) -> None:
        _write(p, {"format": SELECTION_FORMAT, "config": expect, "pretrain_sha256": sha, "done": upto,
                   "grid": grid, "choice": choice, "sigma": grid[choice].float(), "best": best})

    sampler = Sampler(model.eval(), split.num_classes, noise="gaussian", seed=seed,
                      stream=ops.TRAIN_SAMPLEWISE_STREAM, batch_size=batch_size)
    bar = None
    if progress:
        from ..utils import progress as progress_bar
        bar = progress_bar(total=N, initial=done, desc="select sigma", unit="example")
    # Chunks start at multiples of ``chunk`` whatever ``done`` is, so a resumed
    # run forwards exactly the batches of an uninterrupted one.
    for i0 in range(done, N, chunk):
        i1 = min(N, i0 + chunk)
        X = split.x[i0:i1].to(device, torch.float32)
        ids = torch.arange(i0, i1, device=X.device)
        sel = select_sigma(sampler, X, ids, grid, samples, alpha, labels=split.y[i0:i1])
        choice[i0:i1], best[i0:i1] = sel.choice, sel.best
        if partial is not None and i1 < N:
            record(partial, i1)
        if bar is not None:
            bar.update(i1 - i0)
            bar.set_postfix(fallback=int((best[:i1] == 0).sum()))
    if bar is not None:
        bar.close()
    if path is not None:
        record(path, N)
        if os.path.exists(partial):
            os.remove(partial)
    return TrainSelection(grid, choice, grid[choice].float(), best, sha)


def train_pretrain_finetune(model: torch.nn.Module, split: Split, loss: Union[str, Callable],
                            plan: PretrainFinetuneConfig, *, config: Optional[TrainConfig] = None,
                            device: Union[str, torch.device] = "cpu", out: Optional[str] = None,
                            save: Optional[Save] = None, progress: bool = True,
                            log: Optional[List[dict]] = None) -> PretrainFinetuneResult:
    """Algorithm 1 (module docstring); returns the fine-tuned model and its selection.

    Args:
        model: maps ``[N, C, H, W]`` raw inputs to logits; its weights start stage 1.
        split: training data, ``split.x`` ``[N, C, H, W]``, ``split.y`` ``[N]``.
        loss: a loss name or object (:func:`make_method`), e.g. SmoothAdv.
        plan: :class:`PretrainFinetuneConfig`.
        config: the settings both stages share (batch size, momentum, weight decay,
            schedule, augmentation, seed); its epochs, lr and sigma are replaced.
        out: the final checkpoint's path; the other files are named after it.
        save: ``save(path, model, meta)`` writes a certifiable checkpoint to ``path``
            (``meta`` mixes plain values and tensors, e.g. ``"sigma_table"``).
        log: if given, one dict per trained epoch, with its ``"stage"``.
    """
    plan.check()
    grid = plan.grid()
    pre_cfg, fine_cfg = plan.stages(config or TrainConfig())
    pre_loss = make_method(loss) if isinstance(loss, str) else loss
    fine_loss = plan.finetune_loss(pre_loss)
    pre_path = None if out is None else out + ".pretrain"
    sel_path = None if out is None else out + ".sigma.pt"
    method = {"method": METHOD, "loss": describe(pre_loss)}
    ranges = {"sigma_min": float(plan.sigma_min), "sigma_max": float(plan.sigma_max),
              "sigma_step": float(plan.sigma_step), "include_min": bool(plan.include_min),
              "grid": [float(g) for g in grid]}
    expect = {**ranges, "examples": len(split), "select_samples": plan.select_samples, "alpha": plan.alpha,
              "select_batch": plan.select_batch, "select_chunk": plan.select_chunk,
              "pretrain": _plain_config(pre_cfg), "loss": describe(pre_loss)}
    pre_info = {"epochs": plan.pretrain_epochs, "lr": plan.pretrain_lr, "sigma": "uniform", "checkpoint": pre_path}

    def stage_log(stage: str) -> Optional[List[dict]]:
        return None if log is None else _StageLog(log, stage)

    if out is not None and os.path.exists(out + ".state"):
        # Stage 2 has begun: its state holds the weights, the selection its table.
        if not os.path.exists(sel_path):
            raise ValueError(f"{out}.state exists but its sigma table {sel_path} does not; remove {out}.state "
                             "to redo the fine-tuning")
        obj = _load_selection(sel_path, expect, len(split), None)
        selection = TrainSelection(obj["grid"], obj["choice"], obj["sigma"], obj["best"], obj["pretrain_sha256"])
    else:
        pre_meta = {"method": method, "stage": "pretrain", "sigma": "uniform", "sigma_mode": "uniform",
                    "noise": {"kind": "gaussian", "sigma_mode": "uniform", **ranges},
                    "pretrain_finetune": {**ranges, "pretrain": pre_info}, "config": _plain_config(pre_cfg)}
        save_pre = None if save is None else (lambda m, p: save(pre_path, m, {**pre_meta, **p}))
        model = train(model, split, pre_loss, None, config=pre_cfg, device=device, out=pre_path, save=save_pre,
                      progress=progress, log=stage_log("pretrain"), desc="pretrain")
        selection = select_training_sigma(model, split, grid, samples=plan.select_samples, alpha=plan.alpha,
                                          batch_size=plan.select_batch, seed=pre_cfg.seed, device=device,
                                          chunk=plan.select_chunk, path=sel_path, expect=expect,
                                          progress=progress)
    meta = {"method": method, "stage": "finetune", "sigma": "samplewise", "sigma_mode": "samplewise",
            "noise": {"kind": "gaussian", "sigma_mode": "samplewise", **ranges},
            "pretrain_finetune": {
                **ranges, "select_samples": plan.select_samples, "alpha": plan.alpha,
                "select_batch": plan.select_batch, "select_chunk": plan.select_chunk, "selection_file": sel_path,
                "pretrain": {**pre_info, "weights_sha256": selection.pretrain_sha256},
                "finetune": {"epochs": plan.finetune_epochs, "lr": plan.finetune_lr, "warmup": plan.finetune_warmup,
                             "loss": describe(fine_loss)},
                "sigma_histogram": selection.histogram(), "no_correct_sigma": selection.no_correct(),
                "fallback_sigma": float(grid[0])},
            "config": {"pretrain": _plain_config(pre_cfg), "finetune": _plain_config(fine_cfg)},
            "sigma_table": selection.sigma.clone()}
    save_fine = None if save is None else (lambda m, p: save(out, m, {**meta, **p}))
    model = train(model, split, fine_loss, selection.sigma, config=fine_cfg, device=device, out=out,
                  save=save_fine, progress=progress, log=stage_log("finetune"), desc="finetune")
    return PretrainFinetuneResult(model, selection, meta)


class _StageLog(list):
    """Forwards the loop's per-epoch entries to the caller's log, tagged with the stage."""

    def __init__(self, target: List[dict], stage: str):
        super().__init__()
        self.target, self.stage = target, stage

    def append(self, entry: dict) -> None:
        super().append(entry)
        self.target.append({"stage": self.stage, **entry})
