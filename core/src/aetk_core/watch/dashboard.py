"""``aetk watch --dashboard`` and ``aetk-runtime watch --dashboard``: a live page for the
people who act on the alerts.

Served from the watch process by a small HTTP server on a thread of its own, with no build step
and nothing fetched from elsewhere (the page, its script and style are files of this package):

- ``/``: the page. For each source (each machine of a fleet), the score against the threshold
  over the last hour, the open alert if any, and the ways its latest recording does not match the
  detector's (a dropout, a gain change: a fault of the recording chain, not of the machine); the
  recent alerts, each with its time, score and such recording warnings,
  its audio (the recording ``--record`` kept, or the file that raised it), its spectrogram with
  the localized seconds and bands marked (:mod:`aetk_core.watch.picture`), and an acknowledge
  button.
- ``/api/status`` and ``/api/alerts`` (JSON, documented in docs/monitoring.md);
  ``POST /api/alerts/<id>/ack``; ``/api/alerts/<id>/audio``; ``/api/alerts/<id>/spectrogram.png``.

Memory is bounded however long the watch runs: at most :data:`HISTORY_POINTS` scores per source,
none older than :data:`HISTORY_SECONDS`, and the last :data:`MAX_ALERTS` alerts. The server only
reads what the monitor records under a lock held for a few dictionary operations; a spectrogram
is drawn once per alert (explaining and drawing a ten-second clip takes about 10 ms), so open
pages never hold up the scoring.
"""

from __future__ import annotations

import datetime
import errno
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from aetk_core.errors import ConfigError
from aetk_core.fileio import resolved
from aetk_core.results import describe_view
from aetk_core.watch.events import describe_event

HISTORY_SECONDS = 3600.0
HISTORY_POINTS = 3600
MAX_ALERTS = 200
#: The events that say the watch itself is not whole (a file it could not score, alerts that did
#: not reach the webhook or the broker): the page lists the last ``MAX_PROBLEMS`` of the last
#: ``PROBLEM_SECONDS``, since the machine may be fine while nobody would hear that it is not.
PROBLEMS = ("error", "webhook_failed", "mqtt_failed")
MAX_PROBLEMS = 20
PROBLEM_SECONDS = 3600.0
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


def _latest_run(points: deque[tuple[float, float, bool, float | None]], above: bool) -> int:
    """How many of the latest scores in a row were above their threshold (``above``), or not."""
    run = 0
    for _, _, was_above, _ in reversed(points):
        if was_above != above:
            break
        run += 1
    return run


def parse_address(text: str) -> tuple[str, int]:
    """``PORT`` or ``HOST:PORT`` (127.0.0.1 by default) for ``--dashboard``."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError(f"--dashboard expects [HOST:]PORT, not {text!r}")
    return host or "127.0.0.1", number


@dataclass
class Alert:
    """One alert: when it started and ended, its score, the recording warnings of the score that
    started it, what to play and draw."""

    id: int
    source: str
    started: str
    time: float | None
    score: float | None
    audio: str | None
    warnings: list[dict[str, str]] = field(default_factory=list)
    #: The fleet machine that raised it (None: a single detector), and the threshold it passed.
    machine: str | None = None
    threshold: float | None = None
    #: Which of the scorer's views gave the score that started it, and when (None: one view).
    view: dict[str, Any] | None = None
    ended: str | None = None
    acknowledged: str | None = None
    spectrogram: bytes | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The alert as the page reads it."""
        return {
            "id": self.id,
            "source": self.source,
            "machine": self.machine,
            "threshold": self.threshold,
            "started": self.started,
            "time": self.time,
            "score": self.score,
            "view": self.view,
            "raised_by": describe_view(self.view),
            "warnings": self.warnings,
            "ended": self.ended,
            "acknowledged": self.acknowledged,
            "file": Path(self.audio).name if self.audio else None,
            "audio": f"/api/alerts/{self.id}/audio" if self.audio else None,
            "spectrogram": f"/api/alerts/{self.id}/spectrogram.png" if self.audio else None,
        }


