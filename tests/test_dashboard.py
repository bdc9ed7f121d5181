"""aetk watch --dashboard: the JSON API, bounded memory, and the page in a real headless Chromium:
an anomalous file dropped into the watched folder appears as an alert with its spectrogram and
audio, and acknowledging it works."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile
from aetk_core.results import describe_view
from aetk_core.watch import dashboard as dashboards
from aetk_core.watch.dashboard import Dashboard, parse_address
from conftest import browser, free_port, wait_for

from aetk import synth

RATE = 16000


def get(url: str, data: bytes | None = None, timeout: float = 10) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


@pytest.fixture
def watching(watched, tmp_path):
    """``aetk watch FOLDER --dashboard PORT --confirm 1`` running; yields (folder, base URL)."""
    _, path = watched
    folder = tmp_path / "incoming"
    folder.mkdir()
    port = free_port()
    command = [sys.executable, "-m", "aetk", "watch", str(folder), "-d", str(path), "--json"]
    command += ["--dashboard", str(port), "--confirm", "1", "--settle", "0.2", "--interval", "0.2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return get(base + "/api/status")[0] == 200
        except OSError:
            return False

    try:
        wait_for(up)
        yield folder, base
    finally:
        process.terminate()
        process.communicate(timeout=30)


def drop(folder: Path, name: str, kind: str | None) -> None:
    """A 2-s clip: normal (``kind`` None), with fault ``kind``, or ``"dropout"``: normal with
    half a second of digital silence."""
    rng = np.random.default_rng(len(name))
    if kind is None or kind == "dropout":
        samples = synth.normal_clip(rng, 2.0)
        if kind == "dropout":
            samples[RATE // 2 : RATE] = 0.0
    else:
        samples = synth.anomalous_clip(rng, kind, 2.0, severity=3.0)
    temporary = folder.parent / name
    soundfile.write(temporary, samples, RATE)
    shutil.move(temporary, folder / name)


def test_the_api_shows_scores_alerts_audio_spectrogram_and_acknowledgement(watching):
    folder, base = watching
    drop(folder, "quiet.wav", None)
    wait_for(lambda: json.loads(get(base + "/api/status")[2])["sources"])
    drop(folder, "bad.wav", "bearing")
    alerts = wait_for(lambda: json.loads(get(base + "/api/alerts")[2])["alerts"])
    (alert,) = alerts
    assert alert["score"] > json.loads(get(base + "/api/status")[2])["threshold"]
    # Which of the default's views raised it, readably for the page.
    assert alert["view"]["view"] in ("clip", "frames", "event")
    assert alert["raised_by"] == describe_view(alert["view"]) != ""
    # Drawn at the lowest CPU priority: on a busy machine it waits for what scoring leaves.
    status, kind, body = get(base + alert["spectrogram"], timeout=120)
    assert (status, kind) == (200, "image/png") and body.startswith(b"\x89PNG")
    status, kind, body = get(base + alert["audio"])
    assert (status, kind) == (200, "audio/wav") and body == (folder / "bad.wav").read_bytes()
    status, _, body = get(f"{base}/api/alerts/{alert['id']}/ack", data=b"")
    assert status == 200 and json.loads(body)["acknowledged"]
    assert json.loads(get(base + "/api/alerts")[2])["alerts"][0]["acknowledged"]
    source = json.loads(get(base + "/api/status")[2])["sources"][0]
    assert source["open_alert"]["id"] == alert["id"] and len(source["history"]) == 2
    assert get(base + "/api/alerts/99/audio")[0] == 404
    assert get(base + "/../../etc/passwd")[0] == 404


def test_the_page_shows_the_alert_and_acknowledges_it_in_chromium(watching, tmp_path):
    driver, reason = browser(tmp_path)
    if driver is None:
        pytest.skip(f"browser check skipped: {reason}")
    folder, base = watching
    try:
        driver.set_window_size(1100, 1100)
        driver.get(base + "/")
        assert driver.title == "aetk watch"
        drop(folder, "quiet.wav", None)
        drop(folder, "bad.wav", "bearing")
        loaded = (
            "const i = document.querySelector('li.alert img.spectrogram');"
            "return i !== null && i.complete && i.naturalWidth > 0"
        )
        wait_for(lambda: driver.execute_script(loaded))
        assert driver.find_element("css selector", "li.alert audio").get_attribute("src")
        assert "raised by: " in driver.find_element("css selector", "li.alert .view").text
        assert "ANOMALY" in driver.find_element("css selector", ".source").text
        assert driver.find_elements("css selector", "svg.chart polyline.scores")
        assert driver.find_elements("css selector", "svg.chart polyline.threshold")
        # The chart's scale: its top is above the threshold (half as much again, or the highest
        # score), written in its corner.
        top = driver.find_element("css selector", "svg.chart text.scale").text
        threshold = json.loads(get(base + "/api/status")[2])["sources"][0]["threshold"]
        assert top.startswith("score ") and float(top.split()[1]) >= round(1.5 * threshold, 2)
        button = driver.find_element("css selector", "li.alert button.ack")
        button.click()
        wait_for(
            lambda: "acknowledged" in driver.find_element("css selector", "li.alert .status").text
        )
        assert driver.find_element("css selector", "li.alert button.ack").get_attribute("disabled")
        drop(folder, "dropped.wav", "dropout")  # the recording at fault: said beside the score
        wait_for(lambda: driver.find_elements("css selector", ".source .recording"))
        assert (
            "recording: dropout: 0.5 s"
            in driver.find_element("css selector", ".source .recording").text
        )
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()


def test_each_score_keeps_the_threshold_it_was_judged_at():
    """After a refit the page draws each score against its own threshold (the dashed line
    steps), not the old scores against the new threshold."""
    board = Dashboard(("127.0.0.1", 0), "mic", 1.0, lambda *drawn: None, [])
    try:
        for score, threshold in ((1.5, 1.0), (1.5, 2.0)):
            event = {"event": "scored", "source": "mic", "score": score, "threshold": threshold}
            board.record({**event, "anomalous": score > threshold})
        (source,) = board.status()["sources"]
        assert [point[2:] for point in source["history"]] == [[True, 1.0], [False, 2.0]]
        assert source["threshold"] == 2.0
    finally:
        board.close()


def scored(board: Dashboard, score: float) -> None:
    event = {"event": "scored", "source": "mic", "score": score, "threshold": 1.0}
    board.record({**event, "anomalous": score > 1.0})


def test_status_counts_the_scores_above_and_below_the_threshold_in_a_row():
    """What the page needs to say "above threshold, 2 of 3 in a row" rather than "normal" beside
    a score above the threshold that has not started an alert yet (``--confirm 3``), and how
    near an open alert is to its end (``--clear 2``)."""
    board = Dashboard(("127.0.0.1", 0), "mic", 1.0, lambda *drawn: None, [], confirm=3, clear=2)
    try:
        assert (board.status()["confirm"], board.status()["clear"]) == (3, 2)
        runs = []
        for score in (0.5, 2.0, 2.5, 0.7, 0.6, 3.0):
            scored(board, score)
            (source,) = board.status()["sources"]
            runs.append((source["above_in_a_row"], source["below_in_a_row"]))
        assert runs == [(0, 1), (1, 0), (2, 0), (0, 1), (0, 2), (1, 0)]
    finally:
        board.close()


def test_the_page_says_how_near_an_alert_is_to_its_start_and_its_end(tmp_path):
    driver, reason = browser(tmp_path)
    if driver is None:
        pytest.skip(f"browser check skipped: {reason}")
    board = Dashboard(("127.0.0.1", 0), "mic", 1.0, lambda *drawn: None, [], confirm=3, clear=2)

    def badge() -> tuple[str, str]:
        """The source's state and its whole line ("" before the page has drawn it), read in one
        script: the page redraws the line every 2 s."""
        read = (
            "const head = document.querySelector('.source .source-head');"
            "return head ? [head.querySelector('.state').textContent, head.textContent] : ['', ''];"
        )
        state, line = driver.execute_script(read)
        return state, line

    try:
        driver.get(board.url)
        scored(board, 0.5)
        wait_for(lambda: badge()[0] == "normal")
        scored(board, 2.0)
        scored(board, 2.5)
        state, head = wait_for(lambda: "2 of 3" in badge()[1] and badge())
        assert state == "above threshold"
        assert "2 of 3 in a row: an alert starts at 3" in head
        board.record({"event": "anomaly_start", "source": "mic", "at": "t", "score": 2.5})
        state, head = wait_for(lambda: badge()[0] == "ANOMALY" and badge())
        assert "in a row" not in head
        wait_for(lambda: driver.title == "ANOMALY (1) · aetk watch")  # seen from another tab
        scored(board, 0.5)  # below again, and the alert open until it clears
        state, head = wait_for(lambda: "score 0.5000" in badge()[1] and badge())
        assert state == "ANOMALY"
        assert "1 of 2 below the threshold: the alert ends at 2" in head
        board.record({"event": "anomaly_end", "source": "mic", "at": "t"})
        wait_for(lambda: driver.title == "aetk watch")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()
        board.close()


def test_a_fleets_machines_share_one_time_axis_in_chromium(tmp_path):
    """A machine first heard later starts its chart where the others' start, so that what
    happened at once lines up down the page."""
    driver, reason = browser(tmp_path)
    if driver is None:
        pytest.skip(f"browser check skipped: {reason}")
    board = Dashboard(("127.0.0.1", 0), "incoming", None, lambda *drawn: None, [])
    try:
        for index, machine in enumerate(("pump-1", "pump-2")):
            time.sleep(1.2 * index)  # the second machine's first score a clock second later
            event = {"event": "scored", "source": f"{machine}.wav", "machine": machine}
            board.record({**event, "score": 0.5, "anomalous": False, "threshold": 1.0})
        driver.get(board.url)
        read = (
            "return [...document.querySelectorAll('svg.chart text.since')]"
            ".map((label) => label.textContent)"
        )
        starts = wait_for(
            lambda: (found := driver.execute_script(read)) and len(found) == 2 and found
        )
        assert starts[0] == starts[1]
    finally:
        driver.quit()
        board.close()


def test_memory_is_bounded_over_a_day_of_windows(monkeypatch):
    monkeypatch.setattr(dashboards, "MAX_ALERTS", 5)
    board = Dashboard(("127.0.0.1", 0), "mic", 1.0, lambda *drawn: None, [])
    try:
        clock = [1_000_000.0]
        monkeypatch.setattr(dashboards.time, "time", lambda: clock[0])
        for _ in range(86_400):  # a day of one-second windows
            clock[0] += 1.0
            board.record({"event": "scored", "source": "mic", "score": 0.5, "anomalous": False})
        points = board.status()["sources"][0]["history"]
        assert len(points) <= dashboards.HISTORY_POINTS
        assert points[0][0] >= clock[0] - dashboards.HISTORY_SECONDS
        for index in range(50):
            at = f"2026-01-01T00:00:{index:02d}"
            board.record({"event": "anomaly_start", "source": "mic", "at": at, "score": 2.0})
            board.record({"event": "anomaly_end", "source": "mic", "at": at})
        alerts = board.alert_list()["alerts"]
        assert [alert["id"] for alert in alerts] == [50, 49, 48, 47, 46]  # the newest five
    finally:
        board.close()


def test_recording_warnings_stand_beside_the_score_and_the_alert_they_started():
    board = Dashboard(("127.0.0.1", 0), "mic", 1.0, lambda *drawn: None, [])
    dropout = [{"name": "dropout", "message": "0.5 s of digital silence from 0.50 s"}]
    try:
        board.record({"event": "scored", "source": "mic", "score": 0.5, "anomalous": False})
        assert board.status()["sources"][0]["last"]["warnings"] == []
        scored = {"event": "scored", "source": "mic", "score": 9.0, "anomalous": True}
        board.record({**scored, "warnings": dropout})
        board.record({"event": "anomaly_start", "source": "mic", "at": "t", "score": 9.0})
        assert board.status()["sources"][0]["last"]["warnings"] == dropout
        (alert,) = board.alert_list()["alerts"]
        assert alert["warnings"] == dropout
        board.record({"event": "scored", "source": "mic", "score": 0.5, "anomalous": False})
        assert board.status()["sources"][0]["last"]["warnings"] == []
        assert board.alert_list()["alerts"][0]["warnings"] == dropout  # kept with its alert
    finally:
        board.close()


def test_dashboard_address_and_a_taken_port():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    import aetk

    with pytest.raises(aetk.ConfigError, match="expects"):
        parse_address("here")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(aetk.ConfigError, match=r"cannot serve the page .*another watch"):
            Dashboard(("127.0.0.1", port), "mic", 1.0, lambda *drawn: None, [])
    with pytest.raises(aetk.ConfigError, match=r"cannot serve the page \([^)]*\)$"):
        Dashboard(("999.1.1.1", 0), "mic", 1.0, lambda *drawn: None, [])  # no port to blame


def test_a_page_closed_mid_answer_and_a_failed_request_print_no_traceback(tmp_path, capfd):
    """A plant's browser closed while a spectrogram is sent is no fault and says nothing; a
    request that fails for another reason is one line on stderr, and the page goes on."""
    audio = tmp_path / "a.wav"
    soundfile.write(audio, np.zeros(RATE, dtype=np.float32), RATE)
    pictures = {1: b"\x89PNG" + bytes(8 << 20)}
    asked = threading.Event()

    def draw(path: Path, machine: str | None, threshold: float | None) -> bytes:
        asked.set()
        time.sleep(0.3)  # the browser is gone before the answer
        if len(pictures) > 1:
            raise RuntimeError("the drawing broke")
        return pictures[1]

    board = Dashboard(("127.0.0.1", 0), "folder", 1.0, draw, [tmp_path])
    port = board.server.server_address[1]
    try:
        for _ in range(2):
            board.record({"event": "anomaly_start", "source": str(audio), "at": "t", "score": 2})
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(b"GET /api/alerts/1/spectrogram.png HTTP/1.1\r\nHost: x\r\n\r\n")
            assert asked.wait(30)  # the request is read: now the page goes away (a reset)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        wait_for(lambda: board._find(1).spectrogram is not None)
        time.sleep(0.5)  # past the answer's send, which meets the closed connection
        pictures[2] = b""
        assert get(f"http://127.0.0.1:{port}/api/alerts/2/spectrogram.png")[0] == 500
        assert get(f"http://127.0.0.1:{port}/api/status")[0] == 200
    finally:
        board.close()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines() == [
        "dashboard: a request from 127.0.0.1 failed (RuntimeError: the drawing broke); "
        "the page goes on"
    ]


def test_an_alert_is_drawn_by_the_detector_judging_now(watched, tmp_path):
    """The picture is the one scoring path's explanation by the detector the watch judges with:
    after a refit replaces the detector file, by the refitted detector."""
    from aetk_core.watch.monitor import WatchOptions
    from aetk_core.watch.picture import alert_picture

    import aetk
    from aetk.watch.monitor import Monitor

    detector, _ = watched
    path = detector.save(tmp_path / "d.aetk")
    audio = tmp_path / "bad.wav"
    rng = np.random.default_rng(0)
    soundfile.write(audio, synth.anomalous_clip(rng, "bearing", 2.0, severity=3.0), RATE)
    sounds = synth.write_dataset(
        tmp_path / "season", train=8, test_normal=0, test_per_anomaly=0, seconds=2.0, seed=11
    )
    refitted = aetk.fit(sounds["train"])

    def picture_of(judging) -> bytes:
        explained = judging.explain(audio)
        return alert_picture(
            explained.spectrogram,
            explained.events,
            explained.band_edges_hz,
            explained.frame_seconds,
        )

    assert picture_of(refitted) != picture_of(detector)
    options = WatchOptions(detector_file=path, interval=0.0)
    monitor = Monitor(detector, str(tmp_path), options, lambda event: None)
    try:
        assert monitor.draw_alert(audio, None, None) == picture_of(detector)
        refitted.save(tmp_path / "new.aetk").replace(path)
        assert not monitor.reload_if_refitted() and monitor.reload_if_refitted()  # settled
        assert monitor.draw_alert(audio, None, None) == picture_of(refitted)
        assert monitor.draw_alert(tmp_path / "gone.wav", None, None) is None
        # A scorer that does not localize explains nothing, and there is no picture.
        monitor.main.detector = SimpleNamespace(explain=lambda path, threshold: None)
        assert monitor.draw_alert(audio, None, None) is None
    finally:
        monitor.close()


def test_problems_with_the_watch_are_listed_newest_first_for_an_hour(monkeypatch):
    monkeypatch.setattr(dashboards, "MAX_PROBLEMS", 3)
    board = Dashboard(("127.0.0.1", 0), "incoming", 1.0, lambda *drawn: None, [])
    clock = [1_000_000.0]
    monkeypatch.setattr(dashboards.time, "time", lambda: clock[0])
    try:
        assert board.status()["problems"] == []
        failed = {"event": "error", "time": None, "error": "holds no audio"}
        board.record({**failed, "source": "incoming/a.wav"})
        clock[0] += 3000
        for index in range(4):
            clock[0] += 1
            error = f"http://pager/hook: attempt {index}"
            board.record({"event": "webhook_failed", "error": error})  # said with no time
        problems = board.status()["problems"]
        assert [problem["message"] for problem in problems] == [
            f"webhook failed: http://pager/hook: attempt {index}" for index in (3, 2, 1)
        ]  # the newest three kept
        clock[0] += 10
        board.record({**failed, "source": "incoming/b.wav"})
        clock[0] += dashboards.PROBLEM_SECONDS - 2
        (problem,) = board.status()["problems"]  # an hour on, only the last said
        assert (problem["kind"], problem["message"]) == (
            "error",
            "error incoming/b.wav: holds no audio",
        )
        board.record({"event": "scored", "source": "incoming/c.wav", "score": 0.5})
        assert len(board.status()["problems"]) == 1  # a score is no problem
    finally:
        board.close()


def test_alerts_that_do_not_reach_the_webhook_are_said_on_the_page(watched, tmp_path):
    """The watch's own failures reach the live page: the machine may be fine, and the people
    looking at the page are the ones who would not be paged."""
    from aetk_core.watch.monitor import WatchOptions

    from aetk.watch.monitor import Monitor

    detector, _ = watched
    options = WatchOptions(
        webhook=f"http://127.0.0.1:{free_port()}/hook", dashboard=str(free_port())
    )
    monitor = Monitor(detector, "mic", options, lambda event: None)
    sender = monitor.senders[0]
    sender.attempts, sender.backoff = 1, 0.01
    driver, reason = browser(tmp_path)
    try:
        monitor.event("anomaly_start", 1.0, score=9.0)
        problems = wait_for(lambda: monitor.dashboard.status()["problems"])
        assert problems[0]["kind"] == "webhook_failed"
        assert "not delivered after 1 attempts" in problems[0]["message"]
        if driver is None:
            pytest.skip(f"the JSON says it; browser check skipped: {reason}")
        driver.get(monitor.dashboard.url)
        read = (
            "const box = document.getElementById('problems-section');"
            "return box.hidden ? '' : box.textContent;"
        )
        shown = wait_for(lambda: driver.execute_script(read))
        assert "Problems with the watch" in shown and "webhook failed: http://127.0.0.1:" in shown
        driver.save_screenshot(str(tmp_path / "problems.png"))
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        if driver is not None:
            driver.quit()
        monitor.close()


def test_a_last_score_long_ago_is_said_with_its_age_in_chromium(tmp_path, monkeypatch):
    """A dead microphone leaves its last score and "normal" standing: the page says how old
    that score is once it is a minute old."""
    driver, reason = browser(tmp_path)
    if driver is None:
        pytest.skip(f"browser check skipped: {reason}")
    board = Dashboard(("127.0.0.1", 0), "mic", 1.0, lambda *drawn: None, [])
    read = (
        "const head = document.querySelector('.source-head'); return head ? head.textContent : '';"
    )
    try:
        scored(board, 0.5)
        driver.get(board.url)
        fresh = wait_for(lambda: driver.execute_script(read))
        assert "normal" in fresh and "ago" not in fresh
        real = time.time
        monkeypatch.setattr(dashboards.time, "time", lambda: real() - 12 * 60)
        scored(board, 0.5)  # the last score, twelve minutes ago
        monkeypatch.setattr(dashboards.time, "time", real)
        assert "last score 12 min ago" in wait_for(
            lambda: "ago" in (line := driver.execute_script(read)) and line
        )
    finally:
        driver.quit()
        board.close()
