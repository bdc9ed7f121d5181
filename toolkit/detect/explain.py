"""Explaining a verdict: when in a recording, and in which frequency bands, it departs from normal.

The scorer localizes (per-vector scores, per-element contributions); the featurizer's layout
places vector elements on a (mel band × analysis frame) grid. Vectors whose score is above the
scorer's ``event_threshold_`` form events (runs less than ``EVENT_GAP_SECONDS`` apart are one);
each event names the bands whose contribution is the largest multiple of their normal
contribution (learned from validation clips in ``fit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from aetk_core.results import vector_span, view_of

from aetk.components.base import FeatureLayout, Localization

if TYPE_CHECKING:
    from aetk.detect.detector import Detector

TOP_BANDS = 3
#: Runs of vectors above the event threshold less than this many seconds apart are one event: a
#: fault that lifts a machine's sound unevenly (a rub's strokes, a rattle, a worn bearing in
#: noise) crosses the threshold frame after frame with short lapses between, and reads as a few
#: stretches of the recording rather than dozens of 32-ms fragments.
EVENT_GAP_SECONDS = 0.5


@dataclass
class BandExcess:
    """A mel band whose contribution during an event is ``ratio`` times its normal one."""

    low_hz: float
    high_hz: float
    ratio: float

    def as_dict(self) -> dict[str, float]:
        return {
            "low_hz": round(self.low_hz, 1),
            "high_hz": round(self.high_hz, 1),
            "ratio": round(self.ratio, 2),
        }

    def describe(self) -> str:
        return f"{_hz(self.low_hz)}–{_hz(self.high_hz)} ×{self.ratio:.1f}"


@dataclass
class Event:
    """A run of vectors above the event threshold (lapses shorter than ``EVENT_GAP_SECONDS``
    included)."""

    start: float
    end: float
    score: float
    bands: list[BandExcess] = field(default_factory=list)
    #: An anomalous clip in which no vector stands out: the whole clip departs a little.
    whole_clip: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "score": self.score,
            "bands": [band.as_dict() for band in self.bands],
        }

    def describe(self) -> str:
        bands = ", ".join(band.describe() for band in self.bands)
        return f"{self.start:.2f}–{self.end:.2f} s" + (f": {bands} normal error" if bands else "")


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
    grid = to_grid(contributions, layout.vector_step)
    normal_bands = normal.sum(0).mean(-1).double().numpy()
    spans = _vector_spans(len(contributions), contributions.shape[-1], layout)
    scores = localization.vector_scores.double().numpy()
    threshold = float(detector.scorer.event_threshold_)
    events = _events(spans, scores, threshold, anomalous, grid, normal_bands, layout)
    _name_bands(events, grid, normal_bands, layout, band_limit_hz)
    view = _view(localization, contributions.shape[-1], layout)
    return ErrorMap(layout, grid, normal_bands, spans, scores, threshold, events, view)


def _view(localization: Localization, frames: int, layout: FeatureLayout) -> dict[str, Any] | None:
    """The localization's view, its moment (vector indices) turned into seconds."""
    if localization.view is None:
        return None
    step = layout.vector_step
    return view_of(localization.view, localization.view_vectors, frames, layout.frame_seconds, step)


def _fits_layout(contributions: torch.Tensor, layout: FeatureLayout) -> bool:
    return contributions.dim() == 4 and contributions.shape[2] == len(layout.band_edges_hz)


def to_grid(values: torch.Tensor, step: int, average_channels: bool = False) -> np.ndarray:
    """``[vectors, channels, bands, frames]`` → ``[bands, clip frames]``: channels summed (or
    averaged), each clip frame the mean over the vectors that cover it."""
    values = values.double()
    per_vector = values.mean(1) if average_channels else values.sum(1)  # [vectors, bands, frames]
    count, bands, width = per_vector.shape
    if step == 0:
        return per_vector.mean(0).numpy()
    frames = (count - 1) * step + width
    sums = torch.zeros(bands, frames, dtype=torch.float64)
    covered = torch.zeros(frames, dtype=torch.float64)
    starts = torch.arange(count) * step
    for offset in range(width):
        sums.index_add_(1, starts + offset, per_vector[:, :, offset].T)
        covered.index_add_(0, starts + offset, torch.ones(count, dtype=torch.float64))
    return (sums / covered.clamp_min(1)).numpy()


def _vector_spans(count: int, width: int, layout: FeatureLayout) -> list[tuple[float, float]]:
    step = layout.vector_step
    return [vector_span(i, width, layout.frame_seconds, step) for i in range(count if step else 1)]


def _events(
    spans: list[tuple[float, float]],
    scores: np.ndarray,
    threshold: float,
    anomalous: bool,
    grid: np.ndarray,
    normal_bands: np.ndarray,
    layout: FeatureLayout,
) -> list[Event]:
    events: list[Event] = []
    for (start, end), score in zip(spans, scores, strict=True):
        if score <= threshold:
            continue
        if events and start <= events[-1].end + EVENT_GAP_SECONDS + 1e-9:
            events[-1].end = max(events[-1].end, end)
            events[-1].score = max(events[-1].score, float(score))
        else:
            events.append(Event(start, end, float(score)))
    if anomalous and not events:
        events.append(Event(spans[0][0], spans[-1][1], float(scores.max()), whole_clip=True))
    return events


def _name_bands(
    events: list[Event],
    grid: np.ndarray,
    normal_bands: np.ndarray,
    layout: FeatureLayout,
    band_limit_hz: float | None,
) -> None:
    """Each event's bands furthest above their normal contribution, below the band limit."""
    recordable = np.array(
        [band_limit_hz is None or high <= band_limit_hz for _, high in layout.band_edges_hz]
    )
    for event in events:
        first = round(event.start / layout.frame_seconds)
        last = max(first + 1, round(event.end / layout.frame_seconds))
        during = grid[:, first:last].mean(1)
        ratios = np.where(recordable, during / np.maximum(normal_bands, 1e-12), 0.0)
        for band in np.argsort(-ratios)[:TOP_BANDS]:
            if ratios[band] > 1.0:
                low, high = layout.band_edges_hz[band]
                event.bands.append(BandExcess(low, high, float(ratios[band])))


#: How fit, score and the report name the built-in views.
VIEW_NAMES = {
    "clip": "clip average",
    "event": "most unusual moment",
    "contrast": "moment against the rest of its clip",
}
#: The same, for the view that raised one clip's score (with its moment's time after it).
RAISED_BY = {"clip": "clip average", "event": "event", "contrast": "stand-out moment"}


def describe_view(view: dict[str, Any] | None) -> str:
    """Which view gave a clip its score, readably: "event at 3.20–3.33 s", "stand-out moment
    at 1.02–1.15 s" or "clip average"; empty for a one-view scorer."""
    if not view:
        return ""
    name = RAISED_BY.get(view["view"], str(view["view"]))
    if "start" in view:
        return f"{name} at {view['start']:.2f}–{view['end']:.2f} s"
    return name


def describe_views(views: list[dict[str, Any]] | None) -> str:
    """A detector's views and their scales, as fit and the report print them."""
    if not views:
        return ""
    return (
        "views: "
        + ", ".join(
            f"{VIEW_NAMES.get(view['view'], view['view'])} (normal ≈ {view['scale']:.4g})"
            for view in views
        )
        + f"; a clip scores the {'larger' if len(views) == 2 else 'largest'} in units of its normal"
    )


def _hz(value: float) -> str:
    return f"{value / 1000:.1f} kHz" if value >= 1000 else f"{value:.0f} Hz"
