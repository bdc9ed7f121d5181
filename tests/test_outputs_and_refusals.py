"""Outputs and refusals: nothing overwritten, nothing silently wrong, nothing that hangs, one
line instead of a traceback. Each test failed before its fix."""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_ARGS, ctrl_c_as_in_a_terminal, run_aetk, write_wav
from test_calibration import rewrite

import aetk
from aetk import synth


@pytest.fixture
def train_folder(machine_sounds, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(machine_sounds["train"][0].parent, folder)
    return folder


# -- data loss -----------------------------------------------------------------------------------


def test_fit_refuses_to_write_over_one_of_its_recordings(cli, train_folder):
    recording = sorted(train_folder.iterdir())[3]
    before = recording.read_bytes()
    result = cli("fit", train_folder, *TINY_ARGS, "-o", recording)
    assert result.code == 2 and "is one of the inputs" in result.stderr
    assert recording.read_bytes() == before


def test_outputs_of_another_kind_are_refused_unless_forced(cli, fitted, machine_sounds, tmp_path):
    _, detector = fitted
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    refused = cli("report", machine_sounds["test"][0], "-d", detector, "-o", notes)
    assert refused.code == 2 and "is not an HTML report aetk wrote" in refused.stderr
    assert notes.read_text() == "my notes"
    input_wav = cli(
        "report", machine_sounds["test"][0], "-d", detector, "-o", machine_sounds["test"][0]
    )
    assert input_wav.code == 2 and "is one of the inputs" in input_wav.stderr
    report = tmp_path / "r.html"
    assert cli("report", machine_sounds["test"][0], "-d", detector, "-o", report).code == 0
    assert cli("report", machine_sounds["test"][0], "-d", detector, "-o", report).code == 0
    forced = cli("report", machine_sounds["test"][0], "-d", detector, "-o", notes, "--force")
    assert forced.code == 0 and "<html" in notes.read_text()
    missing = cli(
        "report", machine_sounds["test"][0], "-d", detector, "-o", tmp_path / "nowhere" / "r.html"
    )
    assert missing.code == 2 and "does not exist" in missing.stderr
    under_a_file = cli(
        "report", machine_sounds["test"][0], "-d", detector, "-o", notes / "x" / "r.html"
    )
    assert under_a_file.code == 2
    assert under_a_file.stderr.strip().endswith(f"{notes.resolve()} is a file, not a folder")


def test_fit_checks_its_output_before_any_work(cli, train_folder, tmp_path):
    result = cli("fit", train_folder, *TINY_ARGS, "-o", tmp_path / "missing" / "d.aetk")
    assert result.code == 2 and "does not exist" in result.stderr
    assert "Featurizing" not in result.stderr and "epoch" not in result.stderr


def test_outputs_follow_the_umask_keep_modes_and_write_through_links(fitted, tmp_path):
    detector, _ = fitted
    previous = os.umask(0o022)
    try:
        fresh = detector.save(tmp_path / "fresh.aetk")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        os.chmod(fresh, 0o640)
        detector.save(fresh)
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640
        link = tmp_path / "link.aetk"
        link.symlink_to(fresh)
        detector.save(link)
        assert link.is_symlink() and aetk.Detector.load(link).threshold == detector.threshold
    finally:
        os.umask(previous)


def test_evaluate_out_refuses_a_users_folder_and_replaces_its_own_set(
    cli, fitted, machine_sounds, tmp_path
):
    _, detector = fitted
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text("my own metrics")
    refused = cli("evaluate", *machine_sounds["test"], "-d", detector, "--out", mine)
    assert refused.code == 2 and "holds files aetk did not write" in refused.stderr
    assert (mine / "metrics.json").read_text() == "my own metrics"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert (
        "is a file"
        in cli("evaluate", *machine_sounds["test"], "-d", detector, "--out", a_file).stderr
    )
    out = tmp_path / "out"
    assert cli("evaluate", *machine_sounds["test"], "-d", detector, "--out", out).code == 0
    stale = out / "anomaly_score_old_group.csv"
    stale.write_text("stale")
    (out / ".aetk-evaluation").write_text(
        (out / ".aetk-evaluation").read_text() + stale.name + "\n"
    )
    assert cli("evaluate", *machine_sounds["test"], "-d", detector, "--out", out).code == 0
    assert not stale.exists() and (out / "metrics.json").exists()


# -- silently wrong -------------------------------------------------------------------------------


def test_a_cache_entry_with_wrong_values_is_recomputed_with_a_warning(
    train_folder, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("AETK_CACHE_DIR", str(cache))
    first = aetk.fit(train_folder, preset="default")
    from aetk.data.cache import load_entry

    entries = sorted(cache.rglob("*.features"))
    values = load_entry(entries[0]).numpy().copy()
    content = bytearray(entries[0].read_bytes())
    content[-4:] = np.float32(values.flat[-1] + 5.0).tobytes()  # right name, a wrong value
    entries[0].write_bytes(bytes(content))
    entries[1].write_bytes(b"")  # and an empty entry
    with pytest.warns(aetk.AetkWarning, match="does not match its checksum"):
        again = aetk.fit(train_folder, preset="default")
    assert again.threshold == first.threshold
    np.testing.assert_array_equal(load_entry(entries[0]).numpy(), values)


def test_an_unusable_cache_means_no_cache_and_one_warning(train_folder, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("x")
    monkeypatch.delenv("AETK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(not_a_folder))
    with pytest.warns(aetk.AetkWarning, match="is not usable"):
        detector = aetk.fit(train_folder, preset="default")
    assert np.isfinite(detector.threshold)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m["components"]["scorer"]["params"].update(k=10**30), "k must be an integer"),
        (
            lambda m: m["components"]["normalizer"]["params"].update(mode="../../etc"),
            "unknown normalize mode",
        ),
        (lambda m: m.update(schema_version=0), "no valid schema version"),
        (lambda m: m.update(schema_version=-7), "no valid schema version"),
        (lambda m: m.update(schema_version=True), "no valid schema version"),
        (
            lambda m: m["components"]["featurizer"]["params"].update(n_mels=-5),
            "n_mels must be an integer",
        ),
        (
            lambda m: m["components"]["scorer"]["params"].update({f"p{i}": i for i in range(5000)}),
            "at most 1000",
        ),
        (lambda m: m["components"]["normalizer"]["params"].update(extra=1), "has no parameter"),
        (lambda m: m.update(training=[1, 2]), "'training' is not a JSON object"),
        (
            lambda m: m["components"].update(
                scorer={**m["components"]["scorer"], "name": "mel-db"}
            ),
            "names featurizer 'mel-db' as its scorer",
        ),
    ],
)
def test_crafted_manifests_are_refused_in_one_line_naming_the_file(tmp_path, edit, message):
    detector = aetk.Detector.load(Path(__file__).parent / "fixtures" / "schema1_knn.aetk")
    path = detector.save(tmp_path / "crafted.aetk")
    rewrite(path, edit)
    with pytest.raises(aetk.DetectorFileError, match=message) as caught:
        aetk.Detector.load(path)
    text = str(caught.value)
    assert text.startswith(str(path)) and "\n" not in text and len(text) < 600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "scorer.k=true"], "k must be an integer"),
        (["--seed", "-1"], "greater than or equal to 0"),
        (["--scorer", "mse", "--model", "identity"], "reconstructs exactly"),
    ],
)
def test_bad_fit_options_are_one_line_usage_errors(cli, train_folder, tmp_path, args, message):
    result = cli("fit", train_folder, *args, "-o", tmp_path / "d.aetk")
    assert result.code == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_fit_on_a_missing_folder_is_a_usage_error(cli, tmp_path):
    result = cli("fit", tmp_path / "does" / "not" / "exist", "-o", tmp_path / "d.aetk")
    assert result.code == 2 and "no such file or folder" in result.stderr


