"""Thresholds owned by the core: the conformal rule on known answers, the calibration a detector
keeps, --false-alarm-rate on fit and score, and refused non-finite thresholds."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_ARGS

import aetk
from aetk import synth
from aetk.detect.calibration import ThresholdConfig, calibrate, conformal_threshold
from aetk.detect.detector_file import manifest_digest, read_detector

FIXTURES = Path(__file__).parent / "fixtures"


def test_conformal_threshold_is_the_rank_the_rule_names():
    scores = np.arange(1.0, 20.0)  # 19 scores: 1..19
    # F = 0.1: rank ceil(20 * 0.9) = 18, the 18th smallest score.
    assert conformal_threshold(scores, 0.1) == (18.0, None)
    # F = 0.05: rank ceil(20 * 0.95) = 19, the largest.
    assert conformal_threshold(scores[::-1], 0.05) == (19.0, None)
    # F = 0.25: rank ceil(20 * 0.75) = 15.
    assert conformal_threshold(np.random.default_rng(0).permutation(scores), 0.25)[0] == 15.0


def test_too_few_normal_scores_for_the_rate_say_so():
    threshold, warning = conformal_threshold(np.array([3.0, 1.0, 2.0, 6.0, 5.0, 4.0]), 0.1)
    assert threshold == 6.0  # the largest, since no rank supports 10 %
    assert warning == (
        "6 held-out normal clips cannot support a 10% false-alarm rate: record at least 3 more, "
        "or give a threshold when scoring (--threshold)"
    )
    # 9 scores are enough for 10 % (n ≥ 1/F − 1).
    assert conformal_threshold(np.arange(9.0), 0.1) == (8.0, None)
    # A rate under 1 % is written as such, not rounded to 0 %.
    assert conformal_threshold(np.arange(9.0), 0.001)[1].startswith(
        "9 held-out normal clips cannot support a 0.1% false-alarm rate: record at least 990 more"
    )


def test_a_threshold_from_too_few_scores_says_so_where_the_detector_is_described():
    """``aetk fit``, ``aetk info``, ``aetk-runtime info`` and the report describe the threshold
    with these words; the fit's warning is said once, the caveat stays with the detector."""
    from aetk_core.describe import describe_threshold

    few = {"method": "conformal", "target_false_alarm_rate": 0.1, "normal_scores": 8}
    assert describe_threshold(few) == (
        "conformal for a 10% false-alarm rate, from 8 held-out normal scores: too few for that "
        "rate, the largest of them"
    )
    enough = {**few, "normal_scores": 9}
    assert describe_threshold(enough) == (
        "conformal for a 10% false-alarm rate, from 9 held-out normal scores"
    )
    # A gamma fit's percentile is not a rank of the scores: no such caveat.
    assert "too few" not in describe_threshold({**few, "method": "gamma"})


def test_the_conformal_rule_meets_its_rate_on_new_normal_scores():
    rng = np.random.default_rng(1)
    rates = []
    for _ in range(400):
        held_out, new = rng.gamma(2.0, size=39), rng.gamma(2.0, size=200)
        threshold, _ = conformal_threshold(held_out, 0.1)
        rates.append(float((new > threshold).mean()))
    assert 0.06 < np.mean(rates) <= 0.1 + 0.01  # at most F on average, and not far below it


def test_recordings_cut_into_clips_are_held_out_whole_for_the_threshold(tmp_path):
    """Cut into clips, a recording's clips are each other's nearest normal clips: held out one
    clip at a time, a clip was measured against its own recording's others, the threshold stood
    too low, and new normal recordings of 2 s (one window each) raised 12 of 30 false alarms at
    a 10 % rate. Held out a recording at a time (cross-fitted), 2 of 30."""
    import soundfile

    rng = np.random.default_rng(1)
    (tmp_path / "train").mkdir()
    for index in range(12):
        soundfile.write(tmp_path / f"train/{index}.wav", synth.normal_clip(rng, 6.0), 16000)
    new = [tmp_path / f"new_{index}.wav" for index in range(30)]
    for path in new:
        soundfile.write(path, synth.normal_clip(rng, 2.0), 16000)
    detector = aetk.fit(tmp_path / "train", segment_seconds=2.0)
    assert len(detector.calibration.normal_scores) == 36  # every clip of every recording
    false_alarms = sum(bool(result.anomalous) for result in detector.score(new))
    assert false_alarms <= 6


