"""``aetk watch``'s monitor: the watch of aetk-core (:mod:`aetk_core.watch.monitor`), judging
with aetk's detectors, reading a refit as aetk reads a detector file, and serving the live page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetk_core.watch.monitor import Monitor as CoreMonitor

from aetk.errors import ConfigError

if TYPE_CHECKING:
    from aetk.watch.dashboard import Dashboard


class Monitor(CoreMonitor):
    def load(self) -> tuple[Any, dict[str, str] | None]:
        from aetk.fleet.detector import load_judging

        options = self.options
        if options.detector_file is None:
            raise ConfigError("a watch reads its detector again from WatchOptions.detector_file")
        return load_judging(options.detector_file, options.machine, options.machines)

    def open_dashboard(self) -> Dashboard:
        from aetk.watch.dashboard import BackgroundDrawing, Dashboard, parse_address

        if self.options.detector_file is None:
            raise ConfigError("--dashboard needs the detector's file (WatchOptions.detector_file)")
        allowed = [Path(self.source)] if Path(self.source).is_dir() else []
        allowed += [self.options.record] if self.options.record else []
        self.drawing = BackgroundDrawing(self.options.detector_file)
        return Dashboard(
            parse_address(self.options.dashboard or ""),
            self.options.machine or self.source,
            self.main.threshold if self.main else None,
            self.drawing,
            allowed,
        )

    def close(self) -> None:
        super().close()
        if self.dashboard:
            self.drawing.close()
