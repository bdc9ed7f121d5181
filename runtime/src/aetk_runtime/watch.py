"""``aetk-runtime watch``: the watch of aetk-core (:mod:`aetk_core.watch.monitor`) judging with
exported detectors, so that an edge box watches a folder or a stream without PyTorch; the live
page's pictures are drawn with numpy (:mod:`aetk_core.watch.picture`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetk_core.errors import AetkError, ConfigError
from aetk_core.watch.monitor import Monitor as CoreMonitor

from aetk_runtime.errors import RuntimeUsageError
from aetk_runtime.fleet import ExportedFleet, load_judging

if TYPE_CHECKING:
    from aetk_core.watch.dashboard import Dashboard


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

    def open_dashboard(self) -> Dashboard:
        """The live page, each alert's spectrogram drawn when a page first asks for it."""
        return self.dashboard_drawing(self.draw_alert)

    def draw_alert(self, audio: Path, machine: str | None, threshold: float | None) -> bytes | None:
        """PNG of ``audio``'s spectrogram with its events marked, as the detector judging it now
        (a fleet's: ``machine``'s) localizes them; None when it cannot be read or localized."""
        from aetk_core.watch.picture import alert_picture

        judge = self.judges.get(str(machine)) if self.fleet else self.main
        if judge is None:
            return None
        try:
            explained = judge.detector.explain(audio, threshold)
        except AetkError:
            return None
        if explained is None:
            return None
        return alert_picture(
            explained.spectrogram,
            explained.events,
            explained.band_edges_hz,
            explained.frame_seconds,
        )