def test_segment_inf_and_cv_missing_anomalies_are_refused(
    cli, fitted, machine_sounds, train_folder
):
    _, detector = fitted
    result = cli("score", machine_sounds["test"][0], "-d", detector, "--segment", "inf")
    assert result.code == 2 and "finite" in result.stderr
    # Windows too short for the featurizer: one line before any file, not an error on each row.
    short = cli("score", *machine_sounds["test"][:3], "-d", detector, "--segment", "0.01")
    assert short.code == 2 and short.stdout == ""
    (said,) = short.stderr.strip().splitlines()
    assert said.startswith(
        "error: --segment 0.01: no window of that length can be scored (is too short: 0.010 s, "
        "the featurizer needs at least "
    )
    cv = cli("cv", train_folder, "--folds", "2", "--anomalies", "/nonexistent", *TINY_ARGS)
    assert cv.code == 2 and "no such file or folder" in cv.stderr


def test_anomalies_named_normal_are_left_out_with_a_warning(cli, machine_sounds, train_folder):
    anomalies = machine_sounds["test"][0].parent  # holds normal_* files too
    result = cli("cv", train_folder, "--folds", "2", "--anomalies", anomalies, "--json")
    assert result.code == 0
    assert "are named normal" in result.stderr


# -- hangs ----------------------------------------------------------------------------------------


