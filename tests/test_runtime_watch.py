"""aetk-runtime watch: an edge box watches a stream or a folder with an exported detector and no
PyTorch, and says what aetk watch says: the same events, scores and alerts, a folder's files
scored once each across restarts, a fleet's files each judged by its machine, and a new export
taken up while it runs."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from aetk_core.watch.events import describe_event, describe_score
from aetk_core.watch.monitor import WatchOptions
from aetk_core.watch.sources import stdin_blocks
from aetk_core.watch.state import StateFile

from aetk import synth

pytest.importorskip("onnx", reason="aetk export needs onnx: pip install 'aetk[export]'")
pytest.importorskip("onnxruntime", reason="aetk-runtime needs onnxruntime")

RATE = 16000


@pytest.fixture(scope="module")
def exported(watched, tmp_path_factory):
    """The watch tests' detector (2-s synthetic clips), saved and exported."""
    from aetk.export.onnx import export

    detector, path = watched
    return detector, path, export(detector, tmp_path_factory.mktemp("edge") / "d.onnx")


def a_stream_with_a_fault() -> bytes:
    """Ten seconds of the normal hum, three of a bearing fault, seven of the hum, as WAV."""
    rng = np.random.default_rng(9)
    normal = np.concatenate([synth.normal_clip(rng, 2.0) for _ in range(10)])
    fault = synth.anomalous_clip(np.random.default_rng(1), "bearing", 3.0, severity=3.0)
    samples = np.concatenate([normal[: 10 * RATE], fault, normal[10 * RATE : 17 * RATE]])
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def runtime(runtime_python: Path, *args: object, **run: object) -> subprocess.CompletedProcess:
    script = Path(runtime_python).parent / "aetk-runtime"
    return subprocess.run([str(script), *map(str, args)], capture_output=True, timeout=300, **run)


def test_a_stream_gives_aetk_watchs_events_without_torch(exported, runtime_python):
    from aetk.watch.monitor import Monitor

    detector, _, onnx_path = exported
    audio = a_stream_with_a_fault()
    ran = runtime(runtime_python, "watch", "-", "-d", onnx_path, "--json", input=audio)
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    theirs = [json.loads(line) for line in ran.stdout.splitlines()]
    mine: list[dict] = []
    Monitor(detector, "-", WatchOptions(), mine.append).run_stream(
        *stdin_blocks(io.BytesIO(audio), None)
    )
    assert [(e["event"], e["time"]) for e in theirs] == [(e["event"], e["time"]) for e in mine]
    assert [e["event"] for e in theirs if e["event"] != "scored"] == [
        "anomaly_start",
        "anomaly_end",
    ]
    for edge, here in zip(theirs, mine, strict=True):
        assert edge["threshold"] == pytest.approx(here["threshold"], rel=1e-6)
        if "score" in here:
            assert edge["score"] == pytest.approx(here["score"], rel=1e-4)
            assert edge.get("anomalous") == here.get("anomalous")
            assert (edge.get("view") or {}).get("view") == (here.get("view") or {}).get("view")
    # The same stream as raw PCM (--rate, --format): the same events.
    samples = soundfile.read(io.BytesIO(audio), dtype="int16")[0]
    raw = runtime(
        runtime_python, "watch", "-", "-d", onnx_path, "--json", "--rate", RATE,
        "--format", "s16le", input=samples.astype("<i2").tobytes(),
    )  # fmt: skip
    assert raw.returncode == 0, raw.stderr.decode()[-2000:]
    pcm = [json.loads(line) for line in raw.stdout.splitlines()]
    assert [(e["event"], e["time"], e.get("score")) for e in pcm] == [
        (e["event"], e["time"], e.get("score")) for e in theirs
    ]
    # Without --json, each event in the words aetk watch uses.
    said = runtime(runtime_python, "watch", "-", "-d", onnx_path, input=audio, text=False)
    lines = [line.split("  ", 1)[1] for line in said.stdout.decode().splitlines()]
    assert lines == [
        describe_score(e, "-") if e["event"] == "scored" else describe_event(e, "-") for e in theirs
    ]
    (started,) = [line for line in lines if line.startswith("anomaly started at ")]
    assert started.endswith(", clip average)") or ", event at " in started
    # What it judges, said first on stderr, as aetk watch says it (not among JSON Lines' runs).
    assert said.stderr.decode().splitlines()[0] == (
        f"Watching standard input with {onnx_path} (threshold {theirs[0]['threshold']:.4g}): an "
        "alert starts at 2 scores in a row above the threshold and ends at 2 in a row below it"
    )
    assert "Watching " not in ran.stderr.decode()


