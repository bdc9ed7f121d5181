"""The one scoring path: featurized clips → standardised → scorer (with the model) → scores →
compared with the threshold → verdicts, with where each anomaly is when that is asked for.

Every engine calls :func:`score_clips`: the local engine with files it decodes itself, the Ray
actors with clips featurized in other tasks, and ``evaluate``, ``report`` and ``cv`` through
:meth:`aetk.Detector.score`. Windows of many files are scored together in batches, and a file's
result is yielded as soon as all its windows are scored, so memory holds one batch whatever the
recordings' lengths.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from aetk_core.detector import Localize
from aetk_core.localization import check_localize
from aetk_core.recording import RecordingWarning, machine_warnings, merged, mismatch_error
from aetk_core.results import ScoreResult, view_from
from aetk_core.verdict import is_anomalous, window_events

from aetk.components.base import Localization
from aetk.data.features import FileClips, check_vector_shape
from aetk.detect.explain import ErrorMap, error_map, localized_view
from aetk.errors import AudioError

if TYPE_CHECKING:
    from aetk.detect.detector import Detector

#: Windows scored together in one call of the scorer.
BATCH_WINDOWS = 64


@dataclass
class _FileScores:
    """Windows of one file and their scores, collected while its batches are scored."""

    path: str
    windowed: bool
    windows: list[tuple[float, float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    error: str | None = None
    complete: bool = False
    #: Events localized inside a file scored whole (None: not asked for, or not localizable).
    located: list[dict[str, Any]] | None = None
    #: The view that gave a file scored whole its score (several-view scorers, localized).
    view: dict[str, Any] | None = None
    #: The same for each window of a windowed file, in seconds of the file (None: not localized).
    window_views: list[dict[str, Any] | None] = field(default_factory=list)
    #: Ways its recording does not match the training recordings, and its Nyquist frequency.
    warnings: list[RecordingWarning] = field(default_factory=list)
    band_limit_hz: float | None = None

    def done(self) -> bool:
        return self.complete and (self.error is not None or len(self.scores) == len(self.windows))


def score_clips(
    detector: Detector,
    files: Iterable[FileClips],
    threshold: float,
    localize: Localize,
    batch_windows: int = BATCH_WINDOWS,
    strict: bool = False,
    maps: dict[str, ErrorMap] | None = None,
) -> Iterator[ScoreResult]:
    """One :class:`~aetk.detect.detector.ScoreResult` per file of ``files``, in order.

    :param localize: for files scored whole, say when and in which bands they depart from
        normal (``segments``) and which view raised the score (``view``), from the same pass
        over the model that scores them; ``"anomalous"``: only for the files found anomalous.
        Windowed files always get the runs of windows above the threshold.
    :param strict: a recording that does not match the training recordings is an error (no
        score) rather than a warning on its result.
    :param maps: with ``localize``, filled with each file's error map (by path), for
        explanations drawn from this same pass.
    """
    check_localize(localize)
    norms, learned = detector.recording_norms(), detector.learned_machines()
    pending: list[_FileScores] = []
    batch: list[tuple[_FileScores, torch.Tensor]] = []
    for file in files:
        entry = _FileScores(file.path, file.windowed, warnings=machine_warnings(learned, file.path))
        pending.append(entry)
        try:
            if file.error is not None:
                raise AudioError(file.error, file.path)
            for clip in file.clips:
                check_vector_shape(clip.vectors, detector.model.input_shape_, file.path)
                if clip.recording is not None:
                    found = norms.check(clip.recording, file.segment_seconds)
                    entry.warnings = merged([*entry.warnings, *found])
                    entry.band_limit_hz = clip.recording.nyquist_hz()
                entry.windows.append((clip.start, clip.end))
                batch.append((entry, clip.vectors))
                if len(batch) >= batch_windows:
                    _score_batch(detector, batch, threshold, localize, maps)
                    batch = []
                    yield from _finished(pending, threshold, strict)
        except AudioError as exc:
            entry.error = exc.reason
        entry.complete = True
    _score_batch(detector, batch, threshold, localize, maps)
    yield from _finished(pending, threshold, strict)


def _score_batch(
    detector: Detector,
    batch: list[tuple[_FileScores, torch.Tensor]],
    threshold: float,
    localize: Localize,
    maps: dict[str, ErrorMap] | None = None,
) -> None:
    if not batch:
        return
    # One standardisation for the whole batch: fewer, larger tensor operations.
    lengths = [len(clip) for _, clip in batch]
    vectors = list(
        detector.normalizer.transform(torch.cat([clip for _, clip in batch])).split(lengths)
    )
    scorer, model = detector.scorer, detector.model
    localizations: dict[int, Localization | None] = {}
    if not localize:
        scores = scorer.score(model, vectors)
    elif localize == "anomalous" and not scorer.localizes_while_scoring():
        # Scored first, then only the anomalous localized: a second pass over few clips.
        scores = scorer.score(model, vectors)
        flagged = _anomalous(scores, threshold)
        if flagged:
            found = scorer.score_and_localize(model, [vectors[index] for index in flagged])[1]
            localizations = dict(zip(flagged, found, strict=True))
    else:
        scores, found = scorer.score_and_localize(model, vectors)
        kept = range(len(found)) if localize is True else _anomalous(scores, threshold)
        localizations = {index: found[index] for index in kept}
    layout = detector.featurizer.layout()
    for index, ((entry, _), score) in enumerate(zip(batch, scores, strict=True)):
        entry.scores.append(float(score))
        if entry.windowed:
            # A window's view, in seconds of the file: the file's is its worst window's.
            found_in = localizations.get(index)
            view = localized_view(layout, found_in) if layout and found_in else None
            entry.window_views.append(view_from(view, entry.windows[len(entry.scores) - 1][0]))
        elif index in localizations:
            errors = error_map(
                detector,
                localizations[index],
                is_anomalous(float(score), threshold),
                entry.band_limit_hz,
            )
            if errors is not None:
                entry.located = [e.as_dict() for e in errors.events]
                entry.view = errors.view
                if maps is not None:
                    maps[entry.path] = errors


def _anomalous(scores: Any, threshold: float) -> list[int]:
    """The indices of the scores the verdict rule finds anomalous."""
    return [index for index, score in enumerate(scores) if is_anomalous(float(score), threshold)]


def _finished(pending: list[_FileScores], threshold: float, strict: bool) -> Iterator[ScoreResult]:
    """Results of the files at the head of ``pending`` whose windows are all scored, in order."""
    while pending and pending[0].done():
        entry = pending.pop(0)
        warnings = [warning.as_dict() for warning in entry.warnings]
        if strict and entry.error is None and entry.warnings:
            entry.error = mismatch_error(entry.warnings)
        if entry.error is not None:
            yield ScoreResult(entry.path, None, threshold, None, entry.error, warnings=warnings)
        elif not all(math.isfinite(score) for score in entry.scores):
            yield ScoreResult(
                entry.path, None, threshold, None, "score is not finite", warnings=warnings
            )
        else:
            score = max(entry.scores)
            segments: list[dict[str, Any]] | None
            if entry.windowed:
                segments = window_events(entry.windows, entry.scores, threshold)
                view = entry.window_views[entry.scores.index(score)]
            else:
                segments, view = entry.located, entry.view
            yield ScoreResult(
                entry.path,
                score,
                threshold,
                is_anomalous(score, threshold),
                None,
                segments,
                view,
                warnings,
            )


def scores_of(results: Iterable[ScoreResult]) -> list[float]:
    """The scores of results that have one (files that could be scored), in order."""
    return [result.score for result in results if result.score is not None]
