"""A fleet's exported detectors, one file per machine in a folder (``aetk export fleet.aetk -o
models/``): each recording scored by its machine's, the machine told as aetk tells it
(:mod:`aetk_core.machines`: sub-folders, DCASE and MIMII names, or a table)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aetk_core.audio import find_audio_files
from aetk_core.machines import MACHINE, SOURCES, Row, check_source, conditions, machine_rows
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
            if machine not in self.files:
                known = ", ".join(self.machines[:20]) + (", ..." if len(self.files) > 20 else "")
                raise RuntimeUsageError(f"unknown machine {machine!r}: {self.folder} holds {known}")
            detector = load(self.files[machine])
            if detector.meta.get("machine") != machine:
                raise DetectorError(
                    f"{detector.path}: not the exported detector of machine {machine!r} (it says "
                    f"{detector.meta.get('machine')!r}); export a fleet with "
                    "'aetk export fleet.aetk -o FOLDER'"
                )
            self._loaded[machine] = detector
        return self._loaded[machine]

    @property
    def clip_seconds(self) -> float | None:
        """The calibrated clips' length, as every machine of a fleet shares it."""
        return self.detector(self.machines[0]).meta.get("clip_seconds")

    def route(
        self,
        paths: Sequence[str | Path],
        machine: str | None = None,
        source: str | None = None,
        files: Sequence[Path] | None = None,
    ) -> dict[Path, Row]:
        """Each recording under ``paths`` with its categories: ``machine``'s for all of them, or
        told by ``source`` (default: as the fleet told its recordings apart when it was fitted).
        ``files``: the recordings under ``paths``, when they were found already."""
        files = find_audio_files(paths) if files is None else files
        if machine is not None:
            place = self.detector(machine).meta.get("conditions") or {}
            return {path: {MACHINE: machine, **place} for path in files}
        routed = machine_rows(paths, check_source(source or self._machines_from()), files)
        for name in dict.fromkeys(row[MACHINE] for row in routed.values()):
            self.detector(name)
        return routed

    def _machines_from(self) -> str:
        told_by = self.detector(self.machines[0]).meta.get("machines_from")
        if told_by in SOURCES:
            return told_by
        fitted = " (the fleet was told its machines by a table)" if told_by == "table" else ""
        raise RuntimeUsageError(
            f"{self.folder}: give --machines folders, dcase or TABLE.csv{fitted}, or --machine "
            "NAME, to say which machine each recording comes from"
        )

    def iter_scores(
        self,
        paths: Sequence[str | Path],
        *,
        machine: str | None = None,
        source: str | None = None,
        files: Sequence[Path] | None = None,
        **options: Any,
    ) -> Iterator[ScoreResult]:
        """As ``aetk score`` scores a fleet: machine by machine, in the order each machine first
        appears, the recordings in their order within it; each row with its machine and its
        conditions (``route``'s arguments, and ``options``: :meth:`ExportedDetector.iter_scores`'s
        keywords)."""
        routed = self.route(paths, machine, source, files)
        by_machine: dict[str, list[Path]] = {}
        for path, row in routed.items():
            by_machine.setdefault(row[MACHINE], []).append(path)
        rows = {str(path): row for path, row in routed.items()}
        for name, files in by_machine.items():
            for result in self.detector(name).iter_scores(files, **options):
                result.conditions = conditions(rows.get(result.path, {MACHINE: name}))
                yield result
