"""aetk watch under faults: a webhook that fails or hangs, the metrics port taken, two watchers on
one state file, a corrupt state file, the watched folder deleted and recreated, a thousand files
at once, a stream at another rate."""

from __future__ import annotations

import base64
import io
import itertools
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile
from aetk_core.watch.monitor import WatchOptions
from aetk_core.watch.outputs import Webhook
from aetk_core.watch.state import StateFile
from conftest import free_port
from scipy.signal import resample_poly
from test_folder_watch import folder_of_clips
from test_watch import RATE, bearing_stream, stream, watch, watch_folder, wav_bytes

from aetk import synth
from aetk.errors import ConfigError
from aetk.watch.monitor import Monitor

pytest.importorskip("prometheus_client", reason="aetk watch's extra: pip install 'aetk[watch]'")


class Failing(BaseHTTPRequestHandler):
    """Answers every request with HTTP 500, after ``delay`` seconds."""

    delay = 0.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_server():
    servers = []

    def start(delay: float = 0.0) -> str:
        handler = type("Handler", (Failing,), {"delay": delay})
        server = HTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/alerts"

    yield start
    for server in servers:
        server.shutdown()


def test_a_webhook_answering_500_reports_each_undelivered_alert(failing_server):
    failed: list[tuple[str, dict]] = []
    hook = Webhook(
        failing_server(), attempts=2, backoff=0.01, on_failure=lambda *f: failed.append(f)
    )
    hook.send({"event": "anomaly_start"})
    hook.close()
    assert [(event["event"], "HTTP 500" in reason) for reason, event in failed] == [
        ("anomaly_start", True)
    ]


def test_a_hanging_webhook_never_blocks_and_a_full_queue_says_it_drops(failing_server):
    failed: list[tuple[str, dict]] = []
    hook = Webhook(
        failing_server(delay=2.0),
        attempts=1,
        timeout=0.2,
        capacity=1,
        on_failure=lambda *f: failed.append(f),
    )
    started = time.perf_counter()
    for index in range(5):
        hook.send({"event": "anomaly_start", "n": index})
    assert time.perf_counter() - started < 0.5  # scoring never waits for the endpoint
    hook.close(timeout=5)
    reasons = [reason for reason, _ in failed]
    assert any("queue full" in reason for reason in reasons)
    assert any("not delivered" in reason for reason in reasons)
    assert len(failed) == 5  # every event accounted for: dropped or failed, none silently


def test_events_still_waiting_when_the_watch_stops_are_reported_once(failing_server):
    """The endpoint is slow and the watch stops: the event being sent and those queued behind
    it are each reported undelivered, once, even when the sender's attempt ends later."""
    failed: list[tuple[str, dict]] = []
    hook = Webhook(
        failing_server(delay=0.5),
        attempts=1,
        timeout=2.0,
        on_failure=lambda *f: failed.append(f),
    )
    for index in range(3):
        hook.send({"event": "anomaly_start", "n": index})
    time.sleep(0.1)  # the first is being sent
    hook.close(timeout=0.2)
    assert sorted(event["n"] for _, event in failed) == [0, 1, 2]
    assert all("before the watch stopped" in reason for reason, _ in failed)
    time.sleep(0.8)  # the first attempt's answer arrives: nothing more is said
    assert len(failed) == 3


def test_a_failure_being_reported_as_the_watch_stops_is_said_before_close_returns(
    failing_server,
):
    """The sender meets its last failed attempt just as the watch stops: its report is made
    before ``close`` returns, not lost with the process."""
    failed: list[str] = []
    reporting = threading.Event()

    def slowly(reason: str, event: dict) -> None:
        reporting.set()
        time.sleep(0.3)
        failed.append(reason)

    hook = Webhook(failing_server(), attempts=1, on_failure=slowly)
    hook.send({"event": "anomaly_start"})
    assert reporting.wait(5)
    hook.close(timeout=0.05)
    assert len(failed) == 1 and "HTTP 500" in failed[0]


class Recording(BaseHTTPRequestHandler):
    """Keeps each request's Authorization header and body; answers 401 without a login."""

    seen: ClassVar[list[tuple[str | None, dict]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.headers.get("Authorization"), body))
        self.send_response(204 if self.headers.get("Authorization") else 401)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def post_once(url: str, event: dict) -> list[tuple[str, dict]]:
    """``event`` sent by a webhook of one attempt, closed at once; the failures it told."""
    failed: list[tuple[str, dict]] = []
    hook = Webhook(url, attempts=1, on_failure=lambda *f: failed.append(f))
    hook.send(event)
    hook.close()
    return failed


