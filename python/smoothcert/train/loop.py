"""Training base classifiers for randomized smoothing: one loop for every method
in :mod:`smoothcert.train.losses` (gaussian, smoothadv, macer, stability).

Reproducible and resumable by construction:

* the noise comes from the fused counter-based sampler on its own stream
  (``ops.TRAINING_STREAM``), keyed by (seed, example index, epoch), so it is
  independent of every certification draw;
* epoch e's shuffle and augmentation come from a generator seeded by
  (seed, e), so nothing random needs saving;
* after every epoch the weights and optimiser/scheduler state go to
  ``<out>.state`` and the model to a certifiable checkpoint; rerunning the same
  command resumes after the last finished epoch and ends with the same
  weights as an uninterrupted run (on deterministic CPU kernels).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

from .. import ops
from ..data import Split
from ..utils import safe_load
from . import losses

NOISES = ("gaussian", "uniform", "ssn", "dssn")
SIGMA_MODES = ("fixed", "uniform", "ddrs")

# Noise counters reserved per example per epoch (draws per step must fit).
SAMPLES_PER_EPOCH = 4096
STATE_FORMAT = "smoothcert-train-state-v1"


@dataclass
class TrainConfig:
    """Optimisation settings (defaults: Cohen et al.'s SGD recipe, cosine decay).

    Attributes:
        epochs, batch_size, lr, momentum, weight_decay: SGD settings.
        schedule: ``"cosine"`` (per step, to 0 at the end) or ``"step"``
            (lr times ``gamma`` at each epoch in ``milestones``).
        augment: ``"none"`` or ``"crop-flip"`` (pad 4, random crop, horizontal
            flip: the CIFAR recipe), applied before the noise.
        seed: keys shuffling, augmentation and noise.
        noise: ``"gaussian"``, ``"uniform"``, ``"ssn"`` (independent splitting
            noise) or ``"dssn"`` (one random split offset per example and copy,
            with the fixed offset vector of ``offset_seed``, the one
            certification uses); sigma is the noise's RMS for all of them.
        q, offset_seed: DSSN's grid steps and offset-vector seed.
        sigma_mode: ``"fixed"``, ``"uniform"`` or ``"ddrs"``. ``"uniform"`` is
            stage 1 of seed-004's pretrain-to-finetune (Alg. 1, Eq. 4): in every
            epoch every example trains at its own sigma ~ U(sigma_min, sigma_max),
            drawn afresh by :func:`uniform_sigma_table` (keyed by seed and epoch,
            so a resume redraws the same table); ``train`` then takes
            ``sigma=None``. ``"ddrs"`` is data-dependent sigma (DS2,
            Alfarra et al. Alg. 2): a per-example sigma table, initialised to the
            given sigma, is updated by :class:`smoothcert.sigma.OptimizeSigma` (model
            in eval mode, ``ddrs_steps`` steps of size ``ddrs_lr`` with
            ``ddrs_samples`` draws, its own noise stream) before every step of the
            epochs ``e >= ddrs_start`` (0-based) with ``(e - ddrs_start) % ddrs_every
            == 0``; the step then trains at the updated sigma. The table persists
            across epochs and is stored with the checkpoint.
        sigma_min, sigma_max: the range of ``"uniform"`` (None otherwise).
        epoch_offset: epoch e's shuffle, augmentation, noise and uniform sigma are
            keyed by ``epoch_offset + e``: a second stage of one run sets it to the
            first stage's epoch count so it continues, rather than replays, the
            first stage's draws (its lr schedule and epsilon warm-up still count
            from 0).
    """

    epochs: int = 30
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    milestones: Sequence[int] = field(default_factory=lambda: (30, 60, 90))
    gamma: float = 0.1
    augment: str = "none"
    seed: int = 0
    noise: str = "gaussian"
    q: int = 255
    offset_seed: int = 0
    sigma_mode: str = "fixed"
    ddrs_steps: int = 1
    ddrs_start: int = 0
    ddrs_every: int = 1
    ddrs_lr: float = 1e-4
    ddrs_samples: int = 1
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    epoch_offset: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"schedule must be 'cosine' or 'step', got {self.schedule!r}")
        if self.augment not in ("none", "crop-flip"):
            raise ValueError(f"augment must be 'none' or 'crop-flip', got {self.augment!r}")
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {self.noise!r}")
        if self.sigma_mode not in SIGMA_MODES:
            raise ValueError(f"sigma_mode must be one of {SIGMA_MODES}, got {self.sigma_mode!r}")
        if self.epoch_offset < 0:
            raise ValueError(f"epoch_offset must be >= 0, got {self.epoch_offset}")
        if self.sigma_mode == "uniform":
            check_sigma_range(self.sigma_min, self.sigma_max)
            if self.noise == "dssn":
                raise ValueError("DSSN training takes one scalar sigma, not sigma_mode 'uniform'")
        elif self.sigma_min is not None or self.sigma_max is not None:
            raise ValueError(f"sigma_min and sigma_max belong to sigma_mode 'uniform', not {self.sigma_mode!r}")
        if self.sigma_mode == "ddrs":
            if self.noise not in ("gaussian", "uniform"):
                raise ValueError(f"data-dependent sigma trains with gaussian or uniform noise (differentiable in "
                                 f"sigma), got {self.noise!r}")
            if self.ddrs_start < 0 or self.ddrs_every < 1:
                raise ValueError(f"ddrs_start must be >= 0 and ddrs_every >= 1, got {self.ddrs_start} and "
                                 f"{self.ddrs_every}")

    def optimizer(self):
        """The :class:`OptimizeSigma` of the DS2 updates."""
        from ..sigma import OptimizeSigma

        return OptimizeSigma(steps=self.ddrs_steps, lr=self.ddrs_lr, samples=self.ddrs_samples)

    def updates_sigma(self, epoch: int) -> bool:
        """Whether DS2 updates the sigma table in (0-based) ``epoch``."""
        return (self.sigma_mode == "ddrs" and self.ddrs_steps > 0 and epoch >= self.ddrs_start
                and (epoch - self.ddrs_start) % self.ddrs_every == 0)


def check_sigma_range(sigma_min, sigma_max) -> None:
    """Raises ValueError unless 0 < sigma_min <= sigma_max, both finite numbers."""
    for name, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if sigma_min > sigma_max:
        raise ValueError(f"sigma_min ({sigma_min}) is above sigma_max ({sigma_max})")


# Keeps the uniform-sigma generator of (seed, epoch) apart from the shuffle
# generator of the same (seed, epoch): equal seeds would give equal streams.
_UNIFORM_SIGMA_TAG = 1 << 62


def uniform_sigma_table(n: int, sigma_min: float, sigma_max: float, seed: int, epoch: int) -> Tensor:
    """``[n]`` float32 sigma ~ U(sigma_min, sigma_max), one per example (seed-004 Eq. 4),
    a function of (seed, epoch) alone: a resumed run redraws the same table."""
    check_sigma_range(sigma_min, sigma_max)
    gen = torch.Generator().manual_seed(_UNIFORM_SIGMA_TAG + seed * 1_000_003 + epoch)
    u = torch.rand(n, generator=gen, dtype=torch.float64)
    return (sigma_min + (sigma_max - sigma_min) * u).float()


@dataclass
class SingleCopySmoothAdv(losses.SmoothAdv):
    """SmoothAdv whose training loss keeps only the first of the m noisy adversarial
    copies, CE(f(x' + delta_0), y) (seed-004 §2 [choice]: Salman et al.'s default
    without their multi-noise flag); the attack still averages over all m draws.

    The parent's final forward runs on all B*m copies (so batch-norm statistics see
    every copy); the m-1 unused rows cost one extra forward, small beside the PGD
    steps. Returns logits ``[B, K]`` of the kept copies."""

    def __call__(self, model, x, y, sigma, noise, *, epsilon: float = None):
        _, logits = super().__call__(model, x, y, sigma, noise, epsilon=epsilon)
        kept = logits.view(x.shape[0], self.m, -1)[:, 0]
        return torch.nn.functional.cross_entropy(kept, y), kept


def make_method(name: str, **params) -> Callable:
    """The loss object of a method name in :data:`losses.METHODS`; ``params``
    are its fields (e.g. ``m``, ``steps``, ``epsilon`` for smoothadv, and
    ``single_copy=True`` for :class:`SingleCopySmoothAdv`)."""
    if name == "smoothadv" and params.pop("single_copy", False):
        return SingleCopySmoothAdv(**params)
    table = {"gaussian": None, "smoothadv": losses.SmoothAdv, "macer": losses.Macer,
             "stability": losses.Stability}
    if name not in table:
        raise ValueError(f"unknown training method {name!r}; known: {', '.join(losses.METHODS)}")
    if table[name] is None:
        if params:
            raise ValueError(f"gaussian takes no parameters, got {sorted(params)}")
        return losses.gaussian
    return table[name](**params)


def describe(method: Callable) -> Dict[str, Any]:
    """Plain description of a loss object: {"method": name, **parameters}."""
    if method is losses.gaussian:
        return {"method": "gaussian"}
    name = {losses.SmoothAdv: "smoothadv", SingleCopySmoothAdv: "smoothadv", losses.Macer: "macer",
            losses.Stability: "stability"}.get(type(method), type(method).__name__)
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(method).items()}
    if isinstance(method, SingleCopySmoothAdv):
        # Only here: the all-copies description stays what older states recorded.
        params["single_copy"] = True
    return {"method": name, **params}


def _sigma_table(sigma: Union[float, Tensor], N: int, x: Tensor) -> Union[float, Tensor]:
    if isinstance(sigma, Tensor) and sigma.numel() > 1:
        if sigma.shape != (N,):
            raise ValueError(f"a per-example sigma must have shape [{N}], got {list(sigma.shape)}")
        ops.check_sigma(sigma.float().view(-1, 1))
        return sigma.float()
    value = float(sigma)
    ops.check_sigma(torch.tensor([[value]]))
    return value


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Pad 4 (zeros), random 32x32-style crop back to H x W, random horizontal flip."""
    B, _, H, W = x.shape
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (B,), generator=gen)
    dx = torch.randint(0, 9, (B,), generator=gen)
    flip = torch.rand(B, generator=gen) < 0.5
    rows = (dy.view(B, 1) + torch.arange(H).view(1, H)).to(x.device)
    cols = (dx.view(B, 1) + torch.arange(W).view(1, W)).to(x.device)
    cols = torch.where(flip.view(B, 1).to(x.device), cols.flip(1), cols)
    b = torch.arange(B, device=x.device).view(B, 1, 1)
    out = padded.permute(0, 2, 3, 1)[b, rows.view(B, H, 1), cols.view(B, 1, W)]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2).contiguous()