def test_a_cross_fitted_folds_validation_share_is_cut_between_recordings(tmp_path, monkeypatch):
    """The validation share of a fold's other recordings, cut from their clips in order, takes
    whole recordings: a cut inside one would leave its validation clips their own recording's
    nearest neighbours in the scorer's training share."""
    import soundfile

    from aetk.fitting import stages

    owners = np.array([4, 4, 4, 7, 7, 7, 2, 2])
    assert [stages.between_recordings(owners, at) for at in range(1, 8)] == [3, 3, 3, 3, 6, 6, 6]
    assert stages.between_recordings(np.array([5, 5, 5]), 2) == 2  # one recording: nowhere else

    cuts: list[tuple[np.ndarray, int]] = []
    between_recordings = stages.between_recordings

    def watched(owners: np.ndarray, at: int) -> int:
        cuts.append((owners, between_recordings(owners, at)))
        return cuts[-1][1]

    monkeypatch.setattr(stages, "between_recordings", watched)
    rng = np.random.default_rng(2)
    (tmp_path / "train").mkdir()
    for index in range(8):
        soundfile.write(tmp_path / f"train/{index}.wav", synth.normal_clip(rng, 6.0), 16000)
    aetk.fit(tmp_path / "train", segment_seconds=2.0, val_fraction=0.25)
    assert cuts  # every fold of the cross-fit cut its validation share here
    for owners, cut in cuts:
        assert 0 < cut < len(owners) and owners[cut - 1] != owners[cut]


def test_calibrate_methods_and_equal_scores_warning():
    scores = np.linspace(1.0, 2.0, 50)
    gamma = calibrate(scores, ThresholdConfig("gamma", percentile=90.0))
    assert gamma.method in {"gamma", "quantile"} and gamma.target_false_alarm_rate == 0.1
    quantile = calibrate(scores, ThresholdConfig("quantile", false_alarm_rate=0.2))
    assert quantile.threshold == pytest.approx(np.percentile(scores, 80))
    flat = calibrate(np.full(12, 0.5), ThresholdConfig())
    assert flat.warning and "all 12 held-out normal scores are equal" in flat.warning
    with pytest.raises(aetk.ConfigError, match="false_alarm_rate"):
        ThresholdConfig.from_dict({"false_alarm_rate": 1.5})
    with pytest.raises(aetk.ConfigError, match="method must be one of"):
        ThresholdConfig.from_dict({"method": "median"})


def test_fit_json_has_the_calibration_and_score_recomputes_it(cli, machine_sounds, tmp_path):
    detector_path = tmp_path / "d.aetk"
    train = machine_sounds["train"][0].parent
    fitted = cli(
        "fit",
        train,
        *TINY_ARGS,
        "--val-fraction",
        "0.25",
        "--false-alarm-rate",
        "0.25",
        "-o",
        detector_path,
        "--json",
    )
    assert fitted.code == 0, fitted.stderr
    calibration = json.loads(fitted.stdout)["calibration"]
    assert calibration["method"] == "conformal"
    assert calibration["target_false_alarm_rate"] == 0.25
    detector = aetk.Detector.load(detector_path)
    normal = detector.calibration.normal_scores
    # 12 files, fewer than 20: every file gets a cross-fitted held-out score, not only the 3
    # validation files.
    assert calibration["normal_scores"] == len(normal) == 12
    expected, _ = conformal_threshold(normal, 0.25)
    assert calibration["threshold"] == detector.threshold == expected
    assert calibration["warning"] is None
    # 3 scores cannot support 10 %: the fit says so in one line.
    strict = cli(
        "fit", train, *TINY_ARGS, "--false-alarm-rate", "0.05", "-o", tmp_path / "s.aetk", "--json"
    )
    warning = json.loads(strict.stdout)["calibration"]["warning"]
    assert warning == (
        "12 held-out normal clips cannot support a 5% false-alarm rate: record at least 7 more, "
        "or give a threshold when scoring (--threshold)"
    )
    assert f"warning: {warning}" in strict.stderr
    # Judged at that threshold, the verdicts hold no 5% rate either: said once they are given.
    one = machine_sounds["test"][0]
    unheld = cli("score", one, "-d", tmp_path / "s.aetk", "--json")
    assert [line for line in unheld.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: the threshold is the largest of 12 held-out normal scores: too few for a 5% "
        "false-alarm rate; record more normal recordings and refit, or give --threshold"
    ]
    given = cli("score", one, "-d", tmp_path / "s.aetk", "--threshold", "1.5")
    assert "warning:" not in given.stderr
    # Scoring at another rate recomputes the threshold from the stored scores, no refit.
    rescored = cli("score", one, "-d", detector_path, "--false-alarm-rate", "0.5", "--json")
    (row,) = rescored.json_lines()
    assert row["threshold"] == conformal_threshold(normal, 0.5)[0]
    assert "warning:" not in rescored.stderr
    # A rate the 12 stored scores cannot hold: the largest of them stands in, and is said once.
    stricter = cli("score", one, "-d", detector_path, "--false-alarm-rate", "0.05", "--json")
    (row,) = stricter.json_lines()
    assert row["threshold"] == max(normal)
    assert stricter.stderr.count(f"warning: {warning}") == 1
    with pytest.warns(aetk.AetkWarning, match="cannot support a 5% false-alarm rate"):
        assert detector.threshold_for(false_alarm_rate=0.05) == max(normal)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_threshold_options_are_refused(cli, fitted, machine_sounds, value):
    _, path = fitted
    result = cli(
        "score", machine_sounds["test"][0], "-d", path, "--threshold", value, "--fail-on-anomaly"
    )
    assert result.code == 2 and "threshold must be a finite number" in result.stderr


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "abc", None])
def test_detector_with_a_non_finite_threshold_is_refused(fitted, tmp_path, value):
    _, path = fitted
    edited = tmp_path / "edited.aetk"
    shutil.copy(path, edited)
    rewrite(edited, lambda manifest: manifest["calibration"].update(threshold=value))
    with pytest.raises(aetk.DetectorFileError, match=r"threshold .* is not finite"):
        aetk.Detector.load(edited)


