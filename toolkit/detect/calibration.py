"""Decision thresholds from the scores of normal clips the model did not train on.

The field's practice (DCASE Task 2): fit a gamma distribution to normal scores and take a high
percentile of it, so that about ``100 - percentile`` % of normal clips raise a false alarm.
"""

from __future__ import annotations

import warnings

import numpy as np

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
