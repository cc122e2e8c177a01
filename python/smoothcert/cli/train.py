"""``smoothcert train``: train a base classifier with a smoothing-aware method,
checkpointing every epoch (rerunning the same command resumes).

``--method`` is a registered loss (:data:`smoothcert.train.registry.LOSSES`, one run over
``--epochs``) or a registered recipe (:data:`smoothcert.train.registry.RECIPES`); the
losses, sigma modes, training noises and recipes add their own options, so a new one
registers itself and needs no change here.

``--method pretrain-finetune`` is the two-stage run of sample-wise smoothing (Wang et al.,
Alg. 1: uniform-random sigma, then a per-example sigma selected on the grid;
:mod:`smoothcert.train.pretrain_finetune`)::

    smoothcert train --method pretrain-finetune --arch lenet --dataset mnist --data-root DIR \
        --sigma-min 0.12 --sigma-max 1.0 --pretrain-epochs 150 --finetune-epochs 150 \
        --schedule step --milestones 50 100 --m 4 --pgd-steps 10 --epsilon 2.0 --out ckpt.pt
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List

import torch

from ..train.registry import LOSSES, RECIPES, SIGMA_POLICIES, TRAINING_NOISES, Recipe, register_recipe


def _cli_policies() -> list:
    return [cls for cls in SIGMA_POLICIES.classes() if cls.CLI]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..train import TrainConfig

    methods = LOSSES.classes() + RECIPES.classes()
    p.add_argument("--method", default="gaussian", choices=[cls.name for cls in methods],
                   help="; ".join(f"{cls.name}: {cls.HELP}" for cls in methods if cls.HELP))
    p.add_argument("--arch", required=True, help="architecture (lenet, resnet20, resnet110, wrn40_2, ...)")
    p.add_argument("--dataset", required=True, help="dataset name (mnist, fashion-mnist, cifar10, digits, ...)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset files")
    p.add_argument("--sigma", type=float, default=None, help="noise level (RMS) in [0, 1] pixel units")
    p.add_argument("--noise", default=TrainConfig.noise, choices=list(TRAINING_NOISES),
                   help="training noise; uniform/ssn/dssn (L1 smoothing) with --method gaussian or stability")
    for cls in TRAINING_NOISES.classes():
        cls.add_arguments(p)
    p.add_argument("--sigma-table", default=None,
                   help="torch file holding a per-example sigma tensor [N] (instead of --sigma)")
    p.add_argument("--sigma-mode", default=TrainConfig.sigma_mode, choices=[cls.name for cls in _cli_policies()],
                   help="; ".join(f"{cls.name}: {cls.HELP}" for cls in _cli_policies() if cls.HELP))
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (same arch and dataset), "
                   "e.g. to fine-tune a fixed-sigma model with DS2")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (default 30; pretrain-finetune: --pretrain-epochs and --finetune-epochs)")
    p.add_argument("--batch", type=int, default=128, help="minibatch size")
    p.add_argument("--lr", type=float, default=0.1, help="initial lr (pretrain-finetune: of stage 1)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="SGD weight decay")
    p.add_argument("--schedule", default="cosine", choices=["cosine", "step"],
                   help="learning-rate schedule: cosine over the epochs, or step decay at --milestones")
    p.add_argument("--milestones", type=int, nargs="*", default=[30, 60, 90], help="epochs of lr decay (step)")
    p.add_argument("--lr-gamma", type=float, default=0.1, help="lr factor at each milestone (step)")
    p.add_argument("--augment", default="none", choices=["none", "crop-flip"],
                   help="data augmentation before the noise (crop-flip: random crop with padding and "
                   "horizontal flip, for CIFAR-style images)")
    p.add_argument("--max-train", type=int, default=-1, help="train on the first N examples only (-1: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights' initialisation, the "
                   "minibatch order and the training noise")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device to train on (cpu, cuda, cuda:1, ...)")
    p.add_argument("--out", required=True, help="checkpoint path (written every epoch; resumed if present)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--dist-timeout", type=float, default=1800.0,
                   help="under torchrun: seconds a rank waits for the others before the run fails (default 1800)")
    for cls in _cli_policies():
        cls.add_arguments(p)
    for cls in methods:
        cls.add_arguments(p)


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _make_loss(args, name: str):
    """The registered loss ``name`` from its options; another loss's own options are refused."""
    chosen = LOSSES.get(name)
    for cls in LOSSES.classes():
        given = cls.options_given(args) if cls is not chosen else []
        if given:
            raise ValueError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to the {cls.name} "
                             f"loss, not {name}")
    return chosen.from_args(args)


