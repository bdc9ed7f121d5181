"""The result of scoring one file: the same fields from ``aetk score --json``, the Ray engine
and ``aetk-runtime``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class ScoreResult:
    """The verdict on one file; ``error`` is set (and ``score`` is None) when it failed.

    ``segments`` lists the events, each ``{"start", "end", "score"}`` in seconds (``[]``: none).
    Scored whole, they are the runs of vectors the scorer localizes above its event threshold,
    each with the ``bands`` (``low_hz``, ``high_hz``, ``ratio`` to their normal error) that
    contribute most; ``None`` when the scorer or featurizer cannot localize, or localization was
    not asked for. Scored in windows, ``score`` is the highest window score and the events are
    runs of windows above the threshold.

    ``view``: for a scorer that judges clips through several views, the one that gave the score:
    ``{"view": "clip"}`` (the whole clip's average) or ``{"view": "event", "start", "end"}``
    (its most unusual moment, in seconds); scored in windows, the view of its worst window, its
    moment in seconds of the file; ``None`` otherwise, or when not localized.

    ``warnings``: each way the recording does not match the detector's training recordings
    (``{"name", "message"}``, names in :data:`aetk_core.recording.NAMES`); ``[]``: none found;
    None: not checked (aetk-runtime with a detector exported before the training recordings'
    norms were carried). aetk-runtime localizes events and gives ``view`` as aetk does, from
    the exported graph, where the exported scorer localizes (``segments`` None otherwise).

    ``threshold`` is None only for a fleet's recording whose machine could not be told (its
    ``error`` says why).

    ``machine``: the fleet machine whose detector judged the recording (None: not a fleet).
    ``conditions``: the recording's further categories in the fleet (operating conditions: a
    machines table's further columns, a DCASE name's domain and attributes), by column; ``{}``
    when the fleet has none; None: not a fleet.
    """

    path: str
    score: float | None
    threshold: float | None
    anomalous: bool | None
    error: str | None = None
    segments: list[dict[str, Any]] | None = None
    view: dict[str, Any] | None = None
    warnings: list[dict[str, str]] | None = field(default_factory=list)
    machine: str | None = None
    conditions: dict[str, str] | None = None

    def verdict(self) -> str:
        """The verdict as a table says it: ``error: <reason>``, ``ANOMALY`` or ``normal``."""
        if self.error:
            return f"error: {self.error}"
        return "ANOMALY" if self.anomalous else "normal"

    def as_dict(self) -> dict[str, Any]:
        """Every field by name, in order: the keys of ``aetk score --json``."""
        return {name: getattr(self, name) for name in KEYS}


#: The keys of a result row, in order (``aetk score --json``, the Ray engine's columns).
KEYS = tuple(item.name for item in fields(ScoreResult))


def vector_span(
    index: int, frames: int, frame_seconds: float, vector_step: int
) -> tuple[float, float]:
    """Where vector ``index`` of a clip lies (seconds): it starts at analysis frame
    ``index * vector_step`` and covers ``frames`` frames of ``frame_seconds`` (``vector_step``
    0: one vector covers the whole clip)."""
    if vector_step == 0:
        return 0.0, frames * frame_seconds
    first = index * vector_step
    return first * frame_seconds, (first + frames) * frame_seconds


def view_of(
    name: str, moment: tuple[int, int] | None, frames: int, frame_seconds: float, vector_step: int
) -> dict[str, Any]:
    """A result's ``view``: the view's name, and for a view of a moment (``moment``: vectors
    ``[first, last)``; None for the whole clip) when the moment starts and ends (seconds)."""
    if moment is None:
        return {"view": name}
    first, last = moment
    return {
        "view": name,
        "start": round(vector_span(first, frames, frame_seconds, vector_step)[0], 3),
        "end": round(vector_span(max(first, last - 1), frames, frame_seconds, vector_step)[1], 3),
    }


def view_from(view: dict[str, Any] | None, start: float) -> dict[str, Any] | None:
    """A window's ``view`` with its moment in seconds of the file or stream the window begins
    ``start`` seconds into, rather than of the window."""
    if not view or "start" not in view:
        return view
    return {
        **view,
        "start": round(start + view["start"], 3),
        "end": round(start + view["end"], 3),
    }


#: How aetk's fit, score, report and watch name the built-in views.
VIEW_NAMES = {
    "clip": "clip average",
    "frames": "frames on average",
    "event": "most unusual moment",
    "contrast": "moment against the rest of its clip",
}
#: The same, for the view that raised one clip's score (with its moment's time after it).
RAISED_BY = {
    "clip": "clip average",
    "frames": "frames on average",
    "event": "event",
    "contrast": "stand-out moment",
}


def describe_view(view: dict[str, Any] | None) -> str:
    """Which view gave a clip its score, readably: "event at 3.20–3.33 s", "stand-out moment
    at 1.02–1.15 s" or "clip average"; empty for a one-view scorer."""
    if not view:
        return ""
    name = RAISED_BY.get(view["view"], str(view["view"]))
    if "start" in view:
        return f"{name} at {view['start']:.2f}–{view['end']:.2f} s"
    return name


