"""Thresholds from normal scores: gamma fit with an empirical fallback."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from aetk.detect.calibration import fit_threshold


def test_gamma_fit_recovers_the_percentile_of_gamma_scores():
    scores = stats.gamma.rvs(3.0, scale=0.5, size=4000, random_state=0)
    threshold, method = fit_threshold(scores, percentile=90)
    assert method == "gamma"
    assert threshold == pytest.approx(stats.gamma.ppf(0.9, 3.0, scale=0.5), rel=0.03)


def test_quantile_method_is_the_empirical_percentile():
    scores = np.arange(1, 101, dtype=float)
    assert fit_threshold(scores, method="quantile", percentile=90) == (
        pytest.approx(np.percentile(scores, 90)),
        "quantile",
    )


@pytest.mark.parametrize(
    "scores",
    [[1.0, 2.0], [0.0, 1.0, 2.0, 3.0], [-1.0, 2.0, 3.0], [2.0, 2.0, 2.0]],
    ids=["too-few", "zero", "negative", "constant"],
)
def test_gamma_falls_back_to_the_empirical_quantile(scores):
    threshold, method = fit_threshold(scores, percentile=50)
    assert method == "quantile"
    assert threshold == pytest.approx(np.percentile(scores, 50))


def test_one_near_zero_score_does_not_drag_the_threshold_off():
    """As on the lathe with the transient preset: 400 leave-one-out scores around 5, one at
    0.0016. The gamma fit (shape 1.4) put the 90th percentile at 10.3, twice the scores' own 5.6;
    the fit is rejected and the empirical percentile used."""
    scores = np.append(np.random.default_rng(0).normal(5.0, 0.4, size=399), 0.0016)
    threshold, method = fit_threshold(scores, percentile=90)
    assert method == "quantile"
    assert threshold == pytest.approx(np.percentile(scores, 90))


def test_few_scores_keep_the_gamma_fit():
    """Below TESTED_FROM scores the test cannot reject: the gamma's smoothing is kept."""
    scores = stats.gamma.rvs(3.0, scale=0.5, size=10, random_state=1)
    assert fit_threshold(scores, percentile=90)[1] == "gamma"


def test_non_finite_scores_are_ignored_and_none_left_is_an_error():
    assert fit_threshold([1.0, np.nan, 3.0], method="quantile", percentile=50)[0] == 2.0
    with pytest.raises(ValueError, match="no finite scores"):
        fit_threshold([np.nan])


@pytest.mark.parametrize("percentile", [0, 100, 150])
def test_percentile_must_be_inside_0_100(percentile):
    with pytest.raises(ValueError, match="percentile"):
        fit_threshold([1.0, 2.0, 3.0], percentile=percentile)