def test_a_fifo_among_the_recordings_is_skipped_not_waited_on(train_folder, tmp_path):
    fifo = train_folder / "x.wav"
    os.mkfifo(fifo)
    completed = run_aetk("fit", train_folder, *TINY_ARGS, "-o", tmp_path / "d.aetk", timeout=120)
    assert completed.code == 0, completed.stderr
    assert "x.wav: is not a regular file" in completed.stderr
    detector_fifo = tmp_path / "d.fifo"
    os.mkfifo(detector_fifo)
    scored = run_aetk("score", train_folder / "normal_0000.wav", "-d", detector_fifo, timeout=60)
    assert scored.code == 2 and "is not a regular file" in scored.stderr


def test_an_implausible_sample_rate_is_refused_with_the_real_reason(cli, fitted, tmp_path):
    _, detector = fitted
    one_hertz = write_wav(tmp_path / "one_hz.wav", np.zeros(100, np.float32), rate=1)
    result = cli("score", one_hertz, "-d", detector, "--segment", "10")
    assert result.code == 1 and "implausible sample rate (1 Hz)" in result.stderr


def test_loading_while_another_process_replaces_the_file_never_fails(fitted, tmp_path):
    detector, _ = fitted
    path = detector.save(tmp_path / "d.aetk")
    stop = threading.Event()

    def replace_again_and_again() -> None:
        while not stop.is_set():
            detector.save(path)

    writer = threading.Thread(target=replace_again_and_again)
    writer.start()
    try:
        for _ in range(150):
            assert aetk.Detector.load(path).threshold == detector.threshold
    finally:
        stop.set()
        writer.join()


# -- friction -------------------------------------------------------------------------------------


def test_version_and_plugin_commands(cli, fresh_plugins):
    assert cli("--version").stdout.strip() == f"aetk {aetk.__version__}"
    listed = json.loads(cli("plugins", "--json").stdout)
    assert all(record["commands"] == [] for record in listed if record["builtin"])


def test_fit_says_which_preset_parameters_a_swapped_component_keeps(cli, train_folder, tmp_path):
    result = cli(
        "fit",
        train_folder,
        *TINY_ARGS,
        "--model",
        "baseline-ae",
        "--json",
        "-o",
        tmp_path / "d.aetk",
    )
    assert result.code == 0, result.stderr
    inherited = json.loads(result.stdout)["inherited"]
    assert inherited == []  # TINY_ARGS set hidden and bottleneck themselves
    plain = cli(
        "fit",
        train_folder,
        "--preset",
        "autoencoder",
        "--epochs",
        "1",
        "--model",
        "baseline-ae",
        "--json",
        "-o",
        tmp_path / "e.aetk",
    )
    assert json.loads(plain.stdout)["inherited"] == ["model.hidden", "model.bottleneck"]
    assert "keep these autoencoder preset parameters: model.hidden, model.bottleneck" in (
        plain.stderr
    )
    # With a component swapped, the preset's description of its method no longer holds.
    assert json.loads(plain.stdout)["method"] is None
    assert "Method:" not in plain.stderr