def test_a_folders_files_are_scored_once_across_restarts_without_torch(
    exported, runtime_python, tmp_path
):
    detector, _, onnx_path = exported
    folder, state = tmp_path / "incoming", tmp_path / "state.json"
    folder.mkdir()
    rng = np.random.default_rng(4)
    soundfile.write(folder / "first.wav", synth.normal_clip(rng, 2.0), RATE)
    soundfile.write(folder / "second.wav", synth.normal_clip(rng, 2.0), RATE)
    command = [str(Path(runtime_python).parent / "aetk-runtime"), "watch", str(folder)]
    command += ["-d", str(onnx_path), "--json", "--state", str(state)]
    command += ["--settle", "0.2", "--interval", "0.1"]

    def scored_in_state() -> int:  # as a restart would read it: snapshot and journal
        return len(StateFile(state).read()[0])

    def watch(until) -> list[dict]:
        watching = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            until(watching)
        finally:
            watching.send_signal(signal.SIGTERM)
            out, err = watching.communicate(timeout=30)
        assert watching.returncode == 0, err.decode()[-2000:]
        return [json.loads(line) for line in out.splitlines()]

    def two_then_a_late_file(watching: subprocess.Popen) -> None:
        deadline = time.monotonic() + 60
        for wanted in (2, 3):
            while scored_in_state() < wanted:
                assert time.monotonic() < deadline and watching.poll() is None
                time.sleep(0.1)
            if wanted == 2:
                late = synth.anomalous_clip(np.random.default_rng(5), "bearing", 2.0, severity=3)
                soundfile.write(folder / "late.wav", late, RATE)
        time.sleep(0.5)  # a few polls more: nothing is scored twice

    events = watch(two_then_a_late_file)
    names = [Path(e["source"]).name for e in events if e["event"] == "scored"]
    assert names == ["first.wav", "second.wav", "late.wav"]
    for event, result in zip(
        events, detector.score([folder / name for name in names]), strict=True
    ):
        assert event["score"] == pytest.approx(result.score, rel=1e-4)
        assert event["anomalous"] == result.anomalous
    # Restarted on the state: nothing new, nothing scored again.
    assert watch(lambda watching: time.sleep(3)) == []


#: Run by the runtime's Python (no torch): watch the folder argv[2] with the exported detector or
#: fleet's folder argv[1] until argv[3] events have come, then print them as JSON Lines.
WATCH_A_FOLDER = """
import sys, threading, time, json
from pathlib import Path
from aetk_core.watch.monitor import WatchOptions
from aetk_runtime.fleet import load_judging
from aetk_runtime.watch import Monitor

models, folder, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
events = []
loaded, _ = load_judging(models, None)
options = WatchOptions(settle=0.0, interval=0.05, detector_file=models)
monitor = Monitor(loaded, str(folder), options, events.append)
runner = threading.Thread(target=monitor.run_folder, args=(folder,))
runner.start()
deadline = time.monotonic() + 120
while len(events) < count and time.monotonic() < deadline:
    time.sleep(0.05)
monitor.stopping = True
runner.join(30)
monitor.close()
print("\\n".join(json.dumps(event) for event in events))
"""

#: Run by the runtime's Python: a stream of argv[2] seconds of noise watched with the exported
#: detector argv[1], replaced in the middle by argv[3] (copied in half), then by argv[4].
WATCH_A_REPLACED_DETECTOR = """
import sys, os, shutil, time, json
from pathlib import Path
import numpy as np
from aetk_core.watch.monitor import WatchOptions
from aetk_core.watch.sources import StreamFormat
from aetk_runtime.fleet import load_judging
from aetk_runtime.watch import Monitor

live, seconds, half, refit = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
rate = 16000
samples = np.random.default_rng(0).standard_normal(int(seconds * rate)).astype(np.float32) * 0.05
replaced_at = {20: half, 60: refit}  # blocks of 0.1 s: at 2 s and 6 s

def blocks():
    for index, start in enumerate(range(0, len(samples), rate // 10)):
        if index in replaced_at:
            shutil.copy(replaced_at[index], live + ".next")
            os.replace(live + ".next", live)
        if any(0 < index - at <= 3 for at in replaced_at):
            time.sleep(0.06)  # two looks at the file, a poll interval apart
        yield samples[np.newaxis, start : start + rate // 10]

events = []
loaded, _ = load_judging(live, None)
options = WatchOptions(interval=0.05, detector_file=Path(live))
form = StreamFormat(rate, 1, "float32", 1.0)
Monitor(loaded, "-", options, events.append).run_stream(form, blocks())
print("\\n".join(json.dumps(event) for event in events))
"""