def test_a_webhook_logs_in_from_its_url_or_the_environment_and_never_says_the_password(
    monkeypatch,
):
    handler = type("Handler", (Recording,), {"seen": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        # urllib takes USER:PASSWORD@ for part of the host name: every alert had failed.
        url = f"http://plant:s%40cret@127.0.0.1:{port}/alerts"
        assert post_once(url, {"event": "anomaly_start"}) == []
        monkeypatch.setenv("AETK_WEBHOOK_TOKEN", "t0ken")
        assert post_once(f"http://127.0.0.1:{port}/alerts", {"event": "anomaly_end"}) == []
        monkeypatch.delenv("AETK_WEBHOOK_TOKEN")
        failed = post_once(f"http://127.0.0.1:{port}/alerts", {"event": "anomaly_start"})
    finally:
        server.shutdown()
    basic = "Basic " + base64.b64encode(b"plant:s@cret").decode()
    assert handler.seen == [
        (basic, {"event": "anomaly_start"}),
        ("Bearer t0ken", {"event": "anomaly_end"}),
        (None, {"event": "anomaly_start"}),
    ]
    assert [reason for reason, _ in failed] == [
        f"http://127.0.0.1:{port}/alerts: not delivered after 1 attempts (HTTP 401)"
    ]
    with pytest.raises(ConfigError, match=r"not 'http://plant:\*\*\*@127.0.0.1:x/alerts'"):
        Webhook("http://plant:s3cret@127.0.0.1:x/alerts")
    nobody = free_port()
    ((reason, _),) = post_once(f"http://plant:s3cret@127.0.0.1:{nobody}/alerts", {"event": "x"})
    assert reason.startswith(f"http://127.0.0.1:{nobody}/alerts: not delivered")


def test_the_watch_stream_says_when_the_webhook_fails(watched, failing_server, monkeypatch):
    detector, _ = watched
    events: list[dict] = []
    monitor = Monitor(detector, "-", WatchOptions(webhook=failing_server()), events.append)
    sender = monitor.senders[0]
    sender.attempts, sender.backoff = 1, 0.01
    monitor.event("anomaly_start", 1.0, score=9.0)
    monitor.close()
    failed = [e for e in events if e["event"] == "webhook_failed"]
    assert len(failed) == 1 and failed[0]["undelivered"] == "anomaly_start"
    assert "HTTP 500" in failed[0]["error"]


def test_a_metrics_port_already_taken_is_a_clear_error(watched, cli, tmp_path):
    _, path = watched
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = cli("watch", tmp_path, "-d", path, "--metrics-port", port)
    assert ran.code == 2
    assert f"--metrics-port {port}: cannot serve metrics" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_two_watchers_on_one_state_file_are_refused(watched, cli, tmp_path):
    _, path = watched
    state = tmp_path / "state.json"
    first = watch_folder(tmp_path, path, state, "0.2")
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "state.json.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        ran = cli("watch", tmp_path, "-d", path, "--state", state, "--json")
        assert ran.code == 2 and "already used by another aetk watch" in ran.stderr
    finally:
        first.terminate()
        first.communicate(timeout=30)


def test_a_corrupt_state_is_kept_and_the_last_good_copy_is_not_alerted_again(watched, tmp_path):
    _, path = watched
    folder, state = tmp_path / "in", tmp_path / "state.json"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for name in ("old.wav", "new.wav"):
        soundfile.write(folder / name, synth.normal_clip(rng, 2.0), RATE)
    # As an earlier aetk kept it: the files scored, without their stamps.
    for _ in range(2):  # the second keeps the first as the previous copy
        StateFile(state).write({str((folder / "old.wav").resolve()): None}, False)
    state.write_text('{"scored": ["trunc')  # a crash mid-write
    process = watch_folder(folder, path, state, "0.2")
    time.sleep(6)
    process.terminate()
    out, err = process.communicate(timeout=30)
    scored = [Path(json.loads(line)["source"]).name for line in out.splitlines()]
    assert scored == ["new.wav"], err
    assert (tmp_path / "state.json.corrupt").read_text() == '{"scored": ["trunc'
    assert "kept as" in err
    assert sorted(Path(p).name for p in json.loads(state.read_text())["scored"]) == [
        "new.wav",
        "old.wav",
    ]


def test_a_folder_deleted_and_recreated_is_watched_again(watched, tmp_path):
    _, path = watched
    folder = tmp_path / "in"
    folder.mkdir()
    process = watch_folder(folder, path, tmp_path / "state.json", "0.2")
    try:
        time.sleep(3)
        folder.rmdir()
        time.sleep(1)
        folder.mkdir()
        soundfile.write(folder / "back.wav", synth.normal_clip(np.random.default_rng(3), 2.0), RATE)
        time.sleep(4)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert [Path(json.loads(line)["source"]).name for line in out.splitlines()] == ["back.wav"]


def test_windows_too_short_to_score_are_refused_at_a_folders_first_file(watched, tmp_path):
    """``--window 0.01`` on a folder: every file had become an error event; now the watch ends
    at the first file with the stream's one line, having scored nothing."""
    detector, _ = watched
    folder = tmp_path / "incoming"
    folder.mkdir()
    soundfile.write(folder / "a.wav", synth.normal_clip(np.random.default_rng(8), 2.0), RATE)
    events, refused = watch_until_refused(detector, folder, tmp_path / "state.json", window=0.01)
    assert refused == [TOO_SHORT_WINDOW]
    assert events == []


def test_a_short_window_is_refused_at_the_first_file_that_can_be_read(watched, tmp_path):
    """A first file that cannot be read says nothing of the rate: the check waits for the next
    file rather than being skipped for the rest of the watch."""
    detector, _ = watched
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"not a recording")
    soundfile.write(folder / "b.wav", synth.normal_clip(np.random.default_rng(8), 2.0), RATE)
    events, refused = watch_until_refused(detector, folder, tmp_path / "state.json", window=0.01)
    assert refused == [TOO_SHORT_WINDOW]
    assert [(event["event"], Path(event["source"]).name) for event in events] == [
        ("error", "a.wav")
    ]


TOO_SHORT_WINDOW = (
    "--window 0.01: no window of that length can be scored (is too short: 0.010 s, the "
    "featurizer needs at least 0.064 s)"
)


def watch_until_refused(
    detector, folder: Path, state: Path, window: float
) -> tuple[list[dict], list[str]]:
    """``aetk watch FOLDER --window WINDOW`` in this process (a thread) until it is refused, or
    20 s; its events and the refusals' messages (a watch not refused is stopped)."""
    events: list[dict] = []
    options = WatchOptions(window=window, settle=0.0, interval=0.05, state=state)
    monitor = Monitor(detector, str(folder), options, events.append)
    refused: list[str] = []

    def run() -> None:
        try:
            monitor.run_folder(folder)
        except ConfigError as exc:
            refused.append(str(exc))

    runner = threading.Thread(target=run)
    runner.start()
    runner.join(20)
    monitor.stopping = True
    runner.join(30)
    return events, refused


def folder_watch_events(
    detector, folder: Path, state: Path, until: int, patience: float = 60, on_poll=None
) -> list[dict]:
    """``aetk watch FOLDER --state STATE`` in this process (a thread, polling every 0.05 s) until
    ``until`` files are scored or ``patience`` seconds pass, and half a second more; its events.
    ``on_poll(monitor)`` runs between polls."""
    events: list[dict] = []
    options = WatchOptions(settle=0.0, interval=0.05, state=state)
    monitor = Monitor(detector, str(folder), options, events.append)
    runner = threading.Thread(target=monitor.run_folder, args=(folder,))
    runner.start()
    deadline = time.monotonic() + patience
    while monitor.scored < until and time.monotonic() < deadline:
        if on_poll is not None:
            on_poll(monitor)
        time.sleep(0.05)
    time.sleep(0.5)  # anything more it would score
    monitor.stopping = True
    runner.join(30)
    return events


def test_a_thousand_files_at_once_are_each_scored_once(watched, tmp_path):
    detector, _ = watched
    folder = folder_of_clips(tmp_path / "burst", 1000, seed=4)
    events = folder_watch_events(detector, folder, tmp_path / "state.json", 1000, patience=240)
    scored = [e["source"] for e in events if e["event"] == "scored"]
    assert len(scored) == len(set(scored)) == 1000
    assert len(json.loads((tmp_path / "state.json").read_text())["scored"]) == 1000


def test_a_backlog_writes_the_state_about_once_a_second_not_after_every_file(
    watched, tmp_path, monkeypatch
):
    """The state lists every file of the folder: written out after each file of a backlog, it
    took 0.2–0.3 s a file at 50,000 files. While a batch is scored it is written at most once a
    second, then after the batch and at the stop."""
    detector, _ = watched
    folder = folder_of_clips(tmp_path / "backlog", 300, seed=8)
    writes: list[float] = []
    write = StateFile.write

    def counted(*arguments, **keywords) -> None:
        writes.append(time.monotonic())
        write(*arguments, **keywords)

    monkeypatch.setattr(StateFile, "write", counted)
    started = time.monotonic()
    events = folder_watch_events(detector, folder, tmp_path / "state.json", 300)
    seconds = time.monotonic() - started
    assert sum(event["event"] == "scored" for event in events) == 300
    assert len(json.loads((tmp_path / "state.json").read_text())["scored"]) == 300
    assert 2 <= len(writes) <= seconds + 3, (len(writes), seconds)
    # One file, as a recorder drops them: written once after it (not again for its batch), and
    # once at the stop.
    writes.clear()
    folder_watch_events(detector, folder_of_clips(tmp_path / "one", 1, 8), tmp_path / "1.json", 1)
    assert len(writes) == 2


def test_a_file_rewritten_under_its_name_is_scored_again_and_after_a_restart(watched, tmp_path):
    """A recorder that reuses its names (latest.wav, a ring of rec_00…rec_59) writes a new
    recording each time: each is scored, not only the first, and a restart does not score a
    file again that has not changed since."""
    detector, _ = watched
    folder, state = tmp_path / "ring", tmp_path / "state.json"
    folder.mkdir()
    rng = np.random.default_rng(5)

    def scored_events(until: int, write=None, patience: float = 60) -> list[dict]:
        def once_one_is_scored(monitor: Monitor) -> None:
            nonlocal write
            if write is not None and monitor.scored == 1:
                write, written = None, write
                written()

        events = folder_watch_events(detector, folder, state, until, patience, once_one_is_scored)
        return [event for event in events if event["event"] == "scored"]

    soundfile.write(folder / "latest.wav", synth.normal_clip(rng, 1.0), RATE)
    faulty = synth.normal_clip(rng, 1.0) + 0.5 * np.sin(2 * np.pi * 3000 * np.arange(RATE) / RATE)
    first = scored_events(2, lambda: soundfile.write(folder / "latest.wav", faulty / 2, RATE))
    assert [Path(event["source"]).name for event in first] == ["latest.wav"] * 2
    assert first[1]["score"] > first[0]["score"]  # the second recording, not the first again
    # Unchanged since: not scored again after a restart (30 polls).
    assert scored_events(1, patience=1.5) == []
    kept = json.loads(state.read_text())
    assert list(kept["stamps"]) == kept["scored"] == [str((folder / "latest.wav").resolve())]


def test_a_state_that_cannot_be_written_is_said_once_and_the_watch_goes_on(
    watched, tmp_path, monkeypatch
):
    """A full disk under --state had ended the watch's thread in an OSError traceback."""
    import errno

    from aetk_core.watch import state

    detector, _ = watched
    folder = folder_of_clips(tmp_path / "in", 3, seed=7)

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state, "atomic_write_text", full)
    events = folder_watch_events(detector, folder, tmp_path / "state.json", 3)
    assert [event["event"] for event in events if event["event"] == "scored"] == ["scored"] * 3
    (error,) = [event["error"] for event in events if event["event"] == "error"]
    assert error.startswith(f"cannot write the watch state {tmp_path / 'state.json'} (No space")


