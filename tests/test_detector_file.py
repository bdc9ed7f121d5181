"""The .aetk file: safetensors + JSON manifest, verified on load, written atomically."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest
import torch

import aetk
from aetk.detect.detector_file import read_detector, write_detector


def rewrite_manifest(path, edit):
    """Change the manifest inside a detector file, keeping it valid safetensors."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    manifest = json.loads(header["__metadata__"]["aetk"])
    edit(manifest)
    header["__metadata__"]["aetk"] = json.dumps(manifest)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size :])


def test_round_trip_gives_identical_scores(fitted, machine_sounds):
    detector, path = fitted
    loaded = aetk.Detector.load(path)
    assert [r.score for r in loaded.score(machine_sounds["test"])] == [
        r.score for r in detector.score(machine_sounds["test"])
    ]
    assert loaded.threshold == detector.threshold
    assert loaded.model.get_params() == {"hidden": [16], "bottleneck": 4}


def test_manifest_describes_the_detector(fitted):
    _, path = fitted
    manifest, tensors = read_detector(path)
    assert manifest["format"] == "aetk-detector"
    assert manifest["schema_version"] == 2
    assert manifest["aetk_version"] == aetk.__version__
    components = manifest["components"]
    assert components["featurizer"]["name"] == "mel-db"
    assert components["featurizer"]["distribution"] == "aetk"
    assert components["model"]["state"]["module_"] == {"$module": "model.module_"}
    training = manifest["training"]
    assert "threshold_" not in components["scorer"]["state"]  # the core owns the threshold
    calibration = manifest["calibration"]
    assert calibration["threshold"] == fitted[0].threshold
    assert len(calibration["normal_scores"]) == training["files"]  # cross-fitted, 12 files
    assert "normalizer.mean_" in tensors
    assert training["train_files"] + training["validation_files"] == training["files"] == 12
    assert len(training["data_fingerprint"]) == 64
    assert training["seed"] == 42


def test_info_describes_a_detector_file_as_fit_did(fitted, cli):
    detector, path = fitted
    described = cli("info", path, "--json")
    assert described.code == 0, described.stderr
    (summary,) = described.json_lines()
    manifest, _ = read_detector(path)
    assert summary["threshold"] == detector.threshold
    assert summary["parameters"] == sum(p.numel() for p in detector.model.module_.parameters())
    assert (summary["aetk_version"], summary["created"]) == (
        manifest["aetk_version"],
        manifest["created"],
    )
    assert summary["schema_version"] == manifest["schema_version"]
    assert summary.keys() >= set(detector.summary(path))
    text = cli("info", path)
    assert text.code == 0
    headline, *lines = text.stdout.splitlines()
    assert headline.startswith(f"{path}: written by aetk {manifest['aetk_version']} on ")
    assert lines[0].strip().startswith(f"{summary['featurizer']} → {summary['model']} → ")
    assert any(f"threshold {detector.threshold:.6g} (" in line for line in lines)
    # Who fitted each component: what a machine that scores with the file needs installed.
    assert {plugin["distribution"] for plugin in summary["plugins"].values()} == {"aetk"}
    assert f"  components from aetk {manifest['components']['model']['version']}" in lines


def test_info_takes_the_detector_with_d_as_the_scoring_commands_do(fitted, cli):
    """``aetk info -d FILE`` (the scoring commands' way) says what ``aetk info FILE`` says; both
    naming the same file is that file, two files are refused in one line."""
    _, path = fitted
    as_argument = cli("info", path)
    assert as_argument.code == 0, as_argument.stderr
    assert cli("info", "-d", path).stdout == as_argument.stdout
    assert cli("info", path, "-d", path).stdout == as_argument.stdout
    refused = cli("info", path, "-d", "other.aetk")
    assert refused.code == 2 and refused.stdout == ""
    assert refused.stderr == f"error: two detector files, {path} and -d other.aetk: give one\n"


