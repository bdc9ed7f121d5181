"""Scorer ``knn``: distance to the nearest normal examples in the model's latent space.

With the ``identity`` model the latent space is the standardised features themselves; with an
autoencoder it is the bottleneck code. Two ways to compare a clip with normal recordings:

- ``pooling = "clip"``: a clip is the mean of its latent vectors (its average spectrum, with
  ``identity``), standardised with the spread of the normal clips; its score is the mean distance
  to its ``k`` nearest normal clips. Robust for stationary machines in heavy noise.
- ``pooling = "vector"``: each latent vector is compared with the normal vectors (at most
  ``max_reference`` of them, drawn at random); the clip's score is the mean of the highest
  ``top_fraction`` of its vectors' distances. Keeps short events that a clip mean would blur.

All normal clips given to ``fit`` (training and validation) become references. The held-out scores
aetk calibrates the threshold on are leave-one-clip-out scores: each normal clip scored against the
other clips' references, which is what a new normal recording would score.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np
    import torch

POOLINGS = ("clip", "vector")
MAX_K = 1000
MAX_REFERENCE = 10_000_000


class KnnScorer(aetk.Scorer):
    """Mean distance to the ``k`` nearest normal references; higher is more anomalous.

    :param k: neighbours averaged.
    :param pooling: ``"clip"`` or ``"vector"`` (see the module documentation).
    :param top_fraction: with vector pooling, the share of a clip's most distant vectors averaged.
    :param max_reference: with vector pooling, the most reference vectors kept (memory bound).
    """

    name = "knn"

    def __init__(
        self,
        k: int = 1,
        pooling: str = "clip",
        top_fraction: float = 1.0,
        max_reference: int = 50_000,
    ):
        self.k = k
        self.pooling = pooling
        self.top_fraction = top_fraction
        self.max_reference = max_reference

    def fit(self, model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]):
        import torch

        self.validate()
        if len(train) + len(validation) < 2:
            raise aetk.ConfigError(
                "knn needs at least 2 normal clips (one to compare with another)"
            )
        # Two passes over the clips, one at a time: references, then leave-one-clip-out scores.
        if self.pooling == "clip":
            embedded = torch.cat([self._embed(model, clip) for clip in chain(train, validation)])
            owners = torch.arange(len(embedded))
            self.center_ = embedded.mean(0)
            self.scale_ = embedded.std(0).clamp_min(1e-6)
        else:
            embedded, owners = self._sample_vectors(model, chain(train, validation))
            self.center_ = torch.zeros(embedded.shape[1])
            self.scale_ = torch.ones(embedded.shape[1])
        self.reference_ = self._standardise(embedded)
        # Which clip each reference came from, for leave-one-out; not part of the detector.
        self._owners = owners
        first = train[0] if len(train) else validation[0]
        if self._localizable(model, first):
            self.fit_localization(
                self._localize(model.latent(clip), clip.shape, self._own_references(owners, i))
                for i, clip in enumerate(chain(train, validation))
            )
        return self

    def held_out_scores(self, model, train, validation) -> np.ndarray:
        """Leave-one-clip-out scores: each normal clip against the other clips' references."""
        self.check_fitted()
        owners = getattr(self, "_owners", None)
        if owners is None:
            raise aetk.NotFittedError("knn: held-out scores exist only right after fit()")
        return self._pool(
            [
                self._distances(self._standardise(self._embed(model, clip)), exclude=owners == i)
                for i, clip in enumerate(chain(train, validation))
            ]
        )

    def _own_references(self, owners, index: int):
        """What leaves clip ``index`` out: a mask of its vectors (vector pooling) or its index."""
        return (owners == index) if self.pooling == "vector" else index

    def _sample_vectors(self, model, clips) -> tuple[torch.Tensor, torch.Tensor]:
        """At most ``max_reference`` latent vectors drawn uniformly from all clips (with the
        index of the clip each came from), reading one clip at a time: every vector gets a
        seeded random priority and the lowest priorities are kept."""
        import torch

        generator = torch.Generator().manual_seed(0)
        kept = priorities = owners = torch.empty(0)
        for index, clip in enumerate(clips):
            codes = self._embed(model, clip)
            drawn = torch.rand(len(codes), generator=generator)
            clip_owners = torch.full((len(codes),), index)
            if index == 0:
                kept, priorities, owners = codes, drawn, clip_owners
            else:
                kept = torch.cat([kept, codes])
                priorities = torch.cat([priorities, drawn])
                owners = torch.cat([owners, clip_owners])
            if len(kept) > self.max_reference:
                lowest = priorities.topk(self.max_reference, largest=False).indices.sort().values
                kept, priorities, owners = kept[lowest], priorities[lowest], owners[lowest]
        return kept, owners

    def localize(self, model, clip: torch.Tensor) -> aetk.Localization | None:
        """Each vector's distance to its nearest normal reference (vector pooling), or to the
        mean spectrum of the nearest normal clip (clip pooling); each element's squared
        difference. Only where the latent space is the feature space (model ``identity``)."""
        return self.score_and_localize(model, [clip])[1][0]

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        import numpy as np
        import torch

        self.check_fitted()
        scores = [np.empty(0)]
        # Many clips at once: one pass of the model and one distance computation per group.
        for group in aetk.scoring.clip_batches(clips):
            lengths = [len(clip) for clip in group]
            codes = model.latent(torch.cat(group)).split(lengths)
            embedded = torch.cat([self._pooled(part) for part in codes])
            distances = self._distances(self._standardise(embedded))
            sizes = lengths if self.pooling == "vector" else [1] * len(group)
            scores.append(aetk.scoring.pool(distances, sizes, self.top_fraction))
        return np.concatenate(scores)

    def score_and_localize(self, model, clips: Sequence[torch.Tensor]):
        """Scores and localizations from one latent code of every clip."""
        self.check_fitted()
        distances, localizations = [], []
        for clip in clips:
            codes = model.latent(clip)
            distances.append(self._distances(self._standardise(self._pooled(codes))))
            localizable = codes.shape[1] == clip[0].numel()
            localizations.append(self._localize(codes, clip.shape) if localizable else None)
        return self._pool(distances), localizations

    def export_module(self, model):
        """One clip's mean distance to its k nearest references, as a module to export."""
        from torch import nn

        self.check_fitted()
        pooling, top_fraction = self.pooling, self.top_fraction
        k = min(self.k, len(self.reference_))

        class KnnGraph(nn.Module):
            def __init__(self, center, scale, reference):
                super().__init__()
                self.network = model.module_
                self.register_buffer("center", center.clone())
                self.register_buffer("scale", scale.clone())
                self.register_buffer("reference", reference.clone())

            def forward(self, vectors):
                codes = self.network(vectors)[1].flatten(1)
                if pooling == "clip":
                    codes = codes.mean(0, keepdim=True)
                queries = (codes - self.center) / self.scale
                distances = aetk.networks.pairwise_distances(queries, self.reference)
                nearest = distances.topk(k, dim=1, largest=False).values.mean(1)
                return aetk.networks.top_fraction_mean(nearest, top_fraction)

        return KnnGraph(self.center_, self.scale_, self.reference_)

    def _localizable(self, model, clip: torch.Tensor) -> bool:
        return model.latent(clip[:1]).shape[1] == clip[0].numel()

    def _localize(self, codes: torch.Tensor, shape, leave_out=None) -> aetk.Localization:
        """``leave_out``: a reference mask (vector pooling) or a reference index (clip pooling)
        that must not count: the clip's own references, for normal localizations in ``fit``."""
        import torch

        if self.pooling == "clip":
            # Which normal clip is nearest is decided among standardised clip embeddings, but
            # frames are compared with its mean spectrum in feature space: the spread of clip
            # means across clips is far smaller than the spread of frames within a clip.
            distances = torch.cdist(
                self._standardise(codes.mean(0, keepdim=True)), self.reference_
            )[0]
            if leave_out is not None:
                distances[leave_out] = float("inf")
            nearest = self.reference_[distances.argmin()] * self.scale_ + self.center_
            nearest = nearest.expand_as(codes)
        else:
            distances = torch.cdist(codes, self.reference_)
            if leave_out is not None:
                distances[:, leave_out] = float("inf")
            nearest = self.reference_[distances.argmin(1)]
        contributions = (codes - nearest).square()
        return aetk.Localization(contributions.sum(1).sqrt(), contributions.view(shape))

    def validate(self) -> None:
        if self.pooling not in POOLINGS:
            raise aetk.ConfigError(f"knn: pooling must be one of {POOLINGS}, not {self.pooling!r}")
        if not _count_in(self.k, 1, MAX_K):
            raise aetk.ConfigError(f"knn: k must be an integer in 1..{MAX_K}, not {self.k!r}")
        if not _count_in(self.max_reference, 1, MAX_REFERENCE):
            raise aetk.ConfigError(
                f"knn: max_reference must be an integer in 1..{MAX_REFERENCE}, "
                f"not {self.max_reference!r}"
            )
        aetk.scoring.check_top_fraction(self.top_fraction)

    def _embed(self, model, clip: torch.Tensor) -> torch.Tensor:
        return self._pooled(model.latent(clip))

    def _pooled(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.mean(0, keepdim=True) if self.pooling == "clip" else codes

    def _standardise(self, codes: torch.Tensor) -> torch.Tensor:
        return (codes - self.center_) / self.scale_

    def _distances(
        self, queries: torch.Tensor, exclude: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean distance of each query to its k nearest references (``exclude``: a mask of
        references that must not count, the query's own clip)."""
        import torch

        available = len(self.reference_) - (int(exclude.sum()) if exclude is not None else 0)
        k = min(self.k, available)
        result = []
        for chunk in torch.split(queries, 1024):
            distances = torch.cdist(chunk, self.reference_)
            if exclude is not None:
                distances[:, exclude] = float("inf")
            result.append(distances.topk(k, largest=False).values.mean(1))
        return torch.cat(result)

    def _pool(self, distances: list[torch.Tensor]) -> np.ndarray:
        import torch

        return aetk.scoring.pool(
            torch.cat(distances), [len(d) for d in distances], self.top_fraction
        )


def _count_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@aetk.hookimpl
def register_scorers(register):
    register(KnnScorer)
