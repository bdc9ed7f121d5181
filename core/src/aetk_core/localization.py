"""When in a clip, and in which frequency bands, it departs from normal, as aetk and aetk-runtime
both find it from a scorer's localization: per-vector scores and per-element contributions.

Vectors are ``[channels, bands, frames]``: vector ``i`` starts at analysis frame
``i * vector_step`` (``vector_step`` 0: one vector covers the whole clip). Vectors whose score is
above the scorer's event threshold form events (runs less than :data:`EVENT_GAP_SECONDS` apart
are one); each event names the bands whose contribution is the largest multiple of their normal
contribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aetk_core.results import vector_span

#: Bands named per event, at most.
TOP_BANDS = 3
#: Runs of vectors above the event threshold less than this many seconds apart are one event: a
#: fault that lifts a machine's sound unevenly (a rub's strokes, a rattle, a worn bearing in
#: noise) crosses the threshold frame after frame with short lapses between, and reads as a few
#: stretches of the recording rather than dozens of 32-ms fragments.
EVENT_GAP_SECONDS = 0.5


def check_localize(localize: bool | str) -> None:
    """What to localize, as aetk and aetk-runtime take it: every file scored whole (True), none
    (False), or only those found anomalous (``"anomalous"``, what their tables show: the normal
    files' localization would cost time for nothing shown)."""
    if isinstance(localize, str) and localize != "anomalous":
        raise ValueError(f"localize must be True, False or 'anomalous', not {localize!r}")


@dataclass
class BandExcess:
    """A band whose contribution during an event is ``ratio`` times its normal one."""

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
    included): a result's segment."""

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


def to_grid(values: np.ndarray, step: int, average_channels: bool = False) -> np.ndarray:
    """``[vectors, channels, bands, frames]`` → ``[bands, clip frames]``: channels summed (or
    averaged), each clip frame the mean over the vectors that cover it. Where each vector is
    one frame of one channel, the grid is a view of ``values`` as float64 (copying the
    transposition would cost more than the rest of a clip's events)."""
    values = np.asarray(values, dtype=np.float64)
    if values.shape[1] == 1:  # one channel: its sum and its mean are itself
        per_vector = values[:, 0]  # [vectors, bands, frames]
    else:
        per_vector = values.mean(1) if average_channels else values.sum(1)
    count, bands, width = per_vector.shape
    if step == 0:
        return per_vector.mean(0)
    if width == 1 and step == 1:  # each vector one frame (the default's): no frame shared
        return per_vector[:, :, 0].T
    frames = (count - 1) * step + width
    sums = np.zeros((bands, frames))
    covered = np.zeros(frames)
    for offset in range(width):
        # The vectors' frames at one offset: every step-th frame from it, none twice.
        at = slice(offset, offset + (count - 1) * step + 1, step)
        sums[:, at] += per_vector[:, :, offset].T
        covered[at] += 1
    return sums / np.maximum(covered, 1)


def vector_spans(
    count: int, frames: int, frame_seconds: float, vector_step: int
) -> list[tuple[float, float]]:
    """Where each of a clip's ``count`` vectors of ``frames`` frames lies (seconds): what
    :func:`aetk_core.results.vector_span` gives each, computed for all at once."""
    if not vector_step:
        return [vector_span(0, frames, frame_seconds, vector_step)]
    first = np.arange(count) * vector_step
    starts, ends = (first * frame_seconds).tolist(), ((first + frames) * frame_seconds).tolist()
    return list(zip(starts, ends, strict=True))


def find_events(
    spans: Sequence[tuple[float, float]],
    scores: np.ndarray,
    threshold: float,
    anomalous: bool,
) -> list[Event]:
    """The runs of vectors scoring above ``threshold``; an ``anomalous`` clip with none gets one
    event spanning the clip (``whole_clip``)."""
    events: list[Event] = []
    if len(spans) != len(scores):
        raise ValueError(f"{len(spans)} spans for {len(scores)} vector scores")
    # Only the vectors not at or below the threshold (a NaN score counts as above it).
    for index in np.flatnonzero(~(np.asarray(scores) <= threshold)).tolist():
        (start, end), score = spans[index], scores[index]
        if events and start <= events[-1].end + EVENT_GAP_SECONDS + 1e-9:
            events[-1].end = max(events[-1].end, end)
            events[-1].score = max(events[-1].score, float(score))
        else:
            events.append(Event(start, end, float(score)))
    if anomalous and not events:
        events.append(Event(spans[0][0], spans[-1][1], float(np.max(scores)), whole_clip=True))
    return events


def name_bands(
    events: list[Event],
    grid: np.ndarray,
    normal_bands: np.ndarray,
    band_edges_hz: Sequence[Sequence[float]],
    frame_seconds: float,
    band_limit_hz: float | None = None,
) -> None:
    """Give each event the bands furthest above their normal contribution (``grid``: the clip's
    contributions ``[bands, frames]``; ``normal_bands``: each band's normal contribution).
    Bands reaching above ``band_limit_hz`` (the recording's Nyquist frequency) are never named:
    the recording cannot hold them, so their excess describes the recording chain."""
    if not events:
        return
    recordable = np.array(
        [band_limit_hz is None or high <= band_limit_hz for _, high in band_edges_hz]
    )
    for event in events:
        first = round(event.start / frame_seconds)
        last = max(first + 1, round(event.end / frame_seconds))
        during = grid[:, first:last].mean(1)
        ratios = np.where(recordable, during / np.maximum(normal_bands, 1e-12), 0.0)
        for band in np.argsort(-ratios)[:TOP_BANDS]:
            if ratios[band] > 1.0:
                low, high = band_edges_hz[band]
                event.bands.append(BandExcess(float(low), float(high), float(ratios[band])))


@dataclass
class EventMap:
    """One clip's localization on the (band × frame) grid, and its events."""

    #: ``[bands, frames]``: the contributions, channels summed, averaged over covering vectors.
    grid: np.ndarray
    spans: list[tuple[float, float]]
    events: list[Event]


def event_map(
    vector_scores: np.ndarray,
    contributions: np.ndarray,
    threshold: float,
    normal_bands: np.ndarray,
    band_edges_hz: Sequence[Sequence[float]],
    frame_seconds: float,
    vector_step: int,
    anomalous: bool = False,
    band_limit_hz: float | None = None,
) -> EventMap:
    """A clip's events with their bands, from its vectors' scores and their contributions
    (``[vectors, channels, bands, frames]``) against the scorer's event ``threshold``."""
    contributions = np.asarray(contributions, dtype=np.float64)
    scores = np.asarray(vector_scores, dtype=np.float64).reshape(-1)
    grid = to_grid(contributions, vector_step)
    spans = vector_spans(len(contributions), contributions.shape[-1], frame_seconds, vector_step)
    events = find_events(spans, scores, threshold, anomalous)
    name_bands(events, grid, normal_bands, band_edges_hz, frame_seconds, band_limit_hz)
    return EventMap(grid, spans, events)


def _hz(value: float) -> str:
    return f"{value / 1000:.1f} kHz" if value >= 1000 else f"{value:.0f} Hz"