def _strategy_config(args) -> dict:
    """The ``TrainConfig`` fields of the noises' and sigma modes' own options (all of them, given
    or not: the recorded config holds every field)."""
    fields = {}
    for cls in TRAINING_NOISES.classes() + _cli_policies():
        fields.update(cls.config_from_args(args))
    return fields


def _defaults_changed(args, *fields: str) -> List[str]:
    """The flags among ``fields`` whose value is not ``TrainConfig``'s default."""
    from ..train import TrainConfig

    return [_flag(f) for f in fields if getattr(args, f) != getattr(TrainConfig, f)]


def _load_split(args):
    from .. import data

    split = data.load_dataset(args.dataset, "train", root=args.data_root)
    if args.max_train > 0:
        split = data.Split(split.x[:args.max_train], split.y[:args.max_train], split.num_classes,
                           split.name + f"[:{args.max_train}]")
    return split


def _initial_model(args):
    """(model, init meta): seeded initial weights, or those of ``--init``."""
    from .. import models
    from ..train import derive_seed

    torch.manual_seed(derive_seed(args.seed, "init"))
    model = models.build_model(args.arch, args.dataset)
    if args.init is None:
        return model, None
    import hashlib

    # The trained model is build_model's (the dataset's NormalizeLayer first), so a raw init state_dict gets it too.
    init_model, _ = models.load_checkpoint(args.init, arch=args.arch, dataset=args.dataset, normalize="dataset")
    model.load_state_dict(init_model.state_dict())
    with open(args.init, "rb") as f:
        return model, {"path": args.init, "sha256": hashlib.sha256(f.read()).hexdigest()}


def _save_checkpoint(args, path: str, model, meta: dict) -> None:
    from .. import models

    tensors = {k: v for k, v in meta.items() if isinstance(v, torch.Tensor)}
    plain = {k: v for k, v in meta.items() if k not in tensors}
    models.save_checkpoint(path, model, arch=args.arch, dataset=args.dataset, meta=plain, tensors=tensors)


def _load_sigma_table(path: str, n: int) -> torch.Tensor:
    """``[n]`` float32 per-example sigma from a ``--sigma-table`` file (a tensor ``[n]`` indexed like
    the training split), or one line naming the file and what is wrong."""
    from ..utils.safe_load import bad_file, load_weights_only, require_tensor

    what = f"a sigma table (a tensor [{n}], one sigma per training example)"
    table = require_tensor(path, what, load_weights_only(path, what), "table", floating=True, shape=[n]).float()
    bad = ~(torch.isfinite(table) & (table > 0))  # after the cast: float32 is what trains
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise bad_file(path, what, f"every sigma must be finite and > 0; {int(bad.sum())} are not "
                                   f"(first: example {k}, {float(table[k])!r})")
    return table


def run(args) -> int:
    from ..drivers import distributed

    recipe = RECIPES.find(args.method)
    for other in RECIPES.classes():
        given = other.options_given(args) if other is not recipe else []
        if given:
            raise ValueError(f"{', '.join(given)} belong to --method {other.name}, not {args.method}")
    if not distributed.launched():
        return (recipe or _OneLoss).run(args)
    # torchrun with several ranks: DistributedDataParallel (smoothcert.train.parallel).
    if recipe is not None:
        raise ValueError(f"--method {args.method} runs several stages with files of their own; it does not run "
                         "under torchrun yet: launch one process")
    if not (args.dist_timeout > 0):
        raise ValueError(f"--dist-timeout must be > 0 seconds, got {args.dist_timeout}")
    args.device = str(distributed.init(torch.device(args.device), args.dist_timeout))
    try:
        return _OneLoss.run(args)
    finally:
        distributed.finish()


