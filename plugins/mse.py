"""Scorer ``mse``: a clip's score is its mean squared reconstruction error.

In frame-context mode a clip has many vectors; its score is the mean over them. The threshold is
fitted on validation clips (normal recordings the model did not train on).
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
    """

    name = "mse"

    def __init__(self, percentile: float = 90.0, threshold_method: str = "gamma"):
        self.percentile = percentile
        self.threshold_method = threshold_method

    def fit(self, model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]):
        scores = self._clip_scores(model, validation)
        self.threshold_, self.threshold_method_ = aetk.fit_threshold(
            scores, method=self.threshold_method, percentile=self.percentile
        )
        self.validation_scores_ = scores
        return self

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        self.check_fitted()
        return self._clip_scores(model, clips)

    def _clip_scores(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        import torch

        if not clips:
            return torch.empty(0, dtype=torch.float64).numpy()
        vector_errors = model.errors(torch.cat(list(clips))).flatten(1).mean(1)
        return torch.stack(
            [part.to(torch.float64).mean() for part in vector_errors.split([len(c) for c in clips])]
        ).numpy()


@aetk.hookimpl
def register_scorers(register):
    register(MseScorer)
