"""The local engine: this process decodes and featurizes the files (on a few threads) and
scores them through the one scoring path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aetk.data.features import featurized_files
from aetk.detect.scoring import score_clips

if TYPE_CHECKING:
    from aetk.detect.detector import Detector, ScoreResult


def score_files(
    detector: Detector,
    files: Sequence[Path],
    *,
    threshold: float,
    segment: float,
    localize: bool,
) -> Iterator[ScoreResult]:
    """Results of ``files`` in order, each as soon as it is scored."""
    clips = featurized_files(detector.featurizer, files, segment)
    yield from score_clips(detector, clips, threshold, localize)