def test_info_names_each_components_distribution_when_they_differ(fitted, tmp_path, cli):
    _, path = fitted
    manifest, tensors = read_detector(path)
    manifest["components"]["scorer"].update(distribution="aetk-acme", version="2.1")
    write_detector(tmp_path / "mixed.aetk", manifest, tensors)
    described = cli("info", tmp_path / "mixed.aetk")
    assert described.code == 0, described.stderr
    scorer = manifest["components"]["scorer"]["name"]
    assert f"scorer {scorer}: aetk-acme 2.1" in described.stdout


def test_info_names_the_schema_a_file_was_written_in(cli):
    old = cli("info", Path(__file__).parent / "fixtures" / "schema1_knn.aetk")
    assert old.code == 0, old.stderr
    assert "(detector file schema 1, read as 2)" in old.stdout.splitlines()[0]


def test_a_description_leaves_out_the_figures_an_older_file_lacks(fitted):
    from aetk_core.describe import detector_lines

    detector, path = fitted
    summary = detector.summary(path)
    full = detector_lines(summary)
    assert any(" training and " in line for line in full)
    assert any(line.startswith("threshold ") and "fitted in" in line for line in full)
    older = detector_lines({**summary, "train_files": None, "seconds": None})
    assert not any(" training and " in line or "fitted in" in line for line in older)
    assert len(older) == len(full) - 1
    # What the training recordings were like, which the recording checks compare with.
    recordings = summary["recordings"]
    assert recordings["channels"] == [1] and recordings["seconds"] == 0.5  # machine_sounds' clips
    low, high = recordings["level_db"]
    assert low < high
    assert f"its training recordings: mono, 0.5 s long (median), {low:.1f} to {high:.1f} dBFS" in (
        "\n".join(full)
    )
    same = detector_lines({**summary, "recordings": {**recordings, "level_db": [low, low]}})
    assert f"(median), {low:.1f} dBFS (what the recording checks expect)" in "\n".join(same)
    assert recordings["codecs"] == []  # lossless WAV files, so no codec is said
    coded = detector_lines({**summary, "recordings": {**recordings, "codecs": ["MP3"]}})
    assert f"{low:.1f} to {high:.1f} dBFS, coded as MP3 (what the" in "\n".join(coded)
    assert len(detector_lines({**summary, "recordings": None})) == len(full) - 1


def test_info_refuses_what_score_refuses(fitted, tmp_path, cli):
    _, path = fitted
    damaged = tmp_path / "damaged.aetk"
    damaged.write_bytes(path.read_bytes()[:-100])
    for bad, reason in ((damaged, "damaged.aetk: "), (tmp_path / "none.aetk", "no detector file")):
        result = cli("info", bad)
        assert result.code == 2 and result.stdout == ""
        assert reason in result.stderr and len(result.stderr.splitlines()) == 1
    single = cli("info", path, "--machine", "fan-01")
    assert single.code == 2 and "--machine needs a fleet detector" in single.stderr


def test_an_onnx_export_given_to_aetk_is_named_as_one(tmp_path, machine_sounds, cli):
    export = tmp_path / "detector.onnx"
    export.write_bytes(b"\x08\x09\x12\x07pytorch" + bytes(64))  # an ONNX protobuf's first bytes
    for command in (("info", export), ("score", machine_sounds["test"][0], "-d", export)):
        refused = cli(*command)
        assert refused.code == 2
        assert refused.stderr == (
            f"error: {export}: an ONNX export, which aetk-runtime scores; aetk reads the .aetk "
            "file it was exported from\n"
        )


def test_pickle_payload_is_refused_without_running_it(tmp_path):
    class Payload:
        def __reduce__(self):
            return (exec, ("open('pwned', 'w').write('x')",))

    path = tmp_path / "evil.aetk"
    path.write_bytes(pickle.dumps(Payload()))
    torch.save({"weights": torch.zeros(2), "x": Payload()}, tmp_path / "evil-torch.aetk")
    for candidate in (path, tmp_path / "evil-torch.aetk"):
        with pytest.raises(aetk.DetectorFileError, match="not an aetk detector file"):
            aetk.Detector.load(candidate)
    assert not (tmp_path / "pwned").exists()


