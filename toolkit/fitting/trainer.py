"""The trainer every model shares: Adam on the mean squared reconstruction error.

Batches are sliced straight out of one feature tensor with a seeded permutation, which is what a
shuffled ``DataLoader`` does without its per-sample Python overhead. The model only builds its
network; this module drives it, and the :class:`~aetk.fitting.distributed.Processes` it is given
decide whether gradients are shared across processes.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import torch

from aetk.errors import AetkError, ConfigError
from aetk.fitting.config import EpochReport, TrainingConfig
from aetk.fitting.distributed import SINGLE, Processes

if TYPE_CHECKING:
    from aetk.components.base import Model


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; asking for a missing one is an error."""
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (name == "cuda" and not cuda) or (name == "mps" and not mps):
        raise ConfigError(f"device '{name}' is not available on this machine")
    return torch.device(name)


def train(
    model: Model,
    train: Any,
    validation: Any = None,
    config: TrainingConfig | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    processes: Processes = SINGLE,
    codes: tuple[torch.Tensor, torch.Tensor | None] | None = None,
) -> Model:
    """Build ``model``'s network with ``config.seed`` and train it on the vectors ``train``
    (a tensor or a :class:`~aetk.data.clips.VectorSet`), keeping the weights of the best
    validation loss; sets ``history_`` and returns the model.

    A conditioned model (``model.conditioned``) takes ``codes``: the categories' value indices
    ``[vectors, columns]`` of every training and validation vector.

    A model that is not ``trainable`` (``identity``) gets its network and no epochs. Across
    several ``processes``, each trains on its own shard with DistributedDataParallel; losses are
    summed over them, so all keep the same weights.
    """
    config = config or TrainingConfig()
    if model.conditioned and codes is None:
        raise ConfigError(
            f"model '{model.name}' is conditioned on categories: fit it on a fleet "
            "(aetk fit --machines ...)"
        )
    torch.manual_seed(config.seed)
    model.initialize(tuple(train.shape[1:]))
    model.module_.eval()
    train_codes, validation_codes = codes if codes is not None else (None, None)
    train_set = _Batches(train, train_codes)
    validation_set = None if validation is None else _Batches(validation, validation_codes)
    reports = (
        _epochs(model, train_set, validation_set, config, on_epoch, processes)
        if model.trainable
        else []
    )
    model.history_ = [asdict(report) for report in reports]
    return model


class _Batches:
    """Vectors, and the categories of each when the model is conditioned on them."""

    def __init__(self, vectors: Any, codes: torch.Tensor | None = None):
        self.vectors = vectors
        self.codes = codes

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, index: Any) -> tuple[torch.Tensor, ...]:
        if self.codes is None:
            return (self.vectors[index],)
        if isinstance(index, torch.Tensor):
            # Sorted, as a VectorSet reads its rows, so that vectors and codes stay paired.
            index = index.sort().values
        return self.vectors[index], self.codes[index]


def _epochs(
    model: Model,
    train: _Batches,
    validation: _Batches | None,
    config: TrainingConfig,
    on_epoch: Callable[[EpochReport], None] | None,
    processes: Processes,
) -> list[EpochReport]:
    device = resolve_device(config.device)
    module = model.module_.to(device)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    # torch.compile wraps the module; the weights (and what is saved) stay the module's own.
    compiled: Any = torch.compile(module) if config.compile else module
    network = processes.wrap(compiled, device)
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    order = torch.Generator().manual_seed(config.seed + processes.rank)
    # batch_size is the global batch: each process takes its share, so an epoch has as many
    # optimiser steps as on one process.
    batch_size = max(1, config.batch_size // processes.world)
    step = _optimiser_step(model, network, optimizer, device, bf16)
    best_loss, best_state, history = float("inf"), None, []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        module.train()
        total, seen = 0.0, 0
        with processes.joined(network):
            for index in _batches(len(train), batch_size, order):
                total += step(train[index]) * len(index)
                seen += len(index)
        train_loss = _mean(total, seen, processes) or 0.0
        # Every process takes part, even one whose validation shard is empty: (0, 0) adds nothing.
        val_loss = _mean(*error_totals(model, validation), processes)
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
        if not math.isfinite(train_loss):  # nothing after it can be trusted, nor saved
            raise AetkError(
                f"training diverged: the training loss is {train_loss} after epoch {epoch}; "
                f"lower the learning rate (--lr, now {config.lr:g}) or check the recordings"
            )
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    model.module_ = module.to("cpu")
    return history


def _optimiser_step(
    model: Model,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    bf16: bool,
) -> Callable[[tuple[torch.Tensor, ...]], float]:
    """A function taking one optimiser step on a batch (vectors, and their categories for a
    conditioned model) and returning its loss."""

    def step(inputs: tuple[torch.Tensor, ...]) -> float:
        if device.type == "cuda":
            inputs = tuple(tensor.pin_memory() for tensor in inputs)
        inputs = tuple(tensor.to(device, non_blocking=True) for tensor in inputs)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            output = network(*inputs)
        loss = model.loss(output, inputs[0])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.item())

    return step


def _mean(total: float, count: float, processes: Processes) -> float | None:
    """``total / count``, summed over the processes; None when nothing was counted."""
    summed = processes.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64))
    total, count = float(summed[0]), float(summed[1])
    return total / count if count else None


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled index batches; a last batch of one is dropped (BatchNorm cannot train on it)."""
    order = torch.randperm(count, generator=generator)
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()
    return batches


@torch.no_grad()
def error_totals(model: Model, x: Any, batch_size: int = 4096) -> tuple[float, int]:
    """The model's loss summed over the vectors of ``x`` (a tensor, or vectors with their
    categories), and their count (None: 0, 0), in evaluation mode, leaving the network in the
    mode it was in."""
    if x is None or len(x) == 0:
        return 0.0, 0
    batches = x if isinstance(x, _Batches) else _Batches(x)
    # Vectors without their categories are a bound model's (one machine's) to judge.
    module = model.network() if model.conditioned and batches.codes is None else model.module_
    was_training = module.training
    device = next(module.parameters(), torch.empty(0)).device
    module.eval()
    total, count = 0.0, 0
    for start in range(0, len(batches), batch_size):
        inputs = tuple(t.to(device) for t in batches[start : start + batch_size])
        total += model.loss(module(*inputs), inputs[0]).item() * len(inputs[0])
        count += len(inputs[0])
    module.train(was_training)
    return total, count


def mean_error(model: Model, x: Sequence[torch.Tensor] | torch.Tensor) -> float:
    """The model's mean loss over the vectors ``x`` (the mean squared reconstruction error
    of all their elements, by default), without keeping them."""
    total, count = error_totals(model, x)
    return total / max(count, 1)
