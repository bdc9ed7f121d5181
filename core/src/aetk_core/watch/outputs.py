"""Where ``aetk watch`` events go beside stdout: Prometheus metrics, a webhook, MQTT, and WAV
recordings of the audio around each alert."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aetk_core.errors import ConfigError
from aetk_core.fileio import ensure_folder
from aetk_core.watch.sources import WATCH_EXTRA


class Metrics:
    """Prometheus metrics, all named ``aetk_*``, served on ``host:port``. ``per_machine`` (a
    fleet watched): the last score, the threshold and whether an anomaly lasts are each
    machine's, labelled ``machine``."""

    def __init__(self, port: int, host: str = "127.0.0.1", per_machine: bool = False):
        try:
            import prometheus_client as prometheus
        except ImportError:
            raise ConfigError(
                f"--metrics-port needs prometheus-client ({WATCH_EXTRA}; beside aetk-runtime: "
                "pip install prometheus-client)"
            ) from None
        registry = prometheus.CollectorRegistry()
        self.windows = prometheus.Counter(
            "aetk_windows_scored", "Windows of a stream scored", registry=registry
        )
        self.files = prometheus.Counter("aetk_files_scored", "Files scored", registry=registry)
        self.anomalies = prometheus.Counter(
            "aetk_anomalies_started", "Anomalies that started", registry=registry
        )
        self.errors = prometheus.Counter("aetk_errors", "Errors", registry=registry)
        self.recording_warnings = prometheus.Counter(
            "aetk_recording_warnings",
            "Scores of recordings unlike the detector's, by warning (dropout, gain, ...)",
            ["name"],
            registry=registry,
        )
        self.per_machine = per_machine
        labels = ["machine"] if per_machine else []
        self.score = prometheus.Gauge("aetk_last_score", "Last score", labels, registry=registry)
        self.threshold = prometheus.Gauge("aetk_threshold", "Threshold", labels, registry=registry)
        # A watch alive but scoring nothing (a dead microphone, a folder no file reaches) shows
        # in no other metric: a rule on time() less this one finds it.
        self.scored_at = prometheus.Gauge(
            "aetk_last_scored_timestamp_seconds",
            "When the last window or file was scored (Unix time)",
            labels,
            registry=registry,
        )
        self.lag = prometheus.Gauge(
            "aetk_lag_seconds", "How far scoring runs behind real time", registry=registry
        )
        self.anomalous = prometheus.Gauge(
            "aetk_anomaly_active", "1 while an anomaly lasts", labels, registry=registry
        )
        try:
            self.server, self.thread = prometheus.start_http_server(port, host, registry=registry)
        except OSError as exc:
            raise ConfigError(
                f"--metrics-port {port}: cannot serve metrics on {host}:{port} "
                f"({exc.strerror or exc}); is another watch using it?"
            ) from None

    def gauge(self, name: str, machine: str | None) -> Any:
        """The gauge ``name`` (``score``, ``scored_at``, ``threshold`` or ``anomalous``) of
        ``machine``: its own when watching a fleet, else the one gauge."""
        gauge = getattr(self, name)
        return gauge.labels(machine) if self.per_machine else gauge

    def close(self) -> None:
        self.server.shutdown()


#: Why an event still waiting when the watch stops is not delivered.
STOPPED = "not delivered before the watch stopped"
#: How long a stopping webhook waits for its sender to report a failure it has just met.
REPORT_SECONDS = 5.0


