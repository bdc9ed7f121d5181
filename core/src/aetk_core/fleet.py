"""What every fleet offers, aetk's fleet detector and aetk-runtime's folder of a fleet's exported
detectors alike: each recording routed to its machine (:mod:`aetk_core.machines`) and judged by
that machine's detector, with the machine's conditions in the fleet on its result.

The routing and the order of the results are written here once; a fleet only says which
machines it has, each one's detector and conditions, and how its recordings are told apart
when the user does not say.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aetk_core.describe import verdicts_note
from aetk_core.detector import ScoringDetector
from aetk_core.machines import (
    MACHINE,
    Row,
    check_source,
    routable_rows,
    routed_rows,
    score_by_machine,
)
from aetk_core.results import ScoreResult


class Fleet(ABC):
    """The scoring methods of a fleet. A subclass provides :attr:`machines`, :meth:`detector`
    (an unknown machine is its one-line error), :meth:`conditions`, :meth:`unknown` and
    :meth:`default_source`."""

    @property
    @abstractmethod
    def machines(self) -> list[str]:
        """The fleet's machines, in the order its detectors are kept."""

    @abstractmethod
    def detector(self, machine: str) -> ScoringDetector:
        """The detector of ``machine``; an unknown machine is an error naming it."""

    @abstractmethod
    def conditions(self, machine: str) -> dict[str, str]:
        """``machine``'s conditions in the fleet: the columns that were the same in all its
        training recordings."""

    @abstractmethod
    def unknown(self, machine: str) -> str | None:
        """Why the fleet cannot judge ``machine`` (None: it can)."""

    @abstractmethod
    def default_source(self) -> str:
        """How recordings are told apart when the user does not say: as the fleet's were when
        it was fitted (``folders``, ``dcase`` or a table); a :class:`ConfigError` where that
        cannot be used again."""

    def machine_detectors(self) -> dict[str, tuple[Any, dict[str, str]]]:
        """Each machine's detector and its conditions in the fleet, as a watch judges with
        them."""
        return {name: (self.detector(name), self.conditions(name)) for name in self.machines}

    def route(
        self,
        paths: Sequence[str | Path],
        machine: str | None = None,
        source: str | None = None,
        files: Sequence[Path] | None = None,
        unrouted: dict[Path, str] | None = None,
    ) -> dict[Path, Row]:
        """Each recording under ``paths`` with its categories: ``machine``'s for all of them
        (its conditions in the fleet), or told by ``source`` (default: :meth:`default_source`).
        ``files``: the recordings under ``paths`` when they are known already (a file that has
        just arrived in a watched folder); the folders are then not walked.

        A recording whose machine cannot be told, or is not one of the fleet's, is a
        :class:`ConfigError` naming it; with ``unrouted``, it is put there with the reason
        instead, so that a batch goes on with the others (when no recording can be routed,
        the first one's reason is still the error: nothing would be scored)."""
        if machine is not None:
            self.detector(machine)
            named = {MACHINE: machine, **self.conditions(machine)}
            return routed_rows(paths, files, named=named)
        problems: dict[Path, str] = {}
        told_by = check_source(source or self.default_source())
        routed = routed_rows(paths, files, source=told_by, unrouted=problems)
        return routable_rows(routed, problems, unrouted, self.unknown)

    def iter_scores(
        self,
        paths: Sequence[str | Path],
        files: Sequence[Path] | None = None,
        *,
        machine: str | None = None,
        source: str | None = None,
        **options: Any,
    ) -> Iterator[ScoreResult]:
        """Each recording under ``paths`` scored by its machine's detector (routed by
        :meth:`route`; ``options``: :meth:`ScoringDetector.score`'s keywords), each result with
        its ``machine`` and ``conditions``, in :meth:`iter_routed`'s order; a recording that
        cannot be routed is an error result."""
        unrouted: dict[Path, str] = {}
        routed = self.route(paths, machine, source, files, unrouted)
        yield from self.iter_routed(routed, unrouted, **options)

    def iter_routed(
        self, routed: dict[Path, Row], unrouted: dict[Path, str] | None = None, **options: Any
    ) -> Iterator[ScoreResult]:
        """Results of recordings already routed (:meth:`route`) to their machines, each as soon
        as it is scored: machine by machine, in the order each machine first appears, and in the
        recordings' order within a machine. The ``unrouted`` ones come first, each an error with
        its reason."""
        yield from score_by_machine(
            routed, lambda name, found: self.detector(name).iter_scores(found, **options), unrouted
        )

    def score(self, paths: Sequence[str | Path], **options: Any) -> list[ScoreResult]:
        """:meth:`iter_scores`'s results as a list."""
        return list(self.iter_scores(paths, **options))

    def score_audio(
        self, samples: Any, sample_rate: int | None = None, *, machine: str, **options: Any
    ) -> ScoreResult:
        """A recording held in memory judged as ``machine``'s
        (:meth:`ScoringDetector.score_audio`, ``options``: its keywords), with the conditions
        :meth:`iter_scores` gives ``machine``'s recordings; an unknown machine is an error."""
        result = self.detector(machine).score_audio(samples, sample_rate, **options)
        result.machine = machine
        result.conditions = self.conditions(machine)
        return result


def verdicts_warning(
    judging: ScoringDetector | Fleet,
    results: Iterable[ScoreResult],
    threshold: float | None,
    false_alarm_rate: float | None,
) -> str | None:
    """What ``aetk score`` and ``aetk-runtime score`` warn once they have judged ``results``
    with ``judging`` at ``threshold`` or for ``false_alarm_rate`` (None each: the detectors' own
    thresholds), where a threshold that judged one of them holds no false-alarm rate
    (:func:`aetk_core.describe.verdicts_note`); None where every one does."""
    judged = [result for result in results if result.score is not None]
    if isinstance(judging, Fleet):
        machines = sorted({result.machine for result in judged if result.machine})
        detectors = {name: judging.detector(name) for name in machines}
    else:
        detectors = {"": judging} if judged else {}
    notes = {
        name: detector.threshold_note(threshold, false_alarm_rate)
        for name, detector in detectors.items()
    }
    return verdicts_note({name: note for name, note in notes.items() if note})
