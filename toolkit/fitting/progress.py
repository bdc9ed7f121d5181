"""Progress callbacks of a fit; torch-free so that user interfaces can subclass them cheaply."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aetk.detect.calibration import Calibration
    from aetk.fitting.config import EpochReport, FitConfig


class FitObserver:
    """Receives progress while a detector is fitted; the CLI draws it, the API ignores it."""

    def on_start(self, config: FitConfig, train_files: int, validation_files: int) -> None:
        """Called once the files are split."""

    def on_recordings(self, sample_rates: dict[int, int], analysis_rate: int | None) -> None:
        """Called once with how many recordings are at each sample rate and the rate the
        featurizer analyses at (None when it does not say)."""

    def on_featurized(self, done: int, total: int) -> None:
        """Called after each file is featurized."""

    def on_stage(self, description: str) -> None:
        """Called when a stage without steps to count begins (fitting the scorer, calibrating)."""

    def on_epoch(self, report: EpochReport) -> None:
        """Called after each training epoch."""

    def on_calibrated(self, calibration: Calibration) -> None:
        """Called once the threshold is set (its ``warning`` says when it cannot be trusted)."""
