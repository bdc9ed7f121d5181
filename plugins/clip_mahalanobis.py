"""Scorer ``clip-mahalanobis``: how far a clip's average reconstruction residual lies from normal.

The mean squared error scores every vector's residual and averages the scores, so noise the model
cannot predict (every frame of a machine in a noisy hall reconstructs a little wrong in its own
random way) weighs as much as a real change. Averaging the residual vectors of a clip *before*
measuring them cancels that noise and keeps what is consistent over the clip: a machine whose
whole sound has shifted (imbalance, wear, a clogged intake) leaves the same residual in every
frame. The clip's mean residual is measured against the spread of normal residuals, their
covariance estimated on the training vectors, shrunk towards its average variance so that it stays
invertible:

    score = ‖W (r̄ − μ)‖,  W = Σ^(−1/2) (the symmetric inverse square root)

This is the DCASE Task 2 baseline's Mahalanobis score mode. It localizes in the same metric, frame
by frame: a vector's score is ``‖W (r − μ)‖`` and each element's contribution its whitened squared
residual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np
    import torch


class ClipMahalanobisScorer(aetk.Scorer):
    """Mahalanobis distance of a clip's mean reconstruction residual; higher is more anomalous.

    :param shrinkage: weight in (0, 1] of the average variance mixed into the residual covariance
        (``(1 − s) Σ + s · mean variance · I``); larger is more robust with few vectors.
    :param max_dimension: largest residual size accepted (the covariance is size² numbers).
    """

    name = "clip-mahalanobis"
    needs_reconstruction = True

    def __init__(self, shrinkage: float = 1e-3, max_dimension: int = 4096):
        self.shrinkage = shrinkage
        self.max_dimension = max_dimension

    def validate(self) -> None:
        shrinkage = self.shrinkage
        if isinstance(shrinkage, bool) or not isinstance(shrinkage, (int, float)):
            raise aetk.ConfigError(
                f"clip-mahalanobis: shrinkage must be a number, not {shrinkage!r}"
            )
        if not 0 < shrinkage <= 1:
            raise aetk.ConfigError(
                f"clip-mahalanobis: shrinkage must lie in (0, 1], not {shrinkage!r}"
            )
        dimension = self.max_dimension
        if (
            isinstance(dimension, bool)
            or not isinstance(dimension, int)
            or not 1 <= dimension <= 16384
        ):
            raise aetk.ConfigError(
                f"clip-mahalanobis: max_dimension must be an integer in 1..16384, not {dimension!r}"
            )

    def fit(self, model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]):
        import torch

        self.validate()
        total = outer = None
        count = 0
        for group in aetk.scoring.clip_batches(train if len(train) else validation):
            residuals = model.residuals(torch.cat(group)).flatten(1).double()
            if residuals.shape[1] > self.max_dimension:
                raise aetk.ConfigError(
                    f"clip-mahalanobis: residual vectors have {residuals.shape[1]} values, more "
                    f"than max_dimension={self.max_dimension}; use frame-context features "
                    "(mel-db frames=5) or raise max_dimension"
                )
            total = residuals.sum(0) if total is None else total + residuals.sum(0)
            outer = residuals.T @ residuals if outer is None else outer + residuals.T @ residuals
            count += len(residuals)
        if total is None or outer is None or count < 2:
            raise aetk.ConfigError("clip-mahalanobis needs at least 2 normal vectors")
        mean = total / count
        covariance = (outer - count * torch.outer(mean, mean)) / (count - 1)
        average_variance = covariance.diagonal().mean().clamp_min(1e-12)
        shrunk = (1 - self.shrinkage) * covariance + self.shrinkage * average_variance * torch.eye(
            len(mean), dtype=covariance.dtype
        )
        values, vectors = torch.linalg.eigh(shrunk)
        whitening = (
            vectors * values.clamp_min(1e-12 * float(average_variance)).rsqrt()
        ) @ vectors.T
        self.mean_ = mean.float()
        self.whitening_ = whitening.float()
        normal = validation if len(validation) else train
        self.fit_localization(
            localization for _, localization in self._walk(model, normal, localize=True)
        )
        return self

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        import numpy as np

        self.check_fitted()
        return np.fromiter(
            (score for score, _ in self._walk(model, clips, localize=False)), dtype=np.float64
        )

    def localize(self, model, clip: torch.Tensor) -> aetk.Localization | None:
        """Each vector's whitened residual length; each element's whitened squared residual."""
        return self.score_and_localize(model, [clip])[1][0]

    def score_and_localize(
        self, model, clips: Sequence[torch.Tensor]
    ) -> tuple[np.ndarray, list[aetk.Localization | None]]:
        """Scores and localizations from one reconstruction of every vector."""
        self.check_fitted()
        return aetk.scoring.scores_and_localizations(self._walk(model, clips, localize=True))

    def export_module(self, model):
        """The clip's whitened mean residual length, as a module to export."""
        from torch import nn

        self.check_fitted()

        class ClipMahalanobisGraph(nn.Module):
            def __init__(self, mean, whitening):
                super().__init__()
                self.network = model.module_
                self.register_buffer("mean", mean.clone())
                self.register_buffer("whitening", whitening.clone())

            def forward(self, vectors):
                reconstruction, _ = self.network(vectors)
                residuals = (model.target(vectors) - reconstruction).flatten(1)
                centred = residuals.mean(0, keepdim=True) - self.mean
                return (centred @ self.whitening).square().sum(1).sqrt()

        return ClipMahalanobisGraph(self.mean_, self.whitening_)

    def _walk(self, model, clips: Sequence[torch.Tensor], localize: bool):
        """``(score, localization or None)`` of each clip, reconstructing many clips at once."""
        import torch

        for group in aetk.scoring.clip_batches(clips):
            lengths = [len(clip) for clip in group]
            residuals = model.residuals(torch.cat(group))
            for clip_residuals in residuals.split(lengths):
                centred = clip_residuals.flatten(1) - self.mean_
                score = float((centred.mean(0) @ self.whitening_).norm())
                if not localize:
                    yield score, None
                    continue
                whitened = centred @ self.whitening_
                contributions = whitened.square()
                yield (
                    score,
                    aetk.Localization(
                        contributions.sum(1).sqrt(), contributions.view(clip_residuals.shape)
                    ),
                )


@aetk.hookimpl
def register_scorers(register):
    register(ClipMahalanobisScorer)