class Webhook:
    """POSTs events as JSON from a thread of its own, retrying with backoff; never blocks the
    scoring. An event that cannot be delivered after every attempt, that finds the queue full
    (the endpoint has been down for ``capacity`` events), or that still waits when the watch
    stops, is never lost silently: ``on_failure`` is told, with the event."""

    def __init__(
        self,
        url: str,
        attempts: int = 5,
        backoff: float = 0.5,
        timeout: float = 5.0,
        capacity: int = 10_000,
        on_failure: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        self.url, self.headers = webhook_target(url)
        self.attempts, self.backoff, self.timeout = attempts, backoff, timeout
        self.capacity = capacity
        self.on_failure = on_failure or (lambda reason, event: None)
        # What waits, what is being sent, whether the sender is reporting a failure, and
        # whether the watch is stopping or has given up waiting for the sender: all under one
        # lock, so that an event is taken and marked as being sent at once, and each
        # undelivered one is reported once, by the sender or by close(), before close() returns.
        self.ready = threading.Condition()
        self.waiting: deque[dict[str, Any]] = deque()
        self.sending: dict[str, Any] | None = None
        self.closing = self.abandoned = self.reporting = False
        self.thread = threading.Thread(target=self._send_all, daemon=True)
        self.thread.start()

    def send(self, event: dict[str, Any]) -> None:
        with self.ready:
            full = len(self.waiting) >= self.capacity
            if not full:
                self.waiting.append(event)
                self.ready.notify()
        if full:
            self._failed(f"queue full ({self.capacity} events waiting): event dropped", event)

    def close(self, timeout: float = 10.0) -> None:
        """Let the events waiting be sent for at most ``timeout`` seconds; those still waiting
        then (the endpoint slow or down, the sender between its attempts) are told to
        ``on_failure``, since the process is about to end and would lose them silently."""
        with self.ready:
            self.closing = True
            self.ready.notify()
        self.thread.join(timeout)
        with self.ready:
            self.abandoned = True
            undelivered = [*([self.sending] if self.sending is not None else []), *self.waiting]
            self.waiting.clear()
            # The sender may be reporting an event it gave up on just now: let it be said (a
            # line on the event stream, but a stream can stall: never wait for it forever).
            self.ready.wait_for(lambda: not self.reporting, REPORT_SECONDS)
        for event in undelivered:
            self._failed(STOPPED, event)

    def _send_all(self) -> None:
        while True:
            with self.ready:
                while not self.waiting and not self.closing:
                    self.ready.wait()
                if self.abandoned or not self.waiting:
                    return
                event = self.sending = self.waiting.popleft()
            reason = self._send(event)
            with self.ready:
                self.sending = None
                if self.abandoned:  # close() has reported this event
                    return
                self.reporting = reason is not None
            if reason is not None:
                self._failed(reason, event)
                with self.ready:
                    self.reporting = False
                    self.ready.notify_all()

    def _send(self, event: dict[str, Any]) -> str | None:
        """One event, attempt after attempt, waiting longer between each: None once delivered,
        else why not."""
        body = json.dumps(event).encode()
        reason = "no attempt"
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, body, self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    if response.status < 300:
                        return None
                    reason = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
            except (OSError, ValueError) as exc:
                reason = str(getattr(exc, "reason", None) or exc)
        return f"not delivered after {self.attempts} attempts ({reason})"

    def _failed(self, reason: str, event: dict[str, Any]) -> None:
        self.on_failure(f"{self.url}: {reason}", event)


#: A bearer token for ``--webhook``, read from the environment (no process list shows it).
ENV_WEBHOOK_TOKEN = "AETK_WEBHOOK_TOKEN"


def webhook_target(url: str) -> tuple[str, dict[str, str]]:
    """``--webhook``'s URL without its credentials, which may then be said in a line, and the
    headers of each POST: JSON, and a login, from the URL's ``USER:PASSWORD@`` (HTTP basic;
    urllib would take it for part of the host name) or else from ``AETK_WEBHOOK_TOKEN`` (a
    bearer token). A :class:`ConfigError` for a URL that is not an http(s) one."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not _port_is_valid(parts):
        raise ConfigError(f"--webhook must be an http(s) URL, not {_without_password(url)!r}")
    headers = {"Content-Type": "application/json"}
    if parts.username is not None:
        login = (
            f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        )
        headers["Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    elif token := os.environ.get(ENV_WEBHOOK_TOKEN):
        headers["Authorization"] = f"Bearer {token}"
    return urllib.parse.urlunsplit(parts), headers


def _port_is_valid(parts: urllib.parse.SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 - reading it checks it
    except ValueError:
        return False
    return True


class Mqtt:
    """Publishes events as JSON to an MQTT broker (:func:`mqtt_target`) with paho-mqtt, at QoS 1
    (the broker acknowledges each), from paho's own thread; never blocks the scoring. While the
    broker cannot be reached or refuses the login, events wait (at most ``capacity``) and go
    when it takes them, and the outage is told to ``on_failure`` once. An event dropped because
    the queue is full, or still unacknowledged when the watch stops, is never lost silently:
    ``on_failure`` is told, with the event."""

    def __init__(
        self,
        target: str,
        capacity: int = 10_000,
        on_failure: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ConfigError(
                f"--mqtt needs paho-mqtt ({WATCH_EXTRA}; beside aetk-runtime: "
                "pip install paho-mqtt)"
            ) from None
        where = mqtt_target(target)
        self.topic, self.capacity = where.topic, capacity
        self.address = f"{where.host}:{where.port}"  # what its lines name: never the login
        self.on_failure = on_failure or (lambda reason, event: None)
        # Events published and not yet acknowledged, by message id; ids acknowledged before
        # publish() returned them (paho's thread can answer first); whether an outage was said.
        self.acknowledgement = threading.Condition()
        self.unacknowledged: dict[int, dict[str, Any]] = {}
        self.early: set[int] = set()
        self.unreachable = False
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if where.username:
            self.client.username_pw_set(where.username, where.password)
        if where.tls:  # the system's certificate authorities, or SSL_CERT_FILE's
            self.client.tls_set()
        self.client.max_queued_messages_set(capacity)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_publish = self._acknowledged
        self.client.on_connect = self._connected
        self.client.on_connect_fail = self._connect_failed
        self.client.on_disconnect = self._disconnected
        self.client.connect_async(where.host, where.port)
        self.client.loop_start()

    def send(self, event: dict[str, Any]) -> None:
        from paho.mqtt.client import MQTT_ERR_QUEUE_SIZE

        # Not under the condition: paho calls on_publish holding a lock that publish() takes.
        message = self.client.publish(self.topic, json.dumps(event), qos=1)
        if message.rc == MQTT_ERR_QUEUE_SIZE:
            self._failed(f"queue full ({self.capacity} events waiting): event dropped", event)
            return
        with self.acknowledgement:
            if message.mid in self.early:
                self.early.discard(message.mid)
            else:
                self.unacknowledged[message.mid] = event

    def close(self, timeout: float = 10.0) -> None:
        """Let the broker acknowledge the events published for at most ``timeout`` seconds;
        those still unacknowledged then are told to ``on_failure``, since the process is about
        to end and would lose them silently."""
        with self.acknowledgement:
            self.acknowledgement.wait_for(lambda: not self.unacknowledged, timeout)
            undelivered = list(self.unacknowledged.values())
            self.unacknowledged.clear()
        self.client.disconnect()
        self.client.loop_stop()
        for event in undelivered:
            self._failed(STOPPED, event)

    def _acknowledged(self, client: Any, userdata: Any, mid: int, *reason: Any) -> None:
        with self.acknowledgement:
            if self.unacknowledged.pop(mid, None) is None:
                self.early.add(mid)
            self.acknowledgement.notify_all()

    def _connected(self, client: Any, userdata: Any, flags: Any, reason: Any, *rest: Any) -> None:
        if not reason.is_failure:
            self.unreachable = False
        else:
            self._outage(str(reason))

    def _connect_failed(self, client: Any, userdata: Any) -> None:
        self._outage("connection failed")

    def _disconnected(self, client: Any, userdata: Any, flags: Any, reason: Any, *rest) -> None:
        if reason.is_failure:
            self._outage(str(reason))

    def _outage(self, why: str) -> None:
        if not self.unreachable:
            self.unreachable = True
            self._failed(f"cannot publish to the broker ({why}): events wait for it", {})

    def _failed(self, reason: str, event: dict[str, Any]) -> None:
        self.on_failure(f"{self.address}: {reason}", event)


#: Where ``--mqtt``'s password is read when its URL names a user and no password.
ENV_MQTT_PASSWORD = "AETK_MQTT_PASSWORD"


@dataclass(frozen=True)
class MqttTarget:
    """Where ``--mqtt`` publishes: the broker, the topic, and how to log in."""

    host: str
    port: int
    topic: str
    tls: bool = False
    username: str | None = None
    password: str | None = None


def mqtt_target(target: str) -> MqttTarget:
    """``HOST[:PORT]/TOPIC``, or ``mqtt://`` or ``mqtts://`` (TLS)
    ``[USER[:PASSWORD]@]HOST[:PORT]/TOPIC`` (a user without a password: the one in the
    environment variable ``AETK_MQTT_PASSWORD``, which no process list shows); the port is 1883,
    or 8883 with TLS, unless given. A :class:`ConfigError` for a target that is not one (no
    topic, a port that is no port, a topic with the wildcards ``+`` or ``#``, which name topics
    to read, not one to publish on); a password is never said in it."""
    scheme, separator, rest = target.partition("://")
    if not separator:
        scheme, rest = "mqtt", target
    if scheme not in ("mqtt", "mqtts"):
        raise ConfigError(
            f"--mqtt: {scheme}:// is neither mqtt:// nor mqtts:// in {_without_password(target)!r}"
        )
    address, _, topic = rest.partition("/")
    login, _, address = address.rpartition("@")
    username, has_password, written = login.partition(":")
    host, _, port = address.partition(":")
    if not host or not topic or "+" in topic or "#" in topic:
        raise ConfigError(
            f"--mqtt expects [mqtt[s]://][USER[:PASSWORD]@]HOST[:PORT]/TOPIC without + or #, "
            f"not {_without_password(target)!r}"
        )
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise ConfigError(
            f"--mqtt: {port!r} is not a port (1..65535) in {_without_password(target)!r}"
        )
    password = None
    if username:  # a URL's password is percent-encoded; the environment's is as it is
        password = (
            urllib.parse.unquote(written) if has_password else os.environ.get(ENV_MQTT_PASSWORD)
        )
    tls = scheme == "mqtts"
    port_number = int(port or (8883 if tls else 1883))
    return MqttTarget(
        host, port_number, topic, tls, urllib.parse.unquote(username) or None, password
    )


def _without_password(target: str) -> str:
    """``target`` as it may be said in an error: a password in it starred out."""
    head, at, tail = target.rpartition("@")
    if not at:
        return target
    scheme, separator, login = head.rpartition("://")
    user, colon, _ = login.partition(":")
    return f"{scheme}{separator}{user}{':***' if colon else ''}@{tail}"


class Recorder:
    """Keeps the last ``pre`` + window seconds of audio; after an alert starts, writes them and
    the next ``post`` seconds to a WAV file in ``folder``."""

    def __init__(
        self,
        folder: Path,
        rate: int,
        pre: float,
        post: float,
        window: float,
        on_failure: Callable[[str], None] | None = None,
    ):
        ensure_folder(folder, "--record")
        self.folder, self.rate, self.post = folder, rate, post
        #: Told why a recording could not be written (a full disk); the watch goes on.
        self.on_failure = on_failure
        self.history: deque[np.ndarray] = deque()
        self.kept = 0
        self.pre = pre
        self.resize(window)
        self.pending: list[dict[str, Any]] = []

    def resize(self, window: float) -> None:
        """Keep ``pre`` seconds and a window of ``window`` seconds (a refit's windows may be
        longer or shorter than the stream's first)."""
        self.keep = int((self.pre + window) * self.rate)

    def add(self, block: np.ndarray, end_time: float) -> list[Path]:
        """Add a block ending at stream time ``end_time``; the recordings completed by it."""
        self.history.append(block)
        self.kept += block.shape[1]
        while self.history and self.kept - self.history[0].shape[1] >= self.keep:
            self.kept -= self.history.popleft().shape[1]
        for record in self.pending:
            record["blocks"].append(block)
        done = [record for record in self.pending if end_time >= record["until"]]
        self.pending = [record for record in self.pending if end_time < record["until"]]
        return self._written(done)

    def start(self, at: float) -> None:
        self.pending.append({"at": at, "until": at + self.post, "blocks": list(self.history)})

    def flush(self) -> list[Path]:
        done, self.pending = self.pending, []
        return self._written(done)

    def _written(self, records: list[dict[str, Any]]) -> list[Path]:
        """Write each record; one that cannot be written is told to ``on_failure``."""
        import soundfile

        from aetk_core.fileio import atomic_path

        written = []
        for record in records:
            path = self.folder / f"anomaly_{record['at']:09.2f}s.wav"
            try:
                with atomic_path(path) as temporary:
                    audio = np.concatenate(record["blocks"], axis=1).T
                    soundfile.write(temporary, audio, self.rate, subtype="PCM_16", format="WAV")
            except (OSError, RuntimeError) as exc:  # libsndfile's errors are RuntimeErrors
                if self.on_failure is not None:
                    reason = getattr(exc, "strerror", None) or exc
                    self.on_failure(f"cannot write the recording {path} ({reason})")
                continue
            written.append(path)
        return written
