"""Models ``baseline-ae`` and ``improved-ae``, the method text's two dense autoencoders, and
``conditioned-ae``, one autoencoder for a whole fleet.

Each flattens every feature vector, encodes it through ``hidden`` widths down to ``bottleneck``
and decodes it through the mirrored widths; the output layer is a plain Linear. The input width is
the featurizer's vector size, never a constant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    from torch import nn


class _DenseAutoencoder(aetk.Model):
    """A dense autoencoder; subclasses choose what follows each hidden Linear layer."""

    def __init__(self, hidden: Sequence[int] = (8224, 2056, 1024, 512), bottleneck: int = 256):
        self.hidden = hidden
        self.bottleneck = bottleneck

    def block(self, width: int) -> list[nn.Module]:
        """The layers after a hidden Linear layer of ``width`` outputs."""
        raise NotImplementedError

    def build(self, input_shape: tuple[int, ...]) -> nn.Module:
        widths = self._widths(input_shape)
        return aetk.networks.FlatAutoencoder(
            encoder=self._stack(widths, plain_output=False),
            decoder=self._stack(widths[::-1], plain_output=True),
        )

    def _widths(self, input_shape: tuple[int, ...]) -> list[int]:
        widths = [math.prod(input_shape), *self.hidden, self.bottleneck]
        if not all(isinstance(width, int) and width >= 1 for width in widths[1:]):
            raise aetk.ConfigError(
                f"{self.name}: hidden widths and bottleneck must be positive integers, "
                f"not {list(self.hidden)} and {self.bottleneck!r}"
            )
        return widths

    def _stack(self, sizes: list[int], plain_output: bool) -> nn.Sequential:
        """Linear layers through ``sizes``, each followed by :meth:`block` (but a plain last
        one when ``plain_output``)."""
        from torch import nn

        layers: list[nn.Module] = []
        for index, (n_in, n_out) in enumerate(pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if not (plain_output and index == len(sizes) - 2):
                layers.extend(self.block(n_out))
        return nn.Sequential(*layers)


class BaselineAE(_DenseAutoencoder):
    """Linear + ReLU after every layer but the output (the bottleneck too)."""

    name = "baseline-ae"

    def block(self, width: int) -> list[nn.Module]:
        from torch import nn

        return [nn.ReLU()]


class ImprovedAE(_DenseAutoencoder):
    """Linear + BatchNorm1d + LeakyReLU(0.1) after every layer but the output (bottleneck too)."""

    name = "improved-ae"

    def block(self, width: int) -> list[nn.Module]:
        from torch import nn

        return [nn.BatchNorm1d(width), nn.LeakyReLU(0.1)]


class ConditionedAE(ImprovedAE):
    """``improved-ae`` for a whole fleet: its decoder also takes the machine each vector comes
    from (one-hot below 50 machines, a learned embedding from 50), so one network learns every
    machine, and a vector is reconstructed as the machine it is said to come from would sound
    (the ID-conditioned autoencoder). Fitted with ``aetk fit --machines``."""

    name = "conditioned-ae"
    conditioned = True
    categories_: list[dict]

    def build(self, input_shape: tuple[int, ...]) -> nn.Module:
        widths = self._widths(input_shape)
        encoding = aetk.networks.CategoryEncoding(self.categories_)
        return aetk.networks.ConditionedAutoencoder(
            encoding,
            encoder=self._stack(widths, plain_output=False),
            decoder=self._stack([widths[-1] + encoding.width, *widths[-2::-1]], plain_output=True),
        )


@aetk.hookimpl
def register_models(register):
    register(BaselineAE)
    register(ImprovedAE)
    register(ConditionedAE)
