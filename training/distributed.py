"""Data-parallel training under ``torchrun`` for the trainer loop written here (the sequence models',
``training.sequential``), and the group that transformers' ``Trainer`` joins for QLoRA
(``training.qlora``), which shards the batches itself.

``torchrun --nproc-per-node N`` starts N copies of one program and gives each ``RANK``, ``WORLD_SIZE``
and a rendezvous address. :func:`join` makes them one process group (gloo on CPU, nccl on CUDA, one GPU
per local rank). :class:`ShardedLoss` then runs a model's loss on every ``N``-th example of each global
batch and lets PyTorch's ``DistributedDataParallel`` add the gradients up in the backward pass, scaled so
that one step of N processes is the step one process takes on the whole batch: the same loss and,
within float rounding, the same weights (``tests/test_distributed.py``). Every rank draws the same
shuffles from the same seed and validates on the whole valid split, so all of them take the same
early-stopping decision; only rank 0 logs and saves.

Outside torchrun (no ``WORLD_SIZE`` above 1) nothing here starts a process group and a loss runs on the
whole batch, as before.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join() -> None:
    """Join torchrun's process group once (a no-op outside torchrun or when already joined)."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def position() -> tuple[int, int]:
    """This process's rank and the number of processes: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return position()[0] == 0


def barrier() -> None:
    """Wait for every process of the group (a no-op outside one)."""
    if position()[1] > 1:
        dist.barrier()


def summed(value: float) -> float:
    """``value`` added up over the ranks (itself outside a process group)."""
    if position()[1] == 1:
        return value
    # nccl reduces tensors on this rank's GPU only, gloo on the CPU
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    total = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return float(total.item())


class _LossModule(nn.Module):
    """A model's training loss as a module's forward: ``DistributedDataParallel`` synchronises the
    gradients of what its wrapped module's forward returned, and the sequence models train through
    ``loss``, not ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.model.loss(item_seq, targets)


class ShardedLoss:
    """``model.loss`` on this rank's share of each global batch, with gradients summed over the ranks.

    A step is: :meth:`share` of the batch, then for each piece of it ``(loss(piece) * weight *
    backward_scale).backward()`` inside :meth:`accumulating`, where ``weight`` is the piece's share of
    the global batch. ``DistributedDataParallel`` averages gradients over the ranks, and
    ``backward_scale`` (the number of ranks) turns that average into the sum of the ranks' shares: the
    gradient of the global batch's mean loss.
    """

    def __init__(self, model: nn.Module) -> None:
        self.rank, self.world = position()
        self.model = model
        self._parallel = DistributedDataParallel(_LossModule(model)) if self.world > 1 else None

    @property
    def backward_scale(self) -> int:
        return self.world

    def share(self, batch: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """This rank's examples of ``batch`` (every ``world``-th one from its rank) and whether they
        count. A rank left without any (a last batch smaller than the group) runs the batch's first
        example with weight 0, because every rank must take part in each gradient synchronisation."""
        mine = batch[self.rank :: self.world]
        return (mine, True) if len(mine) else (batch[:1], False)

    def accumulating(self, last_piece: bool) -> AbstractContextManager:
        """Gradients of a step's earlier pieces are kept locally; the last piece's backward adds them up."""
        if self._parallel is None or last_piece:
            return nullcontext()
        return self._parallel.no_sync()

    def __call__(self, item_seq: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self._parallel is None:
            return self.model.loss(item_seq, targets)
        return self._parallel(item_seq, targets)
