"""Small certification cases run by every rank of tests/drivers/test_distributed.py (a module of
its own, so spawned processes can import it)."""
import datetime
import os

import torch

from helpers import LinearClassifier


def case(name):
    """``(family, X, y, indices, budget)`` of case ``name``, built the same on every rank."""
    from smoothcert import Decide, Estimate, Sequential, Smooth, SplitSmooth
    from smoothcert.certify import AnisotropicSmooth, Budget, DataDependentSmooth, SampleWiseSmooth

    g = torch.Generator().manual_seed(11)
    w = torch.randn(8, generator=g, dtype=torch.float64)
    model = LinearClassifier(w, -float(w.sum()) / 2)
    X = torch.round(torch.rand(23, 8, generator=g) * 255) / 255  # on the 8-bit grid (DSSN)
    y = (model.score(X) > 0).long()
    idx = list(range(0, 23))
    small = Budget(n0=32, n=2000, alpha=0.01, batch_size=300)
    if name == "gaussian":
        return Smooth(model, 2, 0.4, seed=3), X, y, idx, small
    if name == "sequential":
        fam = Smooth(model, 2, 0.4, seed=3).with_sequential(Sequential(Estimate(0.05), first=50))
        return fam, X, y, idx, Budget(n0=32, n=6400, alpha=0.01, batch_size=256)
    if name == "decide":
        fam = Smooth(model, 2, 0.4, seed=3).with_sequential(Sequential(Decide(0.1), first=50))
        return fam, X, y, idx, Budget(n0=32, n=6400, alpha=0.01, batch_size=256)
    if name == "anisotropic":
        return AnisotropicSmooth(model, 2, torch.linspace(0.2, 0.6, 8), seed=5), X, y, idx, small
    if name == "dssn":
        return SplitSmooth(model, 2, 0.5, deterministic=True), X, y, idx, Budget(batch_size=300)
    if name == "samplewise":
        return SampleWiseSmooth(Smooth(model, 2, 0.3, seed=2), [0.2, 0.3, 0.4], select_samples=64), X, y, idx, small
    if name == "ddrs":
        return DataDependentSmooth(Smooth(model, 2, 0.4, seed=7)), X, y, idx, small
    if name == "one-input":  # one input, many samples: the case for splitting its samples
        return Smooth(model, 2, 0.4, seed=3), X, y, [5], Budget(n0=100, n=30001, alpha=0.001, batch_size=1000)
    if name == "mismatch":
        return Smooth(model, 2, 0.4, seed=3), X, y, idx, small
    raise KeyError(name)


def run_rank(rank, world, port, runs, round_per_rank):
    """One rank of a ``world``-process group (gloo on localhost) that runs ``runs`` one after
    another: ``(case name, out, split)``, ``split`` meaning every rank draws its share of each
    input's samples. The first error ends the rank."""
    import torch.distributed as dist

    from smoothcert.drivers.distributed import certify_sharded

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    try:
        for name, out, split in runs:
            fam, X, y, idx, budget = case(name)
            config = {"case": name, **({"given": rank} if name == "mismatch" else {})}
            certify_sharded(fam, X, y, idx, budget=budget, out=out, config=config, progress=False,
                            round_per_rank=round_per_rank, split_samples=split)
    finally:
        dist.destroy_process_group()
