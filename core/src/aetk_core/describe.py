"""A detector in words, from its summary (the dict ``aetk fit --json`` prints, which an exported
detector carries too): what ``aetk fit`` and ``aetk info`` print, and ``aetk-runtime info``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aetk_core.results import VIEW_NAMES
from aetk_core.verdict import percent, scores_needed


def describe_threshold(calibration: dict[str, Any]) -> str:
    """How a threshold was set, from its calibration summary (``normal_scores``: their count):
    ``conformal for a 10% false-alarm rate, from 12 held-out normal scores``; with too few of
    them for the rate (the fit's warning), that the threshold is the largest of them, which
    holds no rate."""
    rate = calibration["target_false_alarm_rate"]
    target = f" for a {percent(rate)} false-alarm rate" if rate is not None else ""
    scores = calibration["normal_scores"]
    largest = ": too few for that rate, the largest of them" if too_few_scores(calibration) else ""
    return f"{calibration['method']}{target}, from {scores} held-out normal scores{largest}"


def too_few_scores(calibration: dict[str, Any]) -> bool:
    """Whether a conformal threshold rests on fewer held-out normal scores than its false-alarm
    rate needs, so that it is the largest of them and holds no rate (the fit's warning)."""
    rate = calibration["target_false_alarm_rate"]
    conformal = calibration["method"] == "conformal" and rate is not None
    return conformal and calibration["normal_scores"] < scores_needed(rate)


def threshold_caveat(calibration: dict[str, Any]) -> str:
    """`` (the largest of 8 held-out normal scores: too few for a 10% false-alarm rate)`` where
    :func:`too_few_scores`, else empty: what a line that gives a threshold in a few words (a
    fleet's machine, a cross-validation fold) appends to it."""
    note = too_few_note(calibration)
    return f" ({note})" if note else ""


def too_few_note(calibration: dict[str, Any]) -> str:
    """``the largest of 8 held-out normal scores: too few for a 10% false-alarm rate`` where
    :func:`too_few_scores`, else empty."""
    if not too_few_scores(calibration):
        return ""
    return (
        f"the largest of {calibration['normal_scores']} held-out normal scores: too few for a "
        f"{percent(calibration['target_false_alarm_rate'])} false-alarm rate"
    )


#: What a fleet's thresholds that hold no false-alarm rate, each for its own reason, share.
TOO_FEW = "the largest of too few held-out normal scores for the false-alarm rate"


def notes_in_brief(notes: Mapping[str, str], judges: int) -> str:
    """The notes of thresholds that hold no false-alarm rate (:func:`too_few_note`, by machine;
    one detector: its one note), out of ``judges`` thresholds, in a few words: the note itself
    where every threshold has that one, ``each …`` where every threshold has one, else the
    machines whose thresholds do."""
    if len(notes) == judges and len(set(notes.values())) == 1:
        return next(iter(notes.values()))
    if len(notes) == judges:
        return f"each {TOO_FEW}"
    return f"{_listed(notes)}: {TOO_FEW}"


def verdicts_note(notes: Mapping[str, str]) -> str | None:
    """What ``aetk score`` and ``aetk-runtime score`` warn once they have judged recordings at
    thresholds that hold no false-alarm rate (``notes``: by the machines judged, ``""`` for one
    detector; None where there are none): the threshold and why, and what to do about it."""
    if not notes:
        return None
    advice = "; record more normal recordings and refit, or give --threshold"
    if len(notes) == 1:
        machine, note = next(iter(notes.items()))
        return f"the threshold{f' of {machine}' if machine else ''} is {note}{advice}"
    reason = next(iter(notes.values())) if len(set(notes.values())) == 1 else TOO_FEW
    return f"the thresholds of {_listed(notes)} are {reason}{advice}"


def _listed(machines: Iterable[str]) -> str:
    """``a, b and c``; four names at the most (``a, b, c and 5 more``)."""
    names = sorted(machines)
    if len(names) > 4:
        names = [*names[:3], f"{len(names) - 3} more"]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def describe_views(views: list[dict[str, Any]] | None, scales: bool = True) -> str:
    """A detector's views and their scales (``scales`` False: the views alone, as a fleet's
    machines share them, each with its own scales); empty for a scorer of one view."""
    if not views:
        return ""
    return (
        "views: "
        + ", ".join(
            VIEW_NAMES.get(view["view"], view["view"])
            + (f" (normal ≈ {view['scale']:.4g})" if scales else "")
            for view in views
        )
        + f"; a clip scores the {'larger' if len(views) == 2 else 'largest'} in units of its normal"
    )


def detector_lines(summary: dict[str, Any]) -> list[str]:
    """Its pipeline, then :func:`detector_facts`: one line each (``aetk fit``, ``aetk info``,
    ``aetk-runtime info``)."""
    pipeline = (
        f"{summary['featurizer']} → {summary['model']} → {summary['scorer']} "
        f"(preset {summary['preset']}, {summary['parameters']:,} parameters)"
    )
    return [pipeline, *detector_facts(summary)]


def detector_facts(summary: dict[str, Any]) -> list[str]:
    """What it learned from, its threshold, its views, the band it hears and the recordings it
    expects: one line each (the report lists them under its table of components). A detector
    written by an older aetk may lack a figure; its line then leaves it out."""
    lines = []
    if summary["train_files"] is not None:
        lines.append(
            f"{summary['train_files']} training and {summary['validation_files']} validation "
            f"files ({summary['skipped_files']} skipped), "
            f"{describe_cut(summary)}{_training(summary)}"
        )
    fitted = "" if summary["seconds"] is None else f", fitted in {summary['seconds']:.1f} s"
    lines.append(
        f"threshold {summary['threshold']:.6g} "
        f"({describe_threshold(summary['calibration'])}){fitted}"
    )
    if summary["views"]:
        lines.append(describe_views(summary["views"]))
    analysed, heard = summary["analysed_hz"], summary["heard_hz"]
    if heard is not None and analysed is not None and heard < analysed:
        lines.append(
            f"hears up to {heard:.0f} Hz of the {analysed:.0f} Hz analysed: no training "
            "recording held more, so faster recordings are heard through that band"
        )
    recordings = describe_recordings(
        summary.get("recordings"), bool(summary.get("segment_seconds"))
    )
    if recordings:
        lines.append(recordings)
    return lines


def describe_cut(summary: dict[str, Any]) -> str:
    """How the training recordings were cut (``--segment``), followed by a comma: ``cut into
    clips of 10 s (and scored in such windows), ``; empty for whole files."""
    segment = summary.get("segment_seconds")
    return f"cut into clips of {segment:g} s (and scored in such windows), " if segment else ""


def describe_recordings(recordings: dict[str, Any] | None, cut: bool = False) -> str:
    """What the training recordings were like (the summary's ``recordings``), in words: ``its
    training recordings: mono, 10 s long (median), -32.1 to -20.3 dBFS (what the recording
    checks expect)``; empty for a detector written before they were kept. ``cut``: the
    recordings were cut into clips (``--segment``), and the figures are the clips'."""
    if not recordings:
        return ""
    parts = []
    channels = recordings.get("channels")
    if channels:
        parts.append(
            "mono" if channels == [1] else f"of {' or '.join(map(str, channels))} channels"
        )
    if recordings.get("seconds") is not None:
        parts.append(f"{recordings['seconds']:.3g} s long (median)")
    if recordings.get("level_db") is not None:
        low, high = (f"{level:.1f}" for level in recordings["level_db"])
        parts.append(f"{low} dBFS" if low == high else f"{low} to {high} dBFS")
    if recordings.get("codecs"):
        parts.append(f"coded as {' or '.join(recordings['codecs'])}")
    if not parts:
        return ""
    measured = "the clips cut from its training recordings" if cut else "its training recordings"
    return f"{measured}: {', '.join(parts)} (what the recording checks expect)"


def _training(summary: dict[str, Any]) -> str:
    if not summary["epochs"]:
        return "no training (the model has no parameters)"
    best = "" if not summary["val_loss"] else f", best validation loss {summary['val_loss']:.4g}"
    return f"{summary['epochs']} epochs, best epoch {summary['best_epoch']}{best}"
