"""The training loop every model shares: Adam on the mean squared reconstruction error.

Batches are sliced straight out of one feature tensor with a seeded permutation, which is what a
shuffled ``DataLoader`` does without its per-sample Python overhead.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from aetk.config import EpochReport, TrainingConfig
from aetk.errors import ConfigError

if TYPE_CHECKING:
    from aetk.components import Model


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
) -> list[EpochReport]:
    """Initialise ``model`` with ``config.seed`` and train it; keeps the best-validation weights.

    A network without trainable parameters (the ``identity`` model) is not trained: no epochs.
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
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    order = torch.Generator().manual_seed(config.seed)
    has_validation = validation is not None and len(validation) > 0
    best_loss, best_state, history = float("inf"), None, []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        module.train()
        total, seen = 0.0, 0
        for index in _batches(len(train), config.batch_size, order):
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
        train_loss = total / max(seen, 1)
        val_loss = mean_error(model, validation) if has_validation else None
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
def mean_error(model: Model, x: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean squared reconstruction error over all elements of ``x``, without keeping them."""
    module = model.module_
    was_training = module.training
    module.eval()
    total, count = 0.0, 0
    for error in _squared_errors(model, x, batch_size):
        total += error.sum().item()
        count += error.numel()
    module.train(was_training)
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
