"""Fleets: machines and conditions as categories (folders, DCASE names, a table), the one-hot /
embedding rule, one detector file for many machines routed by machine, per-machine thresholds,
and the machine on every row of score, evaluate, watch and the runtime."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from aetk_core.machines import dcase_row, machine_rows
from conftest import FLEET_MACHINES as MACHINES
from conftest import browser, free_port, runtime_score, write_uneven_fleet

import aetk
from aetk import synth
from aetk.detect.detector_file import read_detector
from aetk.fleet.categories import EMBEDDING, ONE_HOT, Categories, embedding_size
from aetk.fleet.detector import FleetDetector, fit_fleet, load_any


@pytest.fixture(scope="module")
def fitted_fleet(fleet_folders):
    fleet = fit_fleet([fleet_folders / "train"], "folders")
    return fleet, fleet.save(fleet_folders / "fleet.aetk")


def test_synthetic_fleets_are_written_machine_by_machine(fleet_folders):
    for role, per_machine in (("train", 8), ("test", 3 + len(synth.ANOMALIES))):
        assert sorted(path.name for path in (fleet_folders / role).iterdir()) == sorted(MACHINES)
        for machine in MACHINES:
            assert len(list((fleet_folders / role / machine).glob("*.wav"))) == per_machine


def test_the_one_hot_and_embedding_rule_turns_at_fifty_values():
    below = Categories.learn([{"machine": f"m{i:02d}"} for i in range(49)]).columns[0]
    at = Categories.learn([{"machine": f"m{i:02d}"} for i in range(50)]).columns[0]
    assert (below.encoding, below.width) == (ONE_HOT, 49)
    assert (at.encoding, at.width) == (EMBEDDING, embedding_size(50)) and 1 < at.width < 50
    categories = Categories.learn(
        [{"machine": "a", "load": "low"}, {"machine": "b", "load": "high"}]
    )
    np.testing.assert_array_equal(
        categories.one_hot([{"machine": "b", "load": "low"}]), [[0, 1, 0, 1]]
    )
    with pytest.raises(aetk.ConfigError, match="unknown machine 'c'"):
        categories.indices([{"machine": "c", "load": "low"}])


def test_dcase_and_mimii_names_give_section_and_attributes():
    assert dcase_row("section_00_source_train_normal_0001_vel_10_loc_A.wav") == {
        "machine": "section_00",
        "domain": "source",
        "vel": "10",
        "loc": "A",
    }
    assert dcase_row("anomaly_id_04_00000012.wav") == {"machine": "id_04"}
    assert dcase_row("normal_id02_0003.wav") == {"machine": "id_02"}
    with pytest.raises(aetk.ConfigError, match="no section_NN or idNN"):
        dcase_row("recording.wav")


def test_a_table_names_machines_and_conditions(fleet_folders, tmp_path):
    files = sorted((fleet_folders / "train" / "fan-01").glob("*.wav"))[:2]
    table = tmp_path / "machines.csv"
    lines = ["file,machine,load", f"{files[0]},fan-01,low", f"{files[1]},fan-01,high"]
    table.write_text("\n".join(lines) + "\n")
    rows = machine_rows(files, str(table))
    assert [rows[f] for f in files] == [
        {"machine": "fan-01", "load": "low"},
        {"machine": "fan-01", "load": "high"},
    ]
    table.write_text("file,machine\n" + f"{files[0]},fan-01\n")
    with pytest.raises(aetk.ConfigError, match="not listed in"):
        machine_rows(files, str(table))
    table.write_bytes(b"file,machine\na\x00.wav,fan-01\n")  # was a ValueError traceback
    with pytest.raises(aetk.ConfigError, match="line 2: the file's name holds a NUL character"):
        machine_rows(files, str(table))


def test_every_row_carries_the_machine_and_its_conditions(fleet_folders, tmp_path, cli):
    """A table fleet: ``site`` is constant per machine, ``load`` varies by recording."""
    lines = ["file,machine,site,load"]
    for machine, site in (("fan-01", "north"), ("pump-01", "south")):
        for role in ("train", "test"):
            for index, path in enumerate(sorted((fleet_folders / role / machine).glob("*.wav"))):
                lines.append(f"{path},{machine},{site},{('low', 'high')[index % 2]}")
    table = tmp_path / "machines.csv"
    table.write_text("\n".join(lines) + "\n")
    folders = [fleet_folders / "train" / m for m in ("fan-01", "pump-01")]
    output = tmp_path / "f.aetk"
    fitted = cli("fit", *folders, "--machines", table, "-o", output, "--set", "scorer.pooling=clip")
    assert fitted.code == 0, fitted.stderr
    tests = [fleet_folders / "test" / m for m in ("fan-01", "pump-01")]
    rows = cli("score", *tests, "-d", output, "--json").json_lines()
    expected = {line.split(",")[0]: line.split(",") for line in lines[1:]}
    for row in rows:
        _, machine, site, load = expected[row["path"]]
        assert (row["machine"], row["conditions"]) == (machine, {"site": site, "load": load})
    one = next((fleet_folders / "test" / "fan-01").glob("*.wav"))
    told = cli("score", one, "-d", output, "--machine", "pump-01", "--json").json_lines()
    assert told[0]["conditions"] == {"site": "south"}  # what is the same in all its recordings
    single = cli("score", one, "-d", aetk.fit(folders[0]).save(tmp_path / "d.aetk"), "--json")
    assert single.json_lines()[0]["conditions"] is None
    moved = table.rename(tmp_path / "moved.csv")
    gone = cli("score", *tests, "-d", output)
    said = f"fitted with the table {table.resolve()}, which is no longer there: give --machines"
    assert gone.code == 2 and said in gone.stderr and "Traceback" not in gone.stderr
    told_again = cli("score", *tests, "-d", output, "--machines", moved, "--json").json_lines()
    assert [row["conditions"] for row in told_again] == [row["conditions"] for row in rows]
    if importlib.util.find_spec("onnx") is not None:
        import onnx

        exported = tmp_path / "p.onnx"
        assert cli("export", output, "--machine", "pump-01", "-o", exported).code == 0
        meta = json.loads(onnx.load(str(exported)).metadata_props[0].value)
        assert (meta["machine"], meta["conditions"]) == ("pump-01", {"site": "south"})


def test_a_file_outside_a_machine_folder_is_named(tmp_path):
    synth.write_dataset(tmp_path, train=1, test_normal=0, test_per_anomaly=0, seconds=0.3)
    with pytest.raises(aetk.ConfigError, match="not inside a machine's folder"):
        machine_rows([tmp_path / "train"], "folders")


def test_a_fleet_fit_skips_a_recording_it_cannot_route_and_names_it(fleet_folders, cli, tmp_path):
    import shutil

    folder = tmp_path / "train"
    for machine in MACHINES[:2]:
        shutil.copytree(fleet_folders / "train" / machine, folder / machine)
    loose = folder / "loose.wav"
    shutil.copy(next((folder / MACHINES[0]).glob("*.wav")), loose)
    fitted = cli("fit", folder, "--machines", "folders", "-o", tmp_path / "f.aetk", "--json")
    assert fitted.code == 0, fitted.stderr
    assert f"warning: skipped {loose}: not inside a machine's folder" in fitted.stderr
    loaded = FleetDetector.load(tmp_path / "f.aetk")
    assert loaded.machines == sorted(MACHINES[:2])
    # The fit's report and the file both keep what was left out, as a single detector does.
    skipped = json.loads(fitted.stdout)["skipped_files"]
    assert [entry["path"] for entry in skipped] == [str(loose)]
    assert "not inside a machine's folder" in skipped[0]["error"]
    assert loaded.skipped_files == skipped
    manifest, tensors = read_detector(tmp_path / "f.aetk")
    manifest["fleet"]["skipped_files"] = ["loose.wav"]
    with pytest.raises(aetk.DetectorFileError, match="skipped files are malformed"):
        FleetDetector.from_manifest("f.aetk", manifest, tensors)
    described = cli("info", tmp_path / "f.aetk")
    assert "1 recording(s) left out: no machine could be told" in described.stdout
    # None routable is still the one-line error.
    refused = cli("fit", folder, "--machines", "dcase", "-o", tmp_path / "g.aetk")
    assert refused.code == 2 and "no section_NN or idNN in its name" in refused.stderr


def test_each_machine_is_judged_as_a_detector_fitted_for_it_alone(fitted_fleet, fleet_folders):
    _, path = fitted_fleet
    loaded = FleetDetector.load(path)
    assert loaded.machines == sorted(MACHINES)
    assert loaded.categories.as_dict()[0]["encoding"] == ONE_HOT
    alone = aetk.fit(fleet_folders / "train" / "pump-02")
    test = sorted((fleet_folders / "test" / "pump-02").glob("*.wav"))
    routed = loaded.score([fleet_folders / "test"])
    mine = [r for r in routed if "/pump-02/" in r.path]
    assert [r.machine for r in mine] == ["pump-02"] * len(test)
    np.testing.assert_allclose([r.score for r in mine], [r.score for r in alone.score(test)])
    assert {r.threshold for r in mine} == {alone.threshold}
    thresholds = {r.machine: r.threshold for r in routed}
    assert len(set(thresholds.values())) == 3  # each machine its own threshold


def test_audio_held_in_memory_is_judged_as_the_machine_named(
    fitted_fleet, fleet_folders, cli, monkeypatch
):
    import io
    import sys

    import soundfile

    fleet, fleet_path = fitted_fleet
    path = sorted((fleet_folders / "test" / "pump-02").glob("*.wav"))[0]
    samples, rate = soundfile.read(path, dtype="int16")
    (expected,) = fleet.score([path], machine="pump-02")
    found = fleet.score_audio(samples, rate, machine="pump-02", name=str(path))
    assert (found.score, found.threshold, found.machine) == (
        expected.score,
        expected.threshold,
        "pump-02",
    )
    with pytest.raises(aetk.ConfigError, match="pump-99"):
        fleet.score_audio(samples, rate, machine="pump-99")
    # aetk score - of a fleet: judged as --machine's, which it needs.
    for machine in (["--machine", "pump-02"], []):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
        piped = cli("score", "-", "-d", fleet_path, "--json", *machine)
        if machine:
            row = json.loads(piped.stdout)
            assert (row["path"], row["machine"], row["score"]) == ("-", "pump-02", expected.score)
        else:
            assert piped.code == 2 and "needs --machine NAME" in piped.stderr


def unroutable_batch(fleet_folders: Path, folder: Path) -> Path:
    """A batch of the fleet's test recordings of two machines, and two that cannot be routed:
    one in the folder of a machine the fleet does not know, one loose beside the machines."""
    import shutil

    for machine in MACHINES[:2]:
        shutil.copytree(fleet_folders / "test" / machine, folder / machine)
    one = next((fleet_folders / "test" / MACHINES[0]).glob("*.wav"))
    (folder / "pump-99").mkdir()
    shutil.copy(one, folder / "pump-99" / "x.wav")
    shutil.copy(one, folder / "loose.wav")
    return folder


def test_score_goes_on_past_recordings_it_cannot_route(fitted_fleet, fleet_folders, cli, tmp_path):
    _, path = fitted_fleet
    batch = unroutable_batch(fleet_folders, tmp_path / "batch")
    ran = cli("score", batch, "-d", path, "--json", "--machines", "folders")
    assert ran.code == 1  # some files could not be scored; the others were
    rows = {str(Path(row["path"]).relative_to(batch)): row for row in ran.json_lines()}
    assert "unknown machine 'pump-99'" in rows["pump-99/x.wav"]["error"]
    assert "not inside a machine's folder" in rows["loose.wav"]["error"]
    for name in ("pump-99/x.wav", "loose.wav"):
        assert rows[name]["threshold"] is None and rows[name]["machine"] is None
        assert f"error: {batch / name}: " in ran.stderr
    scored = [row for row in rows.values() if row["error"] is None]
    assert len(scored) == len(rows) - 2 and {row["machine"] for row in scored} == set(MACHINES[:2])
    table = cli("score", batch, "-d", path)
    assert table.code == 1 and "\t-\terror: unknown machine 'pump-99'" in table.stdout
    # Each machine judges at its own threshold: the table says which machine judged a row.
    header, *rows_shown = table.stdout.splitlines()
    assert header.startswith("file\tmachine\tscore\tthreshold\tverdict")
    assert {row.split("\t")[1] for row in rows_shown} == {"", *MACHINES[:2]}
    # Nothing at all to route is still a usage error, naming the first recording.
    nothing = cli(
        "score", batch / "pump-99", batch / "loose.wav", "-d", path, "--machines", "dcase"
    )
    assert nothing.code == 2 and "no section_NN or idNN" in nothing.stderr


def test_info_describes_the_fleet_and_each_machine(fitted_fleet, cli):
    fleet, path = fitted_fleet
    whole = cli("info", path)
    assert whole.code == 0, whole.stderr
    assert "a fleet of 3 machines (machine (3 values, one-hot))" in whole.stdout
    for name in MACHINES:
        (line,) = [line for line in whole.stdout.splitlines() if line.startswith(f"  {name}: ")]
        # 8 held-out scores cannot hold the default 10 % (9 are needed): the line says so.
        scores = fleet.detector(name).calibration.normal_scores
        assert len(scores) == 8 and line.endswith(
            "(the largest of 8 held-out normal scores: too few for a 10% false-alarm rate)"
        )
    described = cli("info", path, "--machine", "pump-02", "--json")
    (summary,) = described.json_lines()
    assert summary["machine"] == "pump-02"
    assert summary["threshold"] == fleet.detector("pump-02").threshold
    assert summary["schema_version"] >= 3
    unknown = cli("info", path, "--machine", "pump-09")
    assert unknown.code == 2 and "unknown machine 'pump-09'" in unknown.stderr


def test_score_routes_folders_and_refuses_an_unknown_machine(fitted_fleet, fleet_folders, cli):
    _, path = fitted_fleet
    ran = cli("score", fleet_folders / "test", "-d", path, "--json")
    assert ran.code == 0, ran.stderr
    rows = ran.json_lines()
    assert {row["machine"] for row in rows} == set(MACHINES)
    assert all(f"/{row['machine']}/" in row["path"] for row in rows)
    one = next((fleet_folders / "test" / "fan-01").glob("*.wav"))
    ran = cli("score", one, "-d", path, "--machine", "pump-01", "--json")
    assert ran.json_lines()[0]["machine"] == "pump-01"
    ran = cli("score", one, "-d", path, "--machine", "pump-07")
    assert ran.code == 2 and "unknown machine 'pump-07'" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_a_single_detector_refuses_machine_options_and_a_fleet_needs_one(
    fitted_fleet, fitted, machine_sounds, cli, tmp_path
):
    _, fleet_path = fitted_fleet
    _, single = fitted
    ran = cli("score", machine_sounds["test"][0], "-d", single, "--machine", "x")
    assert ran.code == 2 and "need a fleet detector" in ran.stderr
    ran = cli("export", fleet_path, "-o", tmp_path / "f.onnx")
    assert ran.code == 2 and "one file per machine: give -o FOLDER" in ran.stderr
    assert not (tmp_path / "f.onnx").exists()
    (tmp_path / "notes").write_text("kept")
    ran = cli("export", fleet_path, "-o", tmp_path / "notes")
    assert ran.code == 2 and "not a folder" in ran.stderr
    assert (tmp_path / "notes").read_text() == "kept"
    ran = cli("report", machine_sounds["test"][0], "-d", single, "--machines", "folders")
    assert ran.code == 2 and "--machines needs a fleet detector" in ran.stderr
    with pytest.raises(aetk.DetectorFileError, match="a fleet detector"):
        aetk.Detector.load(fleet_path)
    assert isinstance(load_any(single), aetk.Detector)


def test_evaluate_groups_a_fleet_by_machine_at_each_threshold(fitted_fleet, fleet_folders, cli):
    _, path = fitted_fleet
    ran = cli("evaluate", fleet_folders / "test", "-d", path, "--json")
    assert ran.code == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["threshold"] is None
    assert [group["group"] for group in result["groups"]] == sorted(MACHINES)


def test_report_judges_each_recording_by_its_machine(fitted_fleet, fleet_folders, cli, tmp_path):
    """One page for the fleet: every verdict at its machine's threshold, as aetk score gives
    it, ranked by score relative to that threshold, and the labelled clips measured per
    machine; --machine still makes a page of one machine."""
    _, path = fitted_fleet
    test = fleet_folders / "test"
    scored = {row["path"]: row for row in cli("score", test, "-d", path, "--json").json_lines()}
    ran = cli("report", test, "-d", path, "-o", tmp_path / "fleet.html")
    assert ran.code == 0, ran.stderr
    page = (tmp_path / "fleet.html").read_text()
    rows = re.findall(
        r"<tr><td class=number>\d+</td><td title='([^']*)'>[^<]*</td><td>([^<]*)</td>"
        r"<td class=number>[^<]*</td><td class=number>([^<]*)</td><td><span class=(\w+)>",
        page,
    )
    assert len(rows) == len(scored) == 3 * len(list((test / MACHINES[0]).glob("*.wav")))
    for file, machine, threshold, verdict in rows:
        assert machine == scored[file]["machine"] == Path(file).parent.name
        assert float(threshold) == pytest.approx(scored[file]["threshold"], rel=1e-3)
        assert (verdict == "anomalous") == scored[file]["anomalous"]
    relative = [scored[file]["score"] / scored[file]["threshold"] for file, *_ in rows]
    assert relative == sorted(relative, reverse=True)
    summary = page[page.index("<section id=summary>") : page.index("<section id=explained>")]
    aucs = dict(
        re.findall(
            r"<tr><td>([^<]*)</td>(?:<td class=number>\d+</td>){4}"
            r"<td class=number>([0-9.]+)</td>",
            summary,
        )
    )
    assert sorted(aucs) == sorted(MACHINES)
    for machine, auc in aucs.items():
        own = [row for row in scored.values() if row["machine"] == machine]
        labels = [int("anomaly" in Path(row["path"]).name) for row in own]
        expected = aetk.metrics.auc(labels, [row["score"] for row in own])
        assert float(auc) == pytest.approx(expected, abs=5e-4)
    ran = cli("report", test, "-d", path, "--machine", MACHINES[1], "-o", tmp_path / "one.html")
    assert ran.code == 0, ran.stderr
    assert "<th>machine</th><th>score</th>" not in (tmp_path / "one.html").read_text()


def test_a_watched_folder_judges_each_file_by_its_machine(fitted_fleet, fleet_folders, tmp_path):
    """``aetk watch incoming/ -d fleet.aetk``: every file at its machine's threshold, each
    machine's alerts its own (as a tracker fed that machine's files alone would raise them),
    the alerts kept per machine in the state, and a file of no known machine an error event
    while the watch goes on."""
    import shutil
    import threading
    import time
    import urllib.request

    from aetk_core.watch.alerts import AlertTracker
    from aetk_core.watch.monitor import WatchOptions

    from aetk.watch.monitor import Monitor

    fleet, _ = fitted_fleet
    incoming = tmp_path / "incoming"
    copied = 0
    for machine in MACHINES:
        (incoming / machine).mkdir(parents=True)
        for path in sorted((fleet_folders / "test" / machine).glob("*.wav")):
            shutil.copy(path, incoming / machine / path.name)
            copied += 1
    (incoming / "pump-99").mkdir()
    stray = next((fleet_folders / "test" / MACHINES[0]).glob("*.wav"))
    shutil.copy(stray, incoming / "pump-99" / "x.wav")
    shutil.copy(stray, incoming / "loose.wav")
    events: list[dict] = []
    state = tmp_path / "state.json"
    port = free_port()
    options = WatchOptions(
        settle=0.0, interval=0.05, confirm=1, clear=1, state=state, metrics_port=port
    )
    monitor = Monitor(fleet, str(incoming), options, events.append)
    # 8 recordings a machine: each threshold is the largest of its held-out scores.
    assert all(fleet.detector(name).threshold_note() for name in MACHINES)
    notes = {fleet.detector(name).threshold_note() for name in MACHINES}
    noted = next(iter(notes)) if len(notes) == 1 else "each the largest of too few held-out"
    assert "(3 machines, thresholds" in monitor.describe() and noted in monitor.describe()
    runner = threading.Thread(target=monitor.run_folder, args=(incoming,))
    runner.start()
    deadline = time.monotonic() + 120
    while len([e for e in events if e["event"] in ("scored", "error")]) < copied + 2:
        assert time.monotonic() < deadline, events[-3:]
        time.sleep(0.1)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    monitor.stopping = True
    runner.join(30)
    monitor.close()
    for machine, detector in fleet.detectors.items():
        assert f'aetk_threshold{{machine="{machine}"}} {detector.threshold!r}' in metrics

    scored = [e for e in events if e["event"] == "scored"]
    assert len(scored) == copied
    for machine in {e["machine"] for e in scored}:  # each machine's own "last heard"
        assert f'aetk_last_scored_timestamp_seconds{{machine="{machine}"}}' in metrics
    for event in scored:
        machine = Path(event["source"]).parent.name
        assert event["machine"] == machine
        assert event["threshold"] == fleet.detectors[machine].threshold
        assert event["anomalous"] == (event["score"] > event["threshold"])
    alerts = [e for e in events if e["event"] in ("anomaly_start", "anomaly_end")]
    assert any(e["event"] == "anomaly_start" for e in alerts)
    for machine in MACHINES:
        tracker, expected = AlertTracker(confirm=1, clear=1), []
        for event in (e for e in scored if e["machine"] == machine):
            change, _ = tracker.update(0.0, event["score"], event["threshold"])
            expected += [(change, event["source"])] if change else []
        own = [(e["event"], e["source"]) for e in alerts if e["machine"] == machine]
        assert own == expected
    active = json.loads(state.read_text())["active"]
    assert active == {
        machine: monitor.judges[machine].tracker.active for machine in fleet.detectors
    }
    # A restart on the state keeps each machine's alert open, and says so in its metrics.
    active = {machine: machine == MACHINES[0] for machine in MACHINES}
    state.write_text(json.dumps({**json.loads(state.read_text()), "active": active}))
    port = free_port()
    options = WatchOptions(settle=0.0, interval=0.05, state=state, metrics_port=port)
    restarted = Monitor(fleet, str(incoming), options, events.append)
    runner = threading.Thread(target=restarted.run_folder, args=(incoming,))
    runner.start()
    time.sleep(1.0)
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    restarted.stopping = True
    runner.join(30)
    restarted.close()
    for machine, was_active in active.items():
        assert restarted.judges[machine].tracker.active == was_active
        assert f'aetk_anomaly_active{{machine="{machine}"}} {float(was_active)!r}' in metrics
    errors = {Path(e["source"]).name: e["error"] for e in events if e["event"] == "error"}
    assert "unknown machine 'pump-99'" in errors["x.wav"]
    assert "not inside a machine's folder" in errors["loose.wav"]


def test_a_watched_fleet_refitted_judges_each_machine_by_its_refit(fitted_fleet, tmp_path):
    """A fleet refitted over its file while a watch runs: each machine judged at its new
    threshold, the alert open on one machine kept open; a file that is now one machine's
    detector is an error event, and the fleet read before goes on judging."""
    import dataclasses
    import os
    import time
    import urllib.request

    from aetk_core.watch.monitor import WatchOptions

    from aetk.watch.monitor import Monitor

    fleet, path = fitted_fleet
    live = tmp_path / "fleet.aetk"
    live.write_bytes(path.read_bytes())
    events: list[dict] = []
    port = free_port()
    options = WatchOptions(interval=0.05, detector_file=live, metrics_port=port)
    monitor = Monitor(fleet, str(tmp_path), options, events.append)
    monitor.judges[MACHINES[0]].tracker.active = True

    def replace_with(detector) -> None:
        detector.save(tmp_path / "next.aetk")
        os.replace(tmp_path / "next.aetk", live)
        for _ in range(3):  # a look that sees it, and one a poll later that finds it settled
            time.sleep(0.06)
            monitor.reload_if_refitted()

    refit = load_any(path)
    changed = refit.detectors[MACHINES[1]]
    changed.calibration = dataclasses.replace(changed.calibration, threshold=1e6)
    replace_with(refit)
    ((name, reloaded),) = [(e["event"], e) for e in events]
    assert name == "detector_reloaded" and reloaded["machines"] == sorted(MACHINES)
    assert monitor.judges[MACHINES[1]].threshold == 1e6
    assert monitor.judges[MACHINES[0]].threshold == fleet.detectors[MACHINES[0]].threshold
    assert monitor.judges[MACHINES[0]].tracker.active
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    assert f'aetk_threshold{{machine="{MACHINES[1]}"}} 1e+06' in metrics
    replace_with(fleet.detectors[MACHINES[0]])
    assert events[-1]["event"] == "error"
    assert "it is now one machine's detector: restart the watch" in events[-1]["error"]
    assert monitor.judges[MACHINES[1]].threshold == 1e6
    monitor.close()


@pytest.fixture
def fleet_page(fitted_fleet, tmp_path):
    """``aetk watch incoming/ -d fleet.aetk --dashboard --confirm 1`` with one loud clip played
    backwards in each machine's folder, every file scored; yields the page's base URL."""
    import threading
    import time

    from aetk_core.watch.monitor import WatchOptions

    from aetk.watch.monitor import Monitor

    fleet, path = fitted_fleet
    incoming = tmp_path / "incoming"
    for index, machine in enumerate(MACHINES):
        (incoming / machine).mkdir(parents=True)
        clip = synth.normal_clip(np.random.default_rng(index), 0.5)
        soundfile.write(incoming / machine / "a.wav", 3 * clip[::-1], 16000)
    port = free_port()
    options = WatchOptions(
        settle=0.0, interval=0.05, confirm=1, dashboard=str(port), detector_file=path
    )
    monitor = Monitor(fleet, str(incoming), options, lambda event: None)
    runner = threading.Thread(target=monitor.run_folder, args=(incoming,))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while monitor.scored < len(MACHINES):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        monitor.stopping = True
        runner.join(30)
        monitor.close()


def test_the_live_page_of_a_fleet_shows_each_machine_at_its_threshold(
    fitted_fleet, fleet_page, tmp_path
):
    """A source per machine with its own threshold, each alert with its machine, and its
    spectrogram drawn by that machine's detector."""
    import urllib.request

    from aetk_core.watch.picture import alert_picture

    fleet, _ = fitted_fleet
    status = json.loads(urllib.request.urlopen(fleet_page + "/api/status").read())
    alerts = json.loads(urllib.request.urlopen(fleet_page + "/api/alerts").read())["alerts"]
    assert status["threshold"] is None
    thresholds = {source["source"]: source["threshold"] for source in status["sources"]}
    assert thresholds == {name: detector.threshold for name, detector in fleet.detectors.items()}
    # 8 recordings a machine: each threshold is the largest of its held-out scores, said so.
    notes = {source["source"]: source["threshold_note"] for source in status["sources"]}
    assert notes == {name: detector.threshold_note() for name, detector in fleet.detectors.items()}
    assert all(note.startswith("the largest of ") for note in notes.values())
    assert alerts, "a clip played backwards at three times the level raises an alert"
    for alert in alerts:
        assert alert["source"] == alert["machine"] in MACHINES
        assert alert["threshold"] == fleet.detectors[alert["machine"]].threshold
    for alert in alerts:
        picture = urllib.request.urlopen(fleet_page + alert["spectrogram"], timeout=120).read()
        machine = fleet.detectors[alert["machine"]]
        explained = machine.explain(tmp_path / "incoming" / alert["machine"] / "a.wav")
        assert picture == alert_picture(
            explained.spectrogram,
            explained.events,
            explained.band_edges_hz,
            explained.frame_seconds,
        )


