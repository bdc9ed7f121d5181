"""aetk evaluate and aetk cv: labels from paths, DCASE metrics and outputs, cross-validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, TINY_ARGS, write_wav

import aetk
from aetk import synth
from aetk.eval import evaluation
from aetk.eval.crossval import cross_validate, lockbox_and_folds
from aetk.eval.evaluation import group_from_path, group_metrics, label_from_path, means


@pytest.mark.parametrize(
    ("path", "label", "group"),
    [
        ("data/fan/id_00/normal/00000001.wav", 0, "fan_id_00"),
        ("data/fan/id_02/abnormal/00000001.wav", 1, "fan_id_02"),
        ("dev_data/pump/test/normal_id_04_00000012.wav", 0, "pump_id_04"),
        ("dev_data/pump/test/anomaly_id_06_00000012.wav", 1, "pump_id_06"),
        (
            "dev/fan/test/section_00_source_test_anomaly_0001_strength_1.wav",
            1,
            "fan_section_00_source",
        ),
        ("dev/fan/test/section_01_target_test_normal_0003_noise.wav", 0, "fan_section_01_target"),
        ("shared/data/mimii_fan_00/test/anomaly_00000000.wav", 1, "mimii_fan_00"),
        ("eval/valve/test/section_03_0007.wav", None, "valve_section_03"),
        # The names fleets read machines from (aetk.fleet.machines), read the same way here.
        ("shared/data/valve_mixed/test/normal_id02_0009.wav", 0, "valve_mixed_id_02"),
        ("data/Pump/test/Anomaly_ID_03_0001.wav", 1, "Pump_id_03"),
    ],
)
def test_labels_and_groups_from_dcase_and_mimii_layouts(path, label, group):
    assert label_from_path(path) == label
    assert group_from_path(path) == group


def test_files_that_do_not_name_their_machines_only_id_share_it():
    """As in ../shared/data/mimii_fan_00/test: most names carry no ID, a few carry id_00; one
    machine's clips stay one group. With two IDs named, a file naming none stays apart."""
    one_id = ["d/fan/test/anomaly_0001.wav", "d/fan/test/normal_id_00_0001.wav"]
    assert set(evaluation.groups_from_paths(one_id).values()) == {"fan_id_00"}
    two_ids = [*one_id, "d/fan/test/normal_id_02_0001.wav"]
    assert sorted(evaluation.groups_from_paths(two_ids).values()) == [
        "fan",
        "fan_id_00",
        "fan_id_02",
    ]
    labelled = evaluation.label_files(one_id)
    assert {entry.group for entry in labelled.values()} == {"fan_id_00"}


def test_labels_csv_with_header_relative_paths_and_groups(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,group\nclips/a.wav,normal,m1\nclips/b.wav,1,m1\nc.wav,abnormal\n")
    labels = evaluation.read_labels_csv(csv)
    assert labels[(tmp_path / "clips" / "a.wav").resolve()] == evaluation.Labelled(0, "m1")
    assert labels[(tmp_path / "clips" / "b.wav").resolve()].label == 1
    assert labels[(tmp_path / "c.wav").resolve()].label == 1
    csv.write_text("a.wav,broken\n")
    with pytest.raises(aetk.ConfigError, match="label 'broken' is not normal or anomaly"):
        evaluation.read_labels_csv(csv)
    # Bytes that are no text, and a NUL in a path, are one line each, not a traceback.
    csv.write_bytes(b"\xff\xfe\x00path,label\n")
    with pytest.raises(aetk.ConfigError, match=r"labels\.csv: cannot read labels \(not UTF-8"):
        evaluation.read_labels_csv(csv)
    csv.write_bytes(b"path,label\na\x00.wav,normal\n")
    with pytest.raises(aetk.ConfigError, match=r"labels\.csv:2: the path holds a NUL character"):
        evaluation.read_labels_csv(csv)


def test_perfect_separation_gives_auc_and_pauc_1():
    metrics = group_metrics("g", [0] * 20 + [1] * 20, list(range(40)), threshold=19.5)
    assert (metrics.auc, metrics.pauc) == (1.0, 1.0)
    assert (metrics.precision, metrics.recall, metrics.f1) == (1.0, 1.0, 1.0)


def test_identical_distributions_give_auc_near_half():
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, size=4000)
    metrics = group_metrics("g", [0, 1] * 2000, scores, threshold=2.0)
    assert abs(metrics.auc - 0.5) < 0.03
    assert abs(metrics.pauc - 0.5) < 0.03  # the standardised pAUC of chance is 0.5