def test_fit_and_report_say_what_the_detector_does_and_why(cli, train_folder, tmp_path):
    from aetk.fitting.config import load_preset

    result = cli("fit", train_folder, "--json", "-o", tmp_path / "d.aetk")
    assert result.code == 0, result.stderr
    described = load_preset("default")["description"]
    assert json.loads(result.stdout)["method"] == described
    assert f"Method: {described}" in " ".join(result.stderr.split())
    assert aetk.Detector.load(tmp_path / "d.aetk").summary()["method"] == described
    # A changed component setting or standardisation makes the preset's description untrue.
    for change in ("featurizer.sample_rate=32000", "training.normalize='none'"):
        changed = cli("fit", train_folder, "--set", change, "--json", "-o", tmp_path / "e.aetk")
        assert changed.code == 0, changed.stderr
        assert json.loads(changed.stdout)["method"] is None
    report = cli("report", train_folder, "-d", tmp_path / "d.aetk", "-o", tmp_path / "r.html")
    assert report.code == 0, report.stderr
    assert html.escape(described)[:60] in (tmp_path / "r.html").read_text()


def test_unstorable_learned_state_is_named_at_fit_time(train_folder):
    from aetk_builtins.knn import KnnScorer

    class Holder(KnnScorer):
        name = "holder"

        def fit(self, model, train, validation):
            super().fit(model, train, validation)
            self.forest_ = object()
            return self

    from aetk.components.state import check_storable

    scorer = Holder()
    scorer.forest_ = object()
    with pytest.raises(aetk.ConfigError, match="learned attribute forest_ holds a object"):
        check_storable("scorer", scorer)
    scorer.forest_ = float("nan")  # a float it can keep, were it finite
    with pytest.raises(aetk.ConfigError, match=r"forest_ is nan, .*did the fit diverge"):
        check_storable("scorer", scorer)


def test_a_training_that_diverges_stops_and_says_so(cli, train_folder, tmp_path):
    """A learning rate far too high: the loss becomes NaN. It had trained on and ended in a
    message about storing a float; now the fit stops at the epoch and names the learning rate,
    and nothing is written."""
    output = tmp_path / "d.aetk"
    result = cli("fit", train_folder, *TINY_ARGS, "--epochs", "3", "--lr", "1e9", "-o", output)
    assert result.code == 1 and not output.exists()
    assert result.stderr.strip().splitlines()[-1] == (
        "error: training diverged: the training loss is nan after epoch 1; lower the learning "
        "rate (--lr, now 1e+09) or check the recordings"
    )


def test_a_featurizer_cache_version_changes_the_cache_key():
    from aetk.data.cache import featurizer_key
    from aetk_builtins.mel_db import MelDb

    class Bumped(MelDb):
        cache_version = "2"

    assert featurizer_key(MelDb()) != featurizer_key(Bumped())
    assert synth.ANOMALIES  # the public helpers plugin tests need are importable


def test_cache_info_clear_and_least_recently_used_eviction(
    cli, train_folder, tmp_path, monkeypatch
):
    import time

    from aetk.data.cache import entries

    cache = tmp_path / "cache"
    monkeypatch.setenv("AETK_CACHE_DIR", str(cache))
    aetk.fit(train_folder, preset="default")
    info = cli("cache", "info").stdout
    assert f"feature cache: {cache}" in info and "12 entries" in info
    from aetk.data.cache import file_digest

    stored = entries(cache)
    first_file = sorted(train_folder.iterdir())[0]
    (oldest,) = [entry for entry in stored if entry.stem == file_digest(first_file)]
    os.utime(oldest, (time.time() - 3600, time.time() - 3600))
    one_entry = oldest.stat().st_size
    total = sum(entry.stat().st_size for entry in stored)
    monkeypatch.setenv("AETK_CACHE_MAX_MB", str((total - one_entry / 2) / 1e6))
    aetk.fit(sorted(train_folder.iterdir())[4:], preset="default")  # reads 8, touches them
    assert not oldest.exists() and len(entries(cache)) == 11
    cleared = cli("cache", "clear")
    assert cleared.code == 0 and entries(cache) == []
    monkeypatch.setenv("AETK_CACHE_MAX_MB", "inf")  # no cap
    assert "no cap (AETK_CACHE_MAX_MB=inf)" in cli("cache", "info").stdout
    for value in ("abc", "nan", "-1"):  # was a fallback, or an OverflowError traceback
        monkeypatch.setenv("AETK_CACHE_MAX_MB", value)
        with pytest.raises(aetk.ConfigError, match=f"AETK_CACHE_MAX_MB must be .* not '{value}'"):
            aetk.fit(train_folder, preset="default")


