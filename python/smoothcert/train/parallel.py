"""Training on the ranks of a torch.distributed process group (``torchrun ... -m smoothcert --
train``) with DistributedDataParallel, as close to one process as float sums allow.

Every rank walks the same epoch permutation and augments the same global batch (one generator,
seeded by (seed, epoch), so its draws do not depend on the rank), then trains on its share of
the batch: the examples at positions r, r + K, ... (the distributed sampler of this loop). The
training noise is keyed by each example's dataset index (:mod:`smoothcert.train.noises`), so an
example gets the same noise on any rank and any K. DDP averages the ranks' gradients; each
rank's loss is weighted by (its examples x K / batch), so the average is the gradient of the
whole batch's mean loss, the one-process gradient up to the order of float additions. A sigma
policy's step (e.g. DS2's optimisation) runs on the whole batch on every rank, so per-example
sigma tables stay equal on all ranks without communication.

Forward passes in eval mode (an attack's, such as SmoothAdv's PGD steps, which take gradients
with respect to the inputs only) bypass DDP's gradient synchronisation: DDP expects one backward
through the parameters after every synchronised forward.

BatchNorm statistics are per rank (as under any DDP training); the models of
:mod:`smoothcert.models` without BatchNorm (LeNet, MLP) train exactly as above.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


def active() -> bool:
    """Whether a process group with more than one rank is initialised."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _SyncedInTraining(nn.Module):
    """The model through DDP in training mode, the plain model in eval mode."""

    def __init__(self, ddp: nn.Module):
        super().__init__()
        self.ddp = ddp

    def forward(self, x: Tensor) -> Tensor:
        return self.ddp(x) if self.training else self.ddp.module(x)


class Ranks:
    """This rank's part of a training run (module docstring)."""

    def __init__(self):
        import torch.distributed as dist

        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    @property
    def lead(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        dev = torch.device(device)
        ids = [dev] if dev.type == "cuda" else None
        return _SyncedInTraining(DistributedDataParallel(model, device_ids=ids))

    def share(self, batch: int) -> slice:
        """Positions of this rank's examples in a global batch of ``batch``."""
        return slice(self.rank, batch, self.world)

    def weight(self, mine: int, batch: int) -> float:
        """Factor of this rank's mean loss so that DDP's average is the batch's mean gradient."""
        return mine * self.world / batch

    def check_batches(self, n: int, batch_size: int) -> None:
        """Every global batch must give every rank at least one example."""
        sizes = {min(batch_size, n - i) for i in range(0, n, batch_size)}
        small = min(sizes)
        if small < self.world:
            raise ValueError(f"a batch of {small} examples (the last of each epoch: {n} examples, --batch "
                             f"{batch_size}) cannot give each of the {self.world} processes one; change --batch "
                             "or launch fewer processes")

    def sum(self, *values: float) -> list:
        """The ranks' sums of ``values`` (float64 all-reduce)."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return t.cpu().tolist()

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def ranks() -> Optional[Ranks]:
    """:class:`Ranks` under a multi-process group, else None (one process)."""
    return Ranks() if active() else None
