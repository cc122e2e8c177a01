"""``smoothcert certify``: certify a dataset split with any registered smoothing family
into a resumable TSV (docs/formats.md)."""
from __future__ import annotations

import argparse
import contextlib
import io
import sys

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..certify import CERTIFICATES, FAMILIES, SIGMA_MODES, sequential
    from ..certify.family import add_family_arguments

    from ..models import ARCHITECTURES
    from ..models.user_model import NORMALIZE_HELP

    p.add_argument("--model", default=None, help="the classifier file: a checkpoint written by smoothcert train, a "
                   "torch.export program (torch.export.save, .pt2; checked so that loading runs no code), or a "
                   "state_dict of a zoo network with --arch (see docs/own_model.md)")
    p.add_argument("--arch", default=None, choices=sorted(ARCHITECTURES), metavar="ARCH",
                   help="zoo architecture of a state_dict --model: " + ", ".join(sorted(ARCHITECTURES)))
    p.add_argument("--model-factory", default=None, metavar="MODULE:FUNCTION",
                   help="your own network: FUNCTION() of MODULE (imported from sys.path or the current directory) "
                   "returns an untrained torch.nn.Module, which --weights fills; this runs your code")
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="with --model-factory: the state_dict file (torch.save(model.state_dict(), FILE)), loaded "
                   "weights-only")
    p.add_argument("--normalize", default=None, metavar="dataset|none|MEAN,STD",
                   help="normalisation put in front of the model, required for everything but a smoothcert checkpoint "
                   "(which records its own; given, it must match): " + NORMALIZE_HELP)
    p.add_argument("--dataset", required=True, help="dataset name (digits, mnist, fashion-mnist, cifar10, imagenet, "
                   "...; your own data: image-folder, npz)")
    p.add_argument("--data-root", default=None, help="directory holding the dataset files (npz: the .npz file)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="which split of the dataset to certify")
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level (RMS) in [0, 1] pixel units; with --sigma-mode ddrs the initial sigma0, "
                   "which the fixed-sigma certificate beside it uses (not with --sigma-file)")
    p.add_argument("--noise", default="gaussian", choices=sorted(FAMILIES),
                   help="gaussian: L2 radius; uniform, ssn (Monte Carlo) and dssn (exact, grid inputs): L1 radius")
    p.add_argument("--sigma-mode", default=None, choices=sorted(SIGMA_MODES),
                   help="fixed: one sigma for all inputs; ddrs: sigma optimised per input (Alfarra et al.), "
                   "certified with a memory; anisotropic: one sigma per input element from --sigma-file "
                   "(Tecot et al.); samplewise: sigma per input from a grid, certified with transductive robust regions "
                   "(--regions greedy|lp). Default: anisotropic with --sigma-file, else fixed")
    p.add_argument("--certificate", default="first-order", choices=sorted(CERTIFICATES),
                   help="first-order: Cohen's radius; sos: second-order (gradient-norm) radius of Levine et al., "
                   "with the first-order one from the same samples beside it; dipole: antithetic-pair radius, with "
                   "an independent first-order one beside it (Gaussian noise, fixed sigma)")
    p.add_argument("--n0", type=int, default=100, help="selection samples")
    p.add_argument("--n", type=int, default=100000, help="estimation samples")
    p.add_argument("--alpha", type=float, default=0.001, help="one-sided failure probability")
    p.add_argument("--batch", type=int, default=1000, help="classifier batch size")
    p.add_argument("--skip", type=int, default=1, help="certify every skip-th input")
    p.add_argument("--max", type=int, default=-1, help="stop before this dataset index (-1: all)")
    p.add_argument("--seed", type=int, default=None, help="Philox key of the noise (default 0; results depend on "
                   "seed and index only); --noise dssn draws no noise and refuses it (see --offset-seed)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device of the model and the noise (cpu, cuda, cuda:1, ...)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="dtype of the classifier's input batch (and of the model)")
    p.add_argument("--out", required=True, help="result TSV (resumed if it exists)")
    p.add_argument("--stage", default=None, help="transductive modes (--sigma-mode samplewise): the per-input "
                   "stage TSV (default <out>.stage.tsv); runs that differ only in --regions/--region-order can "
                   "share one, so the per-input work is done once")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.add_argument("--dist-timeout", type=float, default=1800.0,
                   help="under torchrun: seconds a rank waits for the others before the run fails (default 1800; "
                        "longer than one round of work, --dist-round inputs per rank)")
    p.add_argument("--dist-round", type=int, default=64,
                   help="under torchrun: inputs per rank between two writes of rank 0 (default 64): what a crash "
                        "loses at most; smaller rounds write more often and wait more")
    p.add_argument("--split-samples", action="store_true",
                   help="under torchrun: every rank draws 1/K of each input's samples (the votes are summed) "
                        "instead of certifying 1/K of the inputs; for a few inputs with very large --n")
    sequential.add_arguments(p)
    add_family_arguments(p, list(FAMILIES.values()) + [m for m in SIGMA_MODES.values() if m is not None]
                         + [c for c in CERTIFICATES.values() if c is not None])


def build_family(args, model, num_classes: int, info: dict, out_dtype):
    """The smoothing family of the parsed options (``--noise``, wrapped by ``--sigma-mode``,
    certified sequentially with ``--sequential``)."""
    from ..certify import CERTIFICATES, FAMILIES, SIGMA_MODES, sequential

    trained = (info.get("meta") or {}).get("noise") or {}
    if args.sigma_mode is None:
        chosen = [name for name, m in SIGMA_MODES.items()
                  if m is not None and getattr(m, "IMPLIED_BY_OPTIONS", False) and m.options_given(args)]
        if len(chosen) > 1:
            raise ValueError(f"options of several sigma modes were given ({', '.join(chosen)}); choose one")
        args.sigma_mode = chosen[0] if chosen else "fixed"
    if trained.get("kind", "gaussian") != args.noise:
        print(f"note: model was trained with {trained.get('kind', 'gaussian')} noise, certifying with "
              f"{args.noise}", file=sys.stderr)
    for name, other in FAMILIES.items():
        given = other.options_given(args) if name != args.noise and other is not FAMILIES[args.noise] else []
        if given:
            raise ValueError(f"{', '.join(given)} belong to --noise {name}, but --noise is {args.noise}")
    for name, other in SIGMA_MODES.items():
        given = other.options_given(args) if other is not None and name != args.sigma_mode else []
        if given:
            raise ValueError(f"{', '.join(given)} belong to --sigma-mode {name}, but --sigma-mode is {args.sigma_mode}")
    def make_base(**overrides):
        return FAMILIES[args.noise].from_args(argparse.Namespace(**{**vars(args), **overrides}), model,
                                              num_classes, trained, out_dtype)

    make_base.trained = trained  # the checkpoint's noise metadata, for modes that default from it
    cert_name = getattr(args, "certificate", None) or "first-order"
    for name, other in CERTIFICATES.items():
        given = other.options_given(args) if other is not None and name != cert_name else []
        if given:
            raise ValueError(f"{', '.join(given)} belong to --certificate {name}, but --certificate is {cert_name}")
    cert = CERTIFICATES[cert_name]
    mode = SIGMA_MODES[args.sigma_mode]
    if cert is not None:
        if mode is not None:
            raise ValueError(f"--certificate {cert_name} certifies one fixed sigma; it does not combine with "
                             f"--sigma-mode {args.sigma_mode}")
        family = cert.from_args(args, make_base)
    else:
        family = make_base() if mode is None else mode.from_args(args, make_base)
    seq = sequential.from_args(args)
    return family if seq is None else family.with_sequential(seq)


def check_device(name: str) -> torch.device:
    """``torch.device(name)``, refused up front when this build cannot run on it."""
    from .. import ops

    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"--device {name!r} is not a torch device ({e})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: no CUDA GPU is usable (torch.cuda.is_available() is False; torch "
                             f"{torch.__version__}); use --device cpu")
        if ops.cuda_version() < 0:
            raise ValueError(f"--device {name}: smoothcert was built without CUDA (smoothcert.ops.cuda_version() "
                             f"is -1); rebuild it with CUDA, or use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return dev


def _selection(args, n: int) -> list:
    if args.skip < 1:
        raise ValueError(f"--skip must be >= 1, got {args.skip}")
    if args.max < -1:
        raise ValueError(f"--max must be -1 (all inputs) or an index >= 1, got {args.max}")
    stop = n if args.max < 0 else min(args.max, n)
    indices = list(range(0, stop, args.skip))
    if not indices:
        raise ValueError(f"no inputs selected (--max {args.max}, --skip {args.skip}, the split has {n} inputs); "
                         f"nothing to certify, nothing written")
    return indices


def _check_fits(loaded, split, inputs: torch.Tensor, dtype, device) -> None:
    """Refuse up front a model that does not fit the data: the checkpoint's recorded dataset, then
    one forward of one input and of two (the batch size varies while certifying)."""
    from .. import data

    info = loaded.info
    if loaded.kind == "checkpoint":
        try:
            shape = tuple(data.input_shape(info["dataset"]))
        except ValueError:
            shape = None
        if shape is not None and shape != tuple(split.input_shape):
            raise ValueError(f"the model was trained on {info['dataset']} (inputs {list(shape)}, "
                             f"{info['num_classes']} classes), but {split.name} has inputs "
                             f"{list(split.input_shape)}: it cannot certify this data")
        try:
            split.check_model_classes(info["num_classes"])
        except ValueError as e:
            raise ValueError(f"the model was trained on {info['dataset']} ({info['num_classes']} classes): {e}") \
                from None
    for count in (1, 2) if inputs.shape[0] > 1 else (1,):
        x = inputs[:count].to(device=device, dtype=dtype)
        try:
            with torch.no_grad():
                out = loaded.model(x)
        except Exception as e:  # noqa: BLE001 - the user's model: one line, both shapes
            first = str(e).splitlines()[0] if str(e) else ""
            hint = (" (an export program needs a dynamic batch dimension: see docs/own_model.md)"
                    if loaded.kind == "export" and count > 1 else "")
            raise ValueError(f"the model fails on a batch of {count} input(s) of shape {list(x.shape)} from "
                             f"{split.name}: {type(e).__name__}: {first}{hint}") from None
        k = int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.dim() == 2 else None
        if k is None or out.shape[0] != count:
            got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"the model maps inputs {list(x.shape)} to {got}; expected logits [{count}, "
                             f"{split.num_classes}] ({split.name} has {split.num_classes} classes)")
        if count == 1:
            try:
                split.check_model_classes(k)
            except ValueError as e:
                raise ValueError(f"the model's output is {list(out.shape)} for one input {list(x.shape)}: {e}") \
                    from None


