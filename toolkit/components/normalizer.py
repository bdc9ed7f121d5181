"""Standardisation of feature vectors with statistics of the training set."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from aetk.components.base import Normalizer
from aetk.errors import ConfigError

if TYPE_CHECKING:
    import torch

MODES = ("per-feature", "global", "none")


class Standardizer(Normalizer):
    """``(x - mean_) / std_`` with statistics of the training vectors.

    ``mode="per-feature"`` keeps one mean and spread per element of the vector (per mel band and
    frame position), ``"global"`` one for all elements, ``"none"`` leaves features as they are.
    """

    name: ClassVar[str] = "standardizer"

    def __init__(self, mode: str = "per-feature"):
        self.mode = mode

    def fit(
        self,
        vectors: torch.Tensor | Sequence[torch.Tensor],
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Standardizer:
        """Statistics of ``vectors``: one ``[n, *shape]`` tensor, or a sequence of them (clips),
        read a piece at a time. ``reduce`` sums the running totals across processes (a
        distributed fit), so that every process gets the statistics of all the data."""
        import torch

        self.validate()
        pieces = torch.split(vectors, 8192) if isinstance(vectors, torch.Tensor) else vectors
        shape = pieces[0].shape[1:]
        if self.mode == "none":
            mean, std = (
                torch.zeros(shape, dtype=torch.float64),
                torch.ones(shape, dtype=torch.float64),
            )
        else:
            sums, squares, count = _totals(pieces, per_feature=self.mode == "per-feature")
            if reduce is not None:
                packed = reduce(torch.cat([sums.flatten(), squares.flatten(), count.reshape(1)]))
                size = sums.numel()
                sums = packed[:size].reshape(sums.shape)
                squares = packed[size : 2 * size].reshape(sums.shape)
                count = packed[-1]
            mean = sums / count
            std = (squares / count - mean.square()).clamp_min(0.0).sqrt()
            mean, std = mean.expand(shape), std.expand(shape)
        self.mean_ = mean.to(torch.float32).contiguous()
        self.std_ = std.clamp_min(_spread_floor(std)).to(torch.float32).contiguous()
        return self

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(
                f"unknown normalize mode {str(self.mode)[:40]!r} (choose from {', '.join(MODES)})"
            )

    def transform(self, vectors: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        if self.mode == "none":
            return vectors
        # One new tensor, divided in place: a scored batch is megabytes.
        return vectors.sub(self.mean_).div_(self.std_)

    def export_module(self) -> torch.nn.Module:
        from aetk.components.networks import Affine

        self.check_fitted()
        if self.mode == "none":
            return Affine(None, None)
        return Affine(self.mean_, self.std_)

    def inverse_transform(self, vectors: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        if self.mode == "none":
            return vectors
        return vectors * self.std_ + self.mean_


#: A feature whose training spread is below this share of the typical spread is treated as having
#: that spread: a constant feature (a band a recording leaves empty) then stays near 0 instead of
#: turning rounding noise (one float32 step is 1e-5 of a value near 100 dB) into large values.
RELATIVE_SPREAD_FLOOR = 1e-3


def _spread_floor(std: torch.Tensor) -> float:
    positive = std[std > 0]
    typical = float(positive.median()) if positive.numel() else 0.0
    return max(1e-6, RELATIVE_SPREAD_FLOOR * typical)


def _totals(
    pieces: Sequence[torch.Tensor], *, per_feature: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sums, sums of squares and count in float64, a piece at a time so memory stays flat."""
    import torch

    sums = squares = torch.zeros(pieces[0].shape[1:] if per_feature else (), dtype=torch.float64)
    count = 0
    for piece in pieces:
        piece = piece.to(torch.float64)
        if per_feature:
            sums, squares = sums + piece.sum(0), squares + piece.square().sum(0)
            count += len(piece)
        else:
            sums, squares = sums + piece.sum(), squares + piece.square().sum()
            count += piece.numel()
    return sums, squares, torch.tensor(float(count), dtype=torch.float64)