def test_a_plugin_version_change_is_warned_on_load(fitted, tmp_path):
    _, path = fitted
    edited = tmp_path / "old.aetk"
    shutil.copy(path, edited)
    rewrite(edited, lambda m: m["components"]["scorer"].update(version="0.0.1"))
    with pytest.warns(aetk.AetkWarning, match="was made with aetk 0.0.1, and 0.1.0 is installed"):
        aetk.Detector.load(edited)


def test_windows_in_the_table_and_a_warning_for_windows_shorter_than_the_clips(
    cli, fitted, tmp_path
):
    _, path = fitted
    long_clip = write_wav(tmp_path / "long.wav", synth.normal_clip(np.random.default_rng(1), 2.0))
    result = cli("score", long_clip, "-d", path, "--segment", "0.1", "--threshold", "-1")
    assert "windows of 0.1 s are compared with a threshold calibrated on clips of about" in (
        result.stderr
    )
    assert "shorter windows score higher on normal sound" in result.stderr
    longer = cli("score", long_clip, "-d", path, "--segment", "2")
    assert "longer windows average a short fault away" in longer.stderr
    level = cli("score", long_clip, "-d", path, "--segment", "0.5")  # the clips' length
    assert "windows of" not in level.stderr
    # Said once above, not on the row: the windows are as long as asked for.
    header, row = result.stdout.splitlines()
    assert header.endswith("\tevents") and "duration" not in result.stderr
    assert row.split("\t")[-1].startswith("0.00–")


def test_a_file_name_that_is_not_utf8_scores_as_it_fits(cli, fitted, tmp_path):
    _, path = fitted
    folder = tmp_path / "names"
    folder.mkdir()
    raw_name = os.path.join(os.fsencode(folder), b"caf\xe9_normal.wav")
    with open(raw_name, "wb") as handle:
        handle.write(wav_bytes(synth.normal_clip(np.random.default_rng(2), 0.5)))
    result = cli("score", folder, "-d", path, "--json")
    assert result.code == 0, result.stderr
    (row,) = result.json_lines()
    assert row["error"] is None and np.isfinite(row["score"])


def wav_bytes(samples: np.ndarray) -> bytes:
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_a_full_disk_while_writing_an_evaluation_or_report_is_one_line(
    cli, fitted, machine_sounds, tmp_path, monkeypatch
):
    from aetk_core import fileio

    _, detector = fitted

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio, "atomic_write_text", full)
    evaluated = cli("evaluate", *machine_sounds["test"], "-d", detector, "--out", tmp_path / "e")
    assert evaluated.code == 1 and "No space left on device" in evaluated.stderr
    reported = cli("report", *machine_sounds["test"], "-d", detector, "-o", tmp_path / "r.html")
    assert reported.code == 1 and "cannot write the report (No space left" in reported.stderr
    assert "Traceback" not in evaluated.stderr + reported.stderr
    assert not (tmp_path / "r.html").exists()