class _OneLoss(Recipe):
    """The run of a registered loss over ``--epochs`` at ``--sigma`` or ``--sigma-table``."""

    @classmethod
    def run(cls, args) -> int:
        from .. import drivers, models
        from .. import train as training
        from ..train.config import plain_config

        if args.epochs is None:
            args.epochs = 30
        if (args.sigma is None) == (args.sigma_table is None):
            raise ValueError("give exactly one of --sigma and --sigma-table")
        split = _load_split(args)
        if args.sigma_table is not None:
            sigma = _load_sigma_table(args.sigma_table, len(split))
            sigma_desc = f"table:{args.sigma_table}"
        else:
            sigma, sigma_desc = args.sigma, args.sigma
        cfg = training.TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, momentum=args.momentum,
                                   weight_decay=args.weight_decay, schedule=args.schedule,
                                   milestones=tuple(args.milestones), gamma=args.lr_gamma, augment=args.augment,
                                   seed=args.seed, noise=args.noise, sigma_mode=args.sigma_mode,
                                   **_strategy_config(args))
        method = _make_loss(args, args.method)
        model, init_meta = _initial_model(args)
        noise_meta = TRAINING_NOISES.get(args.noise).meta(cfg, args.sigma)
        meta_base = {"method": training.describe(method), "sigma": sigma_desc, "noise": noise_meta,
                     "sigma_mode": args.sigma_mode, "init": init_meta, "epochs": args.epochs,
                     "train_examples": len(split), "config": plain_config(cfg),
                     "command": args.command_line}

        def save(m, progress_meta):
            _save_checkpoint(args, args.out, m, {**meta_base, **progress_meta})

        training.train(model, split, method, sigma, config=cfg, device=args.device, out=args.out, save=save,
                       progress=not args.no_progress)
        if int(os.environ.get("RANK", "0")) != 0:
            return 0  # rank 0 reports
        info = models.checkpoint_info(args.out)
        last = info["meta"]["history"][-1] if info["meta"].get("history") else {}
        print(f"smoothcert train: {args.out}: {info['meta'].get('epochs_done')} epochs, "
              f"last loss {last.get('loss', float('nan')):.4f}, noisy accuracy {last.get('noisy_accuracy', 0):.4f}",
              file=sys.stderr)
        return 0


PRETRAIN_FINETUNE_OPTIONS = ("sigma_min", "sigma_max", "sigma_step", "grid_include_min", "pretrain_epochs",
                             "finetune_epochs", "finetune_lr", "finetune_warmup", "select_samples", "select_alpha",
                             "select_batch", "loss")


