"""``aetk-runtime watch``: the watch of aetk-core (:mod:`aetk_core.watch.monitor`) judging with
exported detectors, so that an edge box watches a folder or a stream without PyTorch."""

from __future__ import annotations

from typing import Any

from aetk_core.errors import ConfigError
from aetk_core.watch.monitor import Monitor as CoreMonitor

from aetk_runtime.errors import RuntimeUsageError
from aetk_runtime.fleet import ExportedFleet, load_judging


class Monitor(CoreMonitor):
    def load(self) -> tuple[Any, dict[str, str] | None]:
        """The exported detector (or fleet's folder) read again after a new export replaced it;
        what cannot be read is one line, as aetk's errors are."""
        options = self.options
        if options.detector_file is None:
            raise ConfigError("a watch reads its detector again from WatchOptions.detector_file")
        try:
            loaded, conditions = load_judging(
                options.detector_file, options.machine, options.machines
            )
            if isinstance(loaded, ExportedFleet):
                # Every machine's file read now: one that cannot be is this refit's error.
                loaded.machine_detectors()
        except RuntimeUsageError as exc:
            raise ConfigError(str(exc)) from None
        return loaded, conditions
