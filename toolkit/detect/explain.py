"""Explaining a verdict: when in a recording, and in which frequency bands, it departs from normal.

The scorer localizes (per-vector scores, per-element contributions); the featurizer's layout
places vector elements on a (mel band × analysis frame) grid, and
:func:`aetk_core.localization.event_map` (the rule aetk-runtime applies too) finds the events
above the scorer's ``event_threshold_`` and the bands furthest above their normal contribution
(learned from validation clips in ``fit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from aetk_core.localization import Event, event_map
from aetk_core.results import view_of

from aetk.components.base import FeatureLayout, Localization

if TYPE_CHECKING:
    from aetk.detect.detector import Detector


@dataclass
class ErrorMap:
    """A clip's localization laid out on the (band × frame) grid."""

    layout: FeatureLayout
    contributions: np.ndarray  # [bands, frames]
    normal_band_contributions: np.ndarray  # [bands]
    vector_spans: list[tuple[float, float]]
    vector_scores: np.ndarray
    event_threshold: float
    events: list[Event]
    #: Which of the scorer's views gave the clip its score (``{"view": "clip"}``, or
    #: ``{"view": "event", "start": s, "end": e}`` in seconds); None for a one-view scorer.
    view: dict[str, Any] | None = None

    @property
    def frame_times(self) -> np.ndarray:
        return np.arange(self.contributions.shape[1]) * self.layout.frame_seconds


def error_map(
    detector: Detector,
    localization: Localization | None,
    anomalous: bool = False,
    band_limit_hz: float | None = None,
) -> ErrorMap | None:
    """Lay one whole clip's localization out on the (band × frame) grid and find its events;
    ``None`` if the featurizer has no layout or the scorer could not localize.

    An ``anomalous`` clip in which no vector stands out (the whole recording departs a little
    from normal, as a machine running at another speed does) gets one event spanning the clip.
    Bands reaching above ``band_limit_hz`` (the recording's Nyquist frequency) are never named:
    the recording cannot hold them, so their excess describes the recording chain.
    """
    layout = detector.featurizer.layout()
    if layout is None or localization is None:
        return None
    contributions = localization.contributions
    normal = getattr(detector.scorer, "normal_contributions_", None)
    if (
        normal is None
        or not _fits_layout(contributions, layout)
        or normal.shape != contributions.shape[1:]
    ):
        return None
    normal_bands = normal_band_contributions(normal)
    scores = localization.vector_scores.double().numpy()
    threshold = float(detector.scorer.event_threshold_)
    found = event_map(
        scores,
        contributions.double().numpy(),
        threshold,
        normal_bands,
        layout.band_edges_hz,
        layout.frame_seconds,
        layout.vector_step,
        anomalous,
        band_limit_hz,
    )
    view = localized_view(layout, localization)
    return ErrorMap(
        layout, found.grid, normal_bands, found.spans, scores, threshold, found.events, view
    )


def normal_band_contributions(normal: torch.Tensor) -> np.ndarray:
    """Each band's normal contribution, from a scorer's ``normal_contributions_``
    (``[channels, bands, frames]``): channels summed, frames averaged."""
    return normal.sum(0).mean(-1).double().numpy()


def localized_view(layout: FeatureLayout, localization: Localization) -> dict[str, Any] | None:
    """The view that gave a localized clip its score, its moment (vector indices) turned into
    seconds of the clip; None for a scorer of one view."""
    if localization.view is None:
        return None
    frames = localization.contributions.shape[-1]
    step = layout.vector_step
    return view_of(localization.view, localization.view_vectors, frames, layout.frame_seconds, step)


def _fits_layout(contributions: torch.Tensor, layout: FeatureLayout) -> bool:
    return contributions.dim() == 4 and contributions.shape[2] == len(layout.band_edges_hz)
