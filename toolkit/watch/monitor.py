"""``aetk watch``'s monitor: the watch of aetk-core (:mod:`aetk_core.watch.monitor`), judging
with aetk's detectors and reading a refit as aetk reads a detector file."""

from __future__ import annotations

from typing import Any

from aetk_core.watch.monitor import Monitor as CoreMonitor

from aetk.errors import ConfigError


class Monitor(CoreMonitor):
    def load(self) -> tuple[Any, dict[str, str] | None]:
        from aetk.fleet.detector import load_judging

        options = self.options
        if options.detector_file is None:
            raise ConfigError("a watch reads its detector again from WatchOptions.detector_file")
        return load_judging(options.detector_file, options.machine, options.machines)
