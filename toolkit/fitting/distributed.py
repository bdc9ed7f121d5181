"""Data-parallel fitting across processes, GPUs and nodes with torch.distributed.

``torchrun --nproc-per-node N -m aetk fit ...`` (or ``aetk fit --nproc N``) starts N ranks. Every
rank makes the same seeded split of the files and featurizes its own shard of them; the
standardisation statistics are summed across ranks; the model trains with
DistributedDataParallel, each rank on its shard, and the validation loss is summed across ranks so
that every rank keeps the same best weights. Rank 0 then fits the scorer and its threshold on all
the clips (on one node, from the feature cache the ranks share) and alone writes the detector.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Group:
    """This process's place among the ranks of one distributed fit."""

    rank: int
    world: int
    local_world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's share of ``items``: every ``world``-th one, starting at its rank."""
        return items[self.rank :: self.world]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``tensor`` over all ranks (float64 kept as it is)."""
        import torch.distributed as dist

        summed = tensor.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed

    def all_gather(self, value: Any) -> list[Any]:
        """``value`` from every rank, in rank order (small picklable values only)."""
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, value)
        return gathered

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


_group: Group | None = None


def current() -> Group | None:
    """The distributed group this process belongs to, joined on first use; ``None`` when aetk
    runs as a single process (no ``WORLD_SIZE`` above 1 in the environment, as torchrun sets)."""
    global _group
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if _group is None:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend, init_method="env://")
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        _group = Group(dist.get_rank(), dist.get_world_size(), local_world)
        # The ranks on one machine share its cores: each gets its share of threads.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return _group


def finish() -> None:
    """Leave the process group (at the end of a distributed command)."""
    global _group
    if _group is not None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        _group = None
