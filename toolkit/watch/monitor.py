"""``aetk watch``'s monitor: the watch of aetk-core (:mod:`aetk_core.watch.monitor`), judging
with aetk's detectors, reading a refit as aetk reads a detector file, and drawing the live page's
pictures (:mod:`aetk.watch.drawing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aetk_core.watch.monitor import Monitor as CoreMonitor

from aetk.errors import ConfigError

if TYPE_CHECKING:
    from aetk_core.watch.dashboard import Dashboard


class Monitor(CoreMonitor):
    def load(self) -> tuple[Any, dict[str, str] | None]:
        from aetk.fleet.detector import load_judging

        options = self.options
        if options.detector_file is None:
            raise ConfigError("a watch reads its detector again from WatchOptions.detector_file")
        return load_judging(options.detector_file, options.machine, options.machines)

    def open_dashboard(self) -> Dashboard:
        """The live page, with each alert's spectrogram drawn in a process of its own."""
        from aetk.watch.drawing import BackgroundDrawing

        if self.options.detector_file is None:
            raise ConfigError("--dashboard needs the detector's file (WatchOptions.detector_file)")
        self.drawing = BackgroundDrawing(self.options.detector_file)
        return self.dashboard_drawing(self.drawing)

    def close(self) -> None:
        super().close()
        if self.dashboard:
            self.drawing.close()
