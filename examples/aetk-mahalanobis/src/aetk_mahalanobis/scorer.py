"""Scorer ``mahalanobis``: how unusual each vector's reconstruction residual is.

The mean squared error treats every element of the residual alike. Normal recordings have their
own residual pattern (some mel bands always reconstruct worse than others, neighbouring ones move
together); the Mahalanobis distance measures a residual against that pattern instead:
``d = sqrt((r - mean) · precision · (r - mean))``, with the covariance of normal residuals
shrunk (Ledoit-Wolf) so it stays well conditioned with few vectors.
"""

from __future__ import annotations

import aetk
import numpy as np


class MahalanobisScorer(aetk.Scorer):
    """Mean Mahalanobis distance of a clip's reconstruction residuals; higher is more anomalous.

    aetk calibrates the threshold on the scores of the validation clips.

    :param top_fraction: share of a clip's most unusual vectors averaged (1.0: all).
    :param max_dimension: largest residual size accepted (a full covariance is size² numbers).
    """

    name = "mahalanobis"
    # Residuals of a model that reconstructs exactly are all zero: aetk refuses that pairing.
    needs_reconstruction = True

    def __init__(self, top_fraction: float = 1.0, max_dimension: int = 4096):
        self.top_fraction = top_fraction
        self.max_dimension = max_dimension

    def fit(self, model, train, validation):
        import torch
        from sklearn.covariance import LedoitWolf

        residuals = torch.cat([self._residuals(model, clip) for clip in train]).double().numpy()
        if residuals.shape[1] > self.max_dimension:
            raise aetk.ConfigError(
                f"mahalanobis: residual vectors have {residuals.shape[1]} values, more than "
                f"max_dimension={self.max_dimension}; use frame-context features (mel-db frames=5)"
            )
        estimate = LedoitWolf().fit(residuals)
        self.mean_ = torch.from_numpy(estimate.location_).float()
        self.precision_ = torch.from_numpy(estimate.precision_).float()
        return self

    def score(self, model, clips) -> np.ndarray:
        self.check_fitted()
        return self._clip_scores(model, clips)

    def _residuals(self, model, clip):
        return (model.target(clip) - model.reconstruct(clip)).flatten(1)

    def _clip_scores(self, model, clips) -> np.ndarray:
        import torch

        distances = []
        for clip in clips:
            centred = self._residuals(model, clip) - self.mean_
            squared = ((centred @ self.precision_) * centred).sum(1).clamp_min(0.0)
            distances.append(squared.sqrt())
        if not distances:
            return np.empty(0)
        return aetk.scoring.pool(
            torch.cat(distances), [len(d) for d in distances], self.top_fraction
        )
