"""Alerts people can act on: an anomaly starts after ``confirm`` consecutive windows above the
threshold and ends after ``clear`` windows below it; no new alert starts within ``cooldown``
seconds of the last one's end. An event's time is where its run of windows began, so an alert
points at the sound that raised it, not at the window that confirmed it."""

from __future__ import annotations

from dataclasses import dataclass

from aetk_core.verdict import is_anomalous


@dataclass
class AlertTracker:
    confirm: int = 2
    clear: int = 2
    cooldown: float = 0.0
    active: bool = False
    _above: int = 0
    _below: int = 0
    _since: float = 0.0
    _ended_at: float | None = None

    def update(self, start: float, score: float, threshold: float) -> tuple[str | None, float]:
        """Feed one window (or file) beginning at stream time ``start``; returns the event it
        completes (``"anomaly_start"``, ``"anomaly_end"`` or None) and the time it began."""
        above = is_anomalous(score, threshold)
        if (above and self._above == 0) or (not above and self._below == 0):
            self._since = start
        self._above, self._below = (self._above + 1, 0) if above else (0, self._below + 1)
        if self.active and self._below >= self.clear:
            self.active, self._ended_at = False, self._since
            return "anomaly_end", self._since
        cooling = self._ended_at is not None and self._since - self._ended_at < self.cooldown
        if not self.active and self._above >= self.confirm and not cooling:
            self.active = True
            return "anomaly_start", self._since
        return None, start
