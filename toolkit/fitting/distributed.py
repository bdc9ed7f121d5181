"""Data-parallel fitting across processes, GPUs and nodes with torch.distributed.

``torchrun --nproc-per-node N -m aetk fit ...`` (or ``aetk fit --nproc N``) starts N ranks. Every
rank makes the same seeded split of the files and featurizes its own shard of them; the
standardisation statistics are summed across ranks; the model trains with
DistributedDataParallel, each rank on its shard, and the validation loss is summed across ranks so
that every rank keeps the same best weights. Rank 0 then fits the scorer and calibrates the
threshold on all the clips (on one node, from the feature cache the ranks share) and alone writes
the detector.

The fit stages see one interface, :class:`Processes`, whatever runs them: :data:`SINGLE` (one
process, where every method does nothing) or a :class:`Group` of ranks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

Item = TypeVar("Item")


@dataclass(frozen=True)
class Processes:
    """The processes one fit runs on; this base is a single process, where nothing is shared."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list[Item]) -> list[Item]:
        """This process's share of ``items``: every ``world``-th one, starting at its rank."""
        return items[self.rank :: self.world]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``tensor`` over all processes."""
        return tensor

    def wrap(self, network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The network as the training loop should call it (DDP across processes)."""
        return network

    def joined(self, network: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        """Context of one epoch, in which processes with fewer batches wait for the others."""
        return contextlib.nullcontext()

    def on_all_data(self, compute: Callable[[], Item], sharded: Item) -> Item | None:
        """What the main process needs of all the data after training: ``sharded`` itself when
        this process saw all of it; else, once every process is done, ``compute()`` on the main
        process and None on the others."""
        return sharded


SINGLE = Processes()


@dataclass(frozen=True)
class Group(Processes):
    """This process's place among the ranks of one distributed fit."""

    local_world: int = 1

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        summed = tensor.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed

    def wrap(self, network: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )

    def joined(self, network: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        from torch.distributed.algorithms.join import Join

        return Join([network])  # type: ignore[list-item]  # DDP is Joinable

    def on_all_data(self, compute: Callable[[], Item], sharded: Item) -> Item | None:
        import torch.distributed as dist

        dist.barrier()  # every rank's features are in the cache
        return compute() if self.is_main else None


_group: Group | None = None


def current() -> Processes:
    """The processes this fit runs on, joined on first use: :data:`SINGLE` unless torchrun
    started this process as one of several (``WORLD_SIZE`` above 1)."""
    global _group
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    if _group is None:
        import torch
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


@contextlib.contextmanager
def session() -> Iterator[Processes]:
    """The processes of one command; a process group joined here is left at the end."""
    global _group
    try:
        yield current()
    finally:
        if _group is not None:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            _group = None
