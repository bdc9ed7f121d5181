"""aetk fit and aetk score, through the Python API and the CLI, including bad input."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys

import numpy as np
import pytest
from conftest import TINY, TINY_ARGS, run_aetk, write_wav

import aetk
from aetk import metrics, synth

RATE = 16000


def labels_and_scores(results):
    labels = [int("anomaly" in r.path) for r in results]
    return labels, [r.score for r in results]


def test_fit_ranks_synthetic_faults_above_normal(machine_sounds):
    detector = aetk.fit(
        machine_sounds["train"], preset="autoencoder", set=[*TINY["set"], "training.epochs=20"]
    )
    auc = metrics.auc(*labels_and_scores(detector.score(machine_sounds["test"])))
    assert auc > 0.9


def test_validation_files_are_held_out_by_file(machine_sounds):
    detector = aetk.fit(machine_sounds["train"], **TINY, val_fraction=0.25)
    assert (detector.training["train_files"], detector.training["validation_files"]) == (9, 3)
    # Fewer than 20 files: the threshold stands on a cross-fitted score of every file.
    assert len(detector.calibration.normal_scores) == 12


def test_results_have_the_documented_fields(fitted, machine_sounds):
    detector, _ = fitted
    result = detector.score(machine_sounds["test"][0])[0]
    assert set(result.as_dict()) == {
        "path",
        "score",
        "threshold",
        "anomalous",
        "error",
        "segments",
        "view",
        "warnings",
        "machine",
        "conditions",
    }
    assert result.machine is None and result.conditions is None  # not a fleet
    assert isinstance(result.segments, list)  # scored whole, localized by the mse scorer
    for event in result.segments:
        assert 0 <= event["start"] < event["end"] and event["score"] > 0
    assert result.anomalous == (result.score > result.threshold)


def test_a_detector_that_has_scored_pickles_and_scores_the_same(fitted, machine_sounds):
    """A process pool or a job library ships a detector by pickling it, also one that has
    already featurized (its transforms are built then)."""
    import pickle

    detector, _ = fitted
    files = machine_sounds["test"]
    scores = [result.score for result in detector.score(files)]
    copy = pickle.loads(pickle.dumps(detector))
    assert [result.score for result in copy.score(files)] == scores


def test_threshold_override(fitted, machine_sounds):
    detector, _ = fitted
    assert all(r.anomalous for r in detector.score(machine_sounds["test"], threshold=-1.0))
    assert not any(r.anomalous for r in detector.score(machine_sounds["test"], threshold=1e9))


def test_audio_held_in_memory_scores_as_the_file_holding_it(fitted, machine_sounds, monkeypatch):
    """``score_audio``: a recording in memory (a DAQ's, a service's) scores as its file does,
    whole and in windows, as 16-bit integers or floats, mono or ``[channels, samples]``."""
    import soundfile

    detector, _ = fitted
    path = machine_sounds["test"][-1]
    as_integers, rate = soundfile.read(path, dtype="int16")
    assert as_integers.ndim == 1
    for segment in (None, 0.2):
        (expected,) = detector.score(path, segment=segment)
        for samples in (as_integers, as_integers / 32768, [(as_integers / 32768).tolist()]):
            found = detector.score_audio(samples, rate, name=str(path), segment=segment)
            assert found.as_dict() == expected.as_dict()
        stereo = detector.score_audio(np.stack([as_integers] * 2), rate, segment=segment)
        assert stereo.score == pytest.approx(expected.score, rel=1e-5)
        names = {warning["name"] for warning in expected.warnings}
        assert {warning["name"] for warning in stereo.warnings} == names | {"channels"}
    assert detector.score_audio(as_integers, rate).path == "<audio>"
    # A file's bytes (a request's body) give their own rate.
    (expected,) = detector.score(path)
    assert detector.score_audio(path.read_bytes(), name=str(path)).as_dict() == expected.as_dict()
    # In windows, a file's bytes are decoded a window at a time, as its file is: a recording
    # longer than aetk decodes at once is scored (it was refused, naming --segment).
    monkeypatch.setenv("AETK_MAX_SECONDS", "0.3")
    (windows,) = detector.score(path, segment=0.2)
    in_windows = detector.score_audio(path.read_bytes(), name=str(path), segment=0.2)
    assert windows.error is None and in_windows.as_dict() == windows.as_dict()
    assert "decodes at once" in (detector.score_audio(path.read_bytes()).error or "")
    monkeypatch.delenv("AETK_MAX_SECONDS")
    with pytest.raises(aetk.ConfigError, match="leave sample_rate out"):
        detector.score_audio(path.read_bytes(), rate)
    with pytest.raises(aetk.ConfigError, match="need their sample_rate"):
        detector.score_audio(as_integers)
    with pytest.raises(aetk.ConfigError, match=r"a whole number of samples a second, not 16000\.0"):
        detector.score_audio(as_integers, 16000.0)


def test_a_recording_on_standard_input_scores_as_its_file(cli, fitted, machine_sounds, monkeypatch):
    """``aetk score -``: a recording piped in (sox, curl, arecord -d 10) is one row, ``-``."""
    _, detector_path = fitted
    path = machine_sounds["test"][-1]

    def piped(data: bytes, *args: str):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        return cli("score", "-", "-d", detector_path, *args)

    result = piped(path.read_bytes(), "--json")
    assert result.code == 0, result.stderr
    from_file = cli("score", path, "-d", detector_path, "--json")
    assert json.loads(result.stdout) == {**json.loads(from_file.stdout), "path": "-"}
    garbage = piped(b"not audio at all")
    assert garbage.code == 1 and "-: not a readable audio file" in garbage.stderr
    mixed = cli("score", "-", path, "-d", detector_path)
    assert mixed.code == 2 and "is scored alone" in mixed.stderr


@pytest.mark.parametrize(
    ("samples", "rate", "reason"),
    [
        (
            np.zeros((8000, 2), np.float32),
            16000,
            r"channel count \(8000\): give \[channels, samples\]",
        ),
        (np.zeros((1, 1, 8000), np.float32), 16000, "has 3 dimensions"),
        (np.array([0.0, np.nan] * 4000), 16000, "holds NaN or infinite samples"),
        (np.zeros(8000, np.float32), 10, r"implausible sample rate \(10 Hz\)"),
        (np.zeros(0, np.float32), 16000, "holds no audio samples"),
        (np.array(["hum"] * 8000), 16000, "holds samples of type <U3"),
    ],
)
def test_audio_in_memory_that_no_file_could_hold_is_its_results_error(
    fitted, samples, rate, reason
):
    detector, _ = fitted
    result = detector.score_audio(samples, rate)
    assert result.score is None and result.anomalous is None
    assert re.search(reason, result.error)


def test_silence_is_scored_finite_and_anomalous(fitted, tmp_path):
    detector, _ = fitted
    path = write_wav(tmp_path / "silence.wav", np.zeros(8000, dtype=np.float32))
    result = detector.score(path)[0]
    assert result.error is None
    assert np.isfinite(result.score)
    assert result.anomalous is True


def test_fit_skips_unreadable_training_files_with_a_warning(machine_sounds, tmp_path):
    folder = tmp_path / "normal"
    shutil.copytree(machine_sounds["train"][0].parent, folder)
    (folder / "broken.wav").write_bytes(b"RIFF....garbage")
    with pytest.warns(aetk.AetkWarning, match=r"skipped .*broken.wav: not a readable audio file"):
        detector = aetk.fit(folder, **TINY)
    assert detector.training["skipped_files"][0]["path"].endswith("broken.wav")
    assert detector.training["files"] == 12


def test_fit_on_a_folder_without_audio_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no audio")
    with pytest.raises(aetk.ConfigError, match="no audio files found"):
        aetk.fit(tmp_path, **TINY)


def test_fit_with_no_usable_file_is_a_clear_error(tmp_path):
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"")
    with (
        pytest.warns(aetk.AetkWarning),
        pytest.raises(aetk.AetkError, match="none of the 1 training files could be used"),
    ):
        aetk.fit(tmp_path, **TINY)


def test_one_long_recording_is_fitted_cut_into_clips_and_the_detector_scores_in_such_windows(
    tmp_path,
):
    """A maintenance engineer's one long recording of the healthy machine: fitted whole, it
    leaves nothing to compare it with or to set the threshold on, and the error says how long
    to cut its clips; cut, its clips make the detector, which scores in windows of that length."""
    rng = np.random.default_rng(0)
    session = synth.normal_clip(rng, 18.0)
    healthy = tmp_path / "healthy.wav"
    write_wav(healthy, session[: 12 * RATE])
    with pytest.raises(aetk.ConfigError, match=r"one recording \(12.0 s\).*--segment 1.2"):
        aetk.fit(healthy)
    detector = aetk.fit(healthy, segment_seconds=2.0)
    summary = detector.summary()
    assert summary["segment_seconds"] == 2.0
    assert summary["calibration"]["normal_scores"] == 6  # each 2-s clip held out in turn
    again = write_wav(tmp_path / "again.wav", session[: 6 * RATE])  # its first 6 s again
    knock = session[: 6 * RATE].copy()  # the same with a knock at 5.1 s
    burst = np.exp(-np.arange(480) / 80) * rng.normal(size=480)
    knock[round(5.1 * RATE) : round(5.1 * RATE) + 480] += 0.5 * burst
    knocking = write_wav(tmp_path / "knocking.wav", np.clip(knock, -1, 1))
    as_before, knocked = detector.score([again, knocking])
    # Scored in 2-s windows: the knock raises its window alone, whose score is the file's, and
    # the view that raised it is the knock's moment, in seconds of the file.
    assert not as_before.anomalous and as_before.segments == []
    assert knocked.anomalous and knocked.score > 2 * as_before.score
    assert [(event["start"], event["end"]) for event in knocked.segments] == [(4.0, 6.0)]
    assert knocked.view["view"] == "event" and 5.0 <= knocked.view["start"] <= 5.1
    (whole,) = detector.score([knocking], segment=0)  # scored whole, it is localized
    assert whole.segments and all(4.0 <= event["start"] < 6.0 for event in whole.segments)


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def bad_files(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "random.wav").write_bytes(np.random.default_rng(0).bytes(2000))
    clip = synth.normal_clip(np.random.default_rng(0), seconds=0.5)
    truncated = write_wav(folder / "truncated.wav", clip)
    truncated.write_bytes(truncated.read_bytes()[:44])
    nan = clip.copy()
    nan[10] = np.nan
    write_wav(folder / "nan.wav", nan, subtype="FLOAT")
    return folder


def test_cli_fit_then_score_just_works_in_the_current_folder(
    cli, machine_sounds, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    train = machine_sounds["train"][0].parent
    fit = cli("fit", train, *TINY_ARGS, "--json")
    assert fit.code == 0, fit.stderr
    summary = json.loads(fit.stdout)
    assert summary["detector"] == "detector.aetk"
    assert summary["train_files"] + summary["validation_files"] == 12
    assert "epoch   3/3" in fit.stderr
    assert summary["previous"] is None  # nothing was replaced
    scored = cli("score", machine_sounds["test"][0], "--json")
    assert scored.code == 0
    (line,) = scored.json_lines()
    assert line["path"] == str(machine_sounds["test"][0])
    assert line["threshold"] == pytest.approx(summary["threshold"])
    assert line["error"] is None


def test_a_refit_over_a_detector_keeps_the_one_it_replaced(cli, machine_sounds, tmp_path):
    """A refit that a running watch takes up at once can be rolled back: the detector it
    replaced is kept beside it, once (the copy before is replaced)."""
    train = machine_sounds["train"][0].parent
    output = tmp_path / "line-3.aetk"
    assert cli("fit", train, "-o", output).code == 0
    first = output.read_bytes()
    refit = cli("fit", train, "-o", output, "--false-alarm-rate", "0.3", "--json")
    assert refit.code == 0, refit.stderr
    kept = tmp_path / "line-3.previous.aetk"
    assert json.loads(refit.stdout)["previous"] == str(kept)
    assert kept.read_bytes() == first != output.read_bytes()
    table = cli("fit", train, "-o", output)
    assert f"Wrote {output} (the detector it replaced kept as {kept})" in table.stderr
    assert kept.read_bytes() != first
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "line-3.aetk",
        "line-3.previous.aetk",
    ]
    # A file of another kind replaced with --force is not a detector to keep.
    other = tmp_path / "notes.aetk"
    other.write_text("not a detector")
    forced = cli("fit", train, "-o", other, "--force", "--json")
    assert forced.code == 0 and json.loads(forced.stdout)["previous"] is None


def test_cli_score_table_and_fail_on_anomaly(cli, fitted, machine_sounds):
    _, path = fitted
    table = cli("score", *machine_sounds["test"], "-d", path)
    assert table.code == 0
    # Not a terminal: plain tab-separated rows on stdout, never wrapped; the count on stderr.
    header, *rows = table.stdout.splitlines()
    cells = [row.split("\t") for row in rows]
    # Where each anomaly lies (this scorer has one view: events alone); normal files are not
    # localized, which would slow the table down for nothing it shows.
    assert header.split("\t") == ["file", "score", "threshold", "verdict", "events"]
    assert len(rows) == 14 and all(len(row) == 5 for row in cells)
    assert any(row[3] == "ANOMALY" for row in cells)
    assert all((row[4] != "") == (row[3] == "ANOMALY") for row in cells)
    assert "14 files" in table.stderr
    normal = [p for p in machine_sounds["test"] if "normal" in p.name]
    assert cli("score", *normal, "-d", path, "--threshold", "1e9", "--fail-on-anomaly").code == 0
    flagged = cli("score", *normal, "-d", path, "--threshold", "-1", "--fail-on-anomaly")
    assert flagged.code == 3


def test_cli_score_shows_its_progress_on_a_terminal_and_keeps_stdout_clean(
    cli, fitted, machine_sounds, monkeypatch
):
    from rich.console import Console

    from aetk.cli import console

    _, path = fitted
    files = machine_sounds["test"]
    screen = io.StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=screen, force_terminal=True, width=100))
    scored = cli("score", *files, "-d", path, "--json")
    assert scored.code == 0
    assert "Scoring" in screen.getvalue() and f"{len(files)}/{len(files)}" in screen.getvalue()
    # The JSON Lines went to stdout whole, none into the bar.
    assert [line["path"] for line in scored.json_lines()] == [str(p) for p in files]
    assert "{" not in screen.getvalue()
    # Where stdout is the same terminal, a bar would break through its lines: none is drawn.
    screen.truncate(0)
    monkeypatch.setattr(console, "stdout", Console(file=io.StringIO(), force_terminal=True))
    assert cli("score", *files, "-d", path, "--json").code == 0
    assert "Scoring" not in screen.getvalue()


def test_cli_score_table_on_a_terminal_names_the_files_from_their_folder(
    cli, fitted, machine_sounds, monkeypatch
):
    from rich.console import Console

    from aetk.cli import console

    _, path = fitted
    files = machine_sounds["test"]
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=80, color_system=None)
    monkeypatch.setattr(console, "stdout", terminal)
    assert cli("score", *files, "-d", path).code == 0
    lines = screen.getvalue().splitlines()
    assert lines[0].endswith(f"in {files[0].parent}{os.sep}")
    for file in files:  # each whole on its row, not folded over several
        assert sum(line.startswith(file.name) for line in lines) == 1


def test_cli_score_reports_each_bad_file_and_scores_the_rest(
    cli, fitted, machine_sounds, bad_files
):
    _, path = fitted
    good = machine_sounds["test"][0]
    result = cli("score", bad_files, good, "-d", path, "--json", "--fail-on-anomaly")
    assert result.code == 1
    lines = {json.loads(line)["path"]: json.loads(line) for line in result.stdout.splitlines()}
    assert lines[str(good)]["error"] is None and lines[str(good)]["score"] is not None
    errors = {
        name: lines[str(bad_files / name)]["error"]
        for name in ("empty.wav", "random.wav", "truncated.wav", "nan.wav")
    }
    assert errors["empty.wav"] == "is empty (0 bytes)"
    assert errors["random.wav"].startswith("not a readable audio file")
    assert errors["truncated.wav"] == "holds no audio samples"
    assert errors["nan.wav"] == "holds NaN or infinite samples"
    stderr = result.stderr.strip().splitlines()
    assert len(stderr) == 4 and all(line.startswith("error: ") for line in stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "x.wav", "-d", "missing.aetk"], "missing.aetk: no detector file here"),
        (["fit", ".", "--preset", "nope"], "unknown preset 'nope'"),
        (["fit", ".", "--set", "model.nope=1"], "has no parameter 'nope'"),
        (["fit", ".", "--model", "nope"], "unknown model 'nope'"),
    ],
)
def test_cli_usage_errors_are_one_line_with_status_2(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = cli(*args)
    assert result.code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_cli_score_folder_without_audio(cli, fitted, tmp_path):
    _, path = fitted
    result = cli("score", tmp_path, "-d", path)
    assert result.code == 2
    assert "no audio files found" in result.stderr


@pytest.mark.parametrize("command", ["score", "evaluate", "report"])
def test_cli_names_a_detector_given_as_a_recording(
    cli, fitted, machine_sounds, tmp_path, monkeypatch, command
):
    """``aetk score fan.aetk new/`` without -d: the one line says to give the file with -d."""
    _, path = fitted
    monkeypatch.chdir(tmp_path)
    result = cli(command, path, machine_sounds["test"][0])
    assert result.code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: detector.aetk: no detector file here; {path} looks like one: "
        f"give it with -d {path}"
    ]
    assert not (tmp_path / "report.html").exists()


def test_cli_score_tally_counts_one_file_in_the_singular(cli, fitted, machine_sounds):
    _, path = fitted
    result = cli("score", machine_sounds["test"][0], "-d", path)
    assert result.code == 0
    assert result.stderr.strip().splitlines()[-1].startswith("1 file: ")


def test_cli_bad_option_value_is_a_usage_error(cli):
    assert cli("fit", ".", "--epochs", "zero").code == 2
    assert cli("fit", ".", "--device", "tpu").code == 2


def test_cli_fit_folder_of_bad_files_fails_cleanly(cli, bad_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("fit", bad_files, *TINY_ARGS)
    assert result.code == 1
    assert result.stderr.count("warning: skipped") == 4
    assert result.stderr.strip().splitlines()[-1].startswith("error: none of the")
    assert not (tmp_path / "detector.aetk").exists()


def test_cli_fit_of_recordings_none_of_which_can_be_read(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "list.txt").write_text("gone.wav\n")  # a manifest of a missing recording
    result = cli("fit", "list.txt", *TINY_ARGS)
    assert result.code == 1
    assert "warning: skipped gone.wav" in result.stderr and "Recordings:" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: none of the")


@pytest.mark.slow
def test_console_script_entry_point(machine_sounds, tmp_path):
    fit = run_aetk(
        "fit",
        machine_sounds["train"][0].parent,
        "-o",
        tmp_path / "d.aetk",
        *TINY_ARGS,
    )
    assert fit.code == 0, fit.stderr
    score = run_aetk("score", "-d", tmp_path / "d.aetk", "--json", *machine_sounds["test"][:2])
    assert score.code == 0
    assert len(score.stdout.strip().splitlines()) == 2


def test_default_hears_a_fault_above_8_khz_in_recordings_made_at_48_khz(tmp_path):
    """A whine at 12 kHz in 48-kHz recordings: the default analyses them at their own rate and
    ranks it above normal; analysed at 16 kHz (the fixed rate of before) it is filtered out."""
    machine = synth.Machine(sample_rate=48000)
    rng = np.random.default_rng(4)
    for index in range(12):
        write_wav(
            tmp_path / "train" / f"normal_{index}.wav", synth.normal_clip(rng, 1.0, machine), 48000
        )
    whine = 0.02 * np.sin(2 * np.pi * 12000 * np.arange(48000) / 48000)
    for index in range(6):
        write_wav(
            tmp_path / "test" / f"normal_{index}.wav", synth.normal_clip(rng, 1.0, machine), 48000
        )
        faulty = synth.normal_clip(rng, 1.0, machine) + whine.astype(np.float32)
        write_wav(tmp_path / "test" / f"anomaly_whine_{index}.wav", faulty, 48000)
    test = sorted((tmp_path / "test").glob("*.wav"))
    labels = [int("anomaly" in path.name) for path in test]
    own_rate = aetk.fit(tmp_path / "train")
    fixed = aetk.fit(tmp_path / "train", set=["featurizer.sample_rate=16000"])
    assert own_rate.featurizer.get_params()["sample_rate"] == 48000
    assert metrics.auc(labels, [result.score for result in own_rate.score(test)]) == 1.0
    assert metrics.auc(labels, [result.score for result in fixed.score(test)]) < 0.8


def test_the_quickstart_demo_runs_the_whole_job_and_hears_every_fault(cli, tmp_path):
    """The README's first command, on a fresh machine: no data of the user's needed."""
    ran = cli("demo", "--json", "--out", tmp_path / "demo")
    assert ran.code == 0, ran.stderr
    (figures,) = ran.json_lines()
    rows = {row["anomaly"]: row for row in figures["rows"]}
    assert set(rows) == {*synth.ANOMALIES, "all"}
    assert all(row["auc"] >= 0.9 for row in rows.values()), rows
    assert figures["false_alarms"] <= figures["normal_clips"] // 4
    kept = aetk.Detector.load(tmp_path / "demo" / "detector.aetk")
    assert kept.threshold == pytest.approx(figures["threshold"])
    (tmp_path / "notes.txt").write_text("mine")  # --out naming a file: one line, before work
    refused = cli("demo", "--out", tmp_path / "notes.txt")
    assert refused.code == 2 and (tmp_path / "notes.txt").read_text() == "mine"
    assert refused.stderr.strip().splitlines() == [
        f"error: --out: cannot create the folder {tmp_path / 'notes.txt'} (a file stands where "
        "a folder would be)"
    ]


@pytest.mark.parametrize(
    ("paths", "folder", "shown"),
    [
        (["/data/line-2/a.wav", "/data/line-2/b/c.wav"], "/data/line-2", ["a.wav", "b/c.wav"]),
        (["/data/x.wav"], "/data", ["x.wav"]),
        (["a.wav", "sub/b.wav"], None, ["a.wav", "sub/b.wav"]),  # the working folder
        (["/x.wav", "/data/y.wav"], None, ["/x.wav", "/data/y.wav"]),  # only the root
        (["/data/x.wav", "sub/y.wav"], None, ["/data/x.wav", "sub/y.wav"]),  # mixed
    ],
)
def test_a_terminal_table_shows_files_from_their_common_folder(paths, folder, shown):
    from aetk_core.results import ScoreResult, from_common_folder, table

    rows = table([ScoreResult(path, 1.0, 2.0, False) for path in paths])
    common, kept = from_common_folder(rows)
    assert common == folder and kept[0] == rows[0]
    assert [row[0] for row in kept[1:]] == shown and kept[1][1:] == rows[1][1:]


def test_a_name_with_a_tab_or_a_line_break_stays_on_its_row(cli, fitted, machine_sounds, tmp_path):
    from aetk_core.watch.events import describe_event

    _, detector = fitted
    odd = tmp_path / "line\nbreak\tand tab.wav"
    odd.write_bytes(machine_sounds["test"][0].read_bytes())
    (tmp_path / "plain.wav").write_bytes(machine_sounds["test"][1].read_bytes())
    scored = cli("score", tmp_path, "-d", detector)  # captured: the tab-separated table
    assert scored.code == 0
    rows = [line.split("\t") for line in scored.stdout.splitlines()]
    assert len(rows) == 3 and {len(row) for row in rows} == {len(rows[0])}
    assert rows[1][0] == str(tmp_path / "line\\nbreak\\tand tab.wav")
    error = {"event": "error", "source": str(odd), "error": "unreadable", "time": None}
    assert describe_event(error, str(tmp_path)) == (
        f"error {tmp_path}/line\\nbreak\\tand tab.wav: unreadable"
    )


def test_cli_fit_of_one_recording_says_how_to_cut_it_and_segment_cuts_it(cli, tmp_path):
    healthy = write_wav(tmp_path / "healthy.wav", synth.normal_clip(np.random.default_rng(1), 8.0))
    output = tmp_path / "d.aetk"
    refused = cli("fit", healthy, "-o", output)
    assert refused.code == 2 and not output.exists()
    assert refused.stderr.strip().splitlines() == [
        f"error: {healthy}: one recording (8.0 s) leaves no normal clip to compare it with or to "
        "set the threshold on: record more, or cut it into clips: --segment 0.8"
    ]
    fitted = cli("fit", healthy, "-o", output, "--segment", "2", "--json")
    assert fitted.code == 0 and json.loads(fitted.stdout)["segment_seconds"] == 2.0
    # Nothing to hold out whole: the threshold stands on clips of the same recording.
    warning = json.loads(fitted.stdout)["calibration"]["warning"]
    assert "; one recording cut into clips: its clips resemble each other" in warning
    described = cli("info", output).stdout
    assert "cut into clips of 2 s (and scored in such windows)" in described
    assert "the clips cut from its training recordings: mono, 2 s long (median)" in described
    page = tmp_path / "report.html"
    assert cli("report", healthy, "-d", output, "-o", page).code == 0
    assert "cut into clips of 2 s (and scored in such windows)" in page.read_text()


def test_cli_fit_of_a_few_long_recordings_says_how_to_cut_them(cli, tmp_path):
    """Three 30-s recordings hold a 10 % false-alarm rate only when cut into clips: the
    warning says what length makes enough of them, and cut so, they do."""
    rng = np.random.default_rng(1)
    for index in range(3):
        write_wav(tmp_path / f"take_{index}.wav", synth.normal_clip(rng, 30.0))
    whole = cli("fit", tmp_path, "-o", tmp_path / "whole.aetk", "--json")
    assert whole.code == 0, whole.stderr
    warning = json.loads(whole.stdout)["calibration"]["warning"]
    assert warning.startswith("3 held-out normal clips cannot support a 10% false-alarm rate")
    assert warning.endswith("; or cut the recordings into clips: --segment 10 makes about 9")
    cut = cli("fit", tmp_path, "-o", tmp_path / "cut.aetk", "--segment", "10", "--json")
    assert json.loads(cut.stdout)["calibration"] == {
        **json.loads(cut.stdout)["calibration"],
        "normal_scores": 9,
        "warning": None,
    }


def test_files_skipped_for_one_reason_are_said_once(cli, machine_sounds, tmp_path):
    """A --segment shorter than the featurizer's shortest clip skips every file: one warning
    for them all and the reason in the error, not a line per file."""
    folder = machine_sounds["train"][0].parent
    result = cli("fit", folder, "--segment", "0.01", "-o", tmp_path / "d.aetk")
    assert result.code == 1
    reason = "is too short: 0.010 s, the featurizer needs at least 0.064 s"
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    count = len(machine_sounds["train"])
    (line,) = skipped
    example = line.split(", e.g. ")[1].split(": ")[0]
    assert line == f"warning: skipped {count} of {count} files, e.g. {example}: {reason}"
    assert example in map(str, machine_sounds["train"])
    assert result.stderr.splitlines()[-1].endswith(f"could be used (all of them: {reason})")


def test_copies_of_a_training_file_count_once_and_copies_of_one_are_one_recording(
    cli, machine_sounds, tmp_path
):
    """A copy counted twice weighs double, and a copy held out for the threshold scores as if
    it were new; copies of one recording alone had fitted a detector that flagged everything."""
    import shutil

    folder = tmp_path / "normal"
    folder.mkdir()
    originals = sorted(machine_sounds["train"])[:6]
    for source in originals:
        shutil.copy(source, folder / source.name)
        shutil.copy(source, folder / f"copy_of_{source.name}")
    fitted = cli("fit", folder, "-o", tmp_path / "d.aetk", "--json")
    assert fitted.code == 0, fitted.stderr
    copy = "holds the same bytes as another training file (a copy counts once)"
    assert "warning: skipped 6 of 12 files, e.g. " in fitted.stderr and copy in fitted.stderr
    summary = json.loads(fitted.stdout)
    assert summary["train_files"] + summary["validation_files"] == 6
    assert summary["skipped_files"] == 6
    alone = tmp_path / "alone"
    alone.mkdir()
    for index in range(5):
        shutil.copy(originals[0], alone / f"take_{index}.wav")
    refused = cli("fit", alone, "-o", tmp_path / "e.aetk")
    assert refused.code == 2
    assert refused.stderr.splitlines()[-1].startswith(
        "error: the 5 training files are copies of one recording; "
    )
    assert "one recording (0.5 s) leaves no normal clip" in refused.stderr


def test_training_files_named_as_faulty_are_warned_of(cli, machine_sounds, tmp_path):
    """``aetk fit test/`` where ``train/`` was meant: the faults would be learned as normal. A
    file's own name tells; a folder's does not (a project may be called anomaly_detection)."""
    import shutil

    project = tmp_path / "anomaly_detection" / "pump"
    project.mkdir(parents=True)
    for source in sorted(machine_sounds["train"])[:6]:
        shutil.copy(source, project / source.name)
    quiet = cli("fit", project, "-o", tmp_path / "d.aetk")
    assert quiet.code == 0 and "named as faulty" not in quiet.stderr
    faulty = sorted(machine_sounds["test"])
    for source in faulty:
        shutil.copy(source, project / source.name)
    named = [path for path in faulty if path.name.startswith("anomaly")]
    warned, total = cli("fit", project, "-o", tmp_path / "e.aetk"), len(list(project.iterdir()))
    assert (
        f"warning: {len(named)} of {total} training files are named as faulty "
        f"recordings (e.g. {project / named[0].name}): fitted on, their faults are learned as "
        "normal; fit on recordings of the healthy machine"
    ) in warned.stderr.splitlines()
