"""Building blocks for model plugins (import on use: this module imports torch)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class FlatAutoencoder(nn.Module):
    """Flattens each input vector, encodes and decodes it, and restores the input's shape.

    ``forward(x)`` returns ``(reconstruction, latent)`` as aetk's model contract asks.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder(x.flatten(1))
        return self.decoder(latent).view_as(x), latent


class CategoryEncoding(nn.Module):
    """Each row's categories ``[batch, columns]`` (value indices) as one vector, by the method
    text's rule: a column of fewer than 50 values one-hot, one of 50 or more a learned embedding
    of ``Column.width`` numbers (:mod:`aetk.fleet.categories`).

    :param categories: the fleet's categories as a conditioned model's ``categories_`` holds
        them (``Categories.as_dict()``).
    """

    def __init__(self, categories: list[dict[str, Any]]):
        from aetk.fleet.categories import ONE_HOT, Categories

        super().__init__()
        columns = Categories.from_dict(categories).columns
        self.columns = nn.ModuleList(
            nn.Embedding.from_pretrained(torch.eye(len(column.values)), freeze=True)
            if column.encoding == ONE_HOT
            else nn.Embedding(len(column.values), column.width)
            for column in columns
        )
        self.width = sum(column.width for column in columns)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.cat([column(codes[:, index]) for index, column in enumerate(self.columns)], 1)