def _scheduler(opt, cfg: TrainConfig, steps_per_epoch: int):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.MultiStepLR(
        opt, [m * steps_per_epoch for m in cfg.milestones], gamma=cfg.gamma)


def _state_path(out: str) -> str:
    return out + ".state"


def train(model: torch.nn.Module, split: Split, method: Union[str, Callable], sigma: Union[float, Tensor, None], *,
          config: Optional[TrainConfig] = None, device: Union[str, torch.device] = "cpu",
          out: Optional[str] = None, save: Optional[Callable[[torch.nn.Module, Dict[str, Any]], None]] = None,
          progress: bool = True, log: Optional[List[dict]] = None, desc: str = "train") -> torch.nn.Module:
    """Trains ``model`` with a smoothing-aware method and returns it in eval mode.

    Args:
        model: maps ``[N, C, H, W]`` inputs in the raw input space to logits.
        split: training data, ``split.x`` ``[N, C, H, W]`` in memory, ``split.y`` ``[N]``.
        method: a name of :data:`losses.METHODS` (default parameters) or a loss
            object from :mod:`smoothcert.train.losses` / :func:`make_method`.
        sigma: a number, or a per-example table ``[N]`` indexed like ``split.x``;
            None with ``config.sigma_mode == "uniform"`` (which draws its own).
        config: :class:`TrainConfig`.
        out: checkpoint path; with it, ``save(model, meta)`` is called after every
            epoch (it must write ``out``) and the optimiser state goes to
            ``out + ".state"``; an existing state resumes the run.
        log: if given, one dict per epoch (epoch, loss, noisy accuracy, lr) is appended.
        desc: the progress bar's label.
    """
    cfg = config or TrainConfig()
    cfg.check()
    loss_fn = make_method(method) if isinstance(method, str) else method
    per_step = losses.samples_per_step(loss_fn)
    if per_step > SAMPLES_PER_EPOCH:
        raise ValueError(f"{per_step} noise draws per step exceed the {SAMPLES_PER_EPOCH} reserved per epoch")
    N = len(split)
    if N == 0:
        raise ValueError("the training split is empty")
    if cfg.sigma_mode == "uniform":
        if sigma is not None:
            raise ValueError("sigma_mode 'uniform' draws every example's sigma itself; pass sigma=None")
        sig_all = None  # drawn at the start of every epoch
    elif sigma is None:
        raise ValueError(f"sigma_mode {cfg.sigma_mode!r} needs a sigma (a number or a per-example table)")
    else:
        sig_all = _sigma_table(sigma, N, split.x)
    if cfg.noise != "gaussian" and not (loss_fn is losses.gaussian or isinstance(loss_fn, losses.Stability)):
        raise ValueError(f"noise {cfg.noise!r} trains with the gaussian (noise augmentation) or stability "
                         f"methods only; {describe(loss_fn)['method']} assumes Gaussian noise")
    if cfg.noise == "dssn":
        if isinstance(sig_all, Tensor):
            raise ValueError("DSSN training takes one scalar sigma")
        ops.check_grid(split.x[: min(N, 256)], cfg.q, "training input")
    if cfg.sigma_mode == "ddrs":
        # DS2's table S[idx], initialised to sigma0 (or the given table).
        sig_all = (sig_all.clone() if isinstance(sig_all, Tensor) else torch.full((N,), sig_all)).float()
        sigma_opt = cfg.optimizer()
    if isinstance(sig_all, Tensor):
        sig_all = sig_all.to(device)
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps_per_epoch = (N + cfg.batch_size - 1) // cfg.batch_size
    sched = _scheduler(opt, cfg, steps_per_epoch)
    history: List[dict] = []
    start = 0
    if out is not None and os.path.exists(_state_path(out)):
        start, history, saved_sigma = _resume(out, model, opt, sched, cfg, describe(loss_fn), device, N)
        if saved_sigma is not None:
            sig_all = saved_sigma.to(device)
        if save is not None and _checkpoint_epochs(out) != start:
            # A crash between the two writes left the checkpoint one epoch
            # behind; an up-to-date one is left byte-identical (certification
            # runs key their resumable files by its hash).
            model.eval()
            save(model, _progress(start, history, sig_all, cfg))
    x_all, y_all = split.x, split.y
    bar = None
    if progress:
        from ..utils import progress as progress_bar
        bar = progress_bar(total=(cfg.epochs - start) * steps_per_epoch, desc=desc, unit="batch")
    for epoch in range(start, cfg.epochs):
        model.train()
        key = cfg.epoch_offset + epoch  # keys every random draw of the epoch
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + key)
        if cfg.sigma_mode == "uniform":
            sig_all = uniform_sigma_table(N, cfg.sigma_min, cfg.sigma_max, cfg.seed, key).to(device)
        perm = torch.randperm(N, generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        kwargs = {}
        if isinstance(loss_fn, losses.SmoothAdv):
            kwargs["epsilon"] = loss_fn.epsilon_at(epoch)
        for i in range(0, N, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            x = x_all[idx].to(device)
            if cfg.augment == "crop-flip":
                x = _augment(x, gen)
            y = y_all[idx].to(device)
            ids = idx.to(device)
            if cfg.updates_sigma(epoch):
                model.eval()  # batch-norm statistics fixed: the samples stay independent
                res = sigma_opt(model, x, sig_all[ids], ids=ids, seed=cfg.seed, stream=ops.TRAIN_SIGMA_OPT_STREAM,
                                noise=cfg.noise, sample_start=key * cfg.ddrs_steps * cfg.ddrs_samples,
                                batch_size=max(cfg.batch_size, x.shape[0] * cfg.ddrs_samples))
                sig_all[ids] = res.sigma.to(sig_all.device)
                model.train()
            sig = sig_all[ids] if isinstance(sig_all, Tensor) else sig_all

            noise = make_noise(cfg, ids, sig, key * SAMPLES_PER_EPOCH)

            loss, logits = loss_fn(model, x, y, sig, noise, **kwargs)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at epoch {epoch}, batch {i // cfg.batch_size}; "
                                         "lower the learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            reps = logits.shape[0] // y.shape[0]
            loss_sum += float(loss.detach()) * y.shape[0]
            correct += int((logits.argmax(1) == y.repeat_interleave(reps)).sum()) / reps
            total += y.shape[0]
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / total:.3f}", acc=f"{correct / total:.3f}")
        entry = {"epoch": epoch + 1, "loss": loss_sum / total, "noisy_accuracy": correct / total,
                 "lr": opt.param_groups[0]["lr"]}
        history.append(entry)
        if log is not None:
            log.append(entry)
        if out is not None:
            model.eval()
            # The state (weights included) first: it alone drives a resume, so a
            # crash between the two writes loses nothing.
            _save_state(out, model, opt, sched, epoch + 1, history, cfg, describe(loss_fn),
                        sig_all if cfg.sigma_mode == "ddrs" else None)
            if save is not None:
                save(model, _progress(epoch + 1, history, sig_all, cfg))
    if bar is not None:
        bar.close()
    return model.eval()


def make_noise(cfg: TrainConfig, ids: Tensor, sigma: Union[float, Tensor], sample_start: int) -> Callable:
    """``noise(x, m) -> [B * m, *S]`` for one training step: ``m`` noisy copies of each example,
    keyed by (seed, example id, ``sample_start + j``) so that two calls in a step agree."""
    if cfg.noise == "dssn":
        from ..stats.l1 import dssn_levels
        from ..ops import dssn_offsets, dssn_training_offsets

        levels = dssn_levels(float(sigma), cfg.q)

        def noise(inp: Tensor, m: int) -> Tensor:
            v = dssn_offsets(levels, inp[0].numel(), cfg.offset_seed)
            offsets = dssn_training_offsets(ids, m, levels, seed=cfg.seed, sample_start=sample_start)
            ops.check_grid(inp, cfg.q, "training input")
            return ops.dssn_batch(inp, v, offsets, levels, cfg.q, validate=False)
        return noise

    # A per-example sigma goes in as an explicit [B, 1] table: a 1-D tensor of length B
    # would read as per-element when B equals the element count.
    table = sigma.float().view(-1, 1) if isinstance(sigma, Tensor) else None

    def noise(inp: Tensor, m: int) -> Tensor:
        if table is not None:
            return ops.sample_noise_table(inp.float(), ids, table.to(inp.device), m, sample_start=sample_start,
                                          seed=cfg.seed, stream=ops.TRAINING_STREAM, noise=cfg.noise)
        return ops.sample_noise(inp, sigma, m, ids=ids, sample_start=sample_start, seed=cfg.seed,
                                stream=ops.TRAINING_STREAM, noise=cfg.noise, validate=False)
    return noise


def _checkpoint_epochs(out: str) -> Optional[int]:
    from ..models import checkpoint_info

    try:
        return checkpoint_info(out)["meta"].get("epochs_done")
    except (FileNotFoundError, ValueError):
        return None


def _progress(epochs_done: int, history: List[dict], sig_all, cfg: TrainConfig) -> Dict[str, Any]:
    """What ``save`` gets after an epoch; DS2 adds its sigma table ``[N]`` (a tensor)."""
    meta: Dict[str, Any] = {"epochs_done": epochs_done, "history": history}
    if cfg.sigma_mode == "ddrs":
        meta["sigma_table"] = sig_all.detach().float().cpu().clone()  # a snapshot, not the live table
    return meta


def _save_state(out: str, model, opt, sched, epochs_done: int, history: List[dict], cfg: TrainConfig,
                method: Dict[str, Any], sigma_table: Optional[Tensor] = None) -> None:
    tmp = _state_path(out) + ".tmp"
    torch.save({"format": STATE_FORMAT, "epochs_done": epochs_done, "optimizer": opt.state_dict(),
                "sigma_table": None if sigma_table is None else sigma_table.detach().float().cpu().clone(),
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "scheduler": sched.state_dict(), "history": history, "method": method,
                "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}}, tmp)
    os.replace(tmp, _state_path(out))


def _resume(out: str, model, opt, sched, cfg: TrainConfig, method: Dict[str, Any], device,
            n_examples: Optional[int] = None) -> tuple:
    """Loads weights and optimiser state from ``out + ".state"``; returns (next epoch, history,
    the DS2 sigma table ``[n_examples]`` or None). A state file that is not exactly what
    :func:`_save_state` writes for this model is refused with one line that names it and
    says to delete it."""
    path = _state_path(out)
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
    now = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()}
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


def train_gaussian(model: torch.nn.Module, split: Split, sigma: Union[float, Tensor], *,
                   epochs: int = 30, batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
                   weight_decay: float = 5e-4, seed: int = 0, device: Union[str, torch.device] = "cpu",
                   progress: bool = True, log: Optional[list] = None) -> torch.nn.Module:
    """Gaussian data augmentation (Cohen et al.) with SGD and cosine decay, in memory."""
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, seed=seed)
    return train(model, split, "gaussian", sigma, config=cfg, device=device, progress=progress, log=log)
