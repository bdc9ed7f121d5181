"""aetk watch: alerts on a stream at the fault and nowhere else, folders scored once each (and
not again after a restart), metrics, webhooks with retries, and the device path with
sounddevice's input stream replaced at its boundary (CI has no microphone)."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile
from conftest import free_port

from aetk import synth

pytest.importorskip("prometheus_client", reason="aetk watch's extra: pip install 'aetk[watch]'")

RATE = 16000


def stream(seconds_normal: float, fault: np.ndarray | None, after: float, seed: int = 9):
    rng = np.random.default_rng(seed)

    def normal(seconds: float) -> np.ndarray:
        clips = [synth.normal_clip(rng, 2.0) for _ in range(int(np.ceil(seconds / 2)))]
        return np.concatenate([np.zeros(0, np.float32), *clips])[: int(seconds * RATE)]

    parts = [normal(seconds_normal), *([fault] if fault is not None else []), normal(after)]
    return np.concatenate(parts)


def bearing_stream(seed: int = 1) -> np.ndarray:
    """Ten seconds of the normal hum, three of a bearing fault drawn with ``seed``, seven of the
    hum: the fault a watch must raise one alert for, from 10 to 13 s."""
    fault = synth.anomalous_clip(np.random.default_rng(seed), "bearing", 3.0, severity=3.0)
    return stream(10, fault, 7)


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def watch(*args: str, input: bytes | None = None, timeout: float = 120) -> list[dict]:
    ran = subprocess.run(
        [sys.executable, "-m", "aetk", "watch", *map(str, args), "--json"],
        input=input,
        capture_output=True,
        timeout=timeout,
    )
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    return [json.loads(line) for line in ran.stdout.splitlines()]


def alerts(events: list[dict]) -> list[tuple[str, float]]:
    return [(e["event"], e["time"]) for e in events if e["event"].startswith("anomaly")]


def test_a_stream_with_a_fault_raises_one_alert_at_the_fault(watched):
    detector, path = watched
    events = watch("-", "-d", path, "--confirm", "2", input=wav_bytes(bearing_stream()))
    scored = [e for e in events if e["event"] == "scored"]
    hop = scored[1]["time"] - scored[0]["time"]
    (start, end) = alerts(events)
    assert start[0] == "anomaly_start" and abs(start[1] - 10.0) <= hop
    assert end[0] == "anomaly_end" and abs(end[1] - 13.0) <= hop
    assert all(e["source"] == "-" and e["threshold"] == detector.threshold for e in events)
    assert all("at" in e for e in events)
    # The alert says which view raised it: the view of the score that confirmed it.
    confirmed = next(i for i, e in enumerate(events) if e["event"] == "anomaly_start")
    assert events[confirmed]["view"] == events[confirmed - 1]["view"] is not None
    assert "view" not in next(e for e in events if e["event"] == "anomaly_end")


def test_a_single_window_click_raises_no_alert_and_its_score_names_the_moment(watched):
    _, path = watched
    samples = stream(16, None, 0)
    burst = np.random.default_rng(3).standard_normal(RATE // 5) * 0.4
    samples[5 * RATE : 5 * RATE + len(burst)] += burst  # a loud click inside one window
    # Windows that do not overlap, so that the click is in exactly one of them.
    events = watch(
        "-", "-d", path, "--confirm", "2", "--window", "2", "--hop", "2", input=wav_bytes(samples)
    )
    assert alerts(events) == []
    raised = [e["view"] for e in events if e["event"] == "scored" and e["anomalous"]]
    # Which view raised the score, and when in seconds of the stream: the click's moment.
    assert raised and all(v["view"] == "event" and 4.9 <= v["start"] < 5.2 for v in raised)


def test_raw_pcm_on_stdin_and_recordings_of_the_alert(watched, tmp_path):
    _, path = watched
    samples = bearing_stream(seed=2)
    raw = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    record = tmp_path / "record"
    events = watch(
        "-", "-d", path, "--rate", RATE, "--record", record, "--pre", "1", "--post", "1", input=raw
    )
    assert [name for name, _ in alerts(events)] == ["anomaly_start", "anomaly_end"]
    (recorded,) = [e for e in events if e["event"] == "recorded"]
    audio, rate = soundfile.read(recorded["path"])
    assert rate == RATE and len(audio) / rate >= 2.0  # pre + window + post, at least


def test_folder_files_are_scored_once_and_not_again_after_a_restart(watched, tmp_path):
    _, path = watched
    folder, state = tmp_path / "incoming", tmp_path / "state.json"
    folder.mkdir()
    rng = np.random.default_rng(4)
    soundfile.write(folder / "before.wav", synth.normal_clip(rng, 2.0), RATE)
    port = free_port()
    process = watch_folder(folder, path, state, "1.0", "--metrics-port", str(port))
    try:
        time.sleep(3)
        dropped = synth.normal_clip(rng, 2.0)
        dropped[RATE // 2 : RATE] = 0.0  # half a second of digital silence
        soundfile.write(folder / "quick.wav", dropped, RATE)
        slow = wav_bytes(synth.normal_clip(rng, 2.0))
        with open(folder / "slow.wav", "wb") as handle:  # written in chunks, 0.3 s apart
            for start in range(0, len(slow), len(slow) // 5):
                handle.write(slow[start : start + len(slow) // 5])
                handle.flush()
                time.sleep(0.3)
        deadline = time.monotonic() + 30
        metrics = ""
        while time.monotonic() < deadline:
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
            if "aetk_files_scored_total 3.0" in metrics:
                break
            time.sleep(0.3)
        assert "aetk_files_scored_total 3.0" in metrics
        assert "aetk_threshold" in metrics and "aetk_last_score" in metrics
        (scored_at,) = [
            float(line.split()[1])
            for line in metrics.splitlines()
            if line.startswith("aetk_last_scored_timestamp_seconds ")
        ]
        assert time.time() - 30 < scored_at <= time.time()  # when the last file was scored
        assert 'aetk_recording_warnings_total{name="dropout"} 1.0' in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    scored = [json.loads(line)["source"] for line in out.splitlines()]
    assert sorted(Path(s).name for s in scored) == ["before.wav", "quick.wav", "slow.wav"]
    for event in (json.loads(line) for line in out.splitlines()):
        if Path(event["source"]).name == "slow.wav":
            assert event["event"] == "scored"  # read whole: never an error for a half file
    again = watch_folder(folder, path, state, "0.2")
    time.sleep(3)
    again.send_signal(signal.SIGTERM)
    out, err = again.communicate(timeout=30)
    assert again.returncode == 0, err
    assert out.strip() == ""


def test_a_folder_watched_with_a_window_scores_each_file_in_windows(watched, tmp_path):
    """A file three times as long as the training clips, its last third faulty: scored whole
    it is named ``duration`` (a fault in a part of it fades in its average); with ``--window 2``
    it is scored in windows of the clips' length, its worst window its score, and not named."""
    _, path = watched
    folder = tmp_path / "incoming"
    folder.mkdir()
    rng = np.random.default_rng(5)
    fault = synth.anomalous_clip(rng, "bearing", 2.0, severity=3.0)
    long = np.concatenate([synth.normal_clip(rng, 2.0), synth.normal_clip(rng, 2.0), fault])
    soundfile.write(folder / "long.wav", long, RATE)
    scored = {}
    for name, args in (("whole", ()), ("windows", ("--window", "2"))):
        state = tmp_path / f"{name}.json"
        process = watch_folder(folder, path, state, "0.2", *args)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not state.exists():
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        (scored[name],) = [json.loads(line) for line in out.splitlines()]
    whole, windows = scored["whole"], scored["windows"]
    assert [warning["name"] for warning in whole["warnings"]] == ["duration"]
    assert (
        "score it in windows (--segment 2, or --window 2 when watching)"
        in (whole["warnings"][0]["message"])
    )
    assert "warnings" not in windows and windows["score"] > whole["score"], (whole, windows)


