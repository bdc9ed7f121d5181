"""Scorer ``mse``: a clip's score is its mean squared reconstruction error.

In frame-context mode a clip has many vectors; its score is the mean over them (or over its worst
``top_fraction`` of them). The threshold is fitted on validation clips (normal recordings the
model did not train on).
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

    :param percentile: percentile of the normal validation scores used as threshold.
    :param threshold_method: ``"gamma"`` (fit a gamma distribution, the DCASE practice, with an
        empirical fallback) or ``"quantile"`` (empirical quantile).
    :param top_fraction: share of a clip's vectors with the highest errors that are averaged
        (1.0: all of them, the DCASE score; 0.1: the worst tenth, for short events).
    """

    name = "mse"

    def __init__(
        self, percentile: float = 90.0, threshold_method: str = "gamma", top_fraction: float = 1.0
    ):
        self.percentile = percentile
        self.threshold_method = threshold_method
        self.top_fraction = top_fraction

    def fit(self, model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]):
        clips = self.normal_clips(train, validation)
        self.set_threshold(self._clip_scores(model, clips), self.threshold_method, self.percentile)
        self.fit_localization(self.localize(model, clip) for clip in clips)
        return self

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        self.check_fitted()
        return self._clip_scores(model, clips)

    def localize(self, model, clip: torch.Tensor) -> aetk.Localization:
        """Each vector's mean squared error; each element's squared error."""
        errors = model.errors(clip)
        return aetk.Localization(errors.flatten(1).mean(1), errors)

    def _clip_scores(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        import numpy as np
        import torch

        scores = [np.empty(0)]
        for group in aetk.scoring.clip_batches(clips):
            vector_errors = model.errors(torch.cat(group)).flatten(1).mean(1)
            scores.append(
                aetk.scoring.pool(vector_errors, [len(clip) for clip in group], self.top_fraction)
            )
        return np.concatenate(scores)


@aetk.hookimpl
def register_scorers(register):
    register(MseScorer)
