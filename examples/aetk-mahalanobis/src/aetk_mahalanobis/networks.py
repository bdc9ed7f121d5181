"""The convolutional autoencoder network (imports torch)."""

from __future__ import annotations

import math

import torch
from torch import nn


def _block(n_in: int, n_out: int) -> list[nn.Module]:
    return [nn.Conv2d(n_in, n_out, 3, padding=1), nn.BatchNorm2d(n_out), nn.LeakyReLU(0.1)]


class ConvAutoencoder(nn.Module):
    """``forward(x)`` returns ``(reconstruction, latent)`` for ``x`` of shape
    ``[batch, channels, mels, frames]``."""

    def __init__(self, input_shape: tuple[int, int, int], channels: list[int], bottleneck: int):
        super().__init__()
        in_channels, mels, frames = input_shape
        self.output_size = (mels, frames)
        encoder: list[nn.Module] = []
        previous = in_channels
        for width in channels:
            encoder += [
                nn.Conv2d(previous, width, 3, stride=(2, 1), padding=1),
                nn.BatchNorm2d(width),
                nn.LeakyReLU(0.1),
            ]
            previous = width
        self.encoder = nn.Sequential(*encoder)
        # Each stride-2 convolution (kernel 3, padding 1) halves the mel axis, rounding up.
        self.code_shape = (channels[-1], math.ceil(mels / 2 ** len(channels)), frames)
        flat = math.prod(self.code_shape)
        self.to_latent = nn.Linear(flat, bottleneck)
        self.from_latent = nn.Sequential(nn.Linear(bottleneck, flat), nn.LeakyReLU(0.1))
        decoder: list[nn.Module] = []
        widths = [*reversed(channels[:-1]), in_channels]
        previous = channels[-1]
        for index, width in enumerate(widths):
            decoder.append(nn.Upsample(scale_factor=(2, 1)))
            if index == len(widths) - 1:
                decoder.append(nn.Conv2d(previous, width, 3, padding=1))
            else:
                decoder += _block(previous, width)
            previous = width
        self.decoder = nn.Sequential(*decoder)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.to_latent(self.encoder(x).flatten(1))
        code = self.from_latent(latent).view(-1, *self.code_shape)
        mels, frames = self.output_size
        return self.decoder(code)[:, :, :mels, :frames], latent
