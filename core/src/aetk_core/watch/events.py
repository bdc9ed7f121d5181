"""A watch's events in words, as ``aetk watch`` and ``aetk-runtime watch`` print them when not
asked for JSON Lines, and what a watch judges and what a stream's windows misread, said once as
it starts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aetk_core.describe import notes_in_brief
from aetk_core.recording import describe_warnings
from aetk_core.results import describe_view, printable
from aetk_core.verdict import window_length_warning


def where(event: dict[str, Any], source: str) -> str:
    """Where an event happened: a moment of the watched stream, or a file of the folder (and
    the machine of a fleet that judged it)."""
    when = event["time"]
    streamed = when is not None and event["source"] == source
    said = f"{when:.2f} s" if streamed else printable(str(event["source"]))
    if event.get("machine"):
        said += f" (machine {event['machine']})"
    return said


def warning_lines(event: dict[str, Any]) -> list[str]:
    """The warnings an event carries, each a line naming its source: what a refit's windows
    misread (``warning``), and the ways a scored recording does not match the detector's
    training recordings (``warnings``)."""
    said = [event["warning"]] if event.get("warning") else []
    if event["event"] == "scored" and event.get("warnings"):
        said.append(describe_warnings(event["warnings"]))
    return [f"{event['source']}: {text}" for text in said]


def describe_score(event: dict[str, Any], source: str) -> str:
    """A ``scored`` event: where, the score and threshold (said to be above it when it is: an
    alert starts only after ``--confirm`` such in a row), and how far behind real time."""
    behind = f", {event['lag']:.1f} s behind" if event.get("lag", 0) > 1 else ""
    above = "above the " if event.get("anomalous") else ""
    return (
        f"{where(event, source)}: score {event['score']:.4g} "
        f"({above}threshold {event['threshold']:.4g}){behind}"
    )


def describe_event(event: dict[str, Any], source: str) -> str:
    """Any other event in one line (its name, for an event of a kind this does not know). Only
    its own kind's line is worked out: another kind's may need fields this event lacks."""
    name, threshold = event["event"], event.get("threshold")
    raised_by = f", {describe_view(event['view'])}" if event.get("view") else ""
    said: dict[str, Callable[[], str]] = {
        "anomaly_start": lambda: (
            f"anomaly started at {where(event, source)} "
            f"(score {event.get('score', 0):.4g}{raised_by})"
        ),
        "anomaly_end": lambda: f"anomaly ended at {where(event, source)}",
        "error": lambda: f"error {printable(str(event['source']))}: {event.get('error')}",
        "recorded": lambda: f"recorded {event.get('path')}",
        "webhook_failed": lambda: f"webhook failed: {event.get('error')}",
        "mqtt_failed": lambda: f"mqtt failed: {event.get('error')}",
        "test_alert": lambda: "test alert sent to the outputs",
        "detector_reloaded": lambda: (
            f"judging with the detector refitted in {event.get('path')}"
            + (f" (threshold {threshold:.4g})" if threshold is not None else "")
            + (f", in windows of {event['window']:g} s" if event.get("window") else "")
        ),
    }
    line = said.get(name)
    return line() if line else name


def describe_test_alert(missed: Sequence[str]) -> str:
    """What ``--test-alert`` found, in one line: the outputs that did not take it, if any."""
    if missed:
        return f"the test alert did not reach: {', '.join(missed)}"
    return "the test alert reached every output"


def window_warnings(
    window: float | None, hop: float | None, clip_seconds: float | None, folder: bool = False
) -> list[str]:
    """What ``--window`` and ``--hop`` misread, said once as the watch starts: windows far from
    the length the threshold was calibrated on (``clip_seconds``; None: not known), and a
    stream's hop longer than the window (the sound between two windows is never heard; a
    ``folder``'s files are scored in consecutive windows, with no hop)."""
    said = [window_length_warning(window, clip_seconds)] if window else []
    length = window or clip_seconds
    if not folder and hop and length and hop > length:
        said.append(
            f"--hop {hop:g} is longer than the windows ({length:g} s): {hop - length:g} s of "
            f"every {hop:g} s are never heard; a fault there goes unseen"
        )
    return [warning for warning in said if warning]


def describe_watch(
    source: str,
    detector_file: Path | None,
    thresholds: Sequence[float],
    confirm: int,
    clear: int,
    notes: Mapping[str, str] | None = None,
) -> str:
    """What a watch judges, said once as it starts: ``Watching incoming with pump.aetk
    (threshold 1.307): an alert starts at 2 scores in a row above the threshold and ends at 2
    in a row below it``; a fleet's machines (``thresholds``: one each) with the range of their
    thresholds. ``notes``: why a threshold holds no false-alarm rate, by machine (one detector:
    its one note), said after the thresholds."""
    watched = "standard input" if source == "-" else source
    low, high = min(thresholds), max(thresholds)
    level = f"threshold {low:.4g}" if low == high else f"thresholds {low:.4g} to {high:.4g}"
    judged = f"{len(thresholds)} machines, {level}" if len(thresholds) > 1 else level
    detector = f" with {detector_file}" if detector_file else ""
    starts = "the first score" if confirm == 1 else f"{confirm} scores in a row"
    ends = "the first" if clear == 1 else f"{clear} in a row"
    noted = f"; {notes_in_brief(notes, len(thresholds))}" if notes else ""
    return (
        f"Watching {watched}{detector} ({judged}{noted}): an "
        f"alert starts at {starts} above the threshold and ends at {ends} below it"
    )
