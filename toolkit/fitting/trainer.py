"""The training loop every model shares: Adam on the mean squared reconstruction error.

Batches are sliced straight out of one feature tensor with a seeded permutation, which is what a
shuffled ``DataLoader`` does without its per-sample Python overhead.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from aetk.errors import ConfigError
from aetk.fitting.config import EpochReport, TrainingConfig

if TYPE_CHECKING:
    from aetk.components.base import Model
    from aetk.fitting.distributed import Group


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; asking for a missing one is an error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device '{name}' is not available on this machine")
    return torch.device(name)


def fit_model(
    model: Model,
    train: torch.Tensor,
    validation: torch.Tensor | None,
    config: TrainingConfig,
    on_epoch: Callable[[EpochReport], None] | None = None,
    group: Group | None = None,
) -> list[EpochReport]:
    """Initialise ``model`` with ``config.seed`` and train it; keeps the best-validation weights.

    A network without trainable parameters (the ``identity`` model) is not trained: no epochs.
    With a distributed ``group``, each rank trains on its own ``train`` and ``validation`` shard
    with DistributedDataParallel; losses are summed over ranks, so all keep the same weights.
    """
    torch.manual_seed(config.seed)
    model.initialize(tuple(train.shape[1:]))
    if not any(parameter.requires_grad for parameter in model.module_.parameters()):
        model.module_.eval()
        return []
    device = resolve_device(config.device)
    module = model.module_.to(device)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    # torch.compile wraps the module; the weights (and what is saved) stay the module's own.
    network = torch.compile(module) if config.compile else module
    if group is not None:
        from torch.nn.parallel import DistributedDataParallel

        network = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    order = torch.Generator().manual_seed(config.seed + (group.rank if group else 0))
    # batch_size is the global batch: each of the ranks takes its share, so an epoch has as many
    # optimiser steps as on one process.
    batch_size = max(1, config.batch_size // group.world) if group else config.batch_size
    best_loss, best_state, history = float("inf"), None, []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        module.train()
        total, seen = 0.0, 0
        with _joined(network, group):
            for index in _batches(len(train), batch_size, order):
                batch = train[index]
                if device.type == "cuda":
                    batch = batch.pin_memory()
                batch = batch.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    reconstruction, _ = network(batch)
                loss = torch.nn.functional.mse_loss(reconstruction.float(), model.target(batch))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
                seen += len(index)
        train_loss = _mean(total, seen, group)
        # Every rank takes part, even one whose validation shard is empty: (0, 0) adds nothing.
        val_loss = _mean(*error_totals(model, validation), group)
        watched = val_loss if val_loss is not None else train_loss
        best = watched < best_loss
        if best:
            best_loss, best_state = watched, copy.deepcopy(module.state_dict())
        report = EpochReport(
            epoch, config.epochs, train_loss, val_loss, time.perf_counter() - started, best
        )
        history.append(report)
        if on_epoch is not None:
            on_epoch(report)
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    model.module_ = module.to("cpu")
    return history


def _joined(network: torch.nn.Module, group: Group | None):
    """DDP's Join lets ranks with fewer batches (uneven shards) finish the epoch together."""
    if group is None:
        return contextlib.nullcontext()
    from torch.distributed.algorithms.join import Join

    return Join([network])


def _mean(total: float, count: float, group: Group | None) -> float | None:
    """``total / count``, summed over the ranks of ``group``; None when nothing was counted."""
    if group is not None:
        total, count = group.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64))
    return float(total / count) if count else None


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a last batch of one is dropped (BatchNorm cannot train on it)."""
    order = torch.randperm(count, generator=generator)
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


def _squared_errors(model: Model, x: torch.Tensor, batch_size: int):
    module = model.module_
    device = next(module.parameters(), torch.empty(0)).device
    for chunk in chunks(x, batch_size):
        chunk = chunk.to(device)
        reconstruction, _ = module(chunk)
        yield (reconstruction - model.target(chunk)).square()


@torch.no_grad()
def reconstructions(model: Model, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """The network's reconstruction of every vector of ``x``, in evaluation mode."""
    module = model.module_
    module.eval()
    device = next(module.parameters(), torch.empty(0)).device
    parts = [module(chunk.to(device))[0].cpu() for chunk in chunks(x, batch_size)]
    return torch.cat(parts) if parts else torch.empty((0, *x.shape[1:]))


@torch.no_grad()
def reconstruction_errors(model: Model, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Squared error between the reconstruction and the target of every element of ``x``."""
    model.module_.eval()
    errors = [error.cpu() for error in _squared_errors(model, x, batch_size)]
    return torch.cat(errors) if errors else torch.empty((0, *x.shape[1:]))


@torch.no_grad()
def error_totals(model: Model, x, batch_size: int = 4096) -> tuple[float, int]:
    """Sum and count of the squared reconstruction errors of all elements of ``x`` (None: 0, 0)."""
    if x is None or len(x) == 0:
        return 0.0, 0
    module = model.module_
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    for error in _squared_errors(model, x, batch_size):
        total += error.sum().item()
        count += error.numel()
    module.train(was_training)
    return total, count


def mean_error(model: Model, x, batch_size: int = 4096) -> float:
    """Mean squared reconstruction error over all elements of ``x``, without keeping them."""
    total, count = error_totals(model, x, batch_size)
    return total / max(count, 1)


@torch.no_grad()
def latent_codes(model: Model, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """The network's latent code of every vector of ``x``, flattened: ``[n, latent_size]``."""
    module = model.module_
    module.eval()
    device = next(module.parameters(), torch.empty(0)).device
    codes = [module(chunk.to(device))[1].flatten(1).cpu() for chunk in chunks(x, batch_size)]
    return torch.cat(codes) if codes else torch.empty((0, 0))


def chunks(x, size: int):
    """Consecutive slices of ``size`` vectors of a tensor, or of any vector set that slices."""
    for start in range(0, len(x), size):
        yield x[start : start + size]
