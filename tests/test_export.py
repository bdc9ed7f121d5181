"""aetk export and the torch-free runtime: every built-in preset exports, the ONNX graph scores as
aetk does, the runtime's numpy mel-db matches aetk's features, and in an environment without
torch, aetk-runtime gives aetk score's rows."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from aetk_core import processes
from aetk_core.results import ScoreResult
from aetk_core.results import table as results_table
from conftest import make_distribution, runtime_score

import aetk
from aetk import synth
from aetk.fitting.config import preset_names

onnx = pytest.importorskip("onnx", reason="aetk export needs onnx: pip install 'aetk[export]'")
onnxruntime = pytest.importorskip("onnxruntime", reason="needs onnxruntime")

REPO = Path(__file__).resolve().parents[1]

#: Every preset at a size that fits in a test; the seed preset's network shrunk.
SMALL = {name: ["training.epochs=2"] for name in preset_names()}
SMALL["seed"] += ["featurizer.channels=1", "model.hidden=[32]", "model.bottleneck=4"]


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    written = synth.write_dataset(
        folder, train=10, test_normal=2, test_per_anomaly=1, seconds=0.7, seed=2
    )
    # A recording at 48 kHz too: the runtime must resample like aetk.
    machine = synth.Machine(sample_rate=48000)
    clip = synth.anomalous_clip(np.random.default_rng(5), "knock", 0.7, machine)
    path = folder / "test" / "anomaly_knock_48k.wav"
    import soundfile

    soundfile.write(path, clip, 48000, subtype="PCM_16")
    return written["train"], [*written["test"], path]


@pytest.fixture(scope="module")
def exported(sounds, tmp_path_factory):
    from aetk.export.onnx import export

    train, _ = sounds
    folder = tmp_path_factory.mktemp("onnx")
    made = {}
    for preset in preset_names():
        detector = _fitted(train, preset, folder)
        detector_path = detector.save(folder / f"{preset}.aetk")
        made[preset] = (detector, detector_path, export(detector, folder / f"{preset}.onnx"))
    return made


def _fitted(train: list[Path], preset: str, folder: Path) -> aetk.Detector:
    """A detector of the preset; for a fleet's network, machine ``a`` of a fleet whose
    recordings alternate between machines ``a`` and ``b`` (its network bound to ``a``)."""
    from aetk.fitting.stages import conditioned, options_config
    from aetk.fleet.detector import fit_fleet

    config = options_config(preset=preset, set=SMALL[preset])
    if not conditioned(config):
        return aetk.fit(train, preset=preset, set=SMALL[preset])
    table = folder / f"{preset}-machines.csv"
    rows = [f"{path},{'ab'[index % 2]}" for index, path in enumerate(sorted(train))]
    table.write_text("file,machine\n" + "\n".join(rows) + "\n")
    return fit_fleet(train, str(table), config=config).detector("a")


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_exports_a_checked_graph_with_its_metadata(exported, preset):
    detector, _, path = exported[preset]
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    (entry,) = [prop for prop in model.metadata_props if prop.key == "aetk"]
    meta = json.loads(entry.value)
    assert meta["featurizer"] == {"name": "mel-db", "params": detector.featurizer.get_params()}
    assert meta["threshold"] == detector.threshold
    assert len(meta["calibration"]["normal_scores"]) == len(detector.calibration.normal_scores)
    assert meta["aetk_version"] == aetk.__version__ and meta["schema_version"] == 2
    assert len(meta["graph_sha256"]) == 64
    # A scorer of several views says which gave the score, in a second output; one that
    # localizes gives its localization in two more (every preset's but the classifier's).
    outputs = [output.name for output in model.graph.output]
    views = detector.scorer.views()
    assert (meta["views"] or {}).get("names") == (list(views) if preset == "default" else None)
    localizes = preset != "fleet-classifier"
    count = 4 if localizes else 2 if views else 1
    assert outputs == ["score", "winning_view", "vector_scores", "contributions"][:count]
    assert (meta["localization"] is not None) == localizes


@pytest.mark.parametrize("preset", preset_names())
def test_the_graph_scores_clips_of_any_length_as_aetk_does(exported, sounds, preset):
    detector, _, path = exported[preset]
    session = onnxruntime.InferenceSession(str(path))
    for clip in sounds[1]:
        # The detector's features: a recording faster than its training recordings is heard
        # through their band (the 48-kHz clip, for the presets that analyse above 16 kHz).
        features = detector.features(clip)
        (score,) = session.run(["score"], {"features": features.numpy()})
        (expected,) = detector.score([clip], localize=False)
        assert float(score[0]) == pytest.approx(expected.score, rel=1e-5)


def test_the_graph_scores_with_the_views_tails_as_aetk_does(sounds, tmp_path):
    """``scorer.tail_weight`` divides each view further by a factor the graph takes folded into
    its scales: the exported scores are aetk's."""
    from aetk.export.onnx import export

    train, test = sounds
    detector = aetk.fit(train, preset="default", set=["scorer.tail_weight=0.5"])
    assert detector.scorer.view_tails_.max() > 1.0
    session = onnxruntime.InferenceSession(str(export(detector, tmp_path / "tails.onnx")))
    for clip, expected in zip(test, detector.score(test, localize=False), strict=True):
        (score,) = session.run(["score"], {"features": detector.features(clip).numpy()})
        assert float(score[0]) == pytest.approx(expected.score, rel=1e-5)


