"""Model ``machine-classifier`` and scorer ``surprise``: a fleet's network that learns to tell its
machines apart, and a clip judged by how little it sounds like the machine it comes from.

The field's strongest detectors that need no pretrained weights work this way (DCASE 2020–2024):
a machine's fault changes what sets its sound apart from its siblings' sounds, so a classifier
trained on normal recordings only grows unsure which machine it hears. The surprise of a vector
is ``−log p(its own machine | vector)``; a clip's score is the mean surprise of its vectors (or
of its most surprising ``top_fraction``). Both need a fleet: ``aetk fit --machines``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn


class MachineClassifier(aetk.Model):
    """A dense network (Linear + BatchNorm1d + LeakyReLU(0.1) through ``hidden`` widths, then one
    logit per machine) giving each feature vector's log-likelihood of coming from its own
    machine; trained with the negative log-likelihood (cross-entropy) on a fleet's normal
    recordings. Its latent code is the last hidden layer, the embedding machines are told apart
    by.

    Its first output is no reconstruction, so scorers of reconstruction errors refuse it; score
    it with ``surprise``, or with ``knn`` in its embedding space.
    """

    name = "machine-classifier"
    conditioned = True
    reconstructs = False
    categories_: list[dict]

    def __init__(self, hidden: Sequence[int] = (256, 256)):
        self.hidden = hidden

    def build(self, input_shape: tuple[int, ...]) -> nn.Module:
        import math

        from torch import nn

        machines = len(self.categories_[0]["values"])
        widths = [math.prod(input_shape), *self.hidden]
        if not all(isinstance(width, int) and width >= 1 for width in widths[1:]):
            raise aetk.ConfigError(
                f"{self.name}: hidden widths must be positive integers, not {list(self.hidden)}"
            )
        layers: list[nn.Module] = []
        for n_in, n_out in pairwise(widths):
            layers += [nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.LeakyReLU(0.1)]
        return aetk.networks.OwnCategoryLikelihood(
            nn.Sequential(*layers), nn.Linear(widths[-1], machines)
        )

    def target(self, x: torch.Tensor) -> torch.Tensor:
        """The log-likelihood of the own machine aims at 0 (certainty)."""
        return x.new_zeros(len(x), 1)

    def loss(self, output: tuple[torch.Tensor, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The negative log-likelihood of each vector's own machine (cross-entropy)."""
        return -output[0].float().mean()


class SurpriseScorer(aetk.Scorer):
    """A clip's mean surprise ``−log p(own machine | vector)`` under a ``machine-classifier``.

    :param top_fraction: share of a clip's most surprising vectors that are averaged (1.0: all).
    """

    name = "surprise"

    def __init__(self, top_fraction: float = 1.0):
        self.top_fraction = top_fraction

    def validate(self) -> None:
        aetk.scoring.check_top_fraction(self.top_fraction)

    def fit(self, model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]):
        self.validate()
        if model.reconstructs:
            raise aetk.ConfigError(
                f"scorer '{self.name}' scores a classifier's log-likelihoods, and model "
                f"'{model.name}' reconstructs: use --model machine-classifier"
            )
        self.machine_ = model.condition_
        return self

    def localizes_while_scoring(self) -> bool:
        """It does not localize: scoring is all there is."""
        return True

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        import numpy as np
        import torch

        self.check_fitted()
        scores = [
            aetk.scoring.pool(
                -model.reconstruct(torch.cat(group))[:, 0],
                [len(clip) for clip in group],
                self.top_fraction,
            )
            for group in aetk.scoring.clip_batches(clips)
        ]
        return np.concatenate(scores) if scores else np.empty(0)

    def export_module(self, model):
        """The pooled surprise of one clip, as a module to export."""

        def surprise(vectors, output):
            return -output[0][:, 0]

        return aetk.networks.PooledVectorScores(model.network(), surprise, self.top_fraction)


@aetk.hookimpl
def register_models(register):
    register(MachineClassifier)


@aetk.hookimpl
def register_scorers(register):
    register(SurpriseScorer)