def test_the_live_page_of_a_fleet_names_the_machine_of_each_alert_in_chromium(fleet_page, tmp_path):
    """What the plant's people read: a card per machine, and each alert headed by its machine
    beside the file that raised it."""
    import time
    import urllib.request

    driver, reason = browser(tmp_path)
    if driver is None:
        pytest.skip(f"browser check skipped: {reason}")
    alerts = json.loads(urllib.request.urlopen(fleet_page + "/api/alerts").read())["alerts"]
    try:
        driver.get(fleet_page + "/")
        deadline = time.monotonic() + 30
        while len(driver.find_elements("css selector", "li.alert")) < len(alerts):
            assert time.monotonic() < deadline, "the page never drew the alerts"
            time.sleep(0.2)
        cards = driver.find_elements("css selector", ".source .source-name")
        assert sorted(card.text for card in cards) == sorted(MACHINES)
        notes = driver.find_elements("css selector", ".source .note")
        assert len(notes) == len(MACHINES)
        assert all(note.text.startswith("the threshold is the largest of ") for note in notes)
        heads = {
            item.get_attribute("data-alert"): item.find_element("css selector", ".machine").text
            for item in driver.find_elements("css selector", "li.alert")
        }
        assert heads == {str(alert["id"]): alert["machine"] for alert in alerts}
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
    finally:
        driver.quit()