_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {
    9: "\\t",
    10: "\\n",
    13: "\\r",
}


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\n``, ``\\t``, ``\\x1b``):
    a tab or a line break in a file's name would split the table row or the line quoting it."""
    return text.translate(_CONTROL_ESCAPES)


def table(results: Sequence[ScoreResult]) -> list[tuple[str, ...]]:
    """The table ``aetk score`` and ``aetk-runtime score`` print, as text cells: a header, then
    a row per result: file, the machine that judged it (a fleet's results only: each machine
    has its own threshold), score, threshold, verdict, and the ``raised by`` (for an anomaly,
    the view that gave its score: :func:`describe_view`), ``events`` (three, in the order of
    :func:`events_to_hear`) and ``recording`` (the warnings' names) columns when any
    result has them. Names are :func:`printable`: one result, one row."""
    with_views = any(result.view and result.anomalous for result in results)
    with_events = any(result.segments for result in results)
    with_warnings = any(result.warnings for result in results)
    with_machines = any(result.machine for result in results)
    header: tuple[str, ...] = ("file",) + (("machine",) if with_machines else ())
    header += ("score", "threshold", "verdict")
    header += ("raised by",) if with_views else ()
    header += (("events",) if with_events else ()) + (("recording",) if with_warnings else ())
    rows = [header]
    for result in results:
        score = "-" if result.score is None else f"{result.score:.5g}"
        threshold = "-" if result.threshold is None else f"{result.threshold:.5g}"
        row: tuple[str, ...] = (printable(result.path),)
        row += (printable(result.machine or ""),) if with_machines else ()
        row += (score, threshold, result.verdict())
        if with_views:
            row += (describe_view(result.view) if result.anomalous else "",)
        if with_events:
            row += (_events_cell(events_to_hear(result.segments or [], result.view)),)
        if with_warnings:
            row += (", ".join(warning["name"] for warning in result.warnings or []),)
        rows.append(row)
    return rows


def from_common_folder(rows: list[tuple[str, ...]]) -> tuple[str | None, list[tuple[str, ...]]]:
    """A table's rows (:func:`table`, header first) for a terminal: when every file lies under
    one folder other than the root, that folder, and the rows with each file shown from it (so
    that the file column stays narrow); otherwise None and the rows as they were."""
    header, *cells = rows
    try:
        folder = os.path.commonpath([os.path.dirname(row[0]) for row in cells])
    except ValueError:  # no rows, or absolute and relative paths mixed
        return None, rows
    if folder in ("", os.sep):
        return None, rows
    return folder, [header, *((os.path.relpath(row[0], folder), *row[1:]) for row in cells)]


def events_to_hear(
    segments: Sequence[dict[str, Any]], view: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """A result's events in the order worth hearing them: first any holding the moment that
    raised its score (``view``'s, where a view of a moment gave the score: what the ``raised
    by`` column names), then the strongest. A short fault made of sounds that are each normal
    (a valve's clicks come too close together) lifts a moment's frames together rather than
    one frame above all others, so the strongest single frame can lie elsewhere in the clip."""
    moment = view if view and "start" in view else None

    def holds_moment(event: dict[str, Any]) -> bool:
        return (
            moment is not None and event["start"] < moment["end"] and event["end"] > moment["start"]
        )

    return sorted(segments, key=lambda event: (not holds_moment(event), -event["score"]))


def _events_cell(events: Sequence[dict[str, Any]], shown: int = 3) -> str:
    # A long recording can hold dozens of events: the first few are the ones worth hearing.
    cells = [f"{event['start']:.2f}–{event['end']:.2f} s" for event in events[:shown]]
    more = len(events) - len(cells)
    return ", ".join(cells) + (f" (+{more} more)" if more else "")


def tally(results: Sequence[ScoreResult]) -> str:
    """The line under the table: ``12 files: 2 anomalous, 9 normal, 1 failed``."""
    anomalous = sum(bool(result.anomalous) for result in results)
    failed = sum(bool(result.error) for result in results)
    normal = len(results) - anomalous - failed
    files = "1 file" if len(results) == 1 else f"{len(results)} files"
    return f"{files}: {anomalous} anomalous, {normal} normal" + (
        f", {failed} failed" if failed else ""
    )
