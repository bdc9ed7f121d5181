"""A fitted detector: featurizer, standardiser, model and scorer, saved as one ``.aetk`` file.

Scoring reads top to bottom: file → waveform → feature vectors → standardised → scorer (with the
model) → score → compared with the threshold → verdict.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aetk import __version__
from aetk.components.base import Featurizer, Model, Scorer
from aetk.components.normalizer import Standardizer
from aetk.components.state import build_component, decode_state, encode_state, jsonable
from aetk.data.audio import find_audio_files
from aetk.data.features import check_vector_shape, featurize_file, iter_clips, map_files
from aetk.detect.detector_file import read_detector, write_detector
from aetk.errors import AudioError, DetectorFileError
from aetk.plugin.host import get_host

DEFAULT_DETECTOR = "detector.aetk"
_ROLES = ("featurizer", "normalizer", "model", "scorer")


@dataclass
class ScoreResult:
    """The verdict on one file; ``error`` is set (and ``score`` is None) when it failed.

    ``segments`` lists the events, each ``{"start", "end", "score"}`` in seconds (``[]``: none).
    Scored whole, they are the runs of vectors the scorer localizes above its event threshold,
    each with the ``bands`` (``low_hz``, ``high_hz``, ``ratio`` to their normal error) that
    contribute most; ``None`` when the scorer or featurizer cannot localize. Scored in windows,
    ``score`` is the highest window score and the events are runs of windows above the threshold.
    """

    path: str
    score: float | None
    threshold: float
    anomalous: bool | None
    error: str | None = None
    segments: list[dict[str, float]] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score": self.score,
            "threshold": self.threshold,
            "anomalous": self.anomalous,
            "error": self.error,
            "segments": self.segments,
        }


@dataclass
class _FileScores:
    """Windows of one file and their scores, collected while its batches are scored."""

    path: Path
    windows: list[tuple[float, float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    error: str | None = None
    complete: bool = False
    #: Events localized inside the file when it is scored whole (None: not localizable).
    located: list[dict[str, Any]] | None = None

    def done(self) -> bool:
        return self.complete and (self.error is not None or len(self.scores) == len(self.windows))


class Detector:
    """A fitted anomaly detector. Create one with :func:`aetk.fit` or :meth:`Detector.load`."""

    def __init__(
        self,
        featurizer: Featurizer,
        normalizer: Standardizer,
        model: Model,
        scorer: Scorer,
        training: dict[str, Any] | None = None,
    ):
        self.featurizer = featurizer
        self.normalizer = normalizer
        self.model = model
        self.scorer = scorer
        self.training = training or {}

    @property
    def threshold(self) -> float:
        """Scores above it are anomalous."""
        self.scorer.check_fitted()
        return float(self.scorer.threshold_)

    # -- scoring --------------------------------------------------------------------------------

    @property
    def segment_seconds(self) -> float:
        """Window length the detector was fitted on (0: whole files)."""
        config = self.training.get("config", {}).get("training", {})
        return float(config.get("segment_seconds", 0.0))

    def vectors(self, path: str | Path) -> torch.Tensor:
        """The standardised feature vectors of one whole file, as the model sees them."""
        features = featurize_file(self.featurizer, path)
        check_vector_shape(features, self.model.input_shape_, path)
        return self.normalizer.transform(features)

    def score(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        threshold: float | None = None,
        segment: float | None = None,
    ) -> list[ScoreResult]:
        """Score files and folders (searched recursively); one result per file, in order.

        :param threshold: overrides the detector's threshold.
        :param segment: score each file in windows of this many seconds, decoded one at a time
            (default: the detector's own segment length; 0 scores whole files).
        """
        return list(self.iter_scores(paths, threshold=threshold, segment=segment))

    def iter_scores(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        threshold: float | None = None,
        segment: float | None = None,
        batch_windows: int = 64,
    ) -> Iterator[ScoreResult]:
        """Like :meth:`score`, yielding each file's result as soon as all its windows are scored.

        Windows of many files are scored together in batches of ``batch_windows``; memory holds
        one batch, whatever the recordings' lengths.
        """
        threshold = self.threshold if threshold is None else float(threshold)
        segment = self.segment_seconds if segment is None else float(segment)
        files = find_audio_files([paths] if isinstance(paths, (str, Path)) else paths)
        if segment:  # windows decoded one at a time, whatever the recording's length
            stream = ((path, iter_clips(self.featurizer, path, segment)) for path in files)
        else:  # whole files decoded and featurized in parallel, a few files ahead
            stream = map_files(lambda path: list(iter_clips(self.featurizer, path)), files)
        pending: list[_FileScores] = []
        batch: list[tuple[_FileScores, torch.Tensor]] = []
        for path, clips in stream:
            entry = _FileScores(path)
            pending.append(entry)
            try:
                if isinstance(clips, AudioError):
                    raise clips
                for clip in clips:
                    check_vector_shape(clip.vectors, self.model.input_shape_, path)
                    entry.windows.append((clip.start, clip.end))
                    batch.append((entry, self.normalizer.transform(clip.vectors)))
                    if len(batch) >= batch_windows:
                        self._score_windows(batch, threshold, whole=not segment)
                        batch = []
                        yield from _finished(pending, threshold, segment)
            except AudioError as exc:
                entry.error = exc.reason
            entry.complete = True
        self._score_windows(batch, threshold, whole=not segment)
        yield from _finished(pending, threshold, segment)

    def _score_windows(
        self, batch: list[tuple[_FileScores, torch.Tensor]], threshold: float, whole: bool
    ) -> None:
        """Score a batch of windows; files scored whole are also localized into events."""
        from aetk.detect.explain import error_map

        if not batch:
            return
        scores = self.scorer.score(self.model, [vectors for _, vectors in batch])
        for (entry, vectors), score in zip(batch, scores, strict=True):
            entry.scores.append(float(score))
            if whole:
                errors = error_map(self, vectors, anomalous=float(score) > threshold)
                entry.located = None if errors is None else [e.as_dict() for e in errors.events]

    # -- the detector file ----------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the detector atomically to ``path``; an existing file is replaced only whole."""
        tensors: dict[str, torch.Tensor] = {}
        host = get_host()
        components = {}
        for role in _ROLES:
            component = getattr(self, role)
            entry: dict[str, Any] = {"name": component.name, "params": component.get_params()}
            if role != "normalizer":
                registration = host.registration(role, component.name)
                record = host.plugins.get(registration.plugin)
                entry["plugin"] = registration.plugin
                entry["distribution"] = record.distribution if record else None
                entry["version"] = record.version if record else None
            entry["state"] = encode_state(role, component, tensors)
            components[role] = entry
        manifest = {
            "aetk_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "components": components,
            "training": self.training,
        }
        path = Path(path)
        write_detector(path, jsonable(manifest), tensors)
        return path

    @classmethod
    def load(cls, path: str | Path = DEFAULT_DETECTOR) -> Detector:
        """Read a detector file; refuses, with a clear error, anything it cannot trust."""
        manifest, tensors = read_detector(path)
        components = manifest.get("components")
        if not isinstance(components, dict) or set(components) != set(_ROLES):
            raise DetectorFileError(f"{path}: detector manifest does not list its components")
        built = {role: build_component(path, role, components[role]) for role in _ROLES}
        for role, component in built.items():
            decode_state(path, role, component, components[role].get("state") or {}, tensors)
        return cls(**built, training=manifest.get("training") or {})

    def summary(self) -> dict[str, Any]:
        """Components, parameters, threshold and training figures, for display."""
        return {
            "featurizer": {"name": self.featurizer.name, **self.featurizer.get_params()},
            "model": {"name": self.model.name, **self.model.get_params()},
            "scorer": {"name": self.scorer.name, **self.scorer.get_params()},
            "threshold": self.threshold,
            "training": self.training,
        }


def _finished(
    pending: list[_FileScores], threshold: float, segment: float
) -> Iterator[ScoreResult]:
    """Results of the files at the head of ``pending`` whose windows are all scored, in order."""
    while pending and pending[0].done():
        entry = pending.pop(0)
        path = str(entry.path)
        if entry.error is not None:
            yield ScoreResult(path, None, threshold, None, entry.error)
        elif not all(math.isfinite(score) for score in entry.scores):
            yield ScoreResult(path, None, threshold, None, "score is not finite")
        else:
            score = max(entry.scores)
            segments = _events(entry.windows, entry.scores, threshold) if segment else entry.located
            yield ScoreResult(path, score, threshold, score > threshold, None, segments)


def _events(
    windows: list[tuple[float, float]], scores: list[float], threshold: float
) -> list[dict[str, float]]:
    """Consecutive windows above the threshold, merged; each event keeps its highest score."""
    events: list[dict[str, float]] = []
    for (start, end), score in zip(windows, scores, strict=True):
        if score <= threshold:
            continue
        if events and math.isclose(events[-1]["end"], round(start, 3)):
            events[-1]["end"] = round(end, 3)
            events[-1]["score"] = max(events[-1]["score"], score)
        else:
            events.append({"start": round(start, 3), "end": round(end, 3), "score": score})
    return events