def test_undefined_metrics_are_none_with_a_reason():
    only_normal = group_metrics("g", [0, 0, 0], [1.0, 2.0, 3.0], threshold=10.0)
    assert only_normal.auc is None and only_normal.pauc is None
    assert only_normal.precision is None and only_normal.recall is None
    assert any("only normal clips" in note for note in only_normal.notes)
    assert any("no clip is above the threshold" in note for note in only_normal.notes)


def test_arithmetic_and_harmonic_means_over_groups():
    groups = [
        evaluation.GroupMetrics("a", 1, 1, auc=0.5, pauc=0.6),
        evaluation.GroupMetrics("b", 1, 1, auc=1.0, pauc=None),
    ]
    result = means(groups)
    assert result["arithmetic_mean"]["auc"] == pytest.approx(0.75)
    assert result["harmonic_mean"]["auc"] == pytest.approx(2 / (1 / 0.5 + 1 / 1.0))
    assert result["arithmetic_mean"]["pauc"] == pytest.approx(0.6)
    assert result["arithmetic_mean"]["f1"] is None


@pytest.fixture(scope="module")
def mimii_layout(tmp_path_factory):
    """Test clips laid out as MIMII: <machine>/<id>/{normal,abnormal}/*.wav, two machine IDs."""
    root = tmp_path_factory.mktemp("mimii")
    rng = np.random.default_rng(11)
    for machine_id in ("id_00", "id_02"):
        for index in range(6):
            write_wav(
                root / "fan" / machine_id / "normal" / f"{index:08d}.wav",
                synth.normal_clip(rng, seconds=0.5),
            )
            kind = synth.ANOMALIES[index % 4]
            write_wav(
                root / "fan" / machine_id / "abnormal" / f"{index:08d}.wav",
                synth.anomalous_clip(rng, kind, seconds=0.5, severity=2.0),
            )
    return root


def test_evaluate_far_anomalies_give_auc_1(fitted, mimii_layout):
    detector, _ = fitted
    result = evaluation.evaluate(detector, [mimii_layout])
    assert [g.group for g in result.groups] == ["fan_id_00", "fan_id_02"]
    for group in result.groups:
        assert (group.normal, group.anomalous) == (6, 6)
        assert group.auc == 1.0
    assert result.means["harmonic_mean"]["auc"] == 1.0


def test_evaluate_same_distribution_labelled_at_random_is_near_half(fitted, tmp_path):
    detector, _ = fitted
    rng = np.random.default_rng(5)
    rows = []
    for index in range(60):
        path = write_wav(tmp_path / f"clip_{index:03d}.wav", synth.normal_clip(rng, seconds=0.5))
        rows.append(f"{path.name},{index % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = evaluation.evaluate(detector, [tmp_path], labels_csv=tmp_path / "labels.csv")
    (group,) = result.groups
    assert 0.3 < group.auc < 0.7


def test_cli_evaluate_writes_dcase_csvs_metrics_and_plots(cli, fitted, mimii_layout, tmp_path):
    _, path = fitted
    out = tmp_path / "out"
    result = cli("evaluate", mimii_layout, "-d", path, "--out", out, "--json")
    assert result.code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads((out / "metrics.json").read_text())
    assert {g["group"] for g in printed["groups"]} == {"fan_id_00", "fan_id_02"}
    for group in ("fan_id_00", "fan_id_02"):
        scores = (out / f"anomaly_score_{group}.csv").read_text().splitlines()
        decisions = (out / f"decision_result_{group}.csv").read_text().splitlines()
        assert len(scores) == len(decisions) == 12
        name, score = scores[0].split(",")
        assert name == "00000000.wav" and float(score) > 0
        assert {line.split(",")[1] for line in decisions} <= {"0", "1"}
        for plot in (f"roc_{group}.png", f"score_histogram_{group}.png"):
            assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = cli("evaluate", mimii_layout, "-d", path)
    assert "harmonic mean" in table.stdout and "fan_id_02" in table.stdout


def test_cli_evaluate_says_when_its_threshold_is_the_largest_of_too_few_scores(
    cli, fitted, machine_sounds, mimii_layout, tmp_path
):
    """Precision, recall and F1 are at the detector's threshold: from 6 held-out normal scores
    it is their largest, not a 10 % false-alarm rate (9 are needed), and the table says so."""
    few = cli("fit", *machine_sounds["train"][:6], "-o", tmp_path / "few.aetk")
    assert few.code == 0, few.stderr
    table = cli("evaluate", mimii_layout, "-d", tmp_path / "few.aetk")
    assert table.code == 0, table.stderr
    title = table.stdout.splitlines()[0].strip()
    note = "the largest of 6 held-out normal scores: too few for a 10% false-alarm rate"
    assert title.startswith("threshold ") and title.endswith(f"({note})")
    as_json = cli("evaluate", mimii_layout, "-d", tmp_path / "few.aetk", "--json").stdout
    assert json.loads(as_json)["threshold_note"] == note
    # 12 scores hold 10 %; a threshold given (or a rate asked for) is not the detector's own.
    detector, path = fitted
    assert len(detector.calibration.normal_scores) == 12
    for extra in ((), ("--threshold", "1.5")):
        enough = cli("evaluate", mimii_layout, "-d", path, *extra)
        assert enough.code == 0 and "too few" not in enough.stdout
    given = cli("evaluate", mimii_layout, "-d", tmp_path / "few.aetk", "--threshold", "1.5")
    assert given.stdout.splitlines()[0].strip() == "threshold 1.5"
    given_json = cli(
        "evaluate", mimii_layout, "-d", tmp_path / "few.aetk", "--json", "--threshold", "1"
    )
    assert json.loads(given_json.stdout)["threshold_note"] is None


def test_cli_evaluate_shows_its_progress_on_a_terminal(cli, fitted, mimii_layout, monkeypatch):
    import io

    from rich.console import Console

    from aetk.cli import console

    _, path = fitted
    screen = io.StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=screen, force_terminal=True, width=100))
    result = cli("evaluate", mimii_layout, "-d", path, "--json")
    assert result.code == 0
    assert "Scoring" in screen.getvalue() and "24/24" in screen.getvalue()
    assert json.loads(result.stdout)["groups"]  # the metrics whole on stdout