def test_a_fleet_watches_folders_only(fitted_fleet, fitted, fleet_folders, cli):
    _, path = fitted_fleet
    _, single = fitted
    ran = cli("watch", "-", "-d", path)
    assert ran.code == 2 and "a stream is one machine: give --machine NAME" in ran.stderr
    ran = cli("watch", fleet_folders / "test", "-d", single, "--machines", "folders")
    assert ran.code == 2 and "--machines needs a fleet detector" in ran.stderr
    ran = cli("watch", fleet_folders, "-d", path, "--machines", fleet_folders / "no.csv")
    assert ran.code == 2 and "no.csv" in ran.stderr and "Traceback" not in ran.stderr


def test_fit_cli_writes_a_fleet_and_machines_with_few_recordings_share_one(tmp_path, cli):
    write_uneven_fleet(tmp_path)
    ran = cli(
        "fit", tmp_path / "train", "--machines", "folders", "-o", tmp_path / "f.aetk", "--json"
    )
    assert ran.code == 0, ran.stderr
    assert "machine small: 2 normal recording(s)" in ran.stderr
    summary = json.loads(ran.stdout.splitlines()[-1])
    assert set(summary["machines"]) == {"big", "small"} and summary["one_network"] is False
    assert summary["machines"]["small"]["files"] == 8  # the whole fleet's recordings
    assert summary["machines"]["big"]["files"] == 6
    fleet = FleetDetector.load(tmp_path / "f.aetk")
    assert fleet.detectors["small"].training["files"] == 8


