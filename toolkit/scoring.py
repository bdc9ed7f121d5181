"""Helpers for scorers: batching clips, pooling a clip's vector scores into one score, and
splitting per-clip ``(score, localization)`` pairs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from aetk.components.base import Localization
from aetk.errors import ConfigError


def check_top_fraction(top_fraction: float) -> None:
    if (
        isinstance(top_fraction, bool)
        or not isinstance(top_fraction, (int, float))
        or not 0 < top_fraction <= 1
    ):
        raise ConfigError(f"top_fraction must lie in (0, 1], not {top_fraction!r}")


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