class Dashboard:
    """What the page shows, fed with the watch's events (:meth:`record`), and its server.

    :param name: the watched source (a folder, a device, standard input), which names the
        scores of a single detector; a fleet machine's events are named by their machine.
    :param threshold: the detector's threshold; each source shows the threshold its events
        carry (a fleet's machines each their own).
    :param draw: ``(audio path, machine, threshold) → PNG bytes`` of its spectrogram with the
        anomaly marked (None from it: no picture); ``machine`` is the fleet machine that raised
        it.
    :param allowed: folders whose files the page may play (the watched folder, ``--record``).
    :param confirm: windows (or files) in a row above the threshold that start an alert
        (``--confirm``): a score above the threshold that has not started one yet is said as
        such, with how many in a row it has been.
    :param clear: windows (or files) in a row below the threshold that end one (``--clear``):
        an open alert's scores below the threshold say how many more it takes.
    """

    def __init__(
        self,
        address: tuple[str, int],
        name: str,
        threshold: float | None,
        draw: Callable[[Path, str | None, float | None], bytes | None],
        allowed: list[Path],
        confirm: int = 1,
        clear: int = 1,
    ):
        self.name = name
        self.threshold = threshold
        self.confirm = confirm
        self.clear = clear
        self.draw = draw
        self.allowed = [folder.resolve() for folder in allowed]
        self.lock = threading.Lock()
        #: Each source's scores: ``(at, score, anomalous, threshold)``, the threshold it was
        #: judged at (a refit moves it).
        self.history: dict[str, deque[tuple[float, float, bool, float | None]]] = {}
        self.thresholds: dict[str, float | None] = {}
        #: Why a source's threshold holds no false-alarm rate (none: it does), set by the watch.
        self.notes: dict[str, str] = {}
        self.warnings: dict[str, list[dict[str, str]]] = {}
        self.open: dict[str, int] = {}
        self.alerts: deque[Alert] = deque(maxlen=MAX_ALERTS)
        #: What went wrong with the watch itself (:data:`PROBLEMS`), the newest kept.
        self.problems: deque[dict[str, Any]] = deque(maxlen=MAX_PROBLEMS)
        self.next_id = 1
        try:
            self.server = _PageServer(address, _handler(self))
        except OSError as exc:
            taken = "; is another watch using the port?" if exc.errno == errno.EADDRINUSE else ""
            raise ConfigError(
                f"--dashboard {address[0]}:{address[1]}: cannot serve the page "
                f"({exc.strerror or exc}){taken}"
            ) from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- fed by the monitor ---------------------------------------------------------------------

    def record(self, event: dict[str, Any]) -> None:
        """Keep what the page needs of one watch event."""
        name = event["event"]
        key = event.get("machine") or self.name
        with self.lock:
            if name == "scored":
                self._add_score(key, event)
            elif name == "anomaly_start":
                self._start(key, event)
            elif name == "anomaly_end" and key in self.open:
                self._find(self.open.pop(key)).ended = event["at"]
            elif name == "recorded":
                self._attach(event.get("path"))
            elif name in PROBLEMS:
                message = describe_event(event, self.name)
                self.problems.append({"at": time.time(), "kind": name, "message": message})

    def _add_score(self, key: str, event: dict[str, Any]) -> None:
        points = self.history.setdefault(key, deque(maxlen=HISTORY_POINTS))
        now = time.time()
        threshold = event.get("threshold", self.threshold)
        points.append((now, float(event["score"]), bool(event.get("anomalous")), threshold))
        self.warnings[key] = list(event.get("warnings") or [])
        self.thresholds[key] = threshold
        while points and points[0][0] < now - HISTORY_SECONDS:
            points.popleft()

    def _start(self, key: str, event: dict[str, Any]) -> None:
        source = event["source"]
        audio = source if Path(source).is_file() else None  # a file of a watched folder
        alert = Alert(
            self.next_id,
            key,
            event["at"],
            event.get("time"),
            event.get("score"),
            audio,
            list(self.warnings.get(key, [])),
            event.get("machine"),
            event.get("threshold", self.threshold),
            event.get("view"),
        )
        self.next_id += 1
        self.alerts.append(alert)
        self.open[key] = alert.id

    def _attach(self, path: str | None) -> None:
        """A recording of a stream's alert, kept by ``--record``: the latest alert without one."""
        for alert in reversed(self.alerts):
            if alert.audio is None and path:
                alert.audio = path
                return

    def _find(self, alert_id: int) -> Alert:
        for alert in self.alerts:
            if alert.id == alert_id:
                return alert
        raise KeyError(alert_id)

    # -- read by the server ---------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.lock:
            sources = []
            for key, points in self.history.items():
                open_id = self.open.get(key)
                sources.append(
                    {
                        "source": key,
                        "threshold": self.thresholds.get(key, self.threshold),
                        "threshold_note": self.notes.get(key),
                        "last": {
                            "at": points[-1][0],
                            "score": points[-1][1],
                            "warnings": self.warnings.get(key, []),
                        }
                        if points
                        else None,
                        "history": [
                            [round(at, 3), score, flag, threshold]
                            for at, score, flag, threshold in points
                        ],
                        "open_alert": self._find(open_id).as_dict() if open_id else None,
                        "above_in_a_row": _latest_run(points, above=True),
                        "below_in_a_row": _latest_run(points, above=False),
                    }
                )
            now = time.time()
            return {
                "now": now,
                "problems": [
                    problem
                    for problem in reversed(self.problems)
                    if problem["at"] > now - PROBLEM_SECONDS
                ],
                "threshold": self.threshold,
                "confirm": self.confirm,
                "clear": self.clear,
                "sources": sources,
            }

    def alert_list(self) -> dict[str, Any]:
        with self.lock:
            return {"alerts": [alert.as_dict() for alert in reversed(self.alerts)]}

    def acknowledge(self, alert_id: int) -> dict[str, Any]:
        with self.lock:
            alert = self._find(alert_id)
            alert.acknowledged = alert.acknowledged or datetime.datetime.now(
                datetime.timezone.utc
            ).isoformat(timespec="seconds")
            return alert.as_dict()

    def audio(self, alert_id: int) -> Path:
        with self.lock:
            audio = self._find(alert_id).audio
        path = resolved(audio or "")
        if not audio or not any(path.is_relative_to(folder) for folder in self.allowed):
            raise KeyError(alert_id)
        return path

    def spectrogram(self, alert_id: int) -> bytes:
        with self.lock:
            alert = self._find(alert_id)
            cached = alert.spectrogram
        if cached is None:
            cached = self.draw(self.audio(alert_id), alert.machine, alert.threshold) or b""
            with self.lock:
                alert.spectrogram = cached
        if not cached:
            raise KeyError(alert_id)
        return cached