def test_fit_lists_machines_that_share_the_whole_fleets_detector_on_one_line(tmp_path, cli):
    write_uneven_fleet(tmp_path)
    synth.write_dataset(
        tmp_path,
        train=2,
        test_normal=0,
        test_per_anomaly=0,
        seconds=0.4,
        seed=2,
        fleet_machine="tiny",
    )
    ran = cli("fit", tmp_path / "train", "--machines", "folders", "-o", tmp_path / "f.aetk")
    assert ran.code == 0, ran.stderr
    lines = [line.strip() for line in ran.stderr.splitlines() if "files, threshold" in line]
    assert len(lines) == 2
    assert lines[0].startswith("big: 5 training and 1 validation files, threshold ")
    assert lines[1].startswith("small, tiny: the whole fleet's detector, ")
    fleet = FleetDetector.load(tmp_path / "f.aetk")
    assert fleet.detectors["small"] is fleet.detectors["tiny"]
    assert fleet.detectors["tiny"].training["files"] == 10


def test_fit_says_when_file_names_name_several_machines_and_how_to_fit_each(tmp_path, cli):
    synth.write_dataset(tmp_path, train=6, test_normal=0, test_per_anomaly=0, seconds=0.4)
    named = tmp_path / "named"
    named.mkdir()
    for index, path in enumerate(sorted((tmp_path / "train").glob("*.wav"))):
        path.rename(named / f"normal_id_0{2 * (index % 2)}_{index:04d}.wav")
    ran = cli("fit", named, "-o", tmp_path / "named.aetk")
    assert ran.code == 0, ran.stderr
    assert "the file names name 2 (id_00, id_02)" in ran.stderr
    assert "--machines dcase" in ran.stderr
    unnamed = tmp_path / "unnamed"
    named.rename(unnamed)
    for index, path in enumerate(sorted(unnamed.glob("*.wav"))):
        path.rename(unnamed / f"normal_{index:04d}.wav")
    ran = cli("fit", unnamed, "-o", tmp_path / "unnamed.aetk")
    assert ran.code == 0, ran.stderr
    assert "--machines" not in ran.stderr


