"""Decision thresholds, owned by the core: from held-out normal scores to the detector's threshold.

Scorers only score. A fit gives the core the scores of normal recordings that neither the model nor
the scorer learned from; :func:`calibrate` turns them into the threshold the ``[threshold]``
settings ask for, and the detector keeps those scores, so that ``aetk score --false-alarm-rate``
can recompute it without refitting. Two rules:

- ``conformal`` (the default): the ⌈(n+1)(1−F)⌉-th smallest of the n held-out normal scores, for a
  chosen false-alarm rate F: distribution-free, and it says so when n is too small for F;
- ``gamma`` (the DCASE convention): a percentile of a gamma distribution fitted to the scores.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from aetk_core.verdict import conformal_threshold

from aetk.errors import AetkError, ConfigError

METHODS = ("gamma", "quantile")
#: From this many scores on, a gamma fit that a Kolmogorov-Smirnov test rejects is not used: one
#: near-zero score (a clip with a near-duplicate among the references) drags a maximum-likelihood
#: gamma's shape down and its 90th percentile to twice the scores' own. Fewer scores say too
#: little to reject, and there the gamma's smoothing is what the field relies on.
TESTED_FROM = 20


def fit_threshold(
    scores: np.ndarray | list[float], *, method: str = "gamma", percentile: float = 90.0
) -> tuple[float, str]:
    """The ``percentile``-th percentile of the normal ``scores``, and the method that gave it.

    ``method="gamma"`` fits a two-parameter gamma distribution (location fixed at 0, scores must be
    positive) and takes its percentile point; it falls back to the empirical quantile when there are
    fewer than 3 scores, a score is not positive, the fit fails, or there are enough scores
    (:data:`TESTED_FROM`) to show that the gamma does not describe them (Kolmogorov-Smirnov
    p < 0.01). ``method="quantile"`` takes the empirical quantile (linear interpolation) directly.
    """
    if method not in METHODS:
        raise ValueError(f"unknown threshold method {method!r} (choose from {', '.join(METHODS)})")
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must lie strictly between 0 and 100, not {percentile}")
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite scores to fit a threshold on")
    if method == "gamma" and values.size >= 3 and (values > 0).all() and np.ptp(values) > 0:
        threshold = _gamma_percentile(values, percentile)
        if threshold is not None:
            return threshold, "gamma"
    return float(np.percentile(values, percentile)), "quantile"


def _gamma_percentile(values: np.ndarray, percentile: float) -> float | None:
    from scipy import stats

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            shape, loc, scale = stats.gamma.fit(values, floc=0.0)
            threshold = float(stats.gamma.ppf(percentile / 100.0, shape, loc=loc, scale=scale))
    except (ValueError, RuntimeError, FloatingPointError):
        return None
    if not np.isfinite(threshold) or threshold <= 0:
        return None
    if values.size >= TESTED_FROM:
        fit = stats.kstest(values, "gamma", args=(shape, loc, scale))
        if fit.pvalue < 0.01:
            return None
    return threshold


# -- the detector's threshold --------------------------------------------------------------------

#: ``[threshold] method``: ``conformal`` (a finite-sample rule for a chosen false-alarm rate),
#: or the DCASE convention ``gamma`` (a percentile of a gamma fitted to the normal scores, with
#: the empirical fallback above), or ``quantile`` (the empirical percentile).
THRESHOLD_METHODS = ("conformal", "gamma", "quantile")
DEFAULT_FALSE_ALARM_RATE = 0.1


@dataclass
class ThresholdConfig:
    """How the core turns held-out normal scores into a threshold: the ``[threshold]`` section.

    ``false_alarm_rate`` is the share of normal recordings that may be flagged; the conformal
    rule meets it on average over new normal recordings whatever the scores' distribution.
    ``percentile`` is the same target written as the DCASE convention writes it (90 for a rate of
    0.1); when both are given, ``false_alarm_rate`` wins. Every method aims at that one rate.
    """

    method: str = "conformal"
    false_alarm_rate: float | None = None
    percentile: float | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ThresholdConfig:
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown threshold setting {', '.join(map(repr, unknown))} "
                f"(settings: {', '.join(sorted(known))})"
            )
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        if self.method not in THRESHOLD_METHODS:
            raise ConfigError(
                f"threshold method must be one of {', '.join(THRESHOLD_METHODS)}, "
                f"not {self.method!r}"
            )
        rate, percentile = self.false_alarm_rate, self.percentile
        if rate is not None and not (_is_number(rate) and 0 < rate < 1):
            raise ConfigError(f"false_alarm_rate must lie strictly between 0 and 1, not {rate!r}")
        if percentile is not None and not (_is_number(percentile) and 0 < percentile < 100):
            raise ConfigError(
                f"threshold percentile must lie strictly between 0 and 100, not {percentile!r}"
            )

    @property
    def rate(self) -> float:
        """The false-alarm rate asked for, from whichever of the two settings was given."""
        if self.false_alarm_rate is not None:
            return float(self.false_alarm_rate)
        if self.percentile is not None:
            return round(1.0 - float(self.percentile) / 100.0, 12)
        return DEFAULT_FALSE_ALARM_RATE

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Calibration:
    """A detector's threshold and what it was calibrated on.

    ``normal_scores`` are the held-out scores of normal training recordings (never scored by a
    model or reference that learned from them); a threshold for another rate can be computed from
    them at scoring time without refitting (:func:`aetk_core.verdict.chosen_threshold`).
    """

    method: str
    threshold: float
    normal_scores: np.ndarray
    target_false_alarm_rate: float | None
    warning: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The summary ``aetk fit --json`` prints (the count of normal scores, not the scores)."""
        return {
            "method": self.method,
            "normal_scores": len(self.normal_scores),
            "target_false_alarm_rate": self.target_false_alarm_rate,
            "threshold": self.threshold,
            "warning": self.warning,
        }


def calibrate(scores: np.ndarray | list[float], config: ThresholdConfig) -> Calibration:
    """The threshold ``config`` asks for, from held-out normal ``scores``."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise AetkError("cannot set a threshold: the held-out normal clips gave no finite scores")
    rate = config.rate
    if config.method == "conformal":
        threshold, warning = conformal_threshold(values, rate)
        method = "conformal"
    else:
        threshold, method = fit_threshold(values, method=config.method, percentile=100 * (1 - rate))
        warning = None
    if np.ptp(values) == 0:
        warning = (
            f"all {values.size} held-out normal scores are equal ({values[0]:.6g}): the scorer "
            "cannot tell these recordings apart, so every verdict rests on one number"
        )
    return Calibration(method, float(threshold), values, rate, warning)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