def test_ctrl_c_stops_a_fit_within_a_second_or_two(tmp_path):
    folder = tmp_path / "many"
    synth.write_dataset(folder, train=400, test_normal=0, test_per_anomaly=0, seconds=2.0)
    process = subprocess.Popen(
        [sys.executable, "-m", "aetk", "fit", str(folder / "train"), "-o", str(tmp_path / "d")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AETK_CACHE": "0"},
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    for line in process.stderr:  # featurizing starts right after this line
        if line.startswith("Recordings:"):
            break
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert time.monotonic() - sent < 2.0
    assert "interrupted" in err and "Traceback" not in err


def test_fit_reports_its_stages_to_the_observer(train_folder):
    """The stage after featurizing (fitting the scorer and calibrating, which took 40 s on a
    large transient fit) is announced, so that progress never sits at 100 % without a word."""
    seen = []

    class Recorder(aetk.FitObserver):
        def on_recordings(self, sample_rates, analysis_rate):
            seen.append(("recordings", sample_rates, analysis_rate))

        def on_stage(self, description):
            seen.append(("stage", description))

        def on_calibrated(self, calibration):
            seen.append(("calibrated", calibration.method))

    aetk.fit(train_folder, observer=Recorder())
    assert seen[0] == ("recordings", {16000: 12}, 16000)
    assert ("stage", "Fitting scorer knn and calibrating the threshold") in seen
    assert seen[-1] == ("calibrated", "conformal")


def _train_folder(folder, rate: int, count: int) -> Path:
    written = synth.write_dataset(
        folder,
        train=count,
        test_normal=0,
        test_per_anomaly=0,
        seconds=0.5,
        machine=synth.Machine(sample_rate=rate),
    )
    return written["train"][0].parent


def test_default_analyses_recordings_at_their_own_rate(cli, tmp_path):
    """Recordings at 48 kHz keep what they hold above 8 kHz: the default analyses them at 48 kHz,
    with frames of 2,048 samples (43 ms, as the 1,024 of 16 kHz are 64 ms at most)."""
    result = cli("fit", _train_folder(tmp_path / "hi", 48000, 6), "-o", tmp_path / "d.aetk")
    assert result.code == 0, result.stderr
    assert "Recordings: 6 at 48000 Hz; analysed at 48000 Hz" in result.stderr
    assert "not used" not in result.stderr
    params = aetk.Detector.load(tmp_path / "d.aetk").featurizer.get_params()
    assert (params["sample_rate"], params["n_fft"], params["hop_length"]) == (48000, 2048, 1024)


def test_fit_says_when_analysis_drops_the_recordings_upper_band(cli, tmp_path):
    """Recordings at 16 and 48 kHz are analysed at 16 kHz (no band empty in any of them), and
    fit says what the 48 kHz ones lose."""
    low, high = _train_folder(tmp_path / "lo", 16000, 3), _train_folder(tmp_path / "hi", 48000, 3)
    result = cli("fit", low, high, "-o", tmp_path / "d.aetk")
    assert result.code == 0, result.stderr
    assert "Recordings: 3 at 16000 Hz, 3 at 48000 Hz; analysed at 16000 Hz" in result.stderr
    assert "recordings at 48000 Hz are analysed at 16000 Hz: what they hold above 8000 Hz" in (
        result.stderr
    )
    # Only a number raises the rate above the 16 kHz recordings'.
    assert "(set featurizer.sample_rate=48000 to keep it)" in result.stderr
    assert aetk.Detector.load(tmp_path / "d.aetk").featurizer.get_params()["n_fft"] == 1024


def test_fit_at_a_fixed_16_khz_names_the_recordings_own_rate_to_keep_their_band(cli, tmp_path):
    """Every recording above a fixed 16 kHz: ``recordings`` keeps their band with frames as long
    as the preset's, where a number would shorten them."""
    high = _train_folder(tmp_path / "hi", 48000, 3)
    result = cli("fit", high, "--set", "featurizer.sample_rate=16000", "-o", tmp_path / "d.aetk")
    assert result.code == 0, result.stderr
    assert "recordings at 48000 Hz are analysed at 16000 Hz" in result.stderr
    assert "(set featurizer.sample_rate=recordings to keep it)" in result.stderr


def test_export_without_its_extra_is_one_line_naming_the_extra(cli, fitted, tmp_path, monkeypatch):
    _, path = fitted
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    ran = cli("export", path, "-o", tmp_path / "d.onnx")
    assert ran.code == 2
    assert "aetk export needs onnx: pip install 'aetk[export]'" in ran.stderr
    assert "Traceback" not in ran.stderr and not (tmp_path / "d.onnx").exists()


@pytest.mark.parametrize(
    ("count", "said"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (3000, "3.0 kB"),
        (12_400_000, "12.4 MB"),
        (2.5e9, "2.5 GB"),
    ],
)
def test_sizes_are_said_in_the_unit_that_reads_best(count, said):
    from aetk.cli import console

    assert console.size(count) == said
