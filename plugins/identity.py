"""Model ``identity``: no network and no training; scorers see the standardised features.

It lets a scorer that needs no reconstruction (``knn`` on the features themselves) run without
training an autoencoder first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import torch


class IdentityModel(aetk.Model):
    """Reconstruction = input, latent code = the flattened input; no parameters."""

    name = "identity"
    trainable = False

    def build(self, input_shape: tuple[int, ...]):
        return aetk.networks.Identity()

    def latent(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The flattened input, a view: nothing is computed, so nothing is copied (the
        default's scorer reads the codes of every scored batch)."""
        return x.flatten(1)

    def reconstruct(self, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """The input itself."""
        return x


@aetk.hookimpl
def register_models(register):
    register(IdentityModel)