def test_an_alerts_recording_that_cannot_be_written_is_an_error_event_and_the_watch_goes_on(
    watched, tmp_path, monkeypatch
):
    import errno

    from aetk_core import fileio
    from aetk_core.watch.sources import StreamFormat

    detector, _ = watched
    samples = bearing_stream(seed=2).astype(np.float32)

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "atomic_path", full)
    events: list[dict] = []
    options = WatchOptions(record=tmp_path / "record", pre=1.0, post=1.0)
    monitor = Monitor(detector, "-", options, events.append)
    blocks = (
        samples[np.newaxis, start : start + RATE // 10]
        for start in range(0, len(samples), RATE // 10)
    )
    monitor.run_stream(StreamFormat(RATE, 1, "float32", 1.0), blocks)
    kinds = [event["event"] for event in events]
    assert "anomaly_start" in kinds and "anomaly_end" in kinds and "recorded" not in kinds
    (error,) = [event["error"] for event in events if event["event"] == "error"]
    assert (
        error.startswith(f"cannot write the recording {tmp_path / 'record'}")
        and "No space" in error
    )


def test_a_stream_at_another_rate_is_scored_with_a_band_limit_warning(watched):
    _, path = watched

    samples = resample_poly(stream(6, None, 0), 1, 2).astype(np.float32)
    buffer = wav_bytes(samples).replace(
        RATE.to_bytes(4, "little") + (2 * RATE).to_bytes(4, "little"),
        (RATE // 2).to_bytes(4, "little") + RATE.to_bytes(4, "little"),
        1,
    )
    events = watch("-", "-d", path, input=buffer)
    scored = [e for e in events if e["event"] == "scored"]
    assert scored and all(
        [w["name"] for w in e.get("warnings", [])] == ["band-limit"] for e in scored
    )


def test_a_stereo_stream_for_a_mono_detector_is_scored_with_a_channels_warning(watched):
    _, path = watched
    mono = stream(6, None, 0)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.stack([mono, mono], axis=1), RATE, format="WAV", subtype="PCM_16")
    events = watch("-", "-d", path, input=buffer.getvalue())
    scored = [e for e in events if e["event"] == "scored"]
    assert scored and all(
        [w["name"] for w in e.get("warnings", [])] == ["channels"] for e in scored
    )


def test_a_stream_that_ends_before_its_first_window_says_so(watched):
    _, path = watched
    events = watch("-", "-d", path, input=wav_bytes(stream(1, None, 0)))
    assert [(e["event"], e["error"]) for e in events] == [
        (
            "error",
            "the stream ended after 1.0 s, before its first window of 2 s: nothing was scored "
            "(--window sets the length)",
        )
    ]


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (lambda wav: wav[:30], "format chunk is cut short"),
        (lambda wav: wav[:12] + b"LIST" + (1 << 30).to_bytes(4, "little"), "claims 1,073,741,824"),
        (lambda wav: wav[:22] + (0).to_bytes(2, "little") + wav[24:], "0 channels at 16000 Hz"),
        (lambda wav: wav[:24] + (7).to_bytes(4, "little") + wav[28:], "1 channels at 7 Hz"),
    ],
)
def test_a_wav_stream_whose_header_lies_is_one_line(cut, message):
    """A WAV header cut short, or one that claims a gigabyte before its data or an impossible
    format, on standard input: one line, and nothing read into memory that it claims."""
    from aetk_core.watch.sources import wav_header

    from aetk.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        wav_header(io.BytesIO(cut(wav_bytes(np.zeros(RATE, np.float32)))))


