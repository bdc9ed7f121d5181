"""An explanation of one recording for people (the report, the dashboard): its spectrogram, the
model's reconstruction, and when and in which bands it departs from normal, all from the one
scoring path (:func:`aetk.detect.scoring.score_clips`), so that what is shown is what was judged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from aetk_core.localization import Event, to_grid
from aetk_core.verdict import is_anomalous

from aetk.data.features import FileClips
from aetk.detect.explain import ErrorMap
from aetk.detect.scoring import score_clips
from aetk.errors import AudioError

if TYPE_CHECKING:
    from aetk.detect.detector import Detector


@dataclass
class Explanation:
    """Everything ``aetk report`` shows about one recording."""

    path: str
    score: float
    threshold: float
    spectrogram: np.ndarray  # [bands, frames], the input features (dB), channels averaged
    reconstruction: np.ndarray | None  # the same for the model's reconstruction, if it has one
    errors: ErrorMap

    @property
    def anomalous(self) -> bool:
        return is_anomalous(self.score, self.threshold)

    # What the live page's picture draws (aetk_core.watch.picture), as aetk-runtime's
    # explanations give it.
    @property
    def events(self) -> list[Event]:
        return self.errors.events

    @property
    def band_edges_hz(self) -> Sequence[tuple[float, float]]:
        return self.errors.layout.band_edges_hz

    @property
    def frame_seconds(self) -> float:
        return self.errors.layout.frame_seconds


def explain(
    detector: Detector, path: str | Path, threshold: float | None = None
) -> Explanation | None:
    """Score one whole recording through the scoring path and lay out where its anomaly is,
    judged at ``threshold`` (the detector's unless given); ``None`` if it cannot be localized.

    :raises AudioError: the file cannot be read.
    """
    clip = detector.clip(path)
    maps: dict[str, ErrorMap] = {}
    threshold = detector.threshold_for(threshold)
    (result,) = score_clips(
        detector, [FileClips(str(path), [clip])], threshold, localize=True, maps=maps
    )
    if result.error is not None or result.score is None:
        raise AudioError(result.error or "not scored", path)
    errors = maps.get(str(path))
    if errors is None:
        return None
    features = clip.vectors
    vectors = detector.normalizer.transform(features)
    score = result.score
    step = errors.layout.vector_step
    reconstruction = None
    if detector.model.trainable and detector.model.reconstructs:
        restored = detector.model.reconstruct(vectors)
        if restored.shape == features.shape:
            reconstruction = to_grid(
                detector.normalizer.inverse_transform(restored).numpy(), step, average_channels=True
            )
    return Explanation(
        str(path),
        score,
        threshold,
        to_grid(features.numpy(), step, average_channels=True),
        reconstruction,
        errors,
    )
