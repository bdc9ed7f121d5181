"""Scorer ``mse``: a clip's score is its mean squared reconstruction error.

In frame-context mode a clip has many vectors; its score is the mean over them (or over its worst
``top_fraction`` of them). aetk calibrates the threshold on the validation clips' scores (normal
recordings the model did not train on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np
    import torch


class MseScorer(aetk.Scorer):
    """Mean squared reconstruction error per clip; higher is more anomalous.

    :param top_fraction: share of a clip's vectors with the highest errors that are averaged
        (1.0: all of them, the DCASE score; 0.1: the worst tenth, for short events).
    """

    name = "mse"
    needs_reconstruction = True

    def __init__(self, top_fraction: float = 1.0):
        self.top_fraction = top_fraction

    def validate(self) -> None:
        aetk.scoring.check_top_fraction(self.top_fraction)

    def fit(self, model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]):
        self.validate()
        normal = validation if len(validation) else train
        self.fit_localization(localization for _, localization in self._walk(model, normal))
        return self

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        import numpy as np

        self.check_fitted()
        # Each clip's errors are dropped as soon as its score is taken: memory holds one batch.
        return np.fromiter((score for score, _ in self._walk(model, clips)), dtype=np.float64)

    def localizes_while_scoring(self) -> bool:
        """Scores come from the squared errors that localize: one pass gives both."""
        return True

    def localize(self, model, clip: torch.Tensor) -> aetk.Localization | None:
        """Each vector's mean squared error; each element's squared error."""
        return self.score_and_localize(model, [clip])[1][0]

    def score_and_localize(
        self, model, clips: Sequence[torch.Tensor]
    ) -> tuple[np.ndarray, list[aetk.Localization | None]]:
        """Scores and localizations from one reconstruction of every vector."""
        self.check_fitted()
        return aetk.scoring.scores_and_localizations(self._walk(model, clips))

    def export_module(self, model):
        """The pooled mean squared reconstruction error of one clip, as a module to export, with
        each element's squared error (its localization)."""

        def errors(vectors, output):
            return (output[0] - model.target(vectors)).square()

        return aetk.networks.PooledVectorScores(
            model.network(), errors, self.top_fraction, per_element=True
        )

    def _walk(self, model, clips: Sequence[torch.Tensor]):
        """``(score, localization)`` of each clip, reconstructing many clips at once."""
        import torch

        for group in aetk.scoring.clip_batches(clips):
            lengths = [len(clip) for clip in group]
            errors = model.errors(torch.cat(group))
            vector_errors = errors.flatten(1).mean(1)
            scores = aetk.scoring.pool(vector_errors, lengths, self.top_fraction)
            for score, clip_vectors, clip_errors in zip(
                scores, vector_errors.split(lengths), errors.split(lengths), strict=True
            ):
                yield float(score), aetk.Localization(clip_vectors, clip_errors)


@aetk.hookimpl
def register_scorers(register):
    register(MseScorer)