def test_a_state_or_recordings_folder_that_cannot_be_made_is_one_line(
    watched, tmp_path, cli, monkeypatch
):
    _, path = watched
    (tmp_path / "incoming").mkdir()
    (tmp_path / "a-file").write_text("")
    state = tmp_path / "a-file" / "state.json"
    refused = cli("watch", tmp_path / "incoming", "-d", path, "--state", state)
    assert refused.code == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: --state {state}: cannot create the folder {state.parent} (a file stands where "
        "a folder would be)"
    ]
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(wav_bytes(stream(3, None, 0)))))
    refused = cli("watch", "-", "-d", path, "--record", state.parent / "alerts")
    assert refused.code == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: --record: cannot create the folder {state.parent / 'alerts'} (a file stands "
        "where a folder would be)"
    ]


def test_an_alerts_recording_holds_pre_seconds_and_a_window_of_the_length_now_scored(tmp_path):
    """The audio kept for an alert's recording is --pre seconds and one window; when a refit
    changes the windows' length, the next recording follows it."""
    from aetk_core.watch.outputs import Recorder

    recorder = Recorder(tmp_path / "alerts", 100, pre=1.0, post=0.5, window=2.0)
    block = np.ones((1, 10), np.float32)  # 0.1 s at 100 Hz

    def recorded_seconds(at: float) -> float:
        for index in range(60):
            recorder.add(block, at - 6.0 + (index + 1) / 10)
        recorder.start(at)
        written = []
        for index in range(6):
            written += recorder.add(block, at + (index + 1) / 10)
        (path,) = written
        return soundfile.info(str(path)).duration

    assert recorded_seconds(10.0) == pytest.approx(3.0 + 0.5, abs=0.11)
    recorder.resize(0.5)  # a refit of 0.5-s windows
    assert recorded_seconds(20.0) == pytest.approx(1.5 + 0.5, abs=0.11)