class ConditionedAutoencoder(nn.Module):
    """A :class:`FlatAutoencoder` whose decoder also takes each vector's categories: one network
    for a fleet, which learns what each machine sounds like and reconstructs a vector as the
    machine it is told it comes from would sound (the ID-conditioned autoencoder). The encoder
    does not see the categories, so the code it gives is the same whatever the machine.

    ``forward(x, codes)`` returns ``(reconstruction, latent)``; the decoder's first layer takes
    ``latent_size + encoding.width`` numbers.
    """

    def __init__(self, encoding: CategoryEncoding, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoding = encoding
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder(x.flatten(1))
        conditioned = torch.cat([latent, self.encoding(codes)], 1)
        return self.decoder(conditioned).view_as(x), latent


class OwnCategoryLikelihood(nn.Module):
    """A classifier of a fleet's machines: ``forward(x, codes)`` returns the log-likelihood that
    each vector comes from the machine ``codes[:, 0]`` names ``[batch, 1]``, and the embedding the
    classifier tells machines apart by (its last hidden layer), as the latent code.

    :param body: flattened vectors → embeddings; ``head``: embeddings → one logit per machine.
    """

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.body(x.flatten(1))
        logits = self.head(embedding).float()
        return torch.log_softmax(logits, 1).gather(1, codes[:, :1]), embedding


class Bound(nn.Module):
    """A conditioned ``network`` fed the same ``condition`` (value indices, one per column) for
    every vector: ``forward(x)`` is ``network(x, condition for each row of x)``."""

    condition: torch.Tensor

    def __init__(self, network: nn.Module, condition: list[int]):
        super().__init__()
        self.network = network
        self.register_buffer("condition", torch.tensor(condition, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> Any:
        return self.network(x, self.condition[None].expand(x.shape[0], -1))


class Identity(nn.Module):
    """No parameters: the reconstruction is the input and the latent code the flattened input.

    With it, scorers work on the standardised features themselves (no training).
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x.flatten(1)


class Affine(nn.Module):
    """``(x - mean) / std`` with fixed statistics (``None``: the identity)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor | None, std: torch.Tensor | None):
        super().__init__()
        self.identity = mean is None or std is None
        self.register_buffer("mean", torch.zeros(1) if mean is None else mean.clone())
        self.register_buffer("std", torch.ones(1) if std is None else std.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else (x - self.mean) / self.std


class PooledVectorScores(nn.Module):
    """One clip's score for ``aetk export``: ``vector_scores(vectors, network(vectors))``, one
    score per vector, pooled by :func:`top_fraction_mean`; the network is a submodule, so its
    weights go with the graph.

    With ``per_element``, ``vector_scores`` gives each element's score instead (``[n, ...]``):
    a vector's score is their mean, and the module localizes (:func:`localized`), the elements'
    scores being their contributions."""

    def __init__(
        self,
        network: nn.Module,
        vector_scores: Callable[[torch.Tensor, Any], torch.Tensor],
        top_fraction: float,
        per_element: bool = False,
    ):
        super().__init__()
        self.network = network
        self.vector_scores = vector_scores
        self.top_fraction = top_fraction
        self.per_element = per_element

    def forward(self, vectors: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        scores = self.vector_scores(vectors, self.network(vectors))
        if not self.per_element:
            return top_fraction_mean(scores, self.top_fraction)
        vector_scores = scores.flatten(1).mean(1)
        return localized(top_fraction_mean(vector_scores, self.top_fraction), vector_scores, scores)


def localized(
    score: torch.Tensor,
    vector_scores: torch.Tensor,
    contributions: torch.Tensor,
    view: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """What an export module that localizes returns: ``(score, view, vector_scores,
    contributions)``, the view ``[0, 0, 0]`` for a scorer of one view (read only for a scorer
    of several)."""
    if view is None:
        view = torch.zeros(3, dtype=torch.long, device=score.device)
    return score, view, vector_scores, contributions


def winning_view(
    views: torch.Tensor,
    scales: torch.Tensor,
    start: torch.Tensor,
    per_vector: torch.Tensor,
    window: int,
    whole_clip: tuple[int, ...] = (0,),
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`aetk.scoring.combine_views` for one clip in an export graph: the largest of the
    clip's ``views`` (``[views]``, the whole clip's first) in their ``scales`` (``[1]``), and
    which view it is with the vectors ``[first, last)`` of its moment (``[3]``): ``window``
    vectors from ``start``, or all of a clip shorter than that (``per_vector``: any one value per
    vector of the clip); the views of the whole clip (indices ``whole_clip``) have no moment
    (first == last)."""
    scaled = views.double() / scales
    winner = scaled.argmax()
    width = torch.ones_like(per_vector, dtype=torch.long).sum().clamp(max=window)
    has_moment = torch.tensor([index not in whole_clip for index in range(len(views))])
    end = torch.where(has_moment[winner], start + width, start)
    return scaled[winner].reshape(1), torch.stack([winner, start, end])


def top_fraction_mean(values: torch.Tensor, fraction: float) -> torch.Tensor:
    """The mean of the largest ``ceil(fraction × n)`` of ``values`` (at least one), as ``[1]``;
    written with sorting and a mask so that it exports to ONNX with a dynamic ``n``."""
    ordered = torch.sort(values.double(), descending=True).values
    ranks = torch.cumsum(torch.ones_like(ordered), 0) - 1
    count = torch.clamp(torch.ceil(fraction * ranks.max().add(1)), min=1)
    mask = (ranks < count).double()
    return ((ordered * mask).sum() / mask.sum()).reshape(1)


def lower_median(values: torch.Tensor) -> torch.Tensor:
    """The lower median of ``values`` ``[n]`` (``torch.median``'s: the ``(n − 1) // 2``-th
    smallest), or of each column of ``[n, columns]``, as float64; written with sorting and a
    mask so that it exports to ONNX with a dynamic ``n``."""
    ordered = torch.sort(values.double(), dim=0).values
    ranks = torch.cumsum(torch.ones_like(ordered), 0) - 1
    middle = torch.floor(ranks.max() / 2)
    return (ordered * (ranks == middle).double()).sum(0)


def window_means(values: torch.Tensor, window: int) -> torch.Tensor:
    """The mean of every ``window`` consecutive ``values`` ``[n]`` (all of them, when there are
    fewer), or of each column of ``[n, columns]`` (series of one length, at once), as float64,
    at each window's first index; ``-inf`` where no whole window starts."""
    columns = values if values.dim() == 2 else values[:, None]
    means, whole = window_vector_means(columns, window)
    means = torch.where(whole[:, None], means, torch.full_like(means, -math.inf))
    return means if values.dim() == 2 else means[:, 0]


def window_vector_means(vectors: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of every ``window`` consecutive rows of ``vectors`` ``[n, d]`` (all rows, when
    there are fewer), as float64 at each window's first row, and a mask of the rows where a
    whole window starts. Written with a cumulative sum and gathers so that it exports to ONNX
    with a dynamic ``n``."""
    vectors = vectors.double()
    positions = torch.cumsum(torch.ones_like(vectors[:, 0]), 0) - 1
    count = positions.max().add(1)
    width = torch.clamp(count, max=float(window))
    sums = torch.cat([vectors.new_zeros(1, vectors.shape[1]), torch.cumsum(vectors, 0)])
    ends = torch.minimum(positions + width, count).long()
    return (sums[ends] - sums[:-1]) / width, positions + width <= count


def pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances ``[len(a), len(b)]`` from squared norms and one matrix product."""
    squared = a.square().sum(1, keepdim=True) + b.square().sum(1)[None] - 2 * a @ b.T
    return squared.clamp_min(0).sqrt()