def test_import_path_in_manifest_is_never_imported(fitted, tmp_path):
    _, path = fitted
    edited = tmp_path / "edited.aetk"
    edited.write_bytes(path.read_bytes())

    def point_at_os(manifest):
        manifest["components"]["model"]["name"] = "os:system"
        manifest.pop("checksums")
        from aetk.detect.detector_file import manifest_digest, tensors_digest  # re-sign it

        manifest["checksums"] = {
            "tensors_sha256": tensors_digest(read_detector(path)[1]),
            "manifest_sha256": manifest_digest(manifest),
        }

    rewrite_manifest(edited, point_at_os)
    with pytest.raises(aetk.DetectorFileError, match=r"model 'os:system'.*not installed"):
        aetk.Detector.load(edited)


def test_edited_manifest_is_refused(fitted, tmp_path):
    _, path = fitted
    edited = tmp_path / "edited.aetk"
    edited.write_bytes(path.read_bytes())

    def lower_threshold(manifest):
        manifest["calibration"]["threshold"] = 0.0

    rewrite_manifest(edited, lower_threshold)
    with pytest.raises(aetk.DetectorFileError, match="manifest was edited or corrupted"):
        aetk.Detector.load(edited)


def test_flipped_weight_byte_is_refused(fitted, tmp_path):
    _, path = fitted
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    corrupted = tmp_path / "corrupted.aetk"
    corrupted.write_bytes(bytes(data))
    with pytest.raises(aetk.DetectorFileError, match="weights were edited or corrupted"):
        aetk.Detector.load(corrupted)


def test_truncated_file_is_refused(fitted, tmp_path):
    _, path = fitted
    data = path.read_bytes()
    for size in (0, 5, 100, len(data) // 2, len(data) - 1):
        truncated = tmp_path / f"truncated-{size}.aetk"
        truncated.write_bytes(data[:size])
        with pytest.raises(aetk.DetectorFileError):
            aetk.Detector.load(truncated)


def test_newer_schema_is_refused_with_upgrade_advice(tmp_path):
    path = tmp_path / "future.aetk"
    write_detector(path, {"components": {}}, {"x": torch.zeros(1)})
    rewrite_manifest(path, lambda m: m.update(schema_version=99))
    with pytest.raises(aetk.DetectorFileError, match=r"newer aetk.*schema 99.*upgrade"):
        aetk.Detector.load(path)


def test_tensor_shapes_must_match_the_manifest(tmp_path):
    path = tmp_path / "shapes.aetk"
    write_detector(path, {"components": {}}, {"x": torch.zeros(3)})
    rewrite_manifest(path, lambda m: m["tensors"]["x"].update(shape=[4]))
    with pytest.raises(aetk.DetectorFileError):
        read_detector(path)


def test_weights_that_do_not_fit_the_model_are_refused(fitted, tmp_path):
    _, path = fitted
    manifest, tensors = read_detector(path)
    manifest["components"]["model"]["params"]["bottleneck"] = 5
    changed = tmp_path / "changed.aetk"
    write_detector(changed, manifest, tensors)
    with pytest.raises(aetk.DetectorFileError, match="weights do not match model 'improved-ae'"):
        aetk.Detector.load(changed)


def test_missing_detector_says_how_to_make_one(tmp_path):
    with pytest.raises(aetk.DetectorFileError, match=r"no detector file here .*aetk fit"):
        aetk.Detector.load(tmp_path / "nope.aetk")


def test_failed_write_leaves_the_existing_detector_intact(
    fitted, tmp_path, failing_detector_writes
):
    _, path = fitted
    target = tmp_path / "detector.aetk"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()

    failing_detector_writes(OSError(28, "No space left on device"))
    with pytest.raises(OSError, match="No space left"):
        write_detector(target, {"components": {}}, {"x": torch.zeros(1)})
    assert target.read_bytes() == before
    assert list(tmp_path.iterdir()) == [target]
