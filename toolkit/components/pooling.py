"""Helpers for scorers: batching clips, pooling a clip's vector scores into one score (the mean,
the mean of the highest share, or the most unusual moment), combining a scorer's views, and
splitting per-clip ``(score, localization)`` pairs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from aetk.components.base import Localization
from aetk.components.networks import pairwise_distances, window_means
from aetk.errors import ConfigError


def check_top_fraction(top_fraction: float) -> None:
    if (
        isinstance(top_fraction, bool)
        or not isinstance(top_fraction, (int, float))
        or not 0 < top_fraction <= 1
    ):
        raise ConfigError(f"top_fraction must lie in (0, 1], not {top_fraction!r}")


def check_tail_weight(weight: float) -> None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ConfigError(f"tail_weight must lie in [0, 1], not {weight!r}")


def pool(
    vector_scores: torch.Tensor, lengths: Sequence[int], top_fraction: float = 1.0
) -> np.ndarray:
    """One float64 score per clip: the mean of the highest ``top_fraction`` of its vector scores
    (1.0: the mean of all of them). ``lengths`` are the clips' vector counts, in order."""
    check_top_fraction(top_fraction)
    scores = []
    for part in vector_scores.to(torch.float64).split(list(lengths)):
        if top_fraction < 1.0:
            count = max(1, int(np.ceil(top_fraction * len(part))))
            part = part.topk(count).values
        scores.append(part.mean())
    return torch.stack(scores).numpy() if scores else np.empty(0)