class _PageServer(ThreadingHTTPServer):
    """The page's server, which never prints a traceback into the watch's output: a page closed
    while it was being answered is no fault, and any other failure of a request is one line."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            _say_failed(client_address[0], error)


def _say_failed(client: str, error: BaseException | None) -> None:
    print(
        f"dashboard: a request from {client} failed ({type(error).__name__}: {error}); "
        "the page goes on",
        file=sys.stderr,
    )


NOT_FOUND = (404, "text/plain; charset=utf-8", b"not found\n")


class _PageHandler(BaseHTTPRequestHandler):
    """Answers the page's requests from :attr:`dashboard` (set per server by :func:`_handler`)."""

    dashboard: Dashboard

    def do_GET(self) -> None:
        try:
            answer = self._get(self.path.split("?", 1)[0])
        except (KeyError, ValueError, OSError):
            answer = NOT_FOUND
        except Exception as error:  # a fault of the page's own, never of the watch
            _say_failed(self.client_address[0], error)
            answer = (500, "text/plain; charset=utf-8", b"the page failed\n")
        self._send(*answer)

    def _get(self, path: str) -> tuple[int, str, bytes]:
        if path in ASSETS:
            name, kind = ASSETS[path]
            return 200, kind, (resources.files("aetk_core.watch") / "page" / name).read_bytes()
        if path == "/api/status":
            return self._json(self.dashboard.status())
        if path == "/api/alerts":
            return self._json(self.dashboard.alert_list())
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["api", "alerts"]:
            alert_id = int(parts[2])
            if parts[3] == "audio":
                audio = self.dashboard.audio(alert_id)
                return 200, _audio_type(audio), audio.read_bytes()
            if parts[3] == "spectrogram.png":
                return 200, "image/png", self.dashboard.spectrogram(alert_id)
        return NOT_FOUND

    def do_POST(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        answer = NOT_FOUND
        try:
            if len(parts) == 4 and parts[:2] == ["api", "alerts"] and parts[3] == "ack":
                answer = self._json(self.dashboard.acknowledge(int(parts[2])))
        except (KeyError, ValueError):
            pass
        self._send(*answer)

    @staticmethod
    def _json(value: Any) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(value).encode()

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _handler(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_PageHandler,), {"dashboard": dashboard})


def _audio_type(path: Path) -> str:
    return {
        ".wav": "audio/wav",
        ".flac": "audio/flac",
        ".ogg": "audio/ogg",
        ".mp3": "audio/mpeg",
    }.get(path.suffix.lower(), "application/octet-stream")
