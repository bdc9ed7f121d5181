"""The verdict and its threshold, as aetk and aetk-runtime both apply them: a score above the
threshold is anomalous; the conformal threshold for a false-alarm rate; the runs of windows above
it; the warning when windows are not as long as the clips the threshold was calibrated on."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from aetk_core.errors import AetkWarning, ConfigError


def is_anomalous(score: float, threshold: float) -> bool:
    """The verdict: higher scores are more anomalous, and a score above the threshold is an
    anomaly (one equal to it is not)."""
    return score > threshold


def chosen_threshold(
    own: float,
    normal_scores: Any,
    threshold: float | None = None,
    false_alarm_rate: float | None = None,
) -> float:
    """The threshold a scoring run uses: ``threshold`` as given (a finite number), or the
    conformal threshold for ``false_alarm_rate`` from the detector's stored ``normal_scores``
    (no refit; an :class:`AetkWarning` when they are too few for that rate), or the detector's
    ``own``."""
    if threshold is not None and false_alarm_rate is not None:
        raise ConfigError("give --threshold or --false-alarm-rate, not both")
    if threshold is not None:
        number = isinstance(threshold, (int, float)) and not isinstance(threshold, bool)
        if not number or not math.isfinite(threshold):
            raise ConfigError(f"--threshold: threshold must be a finite number, not {threshold!r}")
        return float(threshold)
    if false_alarm_rate is not None:
        if not 0 < false_alarm_rate < 1:
            raise ConfigError(
                f"false_alarm_rate must lie strictly between 0 and 1, not {false_alarm_rate!r}"
            )
        scores = np.asarray(normal_scores, dtype=np.float64)
        chosen, too_few = conformal_threshold(scores, false_alarm_rate)
        if too_few:
            # The largest stored score stands in: said, for a rate the scores cannot hold.
            warnings.warn(too_few, AetkWarning, stacklevel=2)
        return chosen
    return own


def conformal_threshold(scores: np.ndarray, false_alarm_rate: float) -> tuple[float, str | None]:
    """The ⌈(n+1)(1−F)⌉-th smallest of ``n`` held-out normal scores, and a warning when the
    scores are too few for the rate ``F``.

    For a new normal recording exchangeable with the held-out ones, the chance that it scores
    above this threshold is at most ``F`` (split-conformal prediction). It needs ``n ≥ 1/F − 1``
    scores; with fewer the largest score is the threshold, and the warning says how many more
    recordings would support the rate.
    """
    values = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    count = values.size
    rank = math.ceil((count + 1) * (1 - false_alarm_rate) - 1e-9)
    if rank <= count:
        return float(values[rank - 1]), None
    needed = scores_needed(false_alarm_rate)
    warning = (
        f"{count} held-out normal clips cannot support a {percent(false_alarm_rate)} false-alarm "
        f"rate: record at least {needed - count} more, or give a threshold when scoring "
        "(--threshold)"
    )
    return float(values[-1]), warning


def percent(rate: float) -> str:
    """A rate as people write it: ``10%``, ``2.5%``, ``0.1%`` (never a rounded ``0%``)."""
    return f"{100 * rate:.4g}%"


def scores_needed(false_alarm_rate: float) -> int:
    """How many held-out normal scores :func:`conformal_threshold` needs to hold the rate."""
    return math.ceil(1 / false_alarm_rate - 1 - 1e-9)


def window_events(
    windows: list[tuple[float, float]], scores: list[float], threshold: float
) -> list[dict[str, Any]]:
    """Consecutive windows above the threshold, merged; each event keeps its highest score."""
    events: list[dict[str, Any]] = []
    for (start, end), score in zip(windows, scores, strict=True):
        if not is_anomalous(score, threshold):
            continue
        if events and math.isclose(events[-1]["end"], round(start, 3)):
            events[-1]["end"] = round(end, 3)
            events[-1]["score"] = max(events[-1]["score"], score)
        else:
            events.append({"start": round(start, 3), "end": round(end, 3), "score": score})
    return events


#: Windows further than this share from the calibrated clips' length are warned about.
WINDOW_LENGTH_TOLERANCE = 0.25


def window_length_warning(segment: float | None, clip_seconds: float | None) -> str | None:
    """Why windows of ``segment`` seconds misread the threshold, when they are far from the
    ``clip_seconds`` it was calibrated on (None: they are not, or either length is unknown)."""
    if not segment or not clip_seconds:
        return None
    if abs(segment - clip_seconds) <= WINDOW_LENGTH_TOLERANCE * clip_seconds:
        return None
    effect = (
        "shorter windows score higher on normal sound"
        if segment < clip_seconds
        else "longer windows average a short fault away"
    )
    return (
        f"windows of {segment:g} s are compared with a threshold calibrated on clips of about "
        f"{clip_seconds:g} s: {effect}; fit with --segment {segment:g} for a threshold of such "
        "windows"
    )