def window_maxima(vector_scores: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip's most unusual moment: the highest mean of ``window`` consecutive vector scores
    (the whole clip's mean when it has fewer vectors), and the index of the window's first
    vector. Short events stand out in it where a clip's average would hide them. Scores
    ``[n, clips]`` give each column's (clips of one length, at once)."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ConfigError(f"an event window must hold at least one vector, not {window!r}")
    means = window_means(vector_scores, window)
    start = means.argmax(dim=0, keepdim=True)
    return means.gather(0, start)[0], start[0]


def view_scales(held_out: np.ndarray) -> np.ndarray:
    """Each view's scale, ``held_out`` being ``[clips, views]`` scores of normal clips the scorer
    did not learn from: the median of the view's scores, so that every view's score becomes
    "times as far from normal as a normal clip typically is" (floored above zero)."""
    held_out = np.asarray(held_out, dtype=np.float64)
    medians = np.median(held_out, axis=0)
    floor = 1e-9 * max(float(np.abs(held_out).max(initial=0.0)), 1e-12)
    return np.maximum(medians, floor)


#: A view's *rare* normal score: the share of held-out normal clips at or below it (the default
#: threshold's false-alarm rate of 10 % puts it where a normal clip starts to be flagged).
VIEW_TAIL_QUANTILE = 0.9


def view_tails(held_out_ratios: np.ndarray, weight: float) -> np.ndarray:
    """Each view's tail factor ``[views]``, ``held_out_ratios`` being ``[clips, views]`` held-out
    normal scores already divided by their (local) scales: the :data:`VIEW_TAIL_QUANTILE` of
    each view's ratios, never below 1, to the power ``weight``.

    A view whose normal scores spread widely (a noisy machine's average spectrum) passes its
    typical scale far more often than one whose normal scores barely move (a steady machine's
    moments), so the largest of the views' ratios is mostly the widest view's, and a fault that
    only a narrow view hears is drowned. Dividing each view further by its tail factor moves its
    unit from its typical normal score (``weight`` 0) towards its rare one (1: a normal clip then
    passes 1 about equally often in every view); 0.5 stops at their geometric mean, and counts
    half of a tail estimated from few clips. Never below 1: no view becomes stricter than its
    typical normal score."""
    check_tail_weight(weight)
    ratios = np.asarray(held_out_ratios, dtype=np.float64)
    if weight == 0 or len(ratios) == 0:
        return np.ones(ratios.shape[1])
    tails = np.maximum(np.quantile(ratios, VIEW_TAIL_QUANTILE, axis=0), 1.0)
    return tails**weight


def local_neighbours(held_out_clips: int) -> int:
    """How many held-out normal clips a clip's local scales are drawn from
    (:func:`local_view_scales`): a quarter of them, at least one."""
    return max(1, -(-held_out_clips // 4))


def local_view_scales(
    clips: torch.Tensor,
    held_out_clips: torch.Tensor,
    held_out_views: torch.Tensor,
    scales: torch.Tensor,
    leave_out_self: bool = False,
) -> torch.Tensor:
    """Each clip's view scales, ``[clips, views]`` float64, from the normal clips most like it:
    the median ``held_out_views`` (``[held-out clips, views]`` scores) of the
    :func:`local_neighbours` held-out clips nearest to it (``clips`` and ``held_out_clips`` are
    ``[n, dim]`` embeddings), never below the views' ``scales`` (:func:`view_scales`);
    ``leave_out_self``: the clips are the held-out clips themselves, none its own neighbour.
    Written in torch operations that export to ONNX, so an export graph draws a clip's scales
    with this same function.

    Normal sound varies more in some places than in others (another operating condition,
    another machine of a fleet, a noisier hour); a clip is judged against how far normal clips
    like it lie from the other normal clips (the idea of the local outlier factor), so a clip
    where normal sound is loose is not taken for a fault. Never stricter than a typical normal
    clip: where normal clips are tight (neighbouring cuts of one recording), a scale below the
    views' own would turn small differences into large ratios."""
    neighbours = local_neighbours(len(held_out_views))
    distances = pairwise_distances(clips, held_out_clips)
    if leave_out_self:
        distances.fill_diagonal_(float("inf"))
    nearest = distances.topk(neighbours, dim=1, largest=False).indices
    ordered = torch.sort(held_out_views.double()[nearest], dim=1).values
    median = (ordered[:, (neighbours - 1) // 2] + ordered[:, neighbours // 2]) / 2
    return torch.maximum(median, scales.double())


#: Views that judge the whole clip (its average, its frames on average): the one that gives a
#: clip its score names no moment, where the others name their ``[first, last)`` vectors.
WHOLE_CLIP_VIEWS = ("clip", "frames")


def whole_clip_views(views: Sequence[str]) -> tuple[int, ...]:
    """The indices of ``views`` that judge the whole clip (:data:`WHOLE_CLIP_VIEWS`), as
    :func:`aetk.networks.winning_view` takes them."""
    return tuple(index for index, name in enumerate(views) if name in WHOLE_CLIP_VIEWS)


def combine_views(view_scores: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One score per clip from ``[clips, views]`` scores: the largest of the views' scores in
    their scales (``[views]`` from :func:`view_scales`, or each clip's own ``[clips, views]``
    from :func:`local_view_scales`), and which view gave it. A clip is as anomalous as the
    view that finds it furthest from normal; a view whose scores barely move on a machine (an
    event view on a steady hum) stays near 1 and does not drown the others."""
    ratios = np.asarray(view_scores, dtype=np.float64) / np.asarray(scales, dtype=np.float64)
    return ratios.max(axis=1), ratios.argmax(axis=1)


def clip_batches(
    clips: Iterable[torch.Tensor], max_vectors: int = 65536
) -> Iterator[list[torch.Tensor]]:
    """Consecutive groups of clips holding at most ``max_vectors`` vectors together (a longer
    clip is a group of its own), so a scorer can work on many clips at once in bounded memory."""
    group: list[torch.Tensor] = []
    count = 0
    for clip in clips:
        if group and count + len(clip) > max_vectors:
            yield group
            group, count = [], 0
        group.append(clip)
        count += len(clip)
    if group:
        yield group


def scores_and_localizations(
    pairs: Iterable[tuple[float, Localization | None]],
) -> tuple[np.ndarray, list[Localization | None]]:
    """``(score, localization)`` of each clip, as ``Scorer.score_and_localize`` returns them:
    the float64 scores and the list of localizations."""
    pairs = list(pairs)
    scores = np.array([score for score, _ in pairs], dtype=np.float64)
    return scores, [localization for _, localization in pairs]
