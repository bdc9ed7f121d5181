"""Scorer ``knn``: distance to the nearest normal examples in the model's latent space.

With the ``identity`` model the latent space is the standardised features themselves; with an
autoencoder it is the bottleneck code. The ways to compare a clip with normal recordings:

- ``pooling = "clip"``: a clip is the mean of its latent vectors (its average spectrum, with
  ``identity``), standardised with the spread of the normal clips; its score is the mean distance
  to its ``k`` nearest normal clips. Robust for stationary machines in heavy noise.
- ``pooling = "vector"``: each latent vector is compared with the normal vectors (at most
  ``max_reference`` of them, drawn at random); the clip's score is the mean of the highest
  ``top_fraction`` of its vectors' distances. Keeps short events that a clip mean would blur.
- ``pooling = "clip+event"``: both views of the clip at once. The *clip* view is the clip
  pooling's score (the steady hum); the *event* view is the clip's most unusual moment, the
  highest mean distance of ``event_window`` consecutive vectors to their nearest normal vectors
  (a knock, a click, a brief rub). Each view is divided by a scale, so both read "times as far
  from normal as a normal clip like this one is", and the clip scores the larger
  (:func:`aetk.scoring.combine_views`); its localization names that view. A clip's scales are
  the median leave-one-clip-out scores of the held-out clips nearest to its mean (a quarter of
  them), never below the medians over all held-out clips (:func:`aetk.scoring.local_view_scales`):
  where normal sound varies more (another operating condition, another machine), a clip is
  measured against that. With ``tail_weight``, each view is divided further by its tail
  factor (:func:`aetk.scoring.view_tails`), so that its unit lies between its typical and its
  rare normal score: a view whose normal scores spread widely (a noisy machine's average
  spectrum) does not drown a fault that only a narrow one hears.
- ``pooling = "clip+frames+event"`` (the default preset's): a view between those two, the
  *frames*: the mean distance of all the clip's vectors to their nearest normal vectors, each
  moment a little unlike normal (the DCASE baseline's and ``transient``'s rule). It hears a
  machine whose average spectrum stays normal while its sound changes from moment to moment
  (a rail that slides rougher, a rhythm that changes), where the normal clips hold brief
  transients of their own that set the event view's scale high.
- ``+contrast`` (``"clip+event+contrast"``, ``"clip+frames+event+contrast"``): one more view,
  the *contrast*: the most unusual moment's distance divided by the median distance of the
  clip's own vectors, how far the moment stands out from the rest of its clip. A shift of the
  whole recording (another day, another microphone position) moves every vector alike and does
  not raise it; a click that comes late, a valve that sticks, stands out of its own clip
  (docs/quality.md).

With the views and ``codebook_size``, the normal vectors are summarised by that many k-means
centroids (prototypical normal frames): a search through 1,024 centroids instead of 20,000 frames
is twenty times faster and judges events as well (docs/quality.md). Up to four times as many
vectors as that are kept as they are.

All normal clips given to ``fit`` (training and validation) become references. The held-out scores
aetk calibrates the threshold on are leave-one-clip-out scores: each normal clip scored against the
other clips' references, which is what a new normal recording would score (with the views,
for at most ``max_held_out`` clips drawn at random: a few hundred place a threshold well, and
each costs a search through the normal vectors). A codebook cannot leave one clip out cheaply, so
its event view's held-out scores are cross-fitted: each held-out clip against a codebook learned
without the clips of its fold (one of ``CODEBOOK_FOLDS``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import numpy as np
    import torch

POOLINGS = (
    "clip",
    "vector",
    "clip+event",
    "clip+event+contrast",
    "clip+frames+event",
    "clip+frames+event+contrast",
)
MAX_K = 1000
MAX_REFERENCE = 10_000_000
#: Folds of held-out clips whose event scores come from codebooks learned without them: with 4,
#: each codebook sees three quarters of the clips, close to what leaving one clip out would give.
CODEBOOK_FOLDS = 4
#: A codebook is learned only from more than this many times its size of vectors: below that,
#: searching all of them costs little, and k-means (run once per fold too) would cost the fit more
#: than it saves the scoring (a fleet of 60 machines of 3,100 frames each: 26 s against 63 s).
CODEBOOK_MIN_RATIO = 4
#: Lloyd iterations of the codebook's k-means; from a random draw of vectors, ten settle the
#: centroids of frames (twenty changed no AUC in the quality benchmark).
CODEBOOK_ITERATIONS = 10
#: Queries ranked against the references at a time: a 256 × 1,024 ranking (1 MB) stays in a
#: core's L2 cache (a ten-second clip's search against 1,024 prototypes took 0.8 ms on one core,
#: against 1.3 ms in chunks of 1,024 queries, in the same run).
QUERY_CHUNK = 256


class KnnScorer(aetk.Scorer):
    """Mean distance to the ``k`` nearest normal references; higher is more anomalous.

    :param k: neighbours averaged.
    :param pooling: ``"clip"``, ``"vector"``, or several views: ``"clip+event"``,
        ``"clip+frames+event"`` (the default preset's), each optionally ``+contrast`` (see the
        module documentation).
    :param top_fraction: with vector pooling, the share of a clip's most distant vectors averaged.
    :param max_reference: with vector pooling and the views, the most reference vectors kept
        (memory and time bound).
    :param event_window: with the views, the vectors averaged in a moment (4 frames of 32 ms:
        about 0.13 s, shorter than a knock or a rub).
    :param max_held_out: with the views, the most normal clips scored leave-one-out for the
        views' scales and the threshold.
    :param codebook_size: with the views, the event view's references are this many k-means
        centroids of the normal vectors (when there are more than ``CODEBOOK_MIN_RATIO`` times
        as many); 0 keeps the vectors themselves.
    :param tail_weight: with the views, how far each view's unit moves from its typical normal
        score towards its rare one (:func:`aetk.scoring.view_tails`): 0 the typical, 1 the
        90th percentile, 0.5 their geometric mean (for faults that are short events in long
        recordings; docs/quality.md).
    """

    name = "knn"

    def __init__(
        self,
        k: int = 1,
        pooling: str = "clip",
        top_fraction: float = 1.0,
        max_reference: int = 50_000,
        event_window: int = 4,
        max_held_out: int = 256,
        codebook_size: int = 0,
        tail_weight: float = 0.0,
    ):
        self.k = k
        self.pooling = pooling
        self.top_fraction = top_fraction
        self.max_reference = max_reference
        self.event_window = event_window
        self.max_held_out = max_held_out
        self.codebook_size = codebook_size
        self.tail_weight = tail_weight

    def fit(self, model, train: Sequence[torch.Tensor], validation: Sequence[torch.Tensor]):
        import torch

        self.validate()
        if len(train) + len(validation) < 2:
            raise aetk.ConfigError(
                "knn needs at least 2 normal clips (one to compare with another)"
            )
        if self.views():
            return self._fit_views(model, train, validation)
        # Two passes over the clips, one at a time: references, then leave-one-clip-out scores.
        if self.pooling == "clip":
            embedded = torch.cat([self._embed(model, clip) for clip in chain(train, validation)])
            owners = torch.arange(len(embedded))
            self.center_ = embedded.mean(0)
            self.scale_ = embedded.std(0).clamp_min(1e-6)
        else:
            embedded, owners = self._sample_vectors(
                self._embed(model, clip) for clip in chain(train, validation)
            )
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

    def _fit_views(self, model, train, validation):
        """References of both views, then leave-one-clip-out scores of a sample of clips: they
        give each view its scale, the threshold its scores, and localization its normal."""
        import numpy as np
        import torch

        # One pass over the clips (each read from disk once) for both views' references.
        clip_means = []

        def codes_of_each_clip():
            for clip in chain(train, validation):
                codes = model.latent(clip)
                clip_means.append(codes.mean(0, keepdim=True))
                yield codes

        vectors, owners = self._sample_vectors(codes_of_each_clip())
        embedded = torch.cat(clip_means)
        self.center_ = embedded.mean(0)
        self.scale_ = embedded.std(0).clamp_min(1e-6)
        self.reference_ = self._standardise(embedded)
        self.vector_reference_ = self._codebook(vectors)
        rng = np.random.default_rng(0)
        sample = rng.permutation(len(embedded))[: self.max_held_out].tolist()
        held_out_references = self._held_out_references(vectors, owners, sample)
        view_scores, localizations = [], []
        for index in sorted(held_out_references):
            # Only the held-out clips are read again.
            clip = train[index] if index < len(train) else validation[index - len(train)]
            codes = model.latent(clip)
            clip_score = self._distances(
                self._standardise(codes.mean(0, keepdim=True)), exclude=self._one_hot(index)
            )
            reference, exclude = held_out_references[index]
            distances, nearest = self._nearest(codes, reference, exclude)
            view_scores.append([float(clip_score), *self._moment_views(distances)[0]])
            if codes.shape[1] == clip[0].numel():
                localizations.append(_NearestLocalization(codes, reference, nearest, clip.shape))
        self.view_scales_ = aetk.scoring.view_scales(np.array(view_scores))
        self.held_out_index_ = torch.as_tensor(sorted(held_out_references))
        self.held_out_views_ = np.array(view_scores)
        scales = self._typical_scales(self.reference_[self.held_out_index_], leave_out_self=True)
        self.view_tails_ = aetk.scoring.view_tails(self.held_out_views_ / scales, self.tail_weight)
        self._held_out = aetk.scoring.combine_views(
            self.held_out_views_, scales * self.view_tails_
        )[0]
        if localizations:
            self.fit_localization(localizations)
        return self

    def _held_out_references(self, vectors, owners, sample: list[int]) -> dict:
        """For each held-out clip index, the event references it is scored against and a mask
        of those that must not count: every vector but its own clip's (the vectors are the
        references), or a codebook learned without its fold's clips."""
        import torch

        if self.vector_reference_ is vectors:
            return {index: (vectors, owners == index) for index in sample}
        references = {}
        for fold in range(min(CODEBOOK_FOLDS, len(sample))):
            held_out = sample[fold::CODEBOOK_FOLDS]
            kept = ~torch.isin(owners, torch.as_tensor(held_out, dtype=owners.dtype))
            codebook = self._codebook(vectors[kept] if kept.any() else vectors)
            references.update({index: (codebook, None) for index in held_out})
        return references

    def _codebook(self, vectors: torch.Tensor) -> torch.Tensor:
        """``codebook_size`` centroids of the vectors by k-means (seeded k-means++ start, then
        Lloyd's iterations; a centroid nothing is nearest to stays where it is), or the vectors
        themselves when there are at most ``CODEBOOK_MIN_RATIO`` times that many or no
        codebook."""
        import torch

        if not self.codebook_size or len(vectors) <= CODEBOOK_MIN_RATIO * self.codebook_size:
            return vectors
        centroids = _kmeans_plus_plus(vectors, self.codebook_size)
        for _ in range(CODEBOOK_ITERATIONS):
            nearest = self._nearest(vectors, centroids, None, k=1)[1]
            # Summed in float64, so that the centroid of identical vectors is that vector exactly
            # (a recording repeated, digital silence): rounding would make it look unusual.
            sums = torch.zeros(centroids.shape, dtype=torch.float64)
            sums.index_add_(0, nearest, vectors.double())
            counts = torch.bincount(nearest, minlength=len(centroids))
            assigned = counts > 0
            centroids[assigned] = (sums[assigned] / counts[assigned, None]).to(centroids.dtype)
        return centroids

    def _local_scales(self, clips: torch.Tensor, leave_out_self: bool = False) -> np.ndarray:
        """The view scales of each of ``clips`` (standardised clip embeddings): their
        :meth:`_typical_scales` times the views' tail factors."""
        return self._typical_scales(clips, leave_out_self) * self._view_tails()

    def _typical_scales(self, clips: torch.Tensor, leave_out_self: bool = False) -> np.ndarray:
        """The typical normal score of each view for each of ``clips``, drawn from the
        held-out clips nearest to it (:func:`aetk.scoring.local_view_scales`); with
        ``leave_out_self`` the clips are the held-out clips themselves, none its own neighbour.
        A detector file written before local scales keeps no held-out scores: every clip then
        gets the views' own scales, as it did."""
        import numpy as np
        import torch

        held_out = getattr(self, "held_out_views_", None)
        if held_out is None:
            return np.broadcast_to(self.view_scales_, (len(clips), len(self.view_scales_)))
        return aetk.scoring.local_view_scales(
            clips,
            self.reference_[self.held_out_index_],
            torch.from_numpy(held_out),
            torch.from_numpy(self.view_scales_),
            leave_out_self,
        ).numpy()

    def _view_tails(self) -> np.ndarray | float:
        """The views' tail factors; 1 in a detector file written before them."""
        tails = getattr(self, "view_tails_", None)
        return 1.0 if tails is None else tails

    def views(self) -> tuple[str, ...]:
        return tuple(self.pooling.split("+")) if self.pooling.startswith("clip+") else ()

    def localizes_while_scoring(self) -> bool:
        """With the views, the search that scores finds each vector's nearest reference, which
        localizes it; the other poolings search again to localize."""
        return bool(self.views())

    def _moment_views(self, distances: torch.Tensor) -> tuple[list[float], int]:
        """The views after the clip view (:meth:`views`' order) from a clip's vectors' distances
        to the nearest normal ones (:func:`_vector_views`), and where its most unusual moment
        starts."""
        (views,) = self._clips_moment_views([distances])
        return views

    def _clips_moment_views(
        self, distances: Sequence[torch.Tensor]
    ) -> list[tuple[list[float], int]]:
        """:meth:`_moment_views` of many clips, those of one length at once as the columns of
        one matrix: for one ten-second clip its dozen small operations cost 0.15 ms, more than
        their arithmetic."""
        import torch

        found: list[tuple[list[float], int]] = []
        by_length: dict[int, list[int]] = {}
        for index, clip in enumerate(distances):
            by_length.setdefault(len(clip), []).append(index)
            found.append(([], 0))
        for indices in by_length.values():
            columns = torch.stack([distances[index] for index in indices], 1)
            event, start = aetk.scoring.window_maxima(columns, self.event_window)
            views = torch.stack(_vector_views(columns, event, self.views()), 1).tolist()
            for index, clip_views, clip_start in zip(indices, views, start.tolist(), strict=True):
                found[index] = (clip_views, clip_start)
        return found

    def held_out_scores(self, model, train, validation) -> np.ndarray:
        """Leave-one-clip-out scores: each normal clip against the other clips' references."""
        self.check_fitted()
        if self.views():
            held_out = getattr(self, "_held_out", None)
            if held_out is None:
                raise aetk.NotFittedError("knn: held-out scores exist only right after fit()")
            return held_out
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

    def _sample_vectors(
        self, clips_codes: Iterable[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """At most ``max_reference`` of the clips' latent vectors drawn uniformly (with the
        index of the clip each came from), one clip at a time: every vector gets a seeded random
        priority and the lowest priorities are kept, in the clips' order."""
        import torch

        generator = torch.Generator().manual_seed(0)
        kept: list[torch.Tensor] = []
        priorities: list[torch.Tensor] = []
        owners: list[torch.Tensor] = []
        held = 0
        for index, codes in enumerate(clips_codes):
            kept.append(codes)
            priorities.append(torch.rand(len(codes), generator=generator))
            owners.append(torch.full((len(codes),), index))
            held += len(codes)
            # Pruned once twice as many are held, not at every clip: each pruning copies all
            # that is held, so pruning at every clip made the sample cost grow with the clips
            # times max_reference.
            if held > 2 * self.max_reference:
                pruned = _lowest(self.max_reference, kept, priorities, owners)
                kept, priorities, owners = ([part] for part in pruned)
                held = self.max_reference
        sample, _, sample_owners = _lowest(self.max_reference, kept, priorities, owners)
        return sample, sample_owners

    def localize(self, model, clip: torch.Tensor) -> aetk.Localization | None:
        """Each vector's distance to its nearest normal reference (vector pooling), or to the
        mean spectrum of the nearest normal clip (clip pooling); each element's squared
        difference. Only where the latent space is the feature space (model ``identity``)."""
        return self.score_and_localize(model, [clip])[1][0]

    def score(self, model, clips: Sequence[torch.Tensor]) -> np.ndarray:
        import numpy as np
        import torch

        self.check_fitted()
        if self.views():
            return self.score_and_localize(model, clips, localize=False)[0]
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

    def score_and_localize(self, model, clips: Sequence[torch.Tensor], localize: bool = True):
        """Scores and localizations from one latent code of every clip."""
        self.check_fitted()
        if self.views():
            return self._score_views(model, clips, localize)
        distances, localizations = [], []
        for clip in clips:
            codes = model.latent(clip)
            distances.append(self._distances(self._standardise(self._pooled(codes))))
            localizable = codes.shape[1] == clip[0].numel()
            localizations.append(self._localize(codes, clip.shape) if localizable else None)
        return self._pool(distances), localizations

    def _score_views(self, model, clips: Sequence[torch.Tensor], localize: bool):
        """Every view of every clip, many clips at once; the largest scaled view is the score,
        and with ``localize`` each clip's localization names it (with the moment, for the views
        of a moment)."""
        import numpy as np
        import torch

        view_scores, scales, moments, localizations = [], [], [], []
        for group in aetk.scoring.clip_batches(clips):
            lengths = [len(clip) for clip in group]
            codes = model.latent(torch.cat(group))
            distances, nearest = self._nearest_vectors(codes)
            clip_codes = self._standardise(
                torch.cat([part.mean(0, keepdim=True) for part in codes.split(lengths)])
            )
            clip_scores = self._distances(clip_codes)
            scales.append(self._local_scales(clip_codes))
            parts = zip(
                group,
                codes.split(lengths),
                self._clips_moment_views(distances.split(lengths)),
                nearest.split(lengths),
                strict=True,
            )
            for clip_score, (clip, clip_codes, (moment_scores, start), clip_nearest) in zip(
                clip_scores, parts, strict=True
            ):
                view_scores.append([float(clip_score), *moment_scores])
                width = min(self.event_window, len(clip_codes))
                moments.append((start, start + width))
                localizable = localize and clip_codes.shape[1] == clip[0].numel()
                localizations.append(
                    _NearestLocalization(
                        clip_codes, self.vector_reference_, clip_nearest, clip.shape
                    )
                    if localizable
                    else None
                )
        if not view_scores:
            return np.empty(0), []
        scores, winners = aetk.scoring.combine_views(np.array(view_scores), np.concatenate(scales))
        views = self.views()
        for localization, winner, moment in zip(localizations, winners, moments, strict=True):
            if localization is not None:
                localization.view = views[winner]
                localization.view_vectors = (
                    None if views[winner] in aetk.scoring.WHOLE_CLIP_VIEWS else moment
                )
        return scores, localizations

    def export_module(self, model):
        """The clip's score as a module to export: the clip view's distance, the vectors' top
        fraction, or the largest of the scaled views together with which view it is and the
        vectors ``[first, last)`` of its moment (first == last for the clip view), and where the
        latent space is the feature space, each vector's distance to its nearest normal vector
        and each element's squared difference from it, as :meth:`score_and_localize` gives
        them."""
        import torch
        from torch import nn

        self.check_fitted()
        settings = {
            "pooling": self.pooling,
            "top_fraction": self.top_fraction,
            "window": self.event_window,
            "views": self.views(),
            "k": min(self.k, len(self.reference_)),
            "localizes": self._localizable(model, torch.zeros(1, *model.input_shape_)),
        }

        class KnnGraph(nn.Module):
            def __init__(self, buffers: dict):
                super().__init__()
                self.network = model.network()
                for name, value in buffers.items():
                    self.register_buffer(name, value.clone())

            def forward(self, vectors):
                return _exported_scores(self, vectors, **settings)

        clip_only = not self.views()
        buffers = {
            "center": self.center_,
            "scale": self.scale_,
            "reference": self.reference_,
            "vector_reference": self.reference_[:1] if clip_only else self.vector_reference_,
            "view_scales": torch.ones(2, dtype=torch.float64),
            # One held-out clip scored at the views' scales: the scales of a file without local
            # ones (and a placeholder where there are no views).
            "held_out_clips": self.reference_[:1],
            "held_out_views": torch.ones(1, 2, dtype=torch.float64),
        }
        # The tails fold into the scales the graph draws from: a clip's local scale is a median
        # and a maximum of them, and both commute with a positive factor.
        tails = torch.as_tensor(self._view_tails(), dtype=torch.float64)
        if not clip_only:
            scales = torch.as_tensor(self.view_scales_) * tails
            buffers.update(view_scales=scales, held_out_views=scales[None])
        if getattr(self, "held_out_views_", None) is not None:
            buffers["held_out_clips"] = self.reference_[self.held_out_index_]
            buffers["held_out_views"] = torch.as_tensor(self.held_out_views_) * tails
        return KnnGraph(buffers)

    def _nearest_vectors(
        self, codes: torch.Tensor, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each code's mean distance to its k nearest reference vectors, and the nearest one's
        index (``exclude``: a mask of references that must not count)."""
        return self._nearest(codes, self.vector_reference_, exclude)

    def _one_hot(self, index: int) -> torch.Tensor:
        import torch

        mask = torch.zeros(len(self.reference_), dtype=torch.bool)
        mask[index] = True
        return mask

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
        return aetk.Localization(*_nearest_contributions(codes, nearest, shape))

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
        if not _count_in(self.codebook_size, 0, MAX_REFERENCE):
            raise aetk.ConfigError(
                f"knn: codebook_size must be an integer in 0..{MAX_REFERENCE}, "
                f"not {self.codebook_size!r}"
            )
        for name in ("event_window", "max_held_out"):
            if not _count_in(getattr(self, name), 1, MAX_REFERENCE):
                raise aetk.ConfigError(
                    f"knn: {name} must be an integer in 1..{MAX_REFERENCE}, "
                    f"not {getattr(self, name)!r}"
                )
        aetk.scoring.check_top_fraction(self.top_fraction)
        aetk.scoring.check_tail_weight(self.tail_weight)

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
        return self._nearest(queries, self.reference_, exclude)[0]

    def _nearest(
        self,
        queries: torch.Tensor,
        reference: torch.Tensor,
        exclude: torch.Tensor | None,
        k: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each query's mean distance to its k nearest rows of ``reference`` (the scorer's
        ``k`` unless given) and the nearest row's index, a chunk of queries at a time (bounded
        memory). The rows are ranked by ``|r|² − 2 q·r`` (one matrix product; ``|q|²`` is the same
        along a row), and only the k kept are turned into distances."""
        import torch

        available = len(reference) - (int(exclude.sum()) if exclude is not None else 0)
        k = min(self.k if k is None else k, available)
        squared_norms = reference.square().sum(1)
        # The product with -2 r, then the norms added in place: ``addmm`` would first copy them
        # into every row of the ranking, a tenth of the search's time.
        minus_twice = reference.mul(-2.0).T
        closest, nearest, norms = [], [], []
        for chunk in torch.split(queries, QUERY_CHUNK):
            ranking = torch.mm(chunk, minus_twice).add_(squared_norms)
            if exclude is not None:
                ranking[:, exclude] = float("inf")
            found, index = _row_minima(ranking) if k == 1 else ranking.topk(k, largest=False)
            closest.append(found)
            nearest.append(index[:, 0])
            norms.append(chunk.square().sum(1, keepdim=True))  # chunk by chunk: bounded memory
        if not closest:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        # The distances of all the queries at once, in a few operations rather than a few a chunk.
        squared = torch.cat(closest).add_(torch.cat(norms))
        return squared.clamp_min_(0).sqrt_().mean(1), torch.cat(nearest)

    def _pool(self, distances: list[torch.Tensor]) -> np.ndarray:
        import torch

        return aetk.scoring.pool(
            torch.cat(distances), [len(d) for d in distances], self.top_fraction
        )


def _exported_scores(
    graph, vectors, pooling, top_fraction, window, views, k, localizes
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The export graph's outputs for one clip's vectors (:meth:`KnnScorer.export_module`)."""
    codes = graph.network(vectors)[1].flatten(1)
    clip = (codes.mean(0, keepdim=True) - graph.center) / graph.scale
    view = None
    if pooling == "clip":
        distance, nearest = _exported_nearest(clip, graph.reference, k)
        score = distance.double()
        # Frames are compared with the nearest normal clip's mean, as localize does.
        normal = graph.reference[nearest] * graph.scale + graph.center
    elif pooling == "vector":
        standardised = (codes - graph.center) / graph.scale
        distances, nearest = _exported_nearest(standardised, graph.reference, k)
        score = aetk.networks.top_fraction_mean(distances, top_fraction)
        normal = graph.reference[nearest]
    else:
        distances, nearest = _exported_nearest(codes, graph.vector_reference, k)
        clip_view = _exported_nearest(clip, graph.reference, k)[0][0].double()
        scales = aetk.scoring.local_view_scales(
            clip, graph.held_out_clips, graph.held_out_views, graph.view_scales
        )[0]
        score, view = _exported_views(clip_view, distances, window, views, scales)
        normal = graph.vector_reference[nearest]
    if not localizes:
        return score if view is None else (score, view)
    contributions = (codes - normal).square()
    return aetk.networks.localized(
        score, contributions.sum(1).sqrt(), contributions.reshape(vectors.shape), view
    )


def _exported_nearest(
    queries: torch.Tensor, reference: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's mean distance to its k nearest references, and the nearest one's index."""
    distances = aetk.networks.pairwise_distances(queries, reference)
    closest = distances.topk(min(k, len(reference)), dim=1, largest=False)
    return closest.values.mean(1), closest.indices[:, 0]


def _exported_views(
    clip_view: torch.Tensor,
    distances: torch.Tensor,
    window: int,
    views: tuple[str, ...],
    view_scales: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The export graph's views of a clip: the largest scaled view (the score, ``[1]``), and
    which view it is with the vectors ``[first, last)`` of its moment (``[3]``; the views of the
    whole clip have none: first == last), as :meth:`KnnScorer.score_and_localize` finds them."""
    import torch

    event, start = aetk.scoring.window_maxima(distances, window)
    scores = torch.stack([clip_view, *_vector_views(distances, event, views)])
    whole = aetk.scoring.whole_clip_views(views)
    return aetk.networks.winning_view(scores, view_scales, start, distances, window, whole)


def _vector_views(
    distances: torch.Tensor, event: torch.Tensor, views: tuple[str, ...]
) -> list[torch.Tensor]:
    """The views after the clip view, in the order of ``views``, from a clip's vectors'
    ``distances`` to their nearest normal vectors and its most unusual moment's mean distance
    (``event``): ``frames``, the mean distance of all its vectors (each moment a little unlike
    normal); ``event``, that moment's; ``contrast``, that moment's divided by the median distance
    over the clip (how far it stands out of its own clip). float64 ``[]`` each, in torch
    operations that export; ``[clips]`` each for the columns of ``[vectors, clips]`` distances."""
    event = event.double()
    computed = {
        "frames": lambda: distances.double().mean(0),
        "event": lambda: event,
        "contrast": lambda: event / aetk.networks.lower_median(distances).clamp_min(1e-12),
    }
    return [computed[name]() for name in views[1:]]


class _NearestLocalization(aetk.Localization):
    """Each vector's distance to its nearest normal reference and each element's squared
    difference from it, worked out when first read: aetk often localizes only the clips found
    anomalous, and for the others a difference the size of the clip would be made for nothing
    (0.075 ms of a ten-second clip's 1.1 ms of scoring, on one thread)."""

    def __init__(
        self,
        codes: torch.Tensor,
        references: torch.Tensor,
        nearest: torch.Tensor,
        shape: torch.Size,
    ):
        # ``view`` and ``view_vectors`` keep the class's None until the views are combined.
        self._parts = (codes, references, nearest, shape)

    @functools.cached_property
    def _worked_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        codes, references, nearest, shape = self._parts
        return _nearest_contributions(codes, references[nearest], shape)

    @property
    def vector_scores(self) -> torch.Tensor:  # type: ignore[override]
        return self._worked_out[0]

    @property
    def contributions(self) -> torch.Tensor:  # type: ignore[override]
        return self._worked_out[1]


def _nearest_contributions(
    codes: torch.Tensor, nearest: torch.Tensor, shape: torch.Size
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each vector's distance to ``nearest`` (its nearest normal reference, row by row) and each
    element's squared difference from it, shaped as the clip: a localization's two parts."""
    contributions = (codes - nearest).square()
    return contributions.sum(1).sqrt(), contributions.view(shape)


def _row_minima(ranking: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's smallest value and the first column holding it, as ``min(1, keepdim=True)``.
    On the CPU through numpy: torch's minimum with indices is not vectorised there (0.22 ms for
    a ten-second clip's 313 × 1,024 rankings, against 0.04 ms for numpy's argmin and a gather),
    and the event search takes it for every frame."""
    import torch

    if ranking.device.type != "cpu":
        return ranking.min(1, keepdim=True)
    index = torch.from_numpy(ranking.detach().numpy().argmin(1)).unsqueeze(1)
    return ranking.gather(1, index), index


def _lowest(
    count: int,
    kept: list[torch.Tensor],
    priorities: list[torch.Tensor],
    owners: list[torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` vectors of lowest priority among those held, with their priorities and
    owners, in the order they came."""
    import torch

    vectors, ranks, clips = (torch.cat(parts) for parts in (kept, priorities, owners))
    if len(ranks) > count:
        lowest = ranks.topk(count, largest=False).indices.sort().values
        vectors, ranks, clips = vectors[lowest], ranks[lowest], clips[lowest]
    return vectors, ranks, clips


def _kmeans_plus_plus(vectors: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` rows of ``vectors`` drawn one by one, each with a probability proportional to
    its squared distance from the rows drawn before, so that no cluster starts without a
    centroid (k-means++, Arthur & Vassilvitskii, 2007); drawn among a seeded random sample of
    ``4 × count`` rows, which keeps the draw's cost independent of the data's size."""
    import torch

    generator = torch.Generator().manual_seed(0)
    candidates = vectors[torch.randperm(len(vectors), generator=generator)[: 4 * count]]
    squared_norms = candidates.square().sum(1)
    chosen = [int(torch.randint(len(candidates), (1,), generator=generator))]
    nearest = torch.full_like(squared_norms, float("inf"))
    for _ in range(count - 1):
        latest = candidates[chosen[-1]]
        distances = torch.addmv(squared_norms + latest.square().sum(), candidates, latest, alpha=-2)
        nearest = torch.minimum(nearest, distances.clamp_min(0))
        weights = nearest if float(nearest.sum()) > 0 else torch.ones_like(nearest)
        chosen.append(int(torch.multinomial(weights, 1, generator=generator)))
    return candidates[chosen].clone()


def _count_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


@aetk.hookimpl
def register_scorers(register):
    register(KnnScorer)
