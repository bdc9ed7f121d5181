"""A fleet's exported detectors, one file per machine in a folder (``aetk export fleet.aetk -o
models/``): each recording scored by its machine's, the machine told as aetk tells it
(:mod:`aetk_core.machines`: sub-folders, DCASE and MIMII names, or a table)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aetk_core.errors import ConfigError
from aetk_core.machines import (
    MACHINE,
    SOURCES,
    Row,
    check_source,
    routable_rows,
    routed_rows,
    score_by_machine,
)
from aetk_core.results import ScoreResult

from aetk_runtime.detector import ExportedDetector, load
from aetk_runtime.errors import DetectorError, RuntimeUsageError


def load_fleet(folder: str | Path) -> ExportedFleet:
    """The folder's ``MACHINE.onnx`` files, each loaded when a recording of its machine comes."""
    folder = Path(folder)
    files = {path.stem: path for path in sorted(folder.glob("*.onnx")) if path.is_file()}
    if not files:
        raise DetectorError(
            f"{folder}: no exported detectors here (write a fleet's with "
            f"'aetk export fleet.aetk -o {folder}')"
        )
    return ExportedFleet(folder, files)


class ExportedFleet:
    def __init__(self, folder: Path, files: dict[str, Path]):
        self.folder = folder
        self.files = files
        self._loaded: dict[str, ExportedDetector] = {}

    @property
    def machines(self) -> list[str]:
        return list(self.files)

    def detector(self, machine: str) -> ExportedDetector:
        """The detector of ``machine``, loaded once; an unknown machine, or a file that is not
        that machine's, is a one-line error."""
        if machine not in self._loaded:
            unknown = self._unknown(machine)
            if unknown is not None:
                raise RuntimeUsageError(unknown)
            detector = load(self.files[machine])
            if detector.meta.get("machine") != machine:
                raise DetectorError(
                    f"{detector.path}: not the exported detector of machine {machine!r} (it says "
                    f"{detector.meta.get('machine')!r}); export a fleet with "
                    "'aetk export fleet.aetk -o FOLDER'"
                )
            self._loaded[machine] = detector
        return self._loaded[machine]

    def machine_detectors(self) -> dict[str, tuple[ExportedDetector, dict[str, str]]]:
        """Each machine's detector (all loaded) and its conditions in the fleet, as a watch
        judges with them."""
        return {name: (self.detector(name), self.conditions(name)) for name in self.machines}

    def conditions(self, machine: str) -> dict[str, str]:
        """``machine``'s conditions in the fleet (the columns that were the same in all its
        training recordings)."""
        return dict(self.detector(machine).meta.get("conditions") or {})

    @property
    def clip_seconds(self) -> float | None:
        """The calibrated clips' length, as every machine of a fleet shares it."""
        return self.detector(self.machines[0]).clip_seconds

    def _machines_from(self) -> str:
        told_by = self.detector(self.machines[0]).meta.get("machines_from")
        if told_by in SOURCES:
            return told_by
        fitted = " (the fleet was told its machines by a table)" if told_by == "table" else ""
        raise ConfigError(
            f"{self.folder}: give --machines folders, dcase or TABLE.csv{fitted}, or --machine "
            "NAME, to say which machine each recording comes from"
        )

    def route(
        self,
        paths: Sequence[str | Path],
        *,
        machine: str | None = None,
        source: str | None = None,
        files: Sequence[Path] | None = None,
        unrouted: dict[Path, str] | None = None,
    ) -> dict[Path, Row]:
        """Each recording under ``paths`` with its machine and conditions: ``machine``'s for all
        of them, or told by ``source`` (default: as the fleet told its recordings apart when it
        was fitted). ``files``: the recordings under ``paths``, when they were found already. A
        recording whose machine cannot be told, or is not one of the fleet's, is an error naming
        it; with ``unrouted``, it is put there with the reason instead."""
        if machine is not None:
            named = {MACHINE: machine, **self.conditions(machine)}
            return routed_rows(paths, files, named=named)
        problems: dict[Path, str] = {}
        source = check_source(source or self._machines_from())
        routed = routed_rows(paths, files, source=source, unrouted=problems)
        return routable_rows(routed, problems, unrouted, self._unknown)

    def iter_scores(
        self,
        paths: Sequence[str | Path],
        files: Sequence[Path] | None = None,
        *,
        machine: str | None = None,
        source: str | None = None,
        **options: Any,
    ) -> Iterator[ScoreResult]:
        """As ``aetk score`` scores a fleet: each recording under ``paths`` by its machine's
        detector (routed by :meth:`route`), machine by machine, in the order each machine first
        appears, the recordings in their order within it; each row with its machine and its
        conditions. ``options``: :meth:`ExportedDetector.iter_scores`'s keywords."""
        unrouted: dict[Path, str] = {}
        routed = self.route(paths, machine=machine, source=source, files=files, unrouted=unrouted)
        yield from score_by_machine(
            routed, lambda name, found: self.detector(name).iter_scores(found, **options), unrouted
        )

    def score_audio(
        self, samples: Any, sample_rate: int | None = None, *, machine: str, **options: Any
    ) -> ScoreResult:
        """A recording held in memory judged as ``machine``'s
        (:meth:`ExportedDetector.score_audio`, ``options``: its keywords), with the conditions
        :meth:`iter_scores` gives ``machine``'s recordings."""
        result = self.detector(machine).score_audio(samples, sample_rate, **options)
        result.machine = machine
        result.conditions = self.conditions(machine)
        return result

    def _unknown(self, machine: str) -> str | None:
        if machine in self.files:
            return None
        known = ", ".join(self.machines[:20]) + (", ..." if len(self.files) > 20 else "")
        return f"unknown machine {machine!r}: {self.folder} holds {known}"


def load_judging(
    path: str | Path, machine: str | None, machines: str | None = None
) -> tuple[ExportedDetector | ExportedFleet, dict[str, str] | None]:
    """What ``aetk-runtime score`` and ``watch`` judge with, and its conditions: an exported
    detector; a fleet's folder of them whole; or, with ``machine``, that machine's detector of
    the folder and its conditions. ``machines`` (how a fleet's recordings are told apart) needs
    a whole fleet."""
    path = Path(path)
    if not path.is_dir():
        if machine is not None or machines is not None:
            raise RuntimeUsageError(
                f"{path}: --machine and --machines need a fleet's folder of exported detectors "
                "(aetk export fleet.aetk -o FOLDER)"
            )
        return load(path), None
    fleet = load_fleet(path)
    if machine is None:
        return fleet, None
    if machines is not None:
        raise RuntimeUsageError(
            f"{path}: --machines tells a fleet's recordings apart; with --machine NAME all are "
            "NAME's: give one of them"
        )
    return fleet.detector(machine), fleet.conditions(machine)