def test_cli_evaluate_reports_unlabelled_unreadable_and_single_class(
    cli, fitted, tmp_path, mimii_layout
):
    _, path = fitted
    folder = tmp_path / "mixed"
    shutil.copytree(mimii_layout / "fan" / "id_00" / "normal", folder / "normal")
    write_wav(folder / "mystery.wav", synth.normal_clip(np.random.default_rng(0), seconds=0.5))
    (folder / "normal" / "broken.wav").write_bytes(b"not audio")
    result = cli("evaluate", folder, "-d", path, "--json")
    assert result.code == 1
    assert "skipped 1 unlabelled file(s)" in result.stderr
    assert "only normal clips: AUC and pAUC are undefined" in result.stderr
    assert "broken.wav: not a readable audio file" in result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["groups"][0]["auc"] is None
    assert metrics["arithmetic_mean"]["auc"] is None
    assert metrics["failed"][0]["path"].endswith("broken.wav")
    assert "Traceback" not in result.stderr


def test_folds_split_evenly_with_array_split():
    files = [Path(f"{i:03d}.wav") for i in range(100)]
    lockbox, folds = lockbox_and_folds(files, folds=3, test_ratio=0.0, seed=42)
    assert lockbox == [] and [len(f) for f in folds] == [34, 33, 33]
    lockbox, folds = lockbox_and_folds(files, folds=5, test_ratio=0.2, seed=42)
    assert len(lockbox) == 20 and [len(f) for f in folds] == [16] * 5
    assert set(lockbox).isdisjoint(path for fold in folds for path in fold)
    again, _ = lockbox_and_folds(files, folds=5, test_ratio=0.2, seed=42)
    assert again == lockbox
    with pytest.raises(aetk.ConfigError, match="into 50 folds"):
        lockbox_and_folds(files[:10], folds=50, test_ratio=0.2, seed=42)
    # A lockbox that would take every file (it was scikit-learn's ValueError traceback).
    for count, ratio in ((1, 0.2), (3, 0.7), (10, 0.95)):
        with pytest.raises(aetk.ConfigError, match=rf"of {count} file\(s\) aside as a lockbox"):
            lockbox_and_folds(files[:count], folds=2, test_ratio=ratio, seed=42)
    assert len(lockbox_and_folds(files[:5], folds=2, test_ratio=0.6, seed=42)[0]) == 3