def run(args) -> int:
    import os

    from ..drivers import distributed

    args.seed_given = args.seed is not None  # a family whose noise is not random refuses a given seed
    if args.seed is None:
        args.seed = 0
    if os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a directory; give the result file, e.g. {args.out}/results.tsv")
    device = check_device(args.device)
    if not (args.dist_timeout > 0):
        raise ValueError(f"--dist-timeout must be > 0 seconds, got {args.dist_timeout}")
    if args.dist_round < 1:
        raise ValueError(f"--dist-round must be >= 1 input per rank, got {args.dist_round}")
    sharded = distributed.launched()
    if args.split_samples and not sharded:
        print("note: --split-samples: one process, nothing to split (launch with torchrun --nproc_per_node=K)",
              file=sys.stderr)
    if sharded:  # torchrun with several ranks: join them first, so every later error reaches all
        device = distributed.init(device, args.dist_timeout)
    try:
        return _run(args, device, sharded)
    finally:
        if sharded:
            distributed.finish()


def _prepare(args, device, sharded: bool):
    """Everything a run needs before it certifies: data, model, family, configuration."""
    import os

    from .. import data, models
    from ..certify import Budget

    dtype = getattr(torch, args.dtype)
    lead = not sharded or int(os.environ.get("RANK", "0")) == 0
    split = data.load_dataset(args.dataset, args.split, root=args.data_root)
    indices = _selection(args, len(split))
    shape = tuple(split.input_shape)
    if args.dataset not in data.USER_DATASETS:
        shape = tuple(data.input_shape(args.dataset))
    loaded = models.load_cli_model(model=args.model, arch=args.arch, factory=args.model_factory,
                                   weights=args.weights, normalize=args.normalize, dataset=args.dataset,
                                   input_shape=shape, num_classes=split.num_classes)
    data_sha = split.fingerprint(indices)
    model = loaded.model.to(device=device, dtype=dtype).eval()
    _check_fits(loaded, split, split.x[indices[:2]], dtype, device)
    info = loaded.info
    notes = io.StringIO()
    # The options are validated before the log starts, so a refused run prints only its notes and one
    # error line, and a run that starts logs the model it certifies first.
    try:
        with contextlib.redirect_stderr(notes):
            family = build_family(args, model, split.num_classes, info, None if dtype == torch.float32 else dtype)
            if args.stage is not None and not getattr(family, "TRANSDUCTIVE", False):
                raise ValueError("--stage applies to transductive modes (--sigma-mode samplewise) only")
    except BaseException:
        sys.stderr.write(notes.getvalue())
        raise
    if lead:
        print(f"smoothcert certify: model: {loaded.describe()}; data: {split.name}, {len(indices)} inputs "
              f"{list(split.input_shape)} (sha256 {data_sha[:12]}..)", file=sys.stderr)
        if info["dataset"] is not None and info["dataset"] != args.dataset:
            print(f"note: model was trained on {info['dataset']}, certifying on {args.dataset}", file=sys.stderr)
        sys.stderr.write(notes.getvalue())
    config = {k: getattr(args, k) for k in ["dataset", "split", "skip", "max", "dtype"]}
    # The model's and the data's identity, so a resumed file never mixes two models' or datasets' results.
    config.update({k: v for k, v in loaded.config().items() if k not in ("model", "weights")})
    config["data_sha256"] = data_sha
    budget = Budget(n0=args.n0, n=args.n, alpha=args.alpha, batch_size=args.batch)
    return lead, split, indices, family, config, budget


def _run(args, device, sharded: bool) -> int:
    from ..drivers import certify_dataset, distributed

    try:
        lead, split, indices, family, config, budget = _prepare(args, device, sharded)
    except Exception as e:  # noqa: BLE001 - every rank learns that one failed, then each raises
        if sharded:
            distributed.agree(f"{type(e).__name__}: {e}")
        raise
    if sharded:
        distributed.agree(None)
        distributed.certify_sharded(family, split.x, split.y, indices, budget=budget, out=args.out, config=config,
                                    progress=not args.no_progress, device=device, stage=args.stage,
                                    split_samples=args.split_samples, round_per_rank=args.dist_round)
    else:
        certify_dataset(family, split.x, split.y, indices, budget=budget, out=args.out, config=config,
                        progress=not args.no_progress, device=device, stage=args.stage)
    summary = family.summary()
    if summary and lead:
        print(f"smoothcert certify: {args.out}: " + ", ".join(f"{k} {v}" for k, v in summary.items()),
              file=sys.stderr)
    return 0
