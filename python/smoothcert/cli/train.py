"""``smoothcert train``: train a base classifier with a smoothing-aware method,
checkpointing every epoch (rerunning the same command resumes)."""
from __future__ import annotations

import argparse
import sys

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="gaussian", choices=["gaussian", "smoothadv", "macer", "stability"])
    p.add_argument("--arch", required=True, help="architecture (lenet, resnet20, resnet110, wrn40_2, ...)")
    p.add_argument("--dataset", required=True, help="dataset name (mnist, fashion-mnist, cifar10, digits, ...)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset files")
    p.add_argument("--sigma", type=float, default=None, help="noise level (RMS) in [0, 1] pixel units")
    p.add_argument("--noise", default="gaussian", choices=["gaussian", "uniform", "ssn", "dssn"],
                   help="training noise; uniform/ssn/dssn (L1 smoothing) with --method gaussian or stability")
    p.add_argument("--q", type=int, default=255, help="dssn: grid steps of the inputs")
    p.add_argument("--offset-seed", type=int, default=0,
                   help="dssn: seed of the fixed offset vector v (stored; certification uses the same)")
    p.add_argument("--sigma-table", default=None,
                   help="torch file holding a per-example sigma tensor [N] (instead of --sigma)")
    p.add_argument("--sigma-mode", default="fixed", choices=["fixed", "ddrs"],
                   help="ddrs: data-dependent sigma (DS2, Alfarra et al. Alg. 2): a per-example sigma, starting "
                   "at --sigma, updated by OptimizeSigma before each step and stored in the checkpoint")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (same arch and dataset), "
                   "e.g. to fine-tune a fixed-sigma model with DS2")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "step"])
    p.add_argument("--milestones", type=int, nargs="*", default=[30, 60, 90], help="epochs of lr decay (step)")
    p.add_argument("--lr-gamma", type=float, default=0.1, help="lr factor at each milestone (step)")
    p.add_argument("--augment", default="none", choices=["none", "crop-flip"])
    p.add_argument("--max-train", type=int, default=-1, help="train on the first N examples only (-1: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", required=True, help="checkpoint path (written every epoch; resumed if present)")
    p.add_argument("--no-progress", action="store_true")
    g = p.add_argument_group("ddrs (DS2)")
    g.add_argument("--ddrs-steps", type=int, default=1, help="K_train, OptimizeSigma steps per minibatch")
    g.add_argument("--ddrs-start", type=int, default=0,
                   help="first epoch (0-based) that updates sigma; before it sigma stays sigma0 (the paper: 50)")
    g.add_argument("--ddrs-every", type=int, default=1, help="update sigma every k-th epoch from --ddrs-start")
    g.add_argument("--ddrs-lr", type=float, default=1e-4, help="alpha, OptimizeSigma's step size")
    g.add_argument("--ddrs-samples", type=int, default=1, help="n, noise draws per example per step")
    g = p.add_argument_group("smoothadv")
    g.add_argument("--m", type=int, default=1, help="noise draws per example")
    g.add_argument("--pgd-steps", type=int, default=2, help="PGD steps T")
    g.add_argument("--epsilon", type=float, default=0.25, help="L2 attack radius")
    g.add_argument("--warmup", type=int, default=10, help="epochs of linear epsilon warm-up")
    g = p.add_argument_group("macer")
    g.add_argument("--k", type=int, default=16, help="noise draws per example")
    g.add_argument("--lbd", type=float, default=12.0, help="weight of the radius hinge")
    g.add_argument("--macer-gamma", type=float, default=8.0, help="hinge margin gamma")
    g.add_argument("--beta", type=float, default=16.0, help="logit scale of the soft classifier")
    g = p.add_argument_group("stability")
    g.add_argument("--stability-weight", type=float, default=6.0, help="weight of the KL term")


def _method_params(args) -> dict:
    if args.method == "smoothadv":
        return dict(m=args.m, steps=args.pgd_steps, epsilon=args.epsilon, warmup=args.warmup)
    if args.method == "macer":
        return dict(k=args.k, lbd=args.lbd, gamma=args.macer_gamma, beta=args.beta)
    if args.method == "stability":
        return dict(weight=args.stability_weight)
    return {}


def run(args) -> int:
    from .. import data, models
    from .. import train as training

    if (args.sigma is None) == (args.sigma_table is None):
        raise ValueError("give exactly one of --sigma and --sigma-table")
    split = data.load_dataset(args.dataset, "train", root=args.data_root)
    if args.max_train > 0:
        split = data.Split(split.x[:args.max_train], split.y[:args.max_train], split.num_classes,
                           split.name + f"[:{args.max_train}]")
    if args.sigma_table is not None:
        sigma = torch.load(args.sigma_table, weights_only=True)
        sigma_desc = f"table:{args.sigma_table}"
    else:
        sigma, sigma_desc = args.sigma, args.sigma
    cfg = training.TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay, schedule=args.schedule,
                               milestones=tuple(args.milestones), gamma=args.lr_gamma, augment=args.augment,
                               seed=args.seed, noise=args.noise, q=args.q, offset_seed=args.offset_seed,
                               sigma_mode=args.sigma_mode, ddrs_steps=args.ddrs_steps, ddrs_start=args.ddrs_start,
                               ddrs_every=args.ddrs_every, ddrs_lr=args.ddrs_lr, ddrs_samples=args.ddrs_samples)
    method = training.make_method(args.method, **_method_params(args))
    torch.manual_seed(args.seed)  # initial weights
    model = models.build_model(args.arch, args.dataset)
    init_sha = None
    if args.init is not None:
        import hashlib

        init_model, _ = models.load_checkpoint(args.init, arch=args.arch, dataset=args.dataset)
        model.load_state_dict(init_model.state_dict())
        with open(args.init, "rb") as f:
            init_sha = hashlib.sha256(f.read()).hexdigest()
    noise_meta = {"kind": args.noise}
    if args.noise == "dssn":
        from ..stats.l1 import dssn_levels
        if args.sigma is None:
            raise ValueError("--noise dssn needs one scalar --sigma")
        noise_meta.update(q=args.q, offset_seed=args.offset_seed, levels=dssn_levels(args.sigma, args.q))
    meta_base = {"method": training.describe(method), "sigma": sigma_desc, "noise": noise_meta,
                 "sigma_mode": args.sigma_mode, "init": None if args.init is None else
                 {"path": args.init, "sha256": init_sha},
                 "epochs": args.epochs,
                 "train_examples": len(split), "config": {k: (list(v) if isinstance(v, tuple) else v)
                                                          for k, v in vars(cfg).items()},
                 "command": args.command_line}

    def save(m, progress_meta):
        tensors = {k: v for k, v in progress_meta.items() if isinstance(v, torch.Tensor)}
        plain = {k: v for k, v in progress_meta.items() if k not in tensors}
        models.save_checkpoint(args.out, m, arch=args.arch, dataset=args.dataset,
                               meta={**meta_base, **plain}, tensors=tensors)

    training.train(model, split, method, sigma, config=cfg, device=args.device, out=args.out, save=save,
                   progress=not args.no_progress)
    info = models.checkpoint_info(args.out)
    last = info["meta"]["history"][-1] if info["meta"].get("history") else {}
    print(f"smoothcert train: {args.out}: {info['meta'].get('epochs_done')} epochs, "
          f"last loss {last.get('loss', float('nan')):.4f}, noisy accuracy {last.get('noisy_accuracy', 0):.4f}",
          file=sys.stderr)
    return 0
