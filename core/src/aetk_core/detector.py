"""What every detector offers to score with, aetk's (``aetk.Detector``) and aetk-runtime's
(``ExportedDetector``) alike: files and folders, or a recording held in memory, at a threshold
given, at one recomputed for a false-alarm rate, or at the detector's own; whole or in windows;
localized or not.

The options are read here once, so both tools take them the same way; a detector only says how
it scores the files or the recording with them (:meth:`ScoringDetector._scored_files` and
:meth:`ScoringDetector._scored_audio`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aetk_core.audio import find_audio_files
from aetk_core.describe import too_few_note
from aetk_core.errors import ConfigError
from aetk_core.localization import check_localize
from aetk_core.results import ScoreResult

#: What to localize: every file scored whole (True), none (False), or only the files found
#: anomalous (``"anomalous"``, what the tables show).
Localize = bool | Literal["anomalous"]


@dataclass(frozen=True)
class ScoringRun:
    """One scoring run's options, read: the threshold it judges at, the windows' length in
    seconds (0: whole files), what to localize, and whether a recording unlike the training
    recordings is an error."""

    threshold: float
    segment: float
    localize: Localize
    strict: bool


class ScoringDetector(ABC):
    """The scoring methods of a detector. A subclass provides ``segment_seconds`` (its own
    windows' length, 0: whole files), :meth:`threshold_for`, :meth:`calibration_summary`, and
    how it scores found files and a recording held in memory in a :class:`ScoringRun`."""

    @property
    @abstractmethod
    def segment_seconds(self) -> float:
        """The windows' length the detector was fitted on, in seconds (0: whole files)."""

    @abstractmethod
    def threshold_for(
        self, threshold: float | None = None, false_alarm_rate: float | None = None
    ) -> float:
        """The threshold a scoring run uses: ``threshold`` as given, or recomputed from the
        stored normal scores for ``false_alarm_rate``, or the detector's own."""

    @abstractmethod
    def calibration_summary(self) -> dict[str, Any]:
        """How the detector's own threshold was set, as ``aetk fit --json`` says it:
        ``method``, ``target_false_alarm_rate``, ``threshold``, ``warning`` and the count of
        held-out ``normal_scores``."""

    def threshold_note(
        self, threshold: float | None = None, false_alarm_rate: float | None = None
    ) -> str:
        """Why the threshold a run judges at holds no false-alarm rate, in words
        (:func:`aetk_core.describe.too_few_note`; empty where it does). Only the detector's own
        can be so: a threshold given is the user's, and a rate that the stored scores cannot
        hold is warned about as its threshold is computed."""
        if threshold is not None or false_alarm_rate is not None:
            return ""
        return too_few_note(self.calibration_summary())

    def score(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        threshold: float | None = None,
        false_alarm_rate: float | None = None,
        segment: float | None = None,
        localize: Localize = True,
        strict: bool = False,
    ) -> list[ScoreResult]:
        """Score files and folders (searched recursively); one result per file, in order.

        :param threshold: overrides the detector's threshold.
        :param false_alarm_rate: recompute the threshold for this rate from the normal scores the
            detector was calibrated on (without refitting).
        :param segment: score each file in windows of this many seconds, decoded one at a time
            (default: the detector's own segment length; 0 scores whole files).
        :param localize: say when and in which bands files scored whole depart from normal,
            and which view raised the score; ``"anomalous"``: only for the files found
            anomalous (what ``aetk score``'s table shows, for a fraction of the cost).
        :param strict: a recording unlike the training recordings (any recording warning:
            :data:`aetk_core.recording.NAMES`) is an error rather than a warning on its result.
        """
        run = self.scoring_run(threshold, false_alarm_rate, segment, localize, strict)
        return list(self._scored_files(_found(paths), run))

    def iter_scores(
        self, paths: str | Path | Sequence[str | Path], **options: Any
    ) -> Iterator[ScoreResult]:
        """Like :meth:`score` (``options``: its keywords), yielding each file's result as soon
        as all its windows are scored."""
        run = self.scoring_run(**options)
        yield from self._scored_files(_found(paths), run)

    def score_audio(
        self,
        samples: Any,
        sample_rate: int | None = None,
        *,
        name: str = "<audio>",
        threshold: float | None = None,
        false_alarm_rate: float | None = None,
        segment: float | None = None,
        localize: Localize = True,
        strict: bool = False,
    ) -> ScoreResult:
        """Score a recording held in memory, as :meth:`score` scores a file of it.

        :param samples: ``[samples]`` (mono) or ``[channels, samples]`` (a numpy array, or
            anything numpy turns into one), floats in [-1, 1] or 16- or 32-bit integers, at
            ``sample_rate``; or the bytes of an audio file (a request's body, standard input),
            which give their own rate.
        :param name: the result's ``path``.
        Audio that a file could not hold (no samples, NaN, an implausible rate or layout), or
        bytes that are no audio file, give a result with ``error`` set; the other parameters are
        :meth:`score`'s.
        """
        run = self.scoring_run(threshold, false_alarm_rate, segment, localize, strict)
        return self._scored_audio(samples, sample_rate, name, run)

    def scoring_run(
        self,
        threshold: float | None = None,
        false_alarm_rate: float | None = None,
        segment: float | None = None,
        localize: Localize = True,
        strict: bool = False,
    ) -> ScoringRun:
        """The options of :meth:`score`, read: a bad one is a :class:`ConfigError` (a
        ``ValueError`` for a ``localize`` that is none of its three)."""
        check_localize(localize)
        seconds = self.segment_seconds if segment is None else float(segment)
        if not math.isfinite(seconds) or seconds < 0:
            raise ConfigError(f"--segment must be a finite number of seconds ≥ 0, not {segment}")
        return ScoringRun(
            self.threshold_for(threshold, false_alarm_rate), seconds, localize, strict
        )

    @abstractmethod
    def _scored_files(self, files: list[Path], run: ScoringRun) -> Iterator[ScoreResult]:
        """Each of ``files``' result, in order, as soon as it is scored."""

    @abstractmethod
    def _scored_audio(
        self, samples: Any, sample_rate: int | None, name: str, run: ScoringRun
    ) -> ScoreResult:
        """The result of a recording held in memory (:meth:`score_audio`'s ``samples``), named
        ``name``."""


def _found(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    return find_audio_files([paths] if isinstance(paths, (str, Path)) else paths)