#: Run by the runtime's Python: a watch of the fleet's folder argv[1] whose machine argv[2]'s
#: file is replaced by one that cannot be read; prints its events.
REPLACE_ONE_MACHINE_OF_A_FLEET = """
import sys, time, json
from pathlib import Path
from aetk_core.watch.monitor import WatchOptions
from aetk_runtime.fleet import load_judging
from aetk_runtime.watch import Monitor

models, machine = Path(sys.argv[1]), sys.argv[2]
events = []
loaded, _ = load_judging(models, None)
options = WatchOptions(interval=0.02, detector_file=models)
monitor = Monitor(loaded, str(models), options, events.append)
(models / f"{machine}.onnx").write_bytes(b"cut short")
for _ in range(10):
    time.sleep(0.03)
    monitor.reload_if_refitted()
monitor.close()
print("\\n".join(json.dumps(event) for event in events))
"""


def in_runtime(runtime_python: Path, script: str, *args: object) -> list[dict]:
    ran = subprocess.run(
        [str(runtime_python), "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    return [json.loads(line) for line in ran.stdout.splitlines() if line.strip()]


def test_a_fleets_folder_judges_each_file_by_its_machine(
    fleet_folders, runtime_python, tmp_path, cli
):
    from aetk_core.machines import conditions

    from aetk.fleet.detector import fit_fleet

    fleet = fit_fleet([fleet_folders / "train"], "folders")
    fleet_path = fleet.save(tmp_path / "fleet.aetk")
    assert cli("export", fleet_path, "-o", tmp_path / "models").code == 0
    incoming = tmp_path / "incoming"
    copied = []
    for machine in fleet.machines:
        (incoming / machine).mkdir(parents=True)
        for path in sorted((fleet_folders / "test" / machine).glob("*.wav"))[:3]:
            copied.append(Path(shutil.copy(path, incoming / machine / path.name)))
    (incoming / "pump-99").mkdir()
    shutil.copy(copied[0], incoming / "pump-99" / "stray.wav")
    events = in_runtime(
        runtime_python, WATCH_A_FOLDER, tmp_path / "models", incoming, len(copied) + 1
    )
    scored = {Path(e["source"]): e for e in events if e["event"] == "scored"}
    assert sorted(scored) == sorted(copied)
    for machine in fleet.machines:
        theirs = [path for path in copied if path.parent.name == machine]
        for result in fleet.detectors[machine].score(theirs):
            event = scored[Path(result.path)]
            assert event["machine"] == machine
            assert event["conditions"] == conditions(fleet.rows[machine])
            assert event["threshold"] == pytest.approx(fleet.detectors[machine].threshold)
            assert event["score"] == pytest.approx(result.score, rel=1e-4)
    (error,) = [e for e in events if e["event"] == "error"]
    assert Path(error["source"]).name == "stray.wav"
    assert "unknown machine 'pump-99'" in error["error"]
    # One machine's file replaced by one that cannot be read: an error event, and the fleet
    # read before goes on judging (the watch does not end).
    events = in_runtime(
        runtime_python, REPLACE_ONE_MACHINE_OF_A_FLEET, tmp_path / "models", fleet.machines[1]
    )
    (replaced,) = events
    assert replaced["event"] == "error"
    assert replaced["error"].startswith(f"{tmp_path / 'models'} was replaced and cannot be")
    assert replaced["error"].endswith("still judging with the detector read before")


def test_a_new_export_judges_from_then_on_and_a_half_file_is_an_error(
    exported, runtime_python, tmp_path
):
    """A new export copied over the watched file judges every window after it; one copied in
    half is an error event, and the detector read before goes on judging."""
    import dataclasses

    from aetk.export.onnx import export

    detector, path, onnx_path = exported
    live = tmp_path / "live.onnx"
    shutil.copy(onnx_path, live)
    refit = type(detector).load(path)
    refit.calibration = dataclasses.replace(refit.calibration, threshold=1e6)
    export(refit, tmp_path / "refit.onnx")
    (tmp_path / "half.onnx").write_bytes(onnx_path.read_bytes()[:2000])
    events = in_runtime(
        runtime_python,
        WATCH_A_REPLACED_DETECTOR,
        live,
        12,
        tmp_path / "half.onnx",
        tmp_path / "refit.onnx",
    )
    kinds = [event["event"] for event in events]
    (error,) = [event["error"] for event in events if event["event"] == "error"]
    assert error.startswith(f"{live} was replaced and cannot be judged with (")
    assert error.endswith("still judging with the detector read before")
    reloaded = kinds.index("detector_reloaded")
    assert kinds.index("error") < reloaded and events[reloaded]["threshold"] == 1e6
    thresholds = [event["threshold"] for event in events if event["event"] == "scored"]
    before = kinds[:reloaded].count("scored")
    assert before >= 2 and len(thresholds) > before
    assert thresholds[:before] == [pytest.approx(detector.threshold)] * before
    assert set(thresholds[before:]) == {1e6}


def test_the_runtime_watch_refuses_what_it_cannot_watch(exported, runtime_python, tmp_path):
    _, _, onnx_path = exported
    missing = runtime(runtime_python, "watch", tmp_path / "nowhere", "-d", onnx_path, text=True)
    assert missing.returncode == 2
    assert missing.stderr == (
        f"error: {tmp_path / 'nowhere'}: not a folder, 'mic[:NAME|INDEX]' (an input device) or "
        "'-' (standard input)\n"
    )
    nothing = runtime(runtime_python, "watch", "-d", onnx_path, text=True)
    assert (nothing.returncode, nothing.stderr) == (
        2,
        "error: watch needs a SOURCE: a folder, 'mic[:NAME|INDEX]' or '-'\n",
    )
    machine = runtime(
        runtime_python, "watch", tmp_path, "-d", onnx_path, "--machine", "a", text=True
    )
    assert machine.returncode == 2 and "--machine and --machines need a fleet's folder" in (
        machine.stderr
    )
    audio = a_stream_with_a_fault()
    short = runtime(runtime_python, "watch", "-", "-d", onnx_path, "--window", "0.01", input=audio)
    assert short.returncode == 2 and short.stdout == b""
    assert (
        short.stderr.decode()
        .splitlines()[-1]
        .startswith("error: --window 0.01: no window of that length can be scored (is too short")
    )
    incoming = tmp_path / "incoming"  # a folder's, at its first file
    incoming.mkdir()
    soundfile.write(incoming / "a.wav", synth.normal_clip(np.random.default_rng(2), 2.0), 16000)
    state = tmp_path / "state.json"
    folder = runtime(
        runtime_python, "watch", incoming, "-d", onnx_path, "--window", "0.01", "--state", state
    )
    assert folder.returncode == 2 and folder.stdout == b""
    assert (
        folder.stderr.decode()
        .splitlines()[-1]
        .startswith("error: --window 0.01: no window of that length can be scored (is too short")
    )
    # The runtime's environment holds no prometheus-client: its metrics are one line away.
    metrics = runtime(runtime_python, "watch", tmp_path, "-d", onnx_path, "--metrics-port", "9")
    assert metrics.returncode == 2 and metrics.stderr.decode().endswith(
        "beside aetk-runtime: pip install prometheus-client)\n"
    )
    noise = runtime(runtime_python, "watch", "-", "-d", onnx_path, input=b"not a wav stream")
    assert noise.returncode == 2
    assert (
        noise.stderr.decode()
        == "error: standard input is not a WAV stream (give --rate for raw PCM)\n"
    )


def test_the_runtime_serves_the_live_page_with_its_pictures(exported, runtime_python, tmp_path):
    """``aetk-runtime watch FOLDER --dashboard PORT``: the page and its API as aetk watch serves
    them, each alert with its audio and its spectrogram drawn without a plotting library; in
    Chromium, the alert and its picture show and nothing on the page fails."""
    from conftest import browser, free_port, wait_for
    from PIL import Image
    from test_dashboard import drop, get

    _, _, onnx_path = exported
    folder = tmp_path / "incoming"
    folder.mkdir()
    port = free_port()
    command = [str(Path(runtime_python).parent / "aetk-runtime"), "watch", str(folder)]
    command += ["-d", str(onnx_path), "--json", "--dashboard", str(port), "--confirm", "1"]
    command += ["--settle", "0.2", "--interval", "0.2"]
    watching = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    driver, reason = browser(tmp_path)
    try:

        def up() -> bool:
            try:
                return get(base + "/api/status")[0] == 200
            except OSError:
                return False

        wait_for(up)
        status, kind, page = get(base + "/")
        assert (status, kind) == (200, "text/html; charset=utf-8") and b"app.js" in page
        drop(folder, "quiet.wav", None)
        drop(folder, "bad.wav", "bearing")
        (alert,) = wait_for(lambda: json.loads(get(base + "/api/alerts")[2])["alerts"])
        assert alert["file"] == "bad.wav"
        assert alert["spectrogram"] == f"/api/alerts/{alert['id']}/spectrogram.png"
        status, kind, picture = get(base + alert["spectrogram"])
        assert (status, kind) == (200, "image/png")
        assert Image.open(io.BytesIO(picture)).size[0] > 600
        status, kind, body = get(base + alert["audio"])
        assert (status, kind) == (200, "audio/wav") and body == (folder / "bad.wav").read_bytes()
        if driver is not None:
            driver.set_window_size(1100, 900)
            driver.get(base + "/")
            wait_for(lambda: driver.find_elements("css selector", "li.alert audio"))
            assert "ANOMALY" in driver.find_element("css selector", ".source").text
            image = driver.find_element("css selector", "li.alert img.spectrogram")
            wait_for(lambda: driver.execute_script("return arguments[0].naturalWidth", image))
            errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
            assert errors == [], errors
            # An alert whose recording is gone before its picture is drawn: said in words.
            drop(folder, "quiet-1.wav", None)
            drop(folder, "quiet-2.wav", None)
            wait_for(lambda: json.loads(get(base + "/api/alerts")[2])["alerts"][0]["ended"])
            drop(folder, "gone.wav", "bearing")
            wait_for(lambda: len(json.loads(get(base + "/api/alerts")[2])["alerts"]) == 2)
            (folder / "gone.wav").unlink()
            driver.get(base + "/")
            note = wait_for(lambda: driver.find_elements("css selector", "li.alert p.no-picture"))
            assert len(note) == 1 and "no spectrogram" in note[0].text
            assert len(driver.find_elements("css selector", "li.alert img.spectrogram")) == 1
    finally:
        if driver is not None:
            driver.quit()
        watching.send_signal(signal.SIGTERM)
        _, err = watching.communicate(timeout=30)
    assert watching.returncode == 0, err.decode()[-2000:]
    assert f"Dashboard: {base}/" in err.decode()
    if driver is None:
        pytest.skip(f"the page itself not checked in a browser: {reason}")


EXPLAIN = """
import json, sys
from aetk_runtime.detector import load

explained = load(sys.argv[1]).explain(sys.argv[2])
print(json.dumps({
    "score": explained.score,
    "events": [[event.start, event.end, event.whole_clip, [band.low_hz for band in event.bands]]
               for event in explained.events],
    "spectrogram": explained.spectrogram.tolist(),
}))
"""


def test_the_runtime_explains_an_alert_as_aetk_does(exported, runtime_python, tmp_path):
    """What the runtime's live page draws (the spectrogram and the events with their bands) is
    what aetk's explanation of the same recording holds."""
    from aetk.detect.explanation import explain

    detector, _, onnx_path = exported
    path = tmp_path / "knock.wav"
    samples = synth.anomalous_clip(np.random.default_rng(5), "knock", 2.0, severity=3.0)
    soundfile.write(path, samples, RATE)
    expected = explain(detector, path)
    assert expected is not None and expected.errors.events
    (found,) = in_runtime(runtime_python, EXPLAIN, onnx_path, path)
    assert found["score"] == pytest.approx(expected.score, rel=1e-4)
    assert found["events"] == [
        [event.start, event.end, event.whole_clip, [band.low_hz for band in event.bands]]
        for event in expected.errors.events
    ]
    assert np.allclose(found["spectrogram"], expected.spectrogram, atol=1e-3)


DRAW_FLEET = """
import json, sys
from pathlib import Path
from aetk_core.watch.monitor import WatchOptions
from aetk_runtime.fleet import load_judging
from aetk_runtime.watch import Monitor

models, incoming, machine, recording = map(Path, sys.argv[1:])
loaded, conditions = load_judging(models, None, None)
options = WatchOptions(machines="folders", detector_file=models, dashboard="0")
monitor = Monitor(loaded, str(incoming), options, lambda event: None)
try:
    for name in (*sorted(loaded.machine_detectors()), "not-a-machine"):
        picture = monitor.draw_alert(recording, name, None)
        print(json.dumps({"machine": name, "png": None if picture is None else picture.hex()}))
finally:
    monitor.close()
"""


def test_a_fleets_alert_is_drawn_by_its_machines_detector(
    fleet_folders, runtime_python, tmp_path, cli
):
    from aetk.fleet.detector import fit_fleet

    fleet = fit_fleet([fleet_folders / "train"], "folders")
    assert cli("export", fleet.save(tmp_path / "fleet.aetk"), "-o", tmp_path / "models").code == 0
    machine = fleet.machines[1]
    (tmp_path / "incoming" / machine).mkdir(parents=True)
    recording = sorted((fleet_folders / "test" / machine).glob("anomaly_*.wav"))[0]
    drawn = {
        row["machine"]: row["png"]
        for row in in_runtime(
            runtime_python,
            DRAW_FLEET,
            tmp_path / "models",
            tmp_path / "incoming",
            machine,
            recording,
        )
    }
    assert list(drawn) == [*sorted(fleet.machines), "not-a-machine"]
    assert drawn.pop("not-a-machine") is None
    assert all(picture.startswith(b"\x89PNG\r\n\x1a\n".hex()) for picture in drawn.values())
    # Each machine's detector marks the recording its own way.
    assert len(set(drawn.values())) == len(fleet.machines)


LISTEN = """
import contextlib, io, json, sys

import soundfile

sys.path.insert(0, sys.argv[3])
import fake_sounddevice

samples, rate = soundfile.read(sys.argv[2], dtype="float32")
device = fake_sounddevice.playing(samples, rate)
sys.modules["sounddevice"] = device
from aetk_runtime.cli import run

with contextlib.redirect_stdout(io.StringIO()) as listing:
    code = run(["watch", "--list-devices"])
print(json.dumps({"listed": code, "devices": listing.getvalue()}))
watched = run(["watch", "mic:0", "-d", sys.argv[1], "--json"])
print(json.dumps({"opened": device.opened}))
sys.exit(watched)
"""


def test_a_live_device_gives_aetk_watchs_events(exported, runtime_python, tmp_path):
    """``aetk-runtime watch mic:0``: an input device (sounddevice's stream replaced at its
    boundary) heard in windows with aetk watch's alerts; ``--list-devices`` names the devices;
    without sounddevice, one line saying what to install."""
    import fake_sounddevice

    _, _, onnx_path = exported
    recording = tmp_path / "stream.wav"
    recording.write_bytes(a_stream_with_a_fault())
    lines = in_runtime(runtime_python, LISTEN, onnx_path, recording, Path(__file__).parent)
    assert lines[0] == {"listed": 0, "devices": fake_sounddevice.DEVICES + "\n"}
    assert lines[-1] == {"opened": [{"device": 0, "format": [1, RATE, "float32"]}]}
    events = lines[1:-1]
    assert [e["event"] for e in events if e["event"].startswith("anomaly")] == [
        "anomaly_start",
        "anomaly_end",
    ]
    assert all(e["source"] == "mic:0" for e in events)
    (start,) = [e for e in events if e["event"] == "anomaly_start"]
    assert 8.0 <= start["time"] <= 13.0  # the fault plays from 10 s to 13 s
    missing = runtime(runtime_python, "watch", "mic", "-d", onnx_path)
    assert missing.returncode == 2
    assert missing.stderr.decode().startswith("error: listening to a device needs sounddevice (")


def test_a_test_alert_reaches_the_webhook_from_the_edge_box(exported, runtime_python):
    from conftest import webhook_receiver

    _, _, onnx_path = exported
    with webhook_receiver() as (url, taken):
        ran = runtime(
            runtime_python, "watch", "-", "-d", onnx_path, "--webhook", url, "--test-alert"
        )
    assert ran.returncode == 0, ran.stderr
    assert b"the test alert reached every output" in ran.stderr
    assert [event["event"] for event in taken] == ["test_alert"]
