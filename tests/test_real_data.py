"""A few integration tests on the real recordings in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED_DATA

import aetk
from aetk import metrics

pytestmark = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"real recordings not found at {SHARED_DATA} (they sit beside the repository in CI)",
)


def evaluate(detector, folder: Path) -> float:
    results = detector.score(folder)
    assert all(result.error is None for result in results)
    labels = [int(Path(result.path).name.startswith("anomaly")) for result in results]
    return metrics.auc(labels, [result.score for result in results])


def test_lathe_mixed_sample_rates_rank_anomalies_above_normals():
    """Normal lathe clips are 44.1 and 48 kHz, anomalies all 48 kHz: resampling must hide that."""
    detector = aetk.fit(SHARED_DATA / "lathe" / "train", set=["training.epochs=10"])
    assert evaluate(detector, SHARED_DATA / "lathe" / "test") > 0.9


def test_mimii_fan_clips_all_fit_and_score():
    detector = aetk.fit(SHARED_DATA / "mimii_fan_00" / "train", set=["training.epochs=5"])
    assert detector.training["files"] == 11
    assert detector.training["skipped_files"] == []
    results = detector.score(SHARED_DATA / "mimii_fan_00" / "test")
    assert len(results) == 35
    assert all(result.error is None and result.score > 0 for result in results)
