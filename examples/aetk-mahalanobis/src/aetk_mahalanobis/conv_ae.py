"""Model ``conv-ae``: a small convolutional autoencoder over (mels × frames) images.

Convolutions see neighbouring mel bands together, which a dense autoencoder has to learn one
weight at a time. The network itself lives in :mod:`aetk_mahalanobis.networks`, imported when a
model is built, so that importing the plugin does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import aetk


class ConvAE(aetk.Model):
    """Stride-2 convolutions along the mel axis, a dense bottleneck, and the mirror image.

    :param channels: output channels of each convolution (each halves the mel axis).
    :param bottleneck: size of the latent code.
    """

    name = "conv-ae"

    def __init__(self, channels: Sequence[int] = (16, 32), bottleneck: int = 16):
        self.channels = channels
        self.bottleneck = bottleneck

    def build(self, input_shape: tuple[int, ...]):
        if len(input_shape) != 3:
            raise aetk.ConfigError(
                f"conv-ae needs [channels, mels, frames] vectors (the mel-db featurizer), "
                f"not shape {list(input_shape)}"
            )
        if not self.channels or not all(isinstance(c, int) and c > 0 for c in self.channels):
            raise aetk.ConfigError(
                f"conv-ae: channels must be positive integers, not {self.channels}"
            )
        from aetk_mahalanobis.networks import ConvAutoencoder

        return ConvAutoencoder(tuple(input_shape), list(self.channels), int(self.bottleneck))