@pytest.mark.parametrize("window", [None, 2.0])
def test_a_detector_replaced_by_a_refit_judges_from_then_on_and_keeps_the_alert(
    watched, tmp_path, window
):
    """A watch of months outlives its detector: a refit written over the detector's file (here:
    one whose threshold no window reaches) judges every window after it, and the alert open
    under the old one ends under the new one, as its windows clear it. A file that cannot be
    read (copied in half) is an error event, and the detector read before goes on judging.
    Before, the watch judged with the detector of its start until restarted. A refit fitted on
    shorter clips shortens the stream's windows from then on, unless --window set them."""
    import dataclasses
    import os
    import shutil

    from aetk_core.watch.sources import StreamFormat

    import aetk

    detector, path = watched
    live = tmp_path / "live.aetk"
    shutil.copy(path, live)
    refit = aetk.Detector.load(path)
    refit.calibration = dataclasses.replace(refit.calibration, threshold=1e6)
    refit.save(tmp_path / "refit.aetk")
    (tmp_path / "half.aetk").write_bytes(path.read_bytes()[:2000])
    refit.training["config"]["training"]["segment_seconds"] = 0.5  # fitted on 0.5-s clips
    refit.save(tmp_path / "shorter.aetk")
    fault = synth.anomalous_clip(np.random.default_rng(2), "bearing", 6.0, severity=3.0)
    samples = stream(4, fault, 2).astype(np.float32)
    # Blocks of 0.1 s: at 2 s, 9 s and 10.5 s.
    replaced_at = {20: "half.aetk", 90: "refit.aetk", 105: "shorter.aetk"}

    def blocks():
        for index, start in enumerate(range(0, len(samples), RATE // 10)):
            if index in replaced_at:
                shutil.copy(tmp_path / replaced_at[index], tmp_path / "next.aetk")
                os.replace(tmp_path / "next.aetk", live)
            if any(0 < index - at <= 3 for at in replaced_at):
                time.sleep(0.06)  # two looks at the file, a poll interval apart
            yield samples[np.newaxis, start : start + RATE // 10]

    events: list[dict] = []
    options = WatchOptions(window=window, interval=0.05, detector_file=live)
    Monitor(detector, "-", options, events.append).run_stream(
        StreamFormat(RATE, 1, "float32", 1.0), blocks()
    )
    kinds = [event["event"] for event in events]
    (error,) = [event["error"] for event in events if event["event"] == "error"]
    assert error.startswith(f"{live} was replaced and cannot be judged with (")
    assert error.endswith("still judging with the detector read before")
    reloaded = kinds.index("detector_reloaded")
    assert events[reloaded]["path"] == str(live) and events[reloaded]["threshold"] == 1e6
    assert "warning" not in events[reloaded]
    # A refit of 0.5-s clips: the stream's windows (2 s, the detector's at the start) take its
    # length from the next window on; with --window 2 they keep it, and the event says what
    # that misreads.
    shorter = events.index([e for e in events if e["event"] == "detector_reloaded"][1])
    times = [e["time"] for e in events[shorter:] if e["event"] == "scored"]
    hops = {round(later - earlier, 3) for earlier, later in itertools.pairwise(times)}
    if window is None:
        assert events[shorter]["window"] == 0.5 and "warning" not in events[shorter]
        assert len(times) >= 3 and hops == {0.25}
    else:
        assert "window" not in events[shorter] and hops <= {1.0}
        warning = events[shorter]["warning"]
        assert warning.startswith("windows of 2 s are compared with a threshold calibrated")
    assert kinds.index("error") < kinds.index("anomaly_start") < reloaded
    assert "anomaly_end" in kinds[reloaded:]  # the alert open before ends under the refit
    thresholds = [event["threshold"] for event in events if event["event"] == "scored"]
    before = kinds[:reloaded].count("scored")
    assert set(thresholds[:before]) == {detector.threshold} and set(thresholds[before:]) == {1e6}
    assert len(thresholds) > before + 2


def test_windows_shorter_than_the_training_clips_are_said_once_not_in_every_window(watched):
    """``--window 0.5`` on a detector of 2-s clips: every window's row had named ``duration``
    (a warning line each second, the recording-warnings metric climbing for ever) and
    ``--strict`` refused every window, so the watch scored nothing. The windows are now
    checked as windows of the length asked for, and the length said once as the watch starts."""
    import subprocess

    _, path = watched
    samples = stream(4, None, 0)
    command = [sys.executable, "-m", "aetk", "watch", "-", "-d", str(path), "--window", "0.5"]
    ran = subprocess.run(
        [*command, "--json", "--strict"], input=wav_bytes(samples), capture_output=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    assert [event["event"] for event in events] == ["scored"] * 15  # hop 0.25 s over 4 s
    assert all("warnings" not in event for event in events)
    (said,) = ran.stderr.decode().splitlines()
    assert said.startswith("warning: windows of 0.5 s are compared with a threshold calibrated")


def test_a_detector_file_counts_as_replaced_once_it_has_settled_and_through_its_link(tmp_path):
    """A copy in place is not read while it grows; a symbolic link pointed at another file is a
    refit; a file removed (between the two steps of a copy) is no version to read."""
    import os

    from aetk_core.watch.refit import DetectorFileWatch

    def looks(watch: DetectorFileWatch, count: int) -> list[bool]:
        said = []
        for _ in range(count):
            time.sleep(0.03)
            said.append(watch.replaced())
        return said

    (tmp_path / "spring.aetk").write_bytes(b"a" * 100)
    (tmp_path / "summer.aetk").write_bytes(b"b" * 200)
    link = tmp_path / "detector.aetk"
    link.symlink_to("spring.aetk")
    watch = DetectorFileWatch(link, every=0.02)
    assert looks(watch, 3) == [False] * 3
    with open(tmp_path / "spring.aetk", "ab") as growing:  # copied in place, a chunk a look
        for _ in range(3):
            growing.write(b"a" * 50)
            growing.flush()
            assert looks(watch, 1) == [False]
    assert looks(watch, 2) == [True, False]  # settled: one version, said once
    (tmp_path / "next").symlink_to("summer.aetk")
    os.replace(tmp_path / "next", link)
    assert looks(watch, 3) == [False, True, False]
    link.unlink()
    assert looks(watch, 3) == [False] * 3


def test_a_folder_of_detectors_counts_as_replaced_by_its_files_not_its_writers_temporaries(
    tmp_path,
):
    """A fleet's folder of exported files (aetk-runtime watch -d models/): files being written
    under hidden names (aetk export's ``.pump-01.onnx.partial``) are no new version; the new
    files moved into place are one, said once."""
    import os

    from aetk_core.watch.refit import DetectorFileWatch

    models = tmp_path / "models"
    models.mkdir()
    for name in ("fan-01", "pump-01"):
        (models / f"{name}.onnx").write_bytes(b"old " + name.encode())
    watch = DetectorFileWatch(models, every=0.02)
    said = []
    for name in ("fan-01", "pump-01"):  # each machine's file written aside, a look apart
        (models / f".{name}.onnx.partial").write_bytes(b"new " + name.encode())
        for _ in range(3):
            time.sleep(0.03)
            said.append(watch.replaced())
    assert said == [False] * 6
    for name in ("fan-01", "pump-01"):
        os.replace(models / f".{name}.onnx.partial", models / f"{name}.onnx")
    said = []
    for _ in range(4):
        time.sleep(0.03)
        said.append(watch.replaced())
    assert said == [False, True, False, False]


def test_windows_too_short_to_score_are_refused_as_the_stream_starts(watched):
    """``--window 0.01``: every window (two a window, for as long as the stream ran) had been
    an error event; now one line before the first."""
    from aetk_core.watch.sources import StreamFormat

    from aetk.errors import ConfigError

    detector, _ = watched
    events: list[dict] = []
    monitor = Monitor(detector, "-", WatchOptions(window=0.01), events.append)
    blocks = iter([np.zeros((1, RATE), np.float32)])
    with pytest.raises(ConfigError, match=r"--window 0\.01: no window of that length can be"):
        monitor.run_stream(StreamFormat(RATE, 1, "float32", 1.0), blocks)
    assert events == []