@pytest.mark.parametrize("name", ["schema1_mse.aetk", "schema1_knn.aetk"])
def test_schema_1_detectors_are_migrated_with_their_verdicts(name, machine_sounds):
    """Committed files written by aetk 0.1 before the core owned thresholds."""
    raw = json.loads(_header(FIXTURES / name)["__metadata__"]["aetk"])
    assert raw["schema_version"] == 1
    old_threshold = raw["components"]["scorer"]["state"]["threshold_"]
    detector = aetk.Detector.load(FIXTURES / name)
    assert detector.threshold == old_threshold
    assert detector.calibration.method in {"gamma", "quantile"}
    assert len(detector.calibration.normal_scores) >= 2
    assert "percentile" not in detector.scorer.get_params()
    results = detector.score(machine_sounds["test"][:3])
    assert all(r.error is None and math.isfinite(r.score) for r in results)


def test_a_saved_migrated_detector_is_schema_2(tmp_path):
    detector = aetk.Detector.load(FIXTURES / "schema1_knn.aetk")
    manifest, _ = read_detector(detector.save(tmp_path / "new.aetk"))
    assert manifest["schema_version"] == 2
    assert manifest["calibration"]["threshold"] == detector.threshold


def _header(path: Path) -> dict:
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])


def rewrite(path: Path, edit) -> None:
    """Edit the manifest of a detector file and fix its checksum, as a crafted file would."""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    manifest = json.loads(header["__metadata__"]["aetk"])
    edit(manifest)
    manifest["checksums"]["manifest_sha256"] = manifest_digest(manifest)
    header["__metadata__"]["aetk"] = json.dumps(manifest)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data[8 + size :])


def test_few_files_are_cross_fitted_and_many_use_the_validation_files(tmp_path):
    """Below 20 files a trained model's threshold stands on a held-out score of every file; the
    cross-fitted scores are held out: higher than what the final model gives its own training
    files."""
    from conftest import TINY

    few = synth.write_dataset(
        tmp_path / "few", train=8, test_normal=0, test_per_anomaly=0, seconds=0.5, seed=4
    )["train"]
    detector = aetk.fit(few, **TINY, val_fraction=0.25)
    assert len(detector.calibration.normal_scores) == 8
    train_scores = [r.score for r in detector.score(few, localize=False)]
    assert np.median(detector.calibration.normal_scores) > np.median(train_scores)
    many = synth.write_dataset(
        tmp_path / "many", train=24, test_normal=0, test_per_anomaly=0, seconds=0.5, seed=5
    )["train"]
    detector = aetk.fit(many, **TINY, val_fraction=0.25)
    assert len(detector.calibration.normal_scores) == detector.training["validation_files"] == 6


def test_cross_fitted_views_are_scaled_as_the_detectors_own(tmp_path):
    """With several views, each fold's scorer scales its views on clips its model did not learn
    from, as the detector's scorer does on its validation files: the held-out scores the
    threshold stands on then read like the detector's scores of new normal clips (about 1),
    not inflated by scales taken from clips the fold's model was trained on."""
    from conftest import TINY

    sets = synth.write_dataset(
        tmp_path / "few", train=16, test_normal=12, test_per_anomaly=0, seconds=0.5, seed=4
    )
    settings = {**TINY, "set": [*TINY["set"], "scorer.pooling=clip+event", "training.epochs=8"]}
    detector = aetk.fit(sets["train"], **settings, val_fraction=0.3)
    assert len(detector.calibration.normal_scores) == 16
    new_normal = [r.score for r in detector.score(sets["test"], localize=False)]
    ratio = np.median(detector.calibration.normal_scores) / np.median(new_normal)
    # Scaled on clips the fold's model learned (as before), this read 1.18.
    assert 0.85 < ratio < 1.1, ratio


@pytest.mark.parametrize("rate", ["1.5", "0", "-0.1"])
def test_a_false_alarm_rate_outside_0_1_is_refused(cli, fitted, machine_sounds, rate):
    _, path = fitted
    result = cli("score", machine_sounds["test"][0], "-d", path, "--false-alarm-rate", rate)
    assert (
        result.code == 2 and "false_alarm_rate must lie strictly between 0 and 1" in result.stderr
    )
