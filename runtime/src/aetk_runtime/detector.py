"""An exported detector: the ONNX graph (standardisation, model, scorer), its featurizer and its
calibration, scoring files the way ``aetk score`` does."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from aetk_core.audio import (
    Audio,
    audio_clips,
    default_workers,
    map_in_order,
    read_clips,
)
from aetk_core.detector import ScoringDetector, ScoringRun
from aetk_core.errors import AetkError, AudioError, ConfigError, featurizer_raised
from aetk_core.features import featurizer_for, within_band
from aetk_core.localization import Event, EventMap, event_map, to_grid
from aetk_core.processes import scored_files
from aetk_core.recording import (
    RecordingNorms,
    RecordingProfile,
    RecordingWarning,
    machine_warnings,
    merged,
    mismatch_error,
)
from aetk_core.results import ScoreResult, view_from, view_of
from aetk_core.verdict import chosen_threshold, is_anomalous, window_events

from aetk_runtime.errors import DetectorError

#: Export schemas this runtime reads (2: the graph may also say which view gave the score).
SCHEMAS = (1, 2)


def load(path: str | Path) -> ExportedDetector:
    """Read an ONNX file written by ``aetk export``; a one-line :class:`DetectorError` otherwise."""
    import onnxruntime

    path = Path(path)
    if not path.is_file():
        raise DetectorError(f"{path}: no exported detector here (write one with 'aetk export')")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # files run on several threads at once instead
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own kinds for foreign files
        if path.suffix.lower() == ".aetk":
            raise DetectorError(
                f"{path}: an aetk detector file; the runtime reads its export "
                f"(aetk export {path} -o {path.with_suffix('.onnx')})"
            ) from None
        raise DetectorError(
            f"{path}: not an ONNX file ({str(exc).splitlines()[0][:200]})"
        ) from None
    props = session.get_modelmeta().custom_metadata_map
    try:
        meta = json.loads(props["aetk"])
    except (KeyError, ValueError):
        raise DetectorError(f"{path}: an ONNX file, but not one aetk exported") from None
    if meta.get("schema_version") not in SCHEMAS:
        raise DetectorError(
            f"{path}: exported with schema {meta.get('schema_version')!r}; this runtime reads "
            f"{', '.join(map(str, SCHEMAS))}: upgrade aetk-runtime"
        )
    try:
        featurizer = featurizer_for(meta["featurizer"])
    except ConfigError as exc:
        raise DetectorError(f"{path}: {exc}") from None
    return ExportedDetector(path, session, featurizer, meta)


@dataclass
class Explained:
    """One recording scored whole, as the live page draws it."""

    score: float
    threshold: float
    spectrogram: np.ndarray  # [bands, frames], the input features (dB), channels averaged
    events: list[Event]
    band_edges_hz: list[list[float]]
    frame_seconds: float


class ExportedDetector(ScoringDetector):
    """An exported detector, scored as aetk's are (:class:`aetk_core.detector.ScoringDetector`)."""

    def __init__(self, path: Path, session: Any, featurizer: Any, meta: dict[str, Any]):
        self.path = path
        self.session = session
        self.featurizer = featurizer
        self.meta = meta
        self.vector_shape = tuple(meta["vector_shape"])
        #: What the training recordings were like (None: exported before it was carried, and
        #: recordings are not checked), and the machines their names said.
        recordings = meta.get("recordings")
        self.norms = (
            RecordingNorms.from_dict(recordings, None) if isinstance(recordings, dict) else None
        )
        self.machines = [name for name in meta.get("machines") or [] if isinstance(name, str)]
        self.outputs = [output.name for output in session.get_outputs()]
        #: What turns the graph's localization into events (None: the graph gives none), its
        #: bands' normal contributions as an array once rather than for every clip.
        localization = meta.get("localization") if "contributions" in self.outputs else None
        self.localization = (
            None
            if localization is None
            else {
                **localization,
                "normal_bands": np.asarray(localization["normal_bands"], dtype=np.float64),
            }
        )

    @property
    def threshold(self) -> float:
        return float(self.meta["threshold"])

    @property
    def clip_seconds(self) -> float | None:
        """How long the clips were whose scores calibrated the threshold (None: exported before
        it was carried)."""
        seconds = self.meta.get("clip_seconds")
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def threshold_for(
        self, threshold: float | None = None, false_alarm_rate: float | None = None
    ) -> float:
        return chosen_threshold(
            self.threshold, self.meta["calibration"]["normal_scores"], threshold, false_alarm_rate
        )

    def calibration_summary(self) -> dict[str, Any]:
        calibration = self.meta["calibration"]
        return {**calibration, "normal_scores": len(calibration["normal_scores"])}

    @property
    def segment_seconds(self) -> float:
        """The windows' length the detector was fitted on (0: whole files)."""
        return float(self.meta.get("segment_seconds") or 0)

    def _scored_files(self, files: list[Path], run: ScoringRun) -> Iterator[ScoreResult]:
        score_clips, frames = self._clip_scorer(run), self.featurizer.frames_to_read

        def score_file(path: Path) -> ScoreResult:
            return score_clips(str(path), lambda: read_clips(path, run.segment, frames))

        # Files in order on a few forked processes or threads (AETK_WORKERS, as aetk reads it),
        # a bounded number ahead so that memory stays flat.
        yield from scored_files(
            files, default_workers(), lambda part, workers: map_in_order(score_file, part, workers)
        )

    def _scored_audio(
        self, samples: Any, sample_rate: int | None, name: str, run: ScoringRun
    ) -> ScoreResult:
        frames = self.featurizer.frames_to_read
        return self._clip_scorer(run)(
            name, lambda: audio_clips(samples, sample_rate, run.segment, frames)
        )

    def _clip_scorer(
        self, run: ScoringRun
    ) -> Callable[[str, Callable[[], Iterable[tuple[float, Audio]]]], ScoreResult]:
        """:meth:`_score_clips` with a scoring run's options bound."""
        return partial(
            self._score_clips,
            threshold=run.threshold,
            seconds=run.segment,
            strict=run.strict,
            # The anomalies' localization comes from the one run that scores them: onnxruntime
            # computes the whole graph whichever outputs are asked for (1.43 against 1.42 ms a
            # clip for the default's score alone and all its outputs), so a second run for them
            # would featurize and score them again.
            outputs=self._wanted(whole=not run.segment, localize=bool(run.localize)),
            anomalies_localized=run.localize == "anomalous",
            localized=run.localize is True,
        )

    def _wanted(self, whole: bool, localize: bool) -> list[str]:
        """The graph outputs a scoring run reads: every one for files scored whole in a run
        that localizes (every file, or the anomalies); otherwise the scores and the views that
        gave them, and for windows the views only in a run that localizes."""
        if whole and localize and self.localization is not None:
            return self.outputs
        wanted = ("score", "winning_view") if whole or localize else ("score",)
        return [name for name in self.outputs if name in wanted]

    def _score_clips(
        self,
        path: str,
        clips: Callable[[], Iterable[tuple[float, Audio]]],
        threshold: float,
        seconds: float,
        strict: bool,
        outputs: list[str],
        anomalies_localized: bool = False,
        localized: bool = False,
    ) -> ScoreResult:
        """The recording ``path`` names, whole or in windows (``clips()``, whose AudioError is
        the row's error), each clip's recording checked as aetk checks it;
        ``anomalies_localized``: a file scored whole and found anomalous gets its events and
        bands from the graph's outputs; ``localized``: every file does (a windowed file's view
        is then given even when it is normal)."""
        found = [] if self.norms is None else machine_warnings(self.machines, path)
        spans, scores, views = [], [], []
        try:
            for start, audio in clips():
                # Checked once scored, as aetk checks a clip once featurized: a clip that
                # cannot be scored gives its row an error, not warnings besides it.
                graph = self._score_clip(audio.samples, audio.sample_rate, outputs)
                found = merged([*found, *self._mismatches(audio, seconds)])
                spans.append((start, start + audio.seconds))
                scores.append(graph["score"])
                views.append(view_from(self._view(graph.get("winning_view")), start))
        except AudioError as exc:
            return self._result(path, None, threshold, found, exc.reason)
        if strict and found:
            return self._result(path, None, threshold, found, mismatch_error(found))
        if seconds:
            events, worst = window_events(spans, scores, threshold), max(scores)
            # As aetk gives it: the worst window's view, where that window was localized.
            view = (
                views[scores.index(worst)] if localized or is_anomalous(worst, threshold) else None
            )
            return self._result(path, worst, threshold, found, segments=events, view=view)
        located = localized or (anomalies_localized and is_anomalous(scores[0], threshold))
        return self._result(
            path,
            scores[0],
            threshold,
            found,
            segments=self._segments(graph, scores[0], threshold, audio.sample_rate / 2)
            if located
            else None,
            view=self._view(graph.get("winning_view")),
        )

    def _mismatches(self, audio: Audio, window_seconds: float) -> list[RecordingWarning]:
        if self.norms is None:
            return []
        profile = RecordingProfile.of(audio)
        return self.norms.check(profile, window_seconds)

    def _result(
        self,
        path: str,
        score: float | None,
        threshold: float,
        found: list[RecordingWarning],
        error: str | None = None,
        segments: list[dict[str, Any]] | None = None,
        view: dict[str, Any] | None = None,
    ) -> ScoreResult:
        """A row as aetk score --json gives it (``warnings`` None for a detector exported before
        recordings were checked), naming the fleet machine it was exported for and its
        conditions."""
        return ScoreResult(
            path,
            score,
            threshold,
            None if score is None else is_anomalous(score, threshold),
            error,
            segments,
            view=view,
            warnings=None if self.norms is None else [warning.as_dict() for warning in found],
            machine=self.meta.get("machine"),
            conditions=self.meta.get("conditions"),
        )

    def explain(self, path: str | Path, threshold: float | None = None) -> Explained | None:
        """The recording at ``path`` scored whole, with its spectrogram and its events as the
        live page draws them (None: the graph does not localize). ``threshold``: the one it was
        judged at, if not the detector's.

        :raises AudioError: the file cannot be read or scored.
        """
        layout = self.localization
        if layout is None:
            return None
        threshold = self.threshold_for(threshold)
        ((_, audio),) = read_clips(path, 0.0, self.featurizer.frames_to_read)
        features = self._features(audio.samples, audio.sample_rate)
        graph = self._run(features, self.outputs)
        found = self._event_map(graph, graph["score"], threshold, audio.sample_rate / 2)
        return Explained(
            graph["score"],
            threshold,
            to_grid(features, layout["vector_step"], average_channels=True),
            [] if found is None else found.events,
            layout["band_edges_hz"],
            layout["frame_seconds"],
        )

    def _score_clip(self, samples: np.ndarray, rate: int, outputs: list[str]) -> dict[str, Any]:
        """The graph's ``outputs`` for the clip, by name, its ``score`` a finite number."""
        return self._run(self._features(samples, rate), outputs)

    def _features(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """The clip's feature vectors, as the graph takes them."""
        samples, rate = within_band(samples, rate, self.meta.get("band_rate"))
        try:
            features = self.featurizer.featurize(samples, rate)
        except (AetkError, MemoryError):
            raise
        except Exception as exc:  # a plugin's twin that fails on one recording
            raise featurizer_raised(self.featurizer.name, exc) from exc
        if not np.isfinite(features).all():
            raise AudioError("yields NaN or infinite features")
        if tuple(features.shape[1:]) != self.vector_shape:
            raise AudioError(
                f"yields feature vectors of shape {list(features.shape[1:])}, but the detector "
                f"expects {list(self.vector_shape)} (clips of another length or channel count?)"
            )
        return features

    def _run(self, features: np.ndarray, outputs: list[str]) -> dict[str, Any]:
        """The graph's ``outputs`` for a clip's features, by name, its ``score`` a finite
        number."""
        found = self.session.run(outputs, {"features": features.astype(np.float32)})
        graph = dict(zip(outputs, found, strict=True))
        graph["score"] = float(np.asarray(graph["score"]).reshape(-1)[0])
        if not math.isfinite(graph["score"]):
            raise AudioError("score is not finite")
        return graph

    def _segments(
        self, graph: dict[str, Any], score: float, threshold: float, band_limit_hz: float
    ) -> list[dict[str, Any]] | None:
        """A file scored whole: its events and their bands from the graph's localization, by
        aetk's rule (:func:`aetk_core.localization.event_map`); None where there is none."""
        found = self._event_map(graph, score, threshold, band_limit_hz)
        return None if found is None else [event.as_dict() for event in found.events]

    def _event_map(
        self, graph: dict[str, Any], score: float, threshold: float, band_limit_hz: float
    ) -> EventMap | None:
        layout = self.localization
        if layout is None or "contributions" not in graph:
            return None
        return event_map(
            graph["vector_scores"],
            graph["contributions"],
            layout["event_threshold"],
            layout["normal_bands"],
            layout["band_edges_hz"],
            layout["frame_seconds"],
            layout["vector_step"],
            is_anomalous(score, threshold),
            band_limit_hz,
        )

    def _view(self, raw: Any) -> dict[str, Any] | None:
        """The graph's ``winning_view`` output (the view's index and its moment's vectors ``[first,
        last)``, first == last for the whole clip) as a row's ``view``."""
        views = self.meta.get("views")
        if raw is None or not views:
            return None
        winner, first, last = (int(value) for value in np.asarray(raw).reshape(-1))
        moment = None if first == last else (first, last)
        frames, seconds, step = views["vector_frames"], views["frame_seconds"], views["vector_step"]
        return view_of(views["names"][winner], moment, frames, seconds, step)
