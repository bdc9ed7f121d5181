"""Building blocks for model plugins (import on use: this module imports torch)."""

from __future__ import annotations

import torch
from torch import nn


class FlatAutoencoder(nn.Module):
    """Flattens each input vector, encodes and decodes it, and restores the input's shape.

    ``forward(x)`` returns ``(reconstruction, latent)`` as aetk's model contract asks.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder(x.flatten(1))
        return self.decoder(latent).view_as(x), latent


class Identity(nn.Module):
    """No parameters: the reconstruction is the input and the latent code the flattened input.

    With it, scorers work on the standardised features themselves (no training).
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x.flatten(1)