def test_a_component_that_cannot_export_is_named(sounds, fresh_plugins, tmp_path):
    from aetk.errors import ConfigError
    from aetk.export.onnx import export

    class Opaque(aetk.Scorer):
        name = "opaque"

        def fit(self, model, train, validation):
            self.level_ = 1.0
            return self

        def score(self, model, clips):
            return np.array([float(clip.mean()) for clip in clips])

    host = aetk.plugins.get_host()
    host.registry["scorer"]["opaque"] = host.registry["scorer"]["knn"].__class__(Opaque, "test")
    detector = aetk.fit(sounds[0], scorer="opaque")
    with pytest.raises(ConfigError, match="scorer 'opaque' cannot be exported"):
        export(detector, tmp_path / "x.onnx")

    # A module returning outputs of no known form is refused in one line, nothing written.
    def three_outputs(self, model):
        import torch

        class Three(torch.nn.Module):
            def forward(self, vectors):
                score = vectors.mean().reshape(1)
                return score, torch.zeros(3, dtype=torch.long), vectors.flatten(1).mean(1)

        return Three()

    Opaque.export_module = three_outputs
    with pytest.raises(ConfigError, match="returns 3 outputs; aetk export reads 1"):
        export(detector, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_a_featurizer_without_a_torch_free_twin_is_refused_at_export(sounds, tmp_path):
    from aetk.errors import ConfigError
    from aetk.export.onnx import export

    detector = aetk.fit(sounds[0])
    detector.featurizer.name = "energy"  # as a plugin's featurizer would be named
    with pytest.raises(ConfigError, match="featurizer 'energy' has no torch-free twin"):
        export(detector, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_refuses_what_it_should_not_overwrite(cli, exported, tmp_path):
    _, detector_path, _ = exported["default"]
    notes = tmp_path / "notes.onnx"
    notes.write_text("not a model")
    refused = cli("export", detector_path, "-o", notes)
    assert refused.code == 2 and "exists and is not an ONNX detector aetk exported" in (
        refused.stderr
    )
    out = tmp_path / "d.onnx"
    assert cli("export", detector_path, "-o", out).code == 0
    assert cli("export", detector_path, "-o", out).code == 0  # its own kind: replaced
    # The detector also with -d, as the scoring commands take it; two of them refused.
    assert cli("export", "-d", detector_path, "-o", tmp_path / "e.onnx").code == 0
    assert (tmp_path / "e.onnx").read_bytes() == out.read_bytes()
    refused = cli("export", detector_path, "-d", tmp_path / "x.aetk", "-o", tmp_path / "f.onnx")
    assert refused.code == 2 and "two detector files" in refused.stderr
    assert not (tmp_path / "f.onnx").exists()


def test_the_runtime_environment_has_no_torch(runtime_python):
    probe = subprocess.run(
        [str(runtime_python), "-c", "import torch"], capture_output=True, text=True
    )
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    sklearn = subprocess.run([str(runtime_python), "-c", "import sklearn"], capture_output=True)
    assert sklearn.returncode != 0


@pytest.mark.parametrize("preset", preset_names())
def test_aetk_runtime_gives_aetk_scores_rows_without_torch(
    preset, exported, sounds, runtime_python, tmp_path
):
    detector, detector_path, onnx_path = exported[preset]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    # Decoded, then too short to featurize: an error row, as aetk gives it (its checks too).
    too_short = tmp_path / "too_short.wav"
    soundfile.write(too_short, np.full(160, 0.1), 16000, subtype="PCM_16")
    inputs = [*map(str, sounds[1]), str(broken), str(too_short)]
    # Enough files that both tools score them in forked processes (aetk_core.processes).
    assert len(inputs) >= processes.MIN_FILES
    script = str(Path(runtime_python).parent / "aetk-runtime")
    ran = runtime_score(runtime_python, inputs, onnx_path)
    assert ran.returncode == 1, ran.stderr  # the broken and the too-short file
    runtime_rows = [json.loads(line) for line in ran.stdout.splitlines()]
    aetk_rows = [r.as_dict() for r in aetk.Detector.load(detector_path).score(inputs)]
    assert [row["path"] for row in runtime_rows] == [row["path"] for row in aetk_rows]
    for mine, theirs in zip(runtime_rows, aetk_rows, strict=True):
        assert set(mine) == set(theirs)
        if theirs["error"]:
            assert mine["error"] == theirs["error"] and mine["score"] is None
            assert mine["warnings"] == theirs["warnings"]
            continue
        assert mine["score"] == pytest.approx(theirs["score"], rel=1e-4)
        assert mine["view"] == theirs["view"]  # which view gave the score, and when
        # When and where it departs from normal: the same events and bands as aetk's.
        assert_same_events(mine["segments"], theirs["segments"])
        assert mine["threshold"] == theirs["threshold"]
        if abs(theirs["score"] - theirs["threshold"]) > 1e-3 * abs(theirs["threshold"]):
            assert mine["anomalous"] == theirs["anomalous"]
    if preset != "fleet-classifier":  # anomalous clips hold events: the comparison says something
        assert any(row["segments"] and row["segments"][0]["bands"] for row in runtime_rows)
    # The same exit statuses and threshold options.
    clean = [*map(str, sounds[1])]
    fail = subprocess.run(
        [script, "score", *clean, "-d", str(onnx_path), "--threshold=-1e9", "--fail-on-anomaly"],
        capture_output=True,
        text=True,
    )
    assert fail.returncode == 3
    rate = subprocess.run(
        [script, "score", clean[0], "-d", str(onnx_path), "--json", "--false-alarm-rate", "0.5"],
        capture_output=True,
        text=True,
    )
    expected = detector.threshold_for(false_alarm_rate=0.5)
    assert json.loads(rate.stdout)["threshold"] == pytest.approx(expected)
    # A rate the stored scores cannot hold: the same threshold and the same warning line.
    rare = subprocess.run(
        [script, "score", clean[0], "-d", str(onnx_path), "--json", "--false-alarm-rate", "0.001"],
        capture_output=True,
        text=True,
    )
    with pytest.warns(aetk.AetkWarning) as said:
        expected = detector.threshold_for(false_alarm_rate=0.001)
    assert json.loads(rare.stdout)["threshold"] == pytest.approx(expected)
    assert rare.stderr == f"warning: {said[0].message}\n"
    bad = subprocess.run(
        [script, "score", clean[0], "-d", str(onnx_path), "--threshold", "nan"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "finite" in bad.stderr


RUNTIME_SCORES_AUDIO = """
import json, os, sys
import soundfile
from aetk_runtime.detector import load

detector = load(sys.argv[1])
for path in sys.argv[2:]:
    samples, rate = soundfile.read(path, dtype="int16", always_2d=True)
    for segment in (None, 0.25):
        in_memory = detector.score_audio(samples.T, rate, name=path, segment=segment)
        (from_file,) = detector.score(path, segment=segment)
        print(json.dumps([in_memory.as_dict(), from_file.as_dict()]))
# A file's bytes in windows, past the length decoded at once.
os.environ["AETK_MAX_SECONDS"] = "0.3"
with open(sys.argv[2], "rb") as recording:
    in_windows = detector.score_audio(recording.read(), name=sys.argv[2], segment=0.25)
print(json.dumps([in_windows.as_dict(), detector.score(sys.argv[2], segment=0.25)[0].as_dict()]))
print(json.dumps([detector.score_audio([[0.0, float("nan")] * 800], 16000).as_dict()]))
print(json.dumps([detector.calibration_summary(), detector.threshold_note()]))
print(json.dumps(refusals(detector, sys.argv[2])))
"""

REFUSALS = """
from aetk_core.errors import ConfigError


def refusals(detector, path):
    said = []
    for options in ({"segment": -1.0}, {"segment": float("nan")}, {"localize": "some"}):
        for call in (detector.score_audio, detector.score):
            try:
                call([0.0] * 1600 if call == detector.score_audio else path, **options)
                said.append(None)
            except (ConfigError, ValueError) as exc:
                said.append(f"{type(exc).__name__}: {exc}")
    return said
"""


def test_aetk_runtime_scores_audio_held_in_memory_as_its_file(exported, sounds, runtime_python):
    """``score_audio`` of aetk-runtime's Python API: the rows of the files holding the samples,
    whole and in windows; audio no file could hold is the row's error; options refused as aetk
    refuses them."""
    _, _, onnx_path = exported["default"]
    program = REFUSALS + RUNTIME_SCORES_AUDIO
    ran = subprocess.run(
        [str(runtime_python), "-c", program, str(onnx_path), *map(str, sounds[1][:3])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    *pairs, (refused,), calibration, runtime_refusals = map(json.loads, ran.stdout.splitlines())
    assert len(pairs) == 7
    for in_memory, from_file in pairs:
        assert in_memory == from_file and in_memory["error"] is None
    assert refused["score"] is None and refused["error"] == "holds NaN or infinite samples"
    # How its threshold was set, as aetk says it (the watch's start line says the same).
    detector = exported["default"][0]
    assert calibration == [detector.calibration_summary(), detector.threshold_note()]
    # A bad option is refused before any audio is read, in the same words as aetk refuses it.
    found: dict = {}
    exec(REFUSALS, found)
    aetk_refusals = found["refusals"](exported["default"][0], str(sounds[1][0]))
    assert runtime_refusals == aetk_refusals and None not in aetk_refusals
    assert (
        aetk_refusals[0]
        == "ConfigError: --segment must be a finite number of seconds ≥ 0, not -1.0"
    )
    # aetk-runtime score -: a recording on standard input, a row of its own, "-".
    script = str(Path(runtime_python).parent / "aetk-runtime")
    path = sounds[1][0]
    piped = subprocess.run(
        [script, "score", "-", "-d", str(onnx_path), "--json"],
        input=Path(path).read_bytes(),
        capture_output=True,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    (from_file,) = runtime_score(runtime_python, [str(path)], onnx_path).stdout.splitlines()
    assert json.loads(piped.stdout) == {**json.loads(from_file), "path": "-"}


RUNTIME_LOCALIZES_ANOMALIES = """
import json, os, sys
from aetk_runtime.detector import load

os.environ["AETK_WORKERS"] = "1"  # the graph's runs are counted in this process
detector, paths = load(sys.argv[1]), sys.argv[2:]
scores = sorted(result.score for result in detector.score(paths, localize=False))
between = (scores[len(scores) // 2 - 1] + scores[len(scores) // 2]) / 2
runs = []


class Counted:
    def __init__(self, session):
        self.session = session

    def run(self, *args, **kwargs):
        runs.append(1)
        return self.session.run(*args, **kwargs)


detector.session = Counted(detector.session)
alone = detector.score(paths, localize="anomalous", threshold=between)
print(json.dumps([len(runs), [row.as_dict() for row in alone]]))
everywhere = detector.score(paths, localize=True, threshold=between)
print(json.dumps([row.as_dict() for row in everywhere]))
"""


def test_aetk_runtime_localizes_the_anomalies_from_the_run_that_scores_them(
    exported, sounds, runtime_python
):
    """As aetk's table does: each file's graph runs once, and the anomalies' events and views
    are those every file gets with --json."""
    _, _, onnx_path = exported["default"]
    paths = [str(path) for path in sounds[1]]
    ran = subprocess.run(
        [str(runtime_python), "-c", RUNTIME_LOCALIZES_ANOMALIES, str(onnx_path), *paths],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    (runs, alone), everywhere = map(json.loads, ran.stdout.splitlines())
    assert runs == len(paths)
    assert 0 < sum(row["anomalous"] for row in alone) < len(paths)
    for mine, localized in zip(alone, everywhere, strict=True):
        assert mine["score"] == localized["score"]
        if mine["anomalous"]:
            assert (mine["segments"], mine["view"]) == (localized["segments"], localized["view"])
            assert mine["segments"]
        else:
            assert mine["segments"] is None


def assert_same_events(mine: list[dict] | None, theirs: list[dict] | None) -> None:
    """The same events, at the same times, naming the same bands (scores and ratios within the
    featurizers' rounding)."""
    assert (mine is None) == (theirs is None)
    assert len(mine or []) == len(theirs or [])
    for event, expected in zip(mine or [], theirs or [], strict=True):
        assert (event["start"], event["end"]) == (expected["start"], expected["end"])
        assert event["score"] == pytest.approx(expected["score"], rel=1e-4)
        edges = [(band["low_hz"], band["high_hz"]) for band in event["bands"]]
        assert edges == [(band["low_hz"], band["high_hz"]) for band in expected["bands"]]
        ratios = [band["ratio"] for band in event["bands"]]
        assert ratios == pytest.approx([band["ratio"] for band in expected["bands"]], rel=1e-2)


def test_aetk_runtime_info_says_what_aetk_info_says(exported, runtime_python, cli):
    detector, detector_path, onnx_path = exported["default"]
    script = str(Path(runtime_python).parent / "aetk-runtime")
    ran = subprocess.run([script, "info", str(onnx_path), "--json"], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    about = json.loads(ran.stdout)
    assert about["threshold"] == pytest.approx(detector.threshold)
    assert about["featurizer"]["name"] == detector.featurizer.name
    assert about["summary"]["preset"] == "default"
    assert about["summary"]["views"] == detector.views()
    printed = subprocess.run([script, "info", str(onnx_path)], capture_output=True, text=True)
    named = subprocess.run([script, "info", "-d", str(onnx_path)], capture_output=True, text=True)
    assert named.returncode == 0 and named.stdout == printed.stdout  # -d, as score takes it
    headline, *lines = printed.stdout.splitlines()
    assert headline.startswith(f"{onnx_path}: exported by aetk ")
    assert lines[-1].startswith(f"  features: {detector.featurizer.name} (sample_rate=")
    # Between them, the detector in the words aetk info uses for the .aetk file.
    _, *described = cli("info", detector_path).stdout.splitlines()
    assert lines[:-1] == described[:-2]
    assert described[-2].startswith("  components from ") and described[-1].startswith("  method: ")
    missing = subprocess.run([script, "info", "none.onnx"], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("error: none.onnx: ")
    # An export written before it carried aetk fit's summary says what it can.
    model = onnx.load(str(onnx_path))
    (entry,) = [prop for prop in model.metadata_props if prop.key == "aetk"]
    entry.value = json.dumps({k: v for k, v in json.loads(entry.value).items() if k != "summary"})
    older = onnx_path.with_name("older.onnx")
    onnx.save(model, str(older))
    said = subprocess.run([script, "info", str(older)], capture_output=True, text=True)
    assert said.returncode == 0, said.stderr
    scores = len(detector.calibration.normal_scores)
    assert said.stdout.splitlines()[1:] == [
        f"  threshold {detector.threshold:.6g} (conformal for a 10% false-alarm rate, from "
        f"{scores} held-out normal scores)",
        lines[-1],
    ]
    # The detector file itself, given to the runtime: said, with the command that exports it.
    unexported = subprocess.run(
        [script, "info", str(detector_path)], capture_output=True, text=True
    )
    assert unexported.returncode == 2
    assert unexported.stderr == (
        f"error: {detector_path}: an aetk detector file; the runtime reads its export "
        f"(aetk export {detector_path} -o {detector_path.with_suffix('.onnx')})\n"
    )


def test_aetk_runtime_stops_quietly_when_its_reader_goes(exported, sounds, runtime_python):
    _, _, onnx_path = exported["default"]
    script = str(Path(runtime_python).parent / "aetk-runtime")
    # ``| head -0``: the reader closes before the first row; the runtime is still starting.
    running = subprocess.Popen(
        [script, "score", *map(str, sounds[1]), "-d", str(onnx_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running.stdout.close()
    _, errors = running.communicate(timeout=300)
    assert running.returncode == 1
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_aetk_runtime_windows_and_refusals(exported, sounds, runtime_python, tmp_path):
    from aetk_core.results import table

    _, detector_path, onnx_path = exported["default"]
    script = str(Path(runtime_python).parent / "aetk-runtime")
    clip = str(sounds[1][-1])
    ran = subprocess.run(
        [script, "score", clip, "-d", str(onnx_path), "--segment", "0.3", "--json"],
        capture_output=True,
        text=True,
    )
    (row,) = [json.loads(line) for line in ran.stdout.splitlines()]
    # Windows shorter than the calibrated clips are warned about, as aetk score warns.
    assert "windows of 0.3 s are compared with a threshold calibrated on clips of about 0.7" in (
        ran.stderr
    )
    (local,) = aetk.Detector.load(detector_path).score([clip], segment=0.3)
    assert row["score"] == pytest.approx(local.score, rel=1e-4)
    assert [(e["start"], e["end"]) for e in row["segments"]] == [
        (e["start"], e["end"]) for e in local.segments
    ]
    assert local.segments  # the knock: windows above the threshold, in the table too
    # The view that raised it: its worst window's, in seconds of the file, as aetk gives it.
    assert local.view and row["view"] == local.view
    printed = subprocess.run(
        [script, "score", clip, "-d", str(onnx_path), "--segment", "0.3"],
        capture_output=True,
        text=True,
    )
    header, line = printed.stdout.splitlines()
    expected_header, expected_row = table([local])
    assert header.split("\t") == list(expected_header) and "events" in expected_header
    # Raised by (an event at 0.41–0.54 s, …) and the events cell (0.30–0.60 s, …).
    assert "raised by" in expected_header and line.split("\t")[4:] == list(expected_row[4:])
    # AETK_WORKERS is read as aetk reads it: a bad value is a usage error, not a traceback.
    workers = subprocess.run(
        [script, "score", clip, "-d", str(onnx_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "AETK_WORKERS": "abc"},
    )
    assert workers.returncode == 2
    assert workers.stderr == "error: AETK_WORKERS must be a positive integer, not 'abc'\n"
    # Windows too short for the featurizer: one line before any file, as aetk score says it.
    short = subprocess.run(
        [script, "score", clip, clip, "-d", str(onnx_path), "--segment", "0.01"],
        capture_output=True,
        text=True,
    )
    assert short.returncode == 2 and short.stdout == ""
    (said,) = short.stderr.splitlines()
    assert said.startswith("error: --segment 0.01: no window of that length can be scored (is")
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes(b"\x08\x07")
    refused = subprocess.run(
        [script, "score", clip, "-d", str(foreign)], capture_output=True, text=True
    )
    assert refused.returncode == 2 and refused.stderr.startswith(f"error: {foreign}")


def test_the_runtime_rows_name_the_fleet_machine_exported(
    exported, sounds, runtime_python, tmp_path
):
    from aetk.export.onnx import export

    detector, _, _ = exported["default"]
    graph = export(detector, tmp_path / "pump.onnx", machine="pump-07")
    script = str(Path(runtime_python).parent / "aetk-runtime")
    ran = subprocess.run(
        [script, "score", str(sounds[1][0]), "-d", str(graph), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["machine"] == "pump-07"


def test_the_runtime_hears_a_faster_recording_through_the_training_band(
    sounds, runtime_python, tmp_path
):
    """A detector of 8-kHz recordings (analysed at 16 kHz) hears a 16-kHz recording through
    the training recordings' band in the runtime too: the same score as aetk's."""
    import soundfile
    from scipy.signal import resample_poly

    from aetk.export.onnx import export

    train, tests = sounds
    phones = tmp_path / "phones"
    phones.mkdir()
    for path in train:
        samples, rate = soundfile.read(path, dtype="float32")
        soundfile.write(phones / path.name, resample_poly(samples, 1, rate // 8000), 8000)
    detector = aetk.fit(phones)
    assert detector.recording_norms().band_rate == 8000
    onnx_path = export(detector, tmp_path / "phones.onnx")
    wide = [str(path) for path in tests[:2]]  # 16-kHz recordings
    ran = runtime_score(runtime_python, wide, onnx_path)
    assert ran.returncode in (0, 1), ran.stderr
    runtime_scores = [json.loads(line)["score"] for line in ran.stdout.splitlines()]
    aetk_scores = [row.score for row in detector.score(wide)]
    assert runtime_scores == pytest.approx(aetk_scores, rel=1e-4)
    assert max(aetk_scores) < 100  # heard through the band: no unheard upper bands


def test_the_runtime_names_the_recordings_that_do_not_match_as_aetk_does(
    chain, runtime_python, tmp_path
):
    """Every recording check (and the machine check by name) gives the runtime's rows aetk's
    warnings and events, the table a ``recording`` column and stderr a line; ``--strict``
    refuses them.
    A detector exported before the training recordings were carried is not checked (null)."""
    from aetk_core.recording import NAMES

    from aetk.export.onnx import export

    detector, _, tests = chain
    onnx_path = export(detector, tmp_path / "chain.onnx")
    recordings = sorted(str(path) for path in tests.iterdir())
    ran = runtime_score(runtime_python, recordings, onnx_path)
    assert ran.returncode == 0, ran.stderr
    rows = rows_by_path([json.loads(line) for line in ran.stdout.splitlines()])
    for local in detector.score(recordings):
        assert rows[local.path]["warnings"] == local.warnings, local.path
        assert_same_events(rows[local.path]["segments"], local.segments)
    # Localized as aetk localizes: a recording sampled at 8 kHz names no band above 4 kHz.
    limited = rows[str(tests / "band-limit.wav")]["segments"]
    bands = [band["high_hz"] for event in limited for band in event["bands"]]
    assert bands and max(bands) <= 4000
    named = {name for row in rows.values() for name in (w["name"] for w in row["warnings"])}
    assert named == set(NAMES)  # the fixture holds a recording for every check
    assert rows[str(tests / "clean.wav")]["warnings"] == []
    assert "its sound ends near" in rows[str(tests / "low-passed.wav")]["warnings"][0]["message"]
    assert f"warning: {tests / 'dropout.wav'}: dropout: 0.1 s of digital silence" in ran.stderr
    (long,) = rows[str(tests / "duration-long.wav")]["warnings"]
    assert long["name"] == "duration" and "more than twice" in long["message"]

    script = str(Path(runtime_python).parent / "aetk-runtime")
    table = subprocess.run(
        [script, "score", *recordings, "-d", str(onnx_path)], capture_output=True, text=True
    )
    # aetk's table of the JSON rows, each anomaly localized (which view raised it, its events)
    # and the normal rows not: the runtime localizes the anomalies alone for its table too.
    shown = [
        ScoreResult(**{**row, **({} if row["anomalous"] else {"segments": None, "view": None})})
        for row in (rows[path] for path in recordings)
    ]
    assert table.stdout.splitlines() == ["\t".join(cells) for cells in results_table(shown)]
    assert "recording" in table.stdout.splitlines()[0]
    assert any(row.anomalous and row.segments for row in shown)
    strict = subprocess.run(
        [script, "score", *recordings, "-d", str(onnx_path), "--strict", "--json"],
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 1
    refused = [json.loads(line) for line in strict.stdout.splitlines()]
    assert [row["error"] is None for row in refused] == [
        path.endswith("clean.wav") for path in recordings
    ]
    assert "(--strict): gain:" in rows_by_path(refused)[str(tests / "gain.wav")]["error"]

    model = onnx.load(onnx_path)
    for prop in model.metadata_props:
        if prop.key == "aetk":
            meta = json.loads(prop.value)
            del meta["recordings"], meta["machines"]
            prop.value = json.dumps(meta)
    older = tmp_path / "older.onnx"
    onnx.save(model, older)
    unchecked = runtime_score(runtime_python, recordings, older)
    assert unchecked.returncode == 0, unchecked.stderr
    assert all(json.loads(line)["warnings"] is None for line in unchecked.stdout.splitlines())


def rows_by_path(rows: list[dict]) -> dict[str, dict]:
    return {row["path"]: row for row in rows}


#: A plugin's featurizer (torch) and its torch-free twin (numpy), in separate modules.
QUARTER_ENERGY = """
    import aetk

    class QuarterEnergy(aetk.Featurizer):
        '''Log energy of each quarter of each frame of ``frame`` samples (mono).'''
        name = "quarter-energy"

        def __init__(self, frame=512):
            self.frame = frame

        def featurize(self, waveform, sample_rate):
            mono = waveform.mean(0)
            usable = mono.shape[-1] // self.frame * self.frame
            if usable == 0:
                raise aetk.AudioError("is shorter than one frame")
            quarters = mono[:usable].reshape(-1, 4, self.frame // 4)
            return quarters.square().mean(-1).log1p()

    @aetk.hookimpl
    def register_featurizers(register):
        register(QuarterEnergy)
"""
QUARTER_ENERGY_TWIN = """
    import numpy as np
    from aetk_core.errors import AudioError

    class QuarterEnergy:
        name = "quarter-energy"

        def __init__(self, params):
            self.frame = int(params.get("frame", 512))

        def frames_to_read(self, rate):
            return None

        def featurize(self, samples, rate):
            mono = samples.mean(0)
            usable = mono.shape[-1] // self.frame * self.frame
            if usable == 0:
                raise AudioError("is shorter than one frame")
            quarters = mono[:usable].reshape(-1, 4, self.frame // 4)
            return np.log1p(np.square(quarters).mean(-1)).astype(np.float32) * SCALE

    SCALE = 1.0
"""


def test_a_plugin_featurizer_with_a_torch_free_twin_exports_and_runs_without_torch(
    sounds, runtime_python, tmp_path, monkeypatch, fresh_plugins
):
    """A plugin distribution names its featurizer's numpy twin under the entry-point group
    ``aetk_core.featurizers``: the contract kit compares the two, ``aetk export`` accepts the
    featurizer, and aetk-runtime (no torch, no aetk) scores with the twin as aetk scores."""
    import sys
    import textwrap

    from aetk.export.onnx import export
    from aetk.testing import check_featurizer_twin_matches

    site = make_distribution(
        tmp_path / "site",
        "aetk-quarter-energy",
        QUARTER_ENERGY,
        {"quarter-energy": "aetk_quarter_energy"},
        twins={"quarter-energy": "quarter_energy_twin:QuarterEnergy"},
    )
    twin_module = site / "quarter_energy_twin.py"
    twin_module.write_text(textwrap.dedent(QUARTER_ENERGY_TWIN))
    monkeypatch.syspath_prepend(str(site))
    featurizer = fresh_plugins.get_host().create("featurizer", "quarter-energy", {"frame": 256})
    check_featurizer_twin_matches(featurizer)

    detector = aetk.fit(sounds[0], featurizer="quarter-energy", set=["featurizer.frame=256"])
    onnx_path = export(detector, tmp_path / "energy.onnx")
    recordings = [str(path) for path in sounds[1]]
    script = str(Path(runtime_python).parent / "aetk-runtime")

    def runtime_rows() -> subprocess.CompletedProcess:
        return subprocess.run(
            [script, "score", *recordings, "-d", str(onnx_path), "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": str(site)},
        )

    ran = runtime_rows()
    assert ran.returncode == 0, ran.stderr
    runtime_scores = [json.loads(line)["score"] for line in ran.stdout.splitlines()]
    assert runtime_scores == pytest.approx([r.score for r in detector.score(recordings)], rel=1e-4)

    # A twin that fails on one recording (a bug of its own) costs that recording alone.
    failing = textwrap.dedent(QUARTER_ENERGY_TWIN).replace(
        "    def featurize(self, samples, rate):\n",
        "    def featurize(self, samples, rate):\n"
        "        if next(CALLS) == 1:\n"
        "            raise ValueError('a bug of its own')\n",
    )
    twin_module.write_text(failing + "import itertools\nCALLS = itertools.count()\n")
    ran = runtime_rows()
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stderr
    errors = [json.loads(line)["error"] for line in ran.stdout.splitlines()]
    assert sorted(errors, key=str) == sorted(
        [None] * (len(recordings) - 1)
        + ["the featurizer 'quarter-energy' raised ValueError: a bug of its own"],
        key=str,
    )

    # A twin that hears otherwise is caught by the contract kit.
    twin_module.write_text(textwrap.dedent(QUARTER_ENERGY_TWIN).replace("= 1.0", "= 1.01"))
    sys.modules.pop("quarter_energy_twin", None)
    with pytest.raises(AssertionError, match="mono: the torch-free twin differs by up to"):
        check_featurizer_twin_matches(featurizer)
    sys.modules.pop("quarter_energy_twin", None)


def test_an_opset_the_exporter_cannot_write_is_refused_not_replaced(exported, tmp_path):
    """The exporter falls back to an opset of its own where it cannot convert the graph: asked
    for 99 (or 17, below what it writes) it had written opset 18 and said nothing."""
    from aetk.export.onnx import export

    detector, _, _ = exported["default"]
    for opset in (17, 99):
        with pytest.raises(aetk.ConfigError, match=f"--opset {opset}: .*would write opset 18"):
            export(detector, tmp_path / "d.onnx", opset=opset)
    assert not (tmp_path / "d.onnx").exists()
    written = onnx.load(export(detector, tmp_path / "d.onnx", opset=21))
    assert [entry.version for entry in written.opset_import if entry.domain == ""] == [21]