@register_recipe("pretrain-finetune")
class PretrainFinetune(Recipe):
    """Wang et al.'s sample-wise smoothing, Alg. 1 (:func:`smoothcert.train.train_pretrain_finetune`):
    stage 1 at a uniform-random sigma per example and epoch, the per-example selection on
    the grid, stage 2 at the selected table."""

    HELP = ("uniform-random sigma, then each example's own sigma from a grid (Wang et al., sample-wise "
            "smoothing, Alg. 1)")
    STAGE_LOSSES = ("smoothadv", "gaussian")  # --loss: the losses of the paper's two stages, the first the default

    @classmethod
    def add_arguments(cls, p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("pretrain-finetune (Wang et al., sample-wise smoothing, Alg. 1; the value in "
                                 "parentheses is used when an option is not given)")
        g.add_argument("--sigma-min", type=float, help="lower end of stage 1's uniform sigma and of the grid")
        g.add_argument("--sigma-max", type=float, help="upper end of stage 1's uniform sigma and of the grid")
        g.add_argument("--sigma-step", type=float, help="grid step (0.05): the grid is {t * step} in [min, max]")
        g.add_argument("--grid-include-min", action="store_true", default=None,
                       help="prepend --sigma-min to the grid when it is off the step")
        g.add_argument("--pretrain-epochs", type=int, help="stage 1 epochs (30; the paper: 150)")
        g.add_argument("--finetune-epochs", type=int, help="stage 2 epochs (30; the paper: 150)")
        g.add_argument("--finetune-lr", type=float,
                       help="stage 2 initial lr (--lr / 100, the paper's 0.1 -> 0.001)")
        g.add_argument("--finetune-warmup", type=int,
                       help="stage 2 epsilon warm-up epochs (0: stage 1 already trained at the full epsilon)")
        g.add_argument("--select-samples", type=int,
                       help="noise draws per (example, grid sigma) of the selection (500)")
        g.add_argument("--select-alpha", type=float, help="level of the selection's Clopper-Pearson bound (0.001)")
        g.add_argument("--select-batch", type=int, help="forward batch of the selection (1000)")
        g.add_argument("--loss", choices=list(cls.STAGE_LOSSES), help=f"loss of both stages ({cls.STAGE_LOSSES[0]})")

    @classmethod
    def options_given(cls, args) -> List[str]:
        return [_flag(k) for k in PRETRAIN_FINETUNE_OPTIONS if getattr(args, k, None) is not None]

    @classmethod
    def run(cls, args) -> int:
        from .. import drivers, models
        from .. import train as training

        if args.sigma is not None or args.sigma_table is not None:
            raise ValueError("--method pretrain-finetune draws (stage 1) and selects (stage 2) every example's "
                             "sigma itself: drop --sigma/--sigma-table and give --sigma-min and --sigma-max")
        if args.sigma_min is None or args.sigma_max is None:
            raise ValueError("--method pretrain-finetune needs --sigma-min and --sigma-max")
        if args.epochs is not None:
            raise ValueError("--method pretrain-finetune takes --pretrain-epochs and --finetune-epochs, not --epochs")
        if _defaults_changed(args, "sigma_mode", "noise"):
            raise ValueError("--method pretrain-finetune trains with Gaussian noise and its own sigma: drop "
                             "--sigma-mode and --noise")
        defaults = drivers.PretrainFinetuneConfig(args.sigma_min, args.sigma_max)
        pick = lambda value, default: default if value is None else value  # noqa: E731
        plan = drivers.PretrainFinetuneConfig(
            sigma_min=args.sigma_min, sigma_max=args.sigma_max,
            sigma_step=pick(args.sigma_step, defaults.sigma_step), include_min=bool(args.grid_include_min),
            pretrain_epochs=pick(args.pretrain_epochs, defaults.pretrain_epochs),
            finetune_epochs=pick(args.finetune_epochs, defaults.finetune_epochs), pretrain_lr=args.lr,
            finetune_lr=pick(args.finetune_lr, args.lr / 100), finetune_warmup=pick(args.finetune_warmup, 0),
            select_samples=pick(args.select_samples, defaults.select_samples),
            alpha=pick(args.select_alpha, defaults.alpha),
            select_batch=pick(args.select_batch, defaults.select_batch))
        plan.check()  # before loading data: bad ranges fail fast
        base = training.TrainConfig(batch_size=args.batch, momentum=args.momentum, weight_decay=args.weight_decay,
                                    schedule=args.schedule, milestones=tuple(args.milestones), gamma=args.lr_gamma,
                                    augment=args.augment, seed=args.seed)
        loss = _make_loss(args, args.loss or cls.STAGE_LOSSES[0])
        split = _load_split(args)
        model, init_meta = _initial_model(args)
        meta_base = {"init": init_meta, "epochs": plan.pretrain_epochs + plan.finetune_epochs,
                     "train_examples": len(split), "command": args.command_line}

        def save(path, m, meta):
            _save_checkpoint(args, path, m, {**meta_base, **meta})

        res = drivers.train_pretrain_finetune(model, split, loss, plan, config=base, device=args.device,
                                               out=args.out, save=save, progress=not args.no_progress)
        info = models.checkpoint_info(args.out)["meta"]
        last = info["history"][-1] if info.get("history") else {}
        chosen = " ".join(f"{g:g}:{c}" for g, c in zip(res.selection.grid.tolist(), res.selection.histogram()) if c)
        print(f"smoothcert train: {args.out}: {plan.pretrain_epochs} pretrain + {info.get('epochs_done')} finetune "
              f"epochs, last loss {last.get('loss', float('nan')):.4f}, noisy accuracy "
              f"{last.get('noisy_accuracy', 0):.4f}; sigma_train {chosen}; {res.selection.no_correct()} of "
              f"{len(split)} examples correct at no grid sigma (kept {res.selection.grid[0].item():g})",
              file=sys.stderr)
        return 0