def test_a_fleet_file_is_refused_by_an_older_schema_reader(fitted_fleet):
    from aetk.detect.detector_file import _manifest

    _, path = fitted_fleet
    assert _manifest(path, path.read_bytes())["schema_version"] == 3


def test_watch_and_export_take_one_machine_of_a_fleet(fitted_fleet, fleet_folders, tmp_path):
    pytest.importorskip("onnx", reason="aetk export needs onnx: pip install 'aetk[export]'")
    from aetk.export.onnx import export

    fleet, _ = fitted_fleet
    written = export(fleet.detector("pump-01"), tmp_path / "p.onnx", machine="pump-01")
    import onnx

    meta = json.loads(onnx.load(str(written)).metadata_props[0].value)
    assert meta["machine"] == "pump-01"


def test_export_of_a_fleet_writes_one_file_per_machine(fitted_fleet, cli, tmp_path):
    """``aetk export fleet.aetk -o models/``: each machine's detector as models/MACHINE.onnx,
    with its machine and its own threshold."""
    pytest.importorskip("onnx", reason="aetk export needs onnx: pip install 'aetk[export]'")
    import onnx

    fleet, path = fitted_fleet
    for _ in range(2):  # the second time over its own files
        ran = cli("export", path, "-o", tmp_path / "models")
        assert ran.code == 0, ran.stderr
    written = sorted((tmp_path / "models").iterdir())
    assert [file.name for file in written] == [f"{machine}.onnx" for machine in sorted(MACHINES)]
    thresholds = set()
    for file in written:
        meta = json.loads(onnx.load(str(file)).metadata_props[0].value)
        assert meta["machine"] == file.stem
        assert meta["machines_from"] == "folders"  # how the runtime routes a folder of them
        assert meta["threshold"] == fleet.detectors[file.stem].threshold
        thresholds.add(meta["threshold"])
    assert len(thresholds) == len(MACHINES)


