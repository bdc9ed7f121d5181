"""``aetk-runtime watch``: the watch of aetk-core (:mod:`aetk_core.watch.monitor`) judging with
exported detectors, so that an edge box watches a folder or a stream without PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aetk_core.errors import ConfigError
from aetk_core.watch.monitor import Monitor as CoreMonitor

from aetk_runtime.detector import ExportedDetector, load
from aetk_runtime.errors import RuntimeUsageError
from aetk_runtime.fleet import ExportedFleet, load_fleet


def load_judging(
    path: str | Path, machine: str | None, machines: str | None = None
) -> tuple[ExportedDetector | ExportedFleet, dict[str, str] | None]:
    """What a watch judges with, and its conditions: an exported detector; a fleet's folder of
    them whole; or, with ``machine``, that machine's detector of the folder and its conditions.
    ``machines`` (how a fleet's recordings are told apart) needs a whole fleet."""
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


class Monitor(CoreMonitor):
    def load(self) -> tuple[Any, dict[str, str] | None]:
        """The exported detector (or fleet's folder) read again after a new export replaced it;
        what cannot be read is one line, as aetk's errors are."""
        options = self.options
        if options.detector_file is None:
            raise ConfigError("a watch reads its detector again from WatchOptions.detector_file")
        try:
            return load_judging(options.detector_file, options.machine, options.machines)
        except RuntimeUsageError as exc:
            raise ConfigError(str(exc)) from None
