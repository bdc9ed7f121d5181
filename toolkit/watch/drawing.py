"""The live page's pictures in ``aetk watch``: each alert's spectrogram, explained by the
detector with its localized seconds and bands marked, drawn in a process of its own."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import Any

from aetk_core.watch.refit import Stamp, stamp_of


class BackgroundDrawing:
    """Draws alerts' spectrograms (the recording explained by the detector in ``detector_file``,
    or by its machine's in a fleet, its anomaly marked) in one worker process at the lowest CPU
    priority, which loads the detector file as the watch starts: on a machine whose cores the
    scoring uses, the drawing takes only what the scoring leaves, and the first alert's picture
    does not wait for imports."""

    def __init__(self, detector_file: Path):
        self.detector_file = detector_file
        self.lock = threading.Lock()
        self.pool = self._start()

    def _start(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(
            1, multiprocessing.get_context("spawn"), initializer=_lowest_priority
        )
        pool.submit(_load, self.detector_file)
        return pool

    def __call__(self, audio: Path, machine: str | None, threshold: float | None) -> bytes | None:
        """The picture, or None when there is none to be had: the watch is stopping, or the
        drawing process died twice in a row (killed for memory, say: a new one is started for
        the next alert)."""
        from concurrent.futures import CancelledError
        from concurrent.futures.process import BrokenProcessPool

        for _ in range(2):
            pool = self.pool
            try:
                future = pool.submit(draw_alert, self.detector_file, machine, threshold, audio)
                return future.result(timeout=300)
            except BrokenProcessPool:
                with self.lock:
                    if self.pool is pool:
                        self.pool = self._start()
            except (CancelledError, RuntimeError):  # shut down as the watch stops
                return None
        return None

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _lowest_priority() -> None:
    import os

    os.nice(19)


def _load(detector_file: Path) -> Any:
    """The detector of ``detector_file`` as it is now: read again once a refit has replaced it,
    so that an alert after the refit is explained by the detector that raised it."""
    return _load_version(detector_file, stamp_of(detector_file))


@functools.lru_cache(maxsize=1)
def _load_version(detector_file: Path, stamp: Stamp | None) -> Any:
    from aetk.fleet.detector import load_any

    return load_any(detector_file)


def draw_alert(
    detector_file: Path, machine: str | None, threshold: float | None, audio: Path
) -> bytes | None:
    """PNG of ``audio``'s log-mel spectrogram with its localized seconds and bands marked, as
    the detector of ``detector_file`` (a fleet: ``machine``'s) explains it; None when it cannot
    be read or localized."""
    from aetk.detect.explanation import explain
    from aetk.errors import AetkError
    from aetk.eval import plots
    from aetk.fleet.detector import FleetDetector

    try:
        loaded = _load(detector_file)
        detector = loaded.detector(str(machine)) if isinstance(loaded, FleetDetector) else loaded
        explained = explain(detector, audio)
    except AetkError:
        return None
    if explained is None:
        return None
    passed = explained.threshold if threshold is None else threshold
    title = f"{audio.name}: score {explained.score:.4g} (threshold {passed:.4g})"
    return plots.png(plots.alert_spectrogram(explained, title))
