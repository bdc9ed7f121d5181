"""A fleet's exported detectors, one file per machine in a folder (``aetk export fleet.aetk -o
models/``): each recording scored by its machine's, the machine told as aetk tells it
(:mod:`aetk_core.machines`: sub-folders, DCASE and MIMII names, or a table)."""

from __future__ import annotations

from pathlib import Path

from aetk_core.errors import ConfigError
from aetk_core.fleet import Fleet
from aetk_core.machines import SOURCES

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


class ExportedFleet(Fleet):
    """A fleet's exported detectors, each loaded once a recording of its machine comes; scored
    as every fleet is (:class:`aetk_core.fleet.Fleet`)."""

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
            unknown = self.unknown(machine)
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

    def conditions(self, machine: str) -> dict[str, str]:
        return dict(self.detector(machine).meta.get("conditions") or {})

    @property
    def clip_seconds(self) -> float | None:
        """The calibrated clips' length, as every machine of a fleet shares it."""
        return self.detector(self.machines[0]).clip_seconds

    def default_source(self) -> str:
        told_by = self.detector(self.machines[0]).meta.get("machines_from")
        if told_by in SOURCES:
            return told_by
        fitted = " (the fleet was told its machines by a table)" if told_by == "table" else ""
        raise ConfigError(
            f"{self.folder}: give --machines folders, dcase or TABLE.csv{fitted}, or --machine "
            "NAME, to say which machine each recording comes from"
        )

    def unknown(self, machine: str) -> str | None:
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
