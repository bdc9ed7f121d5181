"""Model ``identity``: no network and no training; scorers see the standardised features.

It lets a scorer that needs no reconstruction (``knn`` on the features themselves) run without
training an autoencoder first.
"""

from __future__ import annotations

import aetk


class IdentityModel(aetk.Model):
    """Reconstruction = input, latent code = the flattened input; no parameters."""

    name = "identity"
    trainable = False

    def build(self, input_shape: tuple[int, ...]):
        return aetk.networks.Identity()


@aetk.hookimpl
def register_models(register):
    register(IdentityModel)