def watch_folder(folder: Path, detector: Path, state: Path, settle: str, *args: str):
    """``aetk watch FOLDER --json --state STATE`` in its own process, polling every 0.1 s."""
    command = [sys.executable, "-m", "aetk", "watch", str(folder), "-d", str(detector), "--json"]
    command += ["--state", str(state), "--interval", "0.1", "--settle", settle, *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Receiver(BaseHTTPRequestHandler):
    """Fails the first two requests, then records the events it gets."""

    calls: ClassVar[list[int]] = []
    events: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append(1)
        if len(Receiver.calls) <= 2:
            self.send_response(500)
        else:
            Receiver.events.append(json.loads(body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_a_watch_says_what_it_judges_as_it_starts(watched, tmp_path):
    """One line on stderr before any event (not with --json): the source, the detector file,
    its threshold (a fleet's machines: their range; a threshold that holds no false-alarm rate,
    why) and when alerts start and end."""
    from aetk_core.watch.events import describe_watch

    import aetk

    _, path = watched
    command = [sys.executable, "-m", "aetk", "watch", "-", "-d", str(path)]
    audio = wav_bytes(stream(4, None, 0))
    said = subprocess.run(
        [*command, "--threshold", "2.5", "--confirm", "3"], input=audio, capture_output=True
    )
    assert said.returncode == 0, said.stderr.decode()[-2000:]
    assert said.stderr.decode().splitlines()[0] == (
        f"Watching standard input with {path} (threshold 2.5): an alert starts at 3 scores in a "
        "row above the threshold and ends at 2 in a row below it"
    )
    quiet = subprocess.run([*command, "--json"], input=audio, capture_output=True)
    assert quiet.returncode == 0 and "Watching " not in quiet.stderr.decode()
    fleet = describe_watch("incoming", Path("fleet.aetk"), [1.5, 0.75, 2.0], 1, 1)
    assert fleet == (
        "Watching incoming with fleet.aetk (3 machines, thresholds 0.75 to 2): an alert starts "
        "at the first score above the threshold and ends at the first below it"
    )
    shared = describe_watch("incoming", Path("fleet.aetk"), [1.5, 1.5], 2, 2)
    assert "(2 machines, threshold 1.5)" in shared
    # Fitted on 6 clips: its threshold is the largest of their held-out scores, no 10% rate.
    few = synth.write_dataset(tmp_path, train=6, test_normal=0, test_per_anomaly=0, seconds=2.0)
    small = aetk.fit(few["train"])
    small_path = small.save(tmp_path / "small.aetk")
    held_out = small.calibration_summary()["normal_scores"]
    noted = subprocess.run(
        [*command[:-1], str(small_path)], input=audio, capture_output=True
    ).stderr.decode()
    assert noted.splitlines()[0] == (
        f"Watching standard input with {small_path} (threshold {small.threshold:.4g}; the "
        f"largest of {held_out} held-out normal scores: too few for a 10% false-alarm rate): an "
        "alert starts at 2 scores in a row above the threshold and ends at 2 in a row below it"
    )
    given = subprocess.run(
        [*command[:-1], str(small_path), "--threshold", "3"], input=audio, capture_output=True
    )
    assert "(threshold 3):" in given.stderr.decode().splitlines()[0]
    # A fleet: the one note all its thresholds share, or which machines' thresholds have one.
    note = "the largest of 4 held-out normal scores: too few for a 10% false-alarm rate"
    every = describe_watch("incoming", Path("f.aetk"), [1.0] * 2, 2, 2, {"a": note, "b": note})
    assert f"(2 machines, threshold 1; {note}): " in every
    other = {"a": note, "b": note.replace("4", "5")}
    each = describe_watch("incoming", Path("f.aetk"), [1.0, 2.0], 2, 2, other)
    assert "thresholds 1 to 2; each the largest of too few held-out normal scores for the " in each
    some = {f"m{index}": note for index in range(5)}
    listed = describe_watch("incoming", Path("f.aetk"), [1.0] * 6, 2, 2, some)
    assert "(6 machines, threshold 1; m0, m1, m2 and 2 more: the largest of too few held-out " in (
        listed
    )
    two = describe_watch("incoming", Path("f.aetk"), [1.0] * 6, 2, 2, {"a": note, "b": note})
    assert "; a and b: the largest of too few held-out normal scores for the false-alarm " in two


def test_alert_lines_name_a_folders_file_and_a_streams_moment(capsys):
    """Without --json: a folder's alert names the file (and its machine in a fleet), a
    stream's the moment in it, and each the view that raised it."""
    from aetk.cli.watch import _View

    view = _View(False, "incoming")
    try:
        for source, time_in in (("incoming/pump-07/a.wav", 0.0), ("incoming", 12.5)):
            event = {"event": "anomaly_start", "time": time_in, "source": source, "at": "T"}
            view.show({**event, "score": 2.0, **({"machine": "pump-07"} if time_in == 0 else {})})
        moment = {"view": "event", "start": 12.56, "end": 12.69}
        view.show({**event, "score": 3.0, "view": moment})
        reloaded = {"event": "detector_reloaded", "time": None, "source": "incoming", "at": "T"}
        view.show({**reloaded, "path": "d.aetk", "threshold": 1.5})
        view.show({**reloaded, "path": "fleet.aetk", "threshold": None})
        view.show({**reloaded, "path": "d.aetk", "threshold": 1.5, "warning": "windows of 2 s"})
        view.show({**reloaded, "path": "short.aetk", "threshold": 2.5, "window": 0.5})
        dropout = {"name": "dropout", "message": "0.5 s of digital silence"}
        scored = {"event": "scored", "time": 3.0, "source": "incoming", "at": "T", "lag": 0}
        view.show({**scored, "score": 0.5, "threshold": 1.0, "warnings": [dropout]})
    finally:
        view.close()
    said = capsys.readouterr()
    out = said.out
    assert "warning: incoming: windows of 2 s" in said.err
    # A scored window's recording warnings: one line on stderr, naming the source.
    assert "warning: incoming: dropout" in said.err
    assert "judging with the detector refitted in d.aetk (threshold 1.5)" in out
    assert "judging with the detector refitted in fleet.aetk\n" in out
    assert "refitted in short.aetk (threshold 2.5), in windows of 0.5 s\n" in out
    assert "anomaly started at incoming/pump-07/a.wav (machine pump-07) (score 2)" in out
    assert "anomaly started at 12.50 s (score 2)" in out
    assert "anomaly started at 12.50 s (score 3, event at 12.56–12.69 s)" in out


def test_a_webhook_gets_the_alerts_after_retries(watched):
    _, path = watched
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        events = watch(
            "-",
            "-d",
            path,
            "--webhook",
            f"http://127.0.0.1:{server.server_address[1]}/alerts",
            input=wav_bytes(bearing_stream()),
        )
    finally:
        server.shutdown()
    assert len(Receiver.calls) >= 4  # two failures, then both events
    assert [e["event"] for e in Receiver.events] == ["anomaly_start", "anomaly_end"]
    assert Receiver.events == [e for e in events if e["event"].startswith("anomaly")]


def test_a_live_device_through_sounddevice_replaced_at_its_boundary(watched, cli, monkeypatch):
    import fake_sounddevice

    _, path = watched
    device = fake_sounddevice.playing(bearing_stream(), RATE)
    monkeypatch.setitem(sys.modules, "sounddevice", device)
    result = cli("watch", "mic:0", "-d", path, "--json")
    assert result.code == 0, result.stderr
    assert device.opened == [{"device": 0, "format": [1, RATE, "float32"]}]
    events = result.json_lines()
    assert [e["event"] for e in events if e["event"].startswith("anomaly")] == [
        "anomaly_start",
        "anomaly_end",
    ]
    assert all(e["source"] == "mic:0" for e in events)
    assert cli("watch", "--list-devices").stdout == fake_sounddevice.DEVICES + "\n"


def test_a_hop_longer_than_the_window_is_said_once_as_the_watch_starts():
    """``--window 2 --hop 5``: 3 s of every 5 s were never heard, without a word."""
    from aetk_core.watch.events import window_warnings

    (gap,) = window_warnings(None, 15.0, clip_seconds=10.0)
    assert gap.startswith("--hop 15 is longer than the windows (10 s): 5 s of every 15 s")
    short, gap = window_warnings(2.0, 5.0, clip_seconds=10.0)
    assert short.startswith("windows of 2 s are compared with a threshold calibrated on clips")
    assert "3 s of every 5 s are never heard" in gap
    assert window_warnings(10.0, 10.0, clip_seconds=10.0) == []
    # A folder's files are scored in consecutive windows: no hop to misread.
    assert window_warnings(2.0, 5.0, clip_seconds=10.0, folder=True) == [short]
    assert window_warnings(None, None, clip_seconds=10.0) == []
    # An export that does not say its clips' length: only what the options themselves say.
    (gap,) = window_warnings(2.0, 5.0, clip_seconds=None)
    assert gap.startswith("--hop 5 is longer than the windows (2 s)")
    assert window_warnings(None, 5.0, clip_seconds=None) == []


def test_the_live_status_returns_to_the_last_score_once_the_files_already_there_are_scored():
    """It had stayed on ``scoring the 3 files already there: 3/3`` while the watch waited."""
    from aetk.cli.watch import _View

    view = _View(False, "incoming")
    try:
        event = {"event": "scored", "time": 0.0, "source": "incoming/a.wav", "at": "T"}
        for done in (1, 2):
            view.show({**event, "score": 0.5, "threshold": 1.0, "lag": 0.0})
            view.progress(done, 2)
        assert view.status is not None
        assert view.status.status == "incoming/a.wav: score 0.5 (threshold 1)"
        view.show({**event, "score": 1.5, "threshold": 1.0, "lag": 0.0, "anomalous": True})
        assert view.status.status == "incoming/a.wav: score 1.5 (above the threshold 1)"
    finally:
        view.close()