def test_a_fleet_export_that_fails_part_way_leaves_the_folder_as_it_was(
    fitted_fleet, cli, tmp_path, monkeypatch
):
    """Every machine's file is written before any replaces the one before: an export that fails
    on its second machine (a full disk) replaces none of them and leaves no partial file; a
    watch of the folder never sees a fleet exported half new, half old."""
    pytest.importorskip("onnx", reason="aetk export needs onnx: pip install 'aetk[export]'")
    import errno

    from aetk.export import onnx as exporter

    _, path = fitted_fleet
    models = tmp_path / "models"
    assert cli("export", path, "-o", models).code == 0
    before = {file.name: file.read_bytes() for file in models.iterdir()}
    written = []
    export = exporter.export

    def full_on_the_second(detector, out, **options):
        written.append(out)
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return export(detector, out, **options)

    monkeypatch.setattr(exporter, "export", full_on_the_second)
    failed = cli("export", path, "-o", models)
    assert failed.code == 1 and "No space left on device" in failed.stderr
    assert {file.name: file.read_bytes() for file in models.iterdir()} == before
    assert len(written) == 2 and not written[0].exists()  # the first machine's, written aside


def test_the_runtime_scores_a_fleet_folder_as_aetk_scores_the_fleet(
    fitted_fleet, fleet_folders, cli, runtime_python, tmp_path
):
    """``aetk-runtime score -d models/`` on the files ``aetk export fleet.aetk -o models/``
    wrote: each recording routed to its machine's file as the fleet routes it (by default as it
    was fitted: folders), the rows aetk score gives, in the same order."""
    pytest.importorskip("onnx", reason="aetk export needs onnx: pip install 'aetk[export]'")
    _, path = fitted_fleet
    models = tmp_path / "models"
    assert cli("export", path, "-o", models).code == 0
    test = fleet_folders / "test"
    ran = runtime_score(runtime_python, [test], models)
    assert ran.returncode == 0, ran.stderr
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    scored = cli("score", test, "-d", path, "--json")
    expected = [json.loads(line) for line in scored.stdout.splitlines()]
    # 8 recordings a machine: their thresholds hold no false-alarm rate, said once, alike.
    (said,) = [line for line in ran.stderr.splitlines() if line.startswith("warning:")]
    assert said.startswith(f"warning: the thresholds of {', '.join(MACHINES[:-1])} and ")
    assert said.endswith("; record more normal recordings and refit, or give --threshold")
    assert said in scored.stderr.splitlines()
    assert [row["path"] for row in rows] == [row["path"] for row in expected]
    assert {row["machine"] for row in rows} == set(MACHINES)
    for mine, theirs in zip(rows, expected, strict=True):
        assert (mine["machine"], mine["conditions"]) == (theirs["machine"], theirs["conditions"])
        assert mine["threshold"] == theirs["threshold"]
        assert mine["score"] == pytest.approx(theirs["score"], rel=1e-4)
        if abs(theirs["score"] - theirs["threshold"]) > 1e-3 * abs(theirs["threshold"]):
            assert mine["anomalous"] == theirs["anomalous"]

    one = runtime_score(runtime_python, [test / "pump-01"], models, "--machine", "pump-01")
    assert one.returncode == 0, one.stderr
    assert {json.loads(line)["machine"] for line in one.stdout.splitlines()} == {"pump-01"}
    unknown = runtime_score(runtime_python, [test], models, "--machine", "pump-99")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == [
        f"error: unknown machine 'pump-99': {models} holds {', '.join(sorted(MACHINES))}"
    ]
    # The synthetic names say no section or ID.
    unnamed = runtime_score(runtime_python, [test], models, "--machines", "dcase")
    assert unnamed.returncode == 2 and "--machines dcase" in unnamed.stderr
    batch = unroutable_batch(fleet_folders, tmp_path / "batch")
    mixed = runtime_score(runtime_python, [batch], models, "--machines", "folders")
    assert mixed.returncode == 1  # as aetk score: the routable ones scored, the others errors
    theirs = cli("score", batch, "-d", path, "--json", "--machines", "folders").json_lines()
    mine = [json.loads(line) for line in mixed.stdout.splitlines()]
    assert [(r["path"], r["machine"], r["threshold"]) for r in mine] == [
        (r["path"], r["machine"], r["threshold"]) for r in theirs
    ]
    errors = {Path(r["path"]).name: r["error"] for r in mine if r["error"]}
    assert errors.keys() == {"x.wav", "loose.wav"}
    assert "unknown machine 'pump-99'" in errors["x.wav"]
    single = runtime_score(runtime_python, [test], models / "pump-01.onnx", "--machine", "pump-01")
    assert single.returncode == 2 and "need a fleet's folder" in single.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runtime_score(runtime_python, [test], empty)
    assert nothing.returncode == 2
    assert nothing.stderr.startswith(f"error: {empty}: no exported detectors here")


def test_watch_of_one_machine_of_a_fleet_names_it_on_every_event(fitted_fleet, fleet_folders):
    import subprocess
    import sys

    _, path = fitted_fleet
    recording = next((fleet_folders / "test" / "pump-01").glob("normal_*.wav"))
    command = ["watch", "-", "-d", str(path), "--json", "--machine", "pump-01"]
    ran = subprocess.run(
        [sys.executable, "-m", "aetk", *command],
        input=recording.read_bytes(),
        capture_output=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    events = [json.loads(line) for line in ran.stdout.splitlines()]
    assert events and {event["machine"] for event in events} == {"pump-01"}
    assert all(event["conditions"] == {} for event in events)  # folders: no further columns
    fleet, _ = fitted_fleet
    assert {event["threshold"] for event in events} == {fleet.detector("pump-01").threshold}
