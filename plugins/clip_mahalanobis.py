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

A fault that lasts a fraction of a second (a knock, a click) leaves its residual in a few frames
only, and the clip's mean washes it out. With ``pooling = "clip+event"`` the clip is also judged
by its most unusual moment: the same distance of the mean residual over every ``event_window``
consecutive vectors, the largest of them. Each view is divided by the median of its scores on
the validation clips (normal recordings neither the model nor the scorer learned from), so both
read "times as far from normal as a normal clip typically is", and the clip scores the larger
(:func:`aetk.scoring.combine_views`); its localization names that view and the moment.

With ``pooling = "clip+frames"`` (or ``"clip+frames+event"``) the clip is also judged by its
*frames* view: the mean of its vectors' own distances, ``mean ‖W (r − μ)‖``, every moment a
little off (the DCASE baseline's pooling, a mean over frames, in this metric). It hears a machine
whose sound changes from moment to moment while its mean residual stays small (a sound that
alternates, a rail that slides rougher).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np
    import torch

POOLINGS = ("clip", "clip+event", "clip+frames", "clip+frames+event")


class ClipMahalanobisScorer(aetk.Scorer):
    """Mahalanobis distance of a clip's mean reconstruction residual; higher is more anomalous.

    :param shrinkage: weight in (0, 1] of the average variance mixed into the residual covariance
        (``(1 − s) Σ + s · mean variance · I``); larger is more robust with few vectors.
    :param max_dimension: largest residual size accepted (the covariance is size² numbers).
    :param pooling: ``"clip"`` (the clip's mean residual), or that with other views:
        ``"clip+event"`` (the clip's most unusual moment), ``"clip+frames"`` (its vectors'
        mean distance) or ``"clip+frames+event"`` (see the module documentation).
    :param event_window: with the event view, the vectors whose mean residual makes a moment
        (4 vectors of 5 frames at hop 512, 16 kHz: about 0.22 s).
    """

    name = "clip-mahalanobis"
    needs_reconstruction = True

    def __init__(
        self,
        shrinkage: float = 1e-3,
        max_dimension: int = 4096,
        pooling: str = "clip",
        event_window: int = 4,
    ):
        self.shrinkage = shrinkage
        self.max_dimension = max_dimension
        self.pooling = pooling
        self.event_window = event_window

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
        if self.pooling not in POOLINGS:
            raise aetk.ConfigError(
                f"clip-mahalanobis: pooling must be one of {', '.join(POOLINGS)}, "
                f"not {self.pooling!r}"
            )
        window = self.event_window
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 10_000:
            raise aetk.ConfigError(
                f"clip-mahalanobis: event_window must be an integer in 1..10000, not {window!r}"
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
        view_scores, localizations = self._views(model, normal, localize=True)
        if self.views():
            self.view_scales_ = aetk.scoring.view_scales(view_scores)
        self.fit_localization(found for found in localizations if found is not None)
        return self

    def views(self) -> tuple[str, ...]:
        return tuple(self.pooling.split("+")) if self.pooling != "clip" else ()

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        return self.score_and_localize(model, clips, localize=False)[0]

    def localizes_while_scoring(self) -> bool:
        """Scores come from the whitened residuals that localize: one pass gives both."""
        return True

    def localize(self, model, clip: torch.Tensor) -> aetk.Localization | None:
        """Each vector's whitened residual length; each element's whitened squared residual."""
        return self.score_and_localize(model, [clip])[1][0]

    def score_and_localize(
        self, model, clips: Sequence[torch.Tensor], localize: bool = True
    ) -> tuple[np.ndarray, list[aetk.Localization | None]]:
        """Scores and localizations from one reconstruction of every vector."""
        self.check_fitted()
        view_scores, localizations = self._views(model, clips, localize)
        if self.pooling == "clip":
            return view_scores[:, 0], localizations
        scores, winners = aetk.scoring.combine_views(view_scores, self.view_scales_)
        views = self.views()
        for localization, winner in zip(localizations, winners, strict=True):
            if localization is not None:
                localization.view = views[winner]
                if views[winner] in aetk.scoring.WHOLE_CLIP_VIEWS:
                    localization.view_vectors = None
        return scores, localizations

    def export_module(self, model):
        """The clip's whitened mean residual length (or the largest of the scaled views, with
        which view it is and the vectors of its moment), as a module to export, with each
        element's squared whitened residual (its localization)."""
        import torch
        from torch import nn

        self.check_fitted()

        class ClipMahalanobisGraph(nn.Module):
            def __init__(self, mean, whitening, view_scales):
                super().__init__()
                self.network = model.network()
                self.register_buffer("mean", mean.clone())
                self.register_buffer("whitening", whitening.clone())
                self.register_buffer("view_scales", view_scales.clone())

            def forward(self, vectors):
                reconstruction, _ = self.network(vectors)
                residuals = model.target(vectors) - reconstruction
                whitened = (residuals.flatten(1) - self.mean) @ self.whitening
                contributions = whitened.square()
                vector_lengths = contributions.sum(1).sqrt()
                scores, start = _clip_views(whitened, vector_lengths, views or ("clip",), window)
                score, view = scores[0].reshape(1), None
                if views:
                    score, view = aetk.networks.winning_view(
                        torch.stack(scores), self.view_scales, start, vector_lengths, window, whole
                    )
                return aetk.networks.localized(
                    score, vector_lengths, contributions.reshape(residuals.shape), view
                )

        views, window = self.views(), self.event_window
        whole = aetk.scoring.whole_clip_views(views)
        scales = torch.as_tensor(self.view_scales_) if views else torch.ones(2, dtype=torch.float64)
        return ClipMahalanobisGraph(self.mean_, self.whitening_, scales)

    def _views(
        self, model, clips: Sequence[torch.Tensor], localize: bool
    ) -> tuple[np.ndarray, list[aetk.Localization | None]]:
        """``[clips, views]`` scores (the clip view alone, or every view of :meth:`views`) and,
        with ``localize``, each clip's localization (with its moment), reconstructing many
        clips at once."""
        import numpy as np
        import torch

        views = self.views() or ("clip",)
        rows: list[list[float]] = []
        localizations: list[aetk.Localization | None] = []
        for group in aetk.scoring.clip_batches(clips):
            lengths = [len(clip) for clip in group]
            residuals = model.residuals(torch.cat(group))
            whitened = (residuals.flatten(1) - self.mean_) @ self.whitening_
            for clip_whitened, shape in zip(
                whitened.split(lengths), (clip.shape for clip in group), strict=True
            ):
                contributions = clip_whitened.square()
                vector_lengths = contributions.sum(1).sqrt()
                scores, start = _clip_views(clip_whitened, vector_lengths, views, self.event_window)
                rows.append([float(score) for score in scores])
                if not localize:
                    localizations.append(None)
                    continue
                localization = aetk.Localization(
                    vector_lengths.float(), contributions.float().view(shape)
                )
                if "event" in views:
                    first = int(start)
                    localization.view_vectors = (
                        first,
                        first + min(self.event_window, len(clip_whitened)),
                    )
                localizations.append(localization)
        return np.array(rows, dtype=np.float64).reshape(-1, len(views)), localizations


def _clip_views(
    whitened: torch.Tensor, vector_lengths: torch.Tensor, views: tuple[str, ...], window: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A clip's ``views`` (float64 ``[]`` each, in that order) from its whitened residual vectors
    and their lengths: ``clip``, the length of their mean; ``frames``, the mean of their lengths
    (every moment a little off, the DCASE baseline's pooling); ``event``, the largest length of
    the mean over ``window`` consecutive vectors; and where that moment starts (0 without the
    event view). In torch operations that export, for aetk and the export graph alike."""
    import torch

    computed = {
        "clip": whitened.mean(0).square().sum().sqrt().double(),
        "frames": vector_lengths.double().mean(),
    }
    start = torch.zeros((), dtype=torch.long)
    if "event" in views:
        means, whole = aetk.networks.window_vector_means(whitened, window)
        window_lengths = means.square().sum(1).sqrt()
        masked = torch.where(whole, window_lengths, torch.full_like(window_lengths, -1.0))
        start = masked.argmax()
        computed["event"] = masked[start].double()
    return [computed[name] for name in views], start


@aetk.hookimpl
def register_scorers(register):
    register(ClipMahalanobisScorer)