def test_cross_validation_refuses_folds_that_would_fit_on_one_recording(machine_sounds):
    from aetk.fitting.config import resolve_config

    two = machine_sounds["train"][:2]
    refused = r"2 folds of 2 file\(s\) leave a fold one recording"
    with pytest.raises(aetk.ConfigError, match=refused):
        cross_validate(two, resolve_config(), folds=2, test_ratio=0.0)


def test_cross_validation_never_reads_the_lockbox(machine_sounds, monkeypatch):
    from aetk.data import features
    from aetk.fitting.config import resolve_config

    read = []
    original = features.read_audio
    monkeypatch.setattr(
        features,
        "read_audio",
        lambda path, frames=None: read.append(Path(path)) or original(path, frames),
    )
    anomalies = [p for p in machine_sounds["test"] if "anomaly" in p.name]
    result = cross_validate(
        machine_sounds["train"],
        resolve_config(preset="autoencoder", assignments=TINY["set"]),
        folds=3,
        anomalies=anomalies,
        test_ratio=0.25,
        seed=1,
    )
    assert len(result.lockbox) == 3 and result.fold_sizes == [3, 3, 3]
    assert not {Path(p) for p in result.lockbox} & set(read)
    assert len(result.folds) == 3
    assert all(0 <= fold.false_alarm_rate <= 1 and fold.auc is not None for fold in result.folds)
    summary = result.summary()
    assert summary["auc"]["mean"] == pytest.approx(np.mean([f.auc for f in result.folds]))


def test_cli_cv_prints_fold_sizes_and_json(cli, machine_sounds):
    result = cli("cv", machine_sounds["train"][0].parent, "--folds", "3", *TINY_ARGS, "--json")
    assert result.code == 0, result.stderr
    assert "Lockbox: 3 files set aside, never used. Fold sizes: 3, 3, 3" in result.stderr
    data = json.loads(result.stdout)
    assert data["fold_sizes"] == [3, 3, 3]
    assert data["summary"]["auc"] is None
    assert set(data["summary"]["false_alarm_rate"]) == {"mean", "std"}
    assert data["summary"]["val_loss"]["mean"] > 0  # an autoencoder reconstructs imperfectly


def test_cli_cv_says_each_warning_once_not_once_per_fold(cli, machine_sounds, tmp_path):
    """A training recording with a dropout is fitted on in several folds; it is named once."""
    import soundfile

    folder = tmp_path / "normal"
    shutil.copytree(machine_sounds["train"][0].parent, folder)
    for path in sorted(folder.glob("*.wav")):
        samples, rate = soundfile.read(path, dtype="float32")
        samples[rate // 4 : rate // 4 + rate // 5] = 0.0  # 0.2 s of digital silence
        write_wav(path, samples, rate)
    result = cli("cv", folder, "--folds", "3", "--test-ratio", "0")
    assert result.code == 0, result.stderr
    warned = [line for line in result.stderr.splitlines() if "dropout" in line]
    assert warned and len(warned) == len(set(warned))


def test_cli_cv_says_when_a_folds_threshold_rests_on_too_few_scores(cli, machine_sounds):
    """A fold fitted on 6 recordings has 6 held-out normal scores: too few for 10 % (9 are
    needed), enough for 25 % (3). Its false-alarm rate then measures the largest of them."""
    folder = machine_sounds["train"][0].parent
    few = cli("cv", folder, "--folds", "3", "--json")
    assert few.code == 0, few.stderr
    folds = json.loads(few.stdout)["folds"]
    assert [fold["calibration"]["normal_scores"] for fold in folds] == [6, 6, 6]
    assert all(fold["calibration"]["warning"] for fold in folds)
    lines = [line for line in few.stderr.splitlines() if line.startswith("fold ")]
    caveat = "(the largest of 6 held-out normal scores: too few for a 10% false-alarm rate)"
    assert len(lines) == 3 and all(caveat in line for line in lines)
    enough = cli("cv", folder, "--folds", "3", "--set", "threshold.false_alarm_rate=0.25")
    assert enough.code == 0, enough.stderr
    assert "fold 1/3: trained on 6, held out 3: threshold " in enough.stderr
    assert "too few" not in enough.stderr


def test_cli_cv_reports_no_loss_for_a_model_that_does_not_train(cli, machine_sounds):
    """The default preset's identity model reconstructs exactly: a loss of 0 would mislead."""
    result = cli("cv", machine_sounds["train"][0].parent, "--folds", "3", "--json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert all(fold["val_loss"] is None for fold in data["folds"])
    assert data["summary"]["val_loss"] is None
    assert "loss" not in result.stderr.split("Fold sizes")[1]
