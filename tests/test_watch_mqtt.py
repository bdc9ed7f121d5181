"""aetk watch --mqtt: alerts published to a broker, an outage waited out, what is still unsaid when
the watch stops reported, and targets that are no MQTT address refused. The broker is a small
MQTT 3.1.1 server in this file (CONNECT, PUBLISH at QoS 0 and 1, PINGREQ, DISCONNECT): enough for
paho-mqtt to talk to, with no broker to install."""

from __future__ import annotations

import json
import re
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
import time

import pytest
from aetk_core.watch.monitor import WatchOptions
from aetk_core.watch.outputs import Mqtt
from conftest import free_port, wait_for, webhook_receiver
from test_watch import bearing_stream, watch, wav_bytes

from aetk.errors import ConfigError
from aetk.watch.monitor import Monitor

pytest.importorskip("paho.mqtt", reason="aetk watch's extra: pip install 'aetk[watch]'")


class _Session(socketserver.BaseRequestHandler):
    """One client's connection: each packet read whole, answered as a broker answers it."""

    def handle(self) -> None:
        try:
            while (packet := self._packet()) is not None:
                kind, flags, body = packet
                if kind == 1:  # CONNECT: accepted, or refused for a wrong login (5)
                    accepted = self.server.login in (None, _login(body))  # type: ignore[attr-defined]
                    self.request.sendall(b"\x20\x02\x00" + (b"\x00" if accepted else b"\x05"))
                    if not accepted:  # and closes the connection, as a broker must
                        return
                elif kind == 3:  # PUBLISH
                    self._published(flags, body)
                elif kind == 12:  # PINGREQ
                    self.request.sendall(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    return
        except OSError:
            return

    def _published(self, flags: int, body: bytes) -> None:
        size = int.from_bytes(body[:2], "big")
        topic, rest = body[2 : 2 + size].decode(), body[2 + size :]
        qos = (flags >> 1) & 3
        packet_id, payload = (rest[:2], rest[2:]) if qos else (b"", rest)
        # Kept before it is acknowledged, as a broker stores a message before its PUBACK.
        self.server.received.append((topic, json.loads(payload)))  # type: ignore[attr-defined]
        if qos:
            self.request.sendall(b"\x40\x02" + packet_id)

    def _packet(self) -> tuple[int, int, bytes] | None:
        first = self._read(1)
        if first is None:
            return None
        length, shift = 0, 0
        while True:
            byte = self._read(1)
            if byte is None:
                return None
            length |= (byte[0] & 127) << shift
            shift += 7
            if not byte[0] & 128:
                break
        body = self._read(length)
        return None if body is None else (first[0] >> 4, first[0] & 15, body)

    def _read(self, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            chunk = self.request.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return data


def _login(connect: bytes) -> tuple[str | None, str | None]:
    """The user name and password of a CONNECT packet's body (MQTT 3.1.1, section 3.1)."""
    name_size = int.from_bytes(connect[:2], "big")
    flags = connect[2 + name_size + 1]
    fields, at = [], 2 + name_size + 4  # protocol name, level, flags, keep-alive
    while at < len(connect):
        size = int.from_bytes(connect[at : at + 2], "big")
        fields.append(connect[at + 2 : at + 2 + size].decode())
        at += 2 + size
    fields = fields[1 + (2 if flags & 4 else 0) :]  # after the client id and any will
    username = fields.pop(0) if flags & 128 else None
    return username, (fields.pop(0) if flags & 64 else None)


class _Broker(socketserver.ThreadingTCPServer):
    """``login``: the (user, password) it accepts, or None for any; ``tls``: an SSL context
    that wraps each connection."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, login: tuple[str, str] | None = None, tls=None):
        super().__init__(("127.0.0.1", port), _Session)
        self.received: list[tuple[str, dict]] = []
        self.login, self.tls = login, tls

    def get_request(self):
        connection, address = super().get_request()
        if self.tls is not None:
            connection = self.tls.wrap_socket(connection, server_side=True)
        return connection, address


@pytest.fixture
def broker():
    """Starts a broker on a port (a free one unless given); each is shut down after the test."""
    started: list[_Broker] = []

    def start(port: int = 0, **options) -> _Broker:
        server = _Broker(port, **options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def publish(target: str, event: dict, timeout: float) -> list[tuple[str, dict]]:
    """``event`` published to ``target`` by a sender closed after at most ``timeout`` seconds;
    the failures it told."""
    failed: list[tuple[str, dict]] = []
    sender = Mqtt(target, on_failure=lambda *f: failed.append(f))
    sender.send(event)
    sender.close(timeout=timeout)
    return failed


def test_a_watch_publishes_each_alert_to_the_broker(watched, broker):
    _, path = watched
    server = broker()
    events = watch(
        "-",
        "-d",
        path,
        "--confirm",
        "2",
        "--mqtt",
        f"127.0.0.1:{server.server_address[1]}/plant/line-1",
        input=wav_bytes(bearing_stream()),
    )
    alerts = [e for e in events if e["event"] in ("anomaly_start", "anomaly_end")]
    assert [e["event"] for e in alerts] == ["anomaly_start", "anomaly_end"]
    # Published before the watch ended: the broker holds exactly the alerts, as JSON.
    assert server.received == [("plant/line-1", alert) for alert in alerts]
    assert not [e for e in events if e["event"] == "mqtt_failed"]


def test_alerts_wait_out_a_broker_outage_and_the_outage_is_said_once(broker):
    port = free_port()
    failed: list[tuple[str, dict]] = []
    sender = Mqtt(f"127.0.0.1:{port}/alerts", on_failure=lambda *f: failed.append(f))
    wait_for(
        lambda: failed, 10, every=0.02
    )  # nothing listens: said at the first refused connection
    started = time.perf_counter()
    for index in range(3):
        sender.send({"event": "anomaly_start", "n": index})
    assert time.perf_counter() - started < 0.5  # scoring never waits for the broker
    server = broker(port)
    wait_for(
        lambda: len(server.received) == 3, 10, every=0.02
    )  # delivered, in order, once it is back
    sender.close(timeout=5)
    assert [payload["n"] for _, payload in server.received] == [0, 1, 2]
    assert len(failed) == 1 and "cannot publish to the broker" in failed[0][0]
    assert failed[0][1] == {}  # the outage, not an event lost


def test_alerts_unacknowledged_when_the_watch_stops_are_each_reported_once():
    failed: list[tuple[str, dict]] = []
    sender = Mqtt(f"127.0.0.1:{free_port()}/alerts", on_failure=lambda *f: failed.append(f))
    for index in range(2):
        sender.send({"event": "anomaly_start", "n": index})
    sender.close(timeout=0.2)
    lost = [(reason, event) for reason, event in failed if event]
    assert sorted(event["n"] for _, event in lost) == [0, 1]
    assert all(reason.endswith("not delivered before the watch stopped") for reason, _ in lost)
    assert sender.unacknowledged == {}


def test_the_watch_stream_says_which_alert_mqtt_did_not_deliver(watched):
    detector, _ = watched
    events: list[dict] = []
    monitor = Monitor(
        detector, "-", WatchOptions(mqtt=f"127.0.0.1:{free_port()}/alerts"), events.append
    )
    monitor.senders[0].close = lambda close=monitor.senders[0].close: close(timeout=0.2)
    monitor.event("anomaly_start", 1.0, score=9.0)
    monitor.close()
    lost = [e for e in events if e["event"] == "mqtt_failed" and e["undelivered"]]
    assert [(e["undelivered"], e["time"]) for e in lost] == [("anomaly_start", 1.0)]
    assert "before the watch stopped" in lost[0]["error"]


def test_a_broker_that_wants_a_login_gets_the_targets_or_the_environments(broker, monkeypatch):
    server = broker(login=("plant", "s3cret/@"))
    port = server.server_address[1]
    monkeypatch.setenv("AETK_MQTT_PASSWORD", "s3cret/@")
    for target in (
        f"mqtt://plant:s3cret%2F%40@127.0.0.1:{port}/alerts",
        f"mqtt://plant@127.0.0.1:{port}/alerts",  # the password from the environment
    ):
        assert publish(target, {"event": "anomaly_start", "target": target}, timeout=5) == []
    assert [payload["target"] for _, payload in server.received] == [
        f"mqtt://plant:s3cret%2F%40@127.0.0.1:{port}/alerts",
        f"mqtt://plant@127.0.0.1:{port}/alerts",
    ]


def test_a_login_the_broker_refuses_is_said_without_the_password(broker):
    server = broker(login=("plant", "right"))
    target = f"mqtt://plant:wrong@127.0.0.1:{server.server_address[1]}/alerts"
    failed = publish(target, {"event": "anomaly_start"}, timeout=1)
    assert server.received == []
    reasons = [reason for reason, _ in failed]
    assert any("Not authorized" in reason for reason in reasons)
    assert any("before the watch stopped" in reason for reason in reasons)
    assert not any("wrong" in reason for reason in reasons)


def test_mqtts_publishes_over_tls_to_a_broker_the_system_trusts(broker, tmp_path, monkeypatch):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command makes the test's certificate; none here")
    certificate, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(certificate)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    server = broker(tls=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))  # the system's authorities, here
    target = f"mqtts://127.0.0.1:{server.server_address[1]}/alerts"
    assert publish(target, {"event": "anomaly_start"}, timeout=5) == []
    assert server.received == [("alerts", {"event": "anomaly_start"})]


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("broker.local", "HOST[:PORT]/TOPIC"),
        ("broker.local:1883/", "HOST[:PORT]/TOPIC"),
        ("broker.local:http/alerts", "'http' is not a port"),
        ("broker.local:70000/alerts", "'70000' is not a port"),
        ("broker.local/plant/+/alerts", "without + or #"),
        ("ws://broker.local/alerts", "neither mqtt:// nor mqtts://"),
        (
            "mqtt://plant:s3cret@broker.local:x/alerts",
            "'x' is not a port (1..65535) in 'mqtt://plant:***@broker.local:x/alerts'",
        ),
    ],
)
def test_a_target_that_is_no_mqtt_address_is_one_clear_error(target, said):
    with pytest.raises(ConfigError, match=re.escape(said)):
        Mqtt(target)


def test_a_broker_down_from_the_start_is_said_on_the_live_page(watched):
    detector, _ = watched
    options = WatchOptions(mqtt=f"127.0.0.1:{free_port()}/alerts", dashboard=str(free_port()))
    monitor = Monitor(detector, "-", options, lambda event: None)
    try:
        wait_for(lambda: monitor.dashboard.status()["problems"], 10, every=0.02)
        (problem,) = monitor.dashboard.status()["problems"]
        assert problem["kind"] == "mqtt_failed" and "cannot publish" in problem["message"]
    finally:
        monitor.close()


def test_a_target_refused_after_the_page_started_takes_the_page_down_with_it(watched):
    detector, _ = watched
    port = free_port()
    with pytest.raises(ConfigError, match="is not a port"):
        Monitor(
            detector,
            "-",
            WatchOptions(mqtt="127.0.0.1:x/alerts", dashboard=str(port)),
            lambda event: None,
        )
    with socket.socket() as again:  # the page's port is free again
        again.bind(("127.0.0.1", port))


def test_a_test_alert_says_which_outputs_took_it_and_exits_1_when_one_did_not(watched, broker, cli):
    _, path = watched
    server = broker()
    mqtt = f"127.0.0.1:{server.server_address[1]}/plant"
    with webhook_receiver() as (webhook, events):
        ran = cli("watch", "-", "-d", path, "--webhook", webhook, "--mqtt", mqtt, "--test-alert")
        assert ran.code == 0, ran.stderr
        assert "the test alert reached every output" in ran.stderr
        (taken,) = events
        assert taken["event"] == "test_alert"
        assert server.received == [("plant", taken)]  # the same event to both
        nobody = f"127.0.0.1:{free_port()}/plant"
        ran = cli("watch", "-", "-d", path, "--webhook", webhook, "--mqtt", nobody, "--test-alert")
        assert ran.code == 1
        assert "error: the test alert did not reach: mqtt" in ran.stderr
        assert "mqtt failed" in ran.stdout and "before the watch stopped" in ran.stdout
        ran = cli("watch", "-", "-d", path, "--test-alert")
        assert ran.code == 2 and "--test-alert needs --webhook or --mqtt" in ran.stderr
