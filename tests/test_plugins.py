"""The plugin system: every hook, third-party plugins found through entry points, broken plugins."""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pytest
from conftest import TINY, TINY_ARGS, make_distribution, run_aetk, write_wav

import aetk
from aetk.plugin.host import PluginHost

_counter = itertools.count()

SCORER_PLUGIN = """
    import numpy as np
    import aetk

    class Loudest(aetk.Scorer):
        '''Score = the largest standardised feature value of the clip.'''
        name = "loudest"

        def __init__(self, margin=0.0):
            self.margin = margin

        def fit(self, model, train, validation):
            self.typical_ = float(np.median(self._scores(train))) + self.margin
            return self

        def score(self, model, clips):
            self.check_fitted()
            return self._scores(clips) - self.typical_

        def _scores(self, clips):
            return np.array([float(clip.max()) for clip in clips])

    @aetk.hookimpl
    def register_scorers(register):
        register(Loudest)
"""


@pytest.fixture
def install(tmp_path, monkeypatch, fresh_plugins):
    """Install a throw-away plugin distribution on sys.path; returns its module name."""

    def _install(source: str, name: str | None = None) -> str:
        name = name or f"aetk-test-plugin-{next(_counter)}"
        site = tmp_path / f"site-{name}"
        make_distribution(site, name, source, {name: name.replace("-", "_")})
        monkeypatch.syspath_prepend(str(site))
        return name

    yield _install
    for module in [m for m in sys.modules if m.startswith("aetk_test_plugin")]:
        del sys.modules[module]


def test_hook_register_featurizers(install):
    name = install("""
        import aetk, torch

        class Energy(aetk.Featurizer):
            name = "energy"
            def __init__(self, frame=400):
                self.frame = frame
            def featurize(self, waveform, sample_rate):
                usable = waveform.shape[-1] // self.frame * self.frame
                frames = waveform[:, :usable].reshape(waveform.shape[0], -1, self.frame)
                return frames.square().mean(-1).log1p().T.reshape(-1, 1, 1).repeat(1, 1, 4)

        @aetk.hookimpl
        def register_featurizers(register):
            register(Energy)
    """)
    host = aetk.plugin.host.get_host()
    assert host.registration("featurizer", "mel-db").plugin == "mel-db"
    assert host.registration("featurizer", "energy").plugin == name
    featurizer = host.create("featurizer", "energy", {"frame": 100})
    assert featurizer.get_params() == {"frame": 100}


def test_hook_register_models():
    host = aetk.plugin.host.get_host()
    assert {"baseline-ae", "improved-ae"} <= set(host.registry["model"])
    assert host.registration("model", "improved-ae").plugin == "autoencoders"


def test_hook_register_scorers(install, machine_sounds):
    name = install(SCORER_PLUGIN)
    host = aetk.plugin.host.get_host()
    assert host.registration("scorer", "mse").plugin == "mse"
    assert host.registration("scorer", "loudest").plugin == name
    detector = aetk.fit(machine_sounds["train"][0].parent, scorer="loudest", **TINY)
    assert detector.scorer.name == "loudest"
    assert detector.threshold > 0
    results = detector.score(machine_sounds["test"])
    assert all(result.error is None for result in results)


def test_hook_register_commands(install, cli):
    install("""
        import aetk, typer

        @aetk.hookimpl
        def register_commands(app):
            @app.command()
            def hello(name: str = "machine"):
                '''Say hello.'''
                print(f"hello {name}")
    """)
    result = cli("hello", "--name", "fan")
    assert result.code == 0
    assert result.stdout.strip() == "hello fan"
    assert "hello" in cli("--help").stdout
    listed = {record["name"]: record for record in json.loads(cli("plugins", "--json").stdout)}
    (plugin,) = [record for record in listed.values() if record["commands"]]
    assert plugin["commands"] == ["hello"] and "command: hello" in cli("plugins").stdout


def test_hook_register_watch_sources(install, cli, fitted):
    name = install("""
        import numpy as np
        import aetk

        def open_tone(address, rate, channels, stopping):
            seconds, frequency = (float(part) for part in address.split(","))
            rate = rate or 16000
            time = np.arange(int(seconds * rate)) / rate
            tone = (0.1 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)
            form = aetk.StreamFormat(rate, 1, "float32", 1.0)
            return form, iter([tone[None, start : start + rate // 10]
                               for start in range(0, len(tone), rate // 10)])

        @aetk.hookimpl
        def register_watch_sources(register):
            register("tone", open_tone)
    """)
    _, detector = fitted
    ran = cli("watch", "tone:2.0,440", "-d", detector, "--json", "--window", "0.5")
    assert ran.code == 0, ran.stderr
    scored = [event for event in ran.json_lines() if event["event"] == "scored"]
    assert len(scored) == 7  # 0.5-s windows every 0.25 s over 2 s
    listed = {record["name"]: record for record in json.loads(cli("plugins", "--json").stdout)}
    assert listed[name]["components"]["watch_source"] == ["tone"]
    # The built-in input-device source comes through the same hook.
    assert listed["microphone"]["components"]["watch_source"] == ["mic"]


def test_a_watch_source_scheme_already_taken_is_refused(install):
    name = install("""
        import aetk

        @aetk.hookimpl
        def register_watch_sources(register):
            register("mic", lambda address, rate, channels, stopping: None)
    """)
    with pytest.warns(aetk.AetkWarning, match=rf"plugin '{name}' registered watch source 'mic'"):
        host = aetk.plugin.host.get_host()
    assert host.watch_sources["mic"][1] == "microphone"


def test_third_party_detector_round_trip_names_missing_plugin(install, machine_sounds, tmp_path):
    name = install(SCORER_PLUGIN)
    detector = aetk.fit(machine_sounds["train"][0].parent, scorer="loudest", **TINY)
    path = detector.save(tmp_path / "d.aetk")
    expected = [r.score for r in detector.score(machine_sounds["test"])]
    assert [r.score for r in aetk.Detector.load(path).score(machine_sounds["test"])] == expected
    # Without the plugin, loading names the plugin to install.
    aetk.plugin.host.set_host(PluginHost(only=[]))
    with pytest.raises(aetk.MissingPluginError, match=f"scorer 'loudest' from plugin '{name}'"):
        aetk.Detector.load(path)


def test_info_says_what_it_can_of_a_detector_whose_plugin_is_missing(
    install, machine_sounds, tmp_path, cli
):
    name = install(SCORER_PLUGIN)
    detector = aetk.fit(machine_sounds["train"][0].parent, scorer="loudest", **TINY)
    path = detector.save(tmp_path / "d.aetk")
    aetk.plugin.host.set_host(PluginHost(only=[]))
    described = cli("info", path)
    # Who wrote it and which plugins fitted it come from the file itself; then the error.
    assert described.code == 2
    assert f"written by aetk {aetk.__version__}" in described.stdout
    assert f"scorer loudest: {name}" in described.stdout
    assert described.stderr.strip().startswith("error: ")
    assert f"pip install {name}" in described.stderr
    as_json = json.loads(cli("info", path, "--json").stdout)
    assert as_json["plugins"]["scorer"] == {
        "name": "loudest",
        "plugin": name,
        "distribution": name,
        "version": "1.0",
    }
    assert as_json["aetk_version"] == aetk.__version__ and as_json["schema_version"] == 2
    assert f"scorer 'loudest' from plugin '{name}'" in as_json["error"]


def test_plugin_that_fails_to_import_warns_and_the_rest_work(install):
    name = install("import no_such_module_anywhere\n")
    with pytest.warns(aetk.AetkWarning, match=rf"plugin '{name}' failed to import: .*no_such"):
        host = aetk.plugin.host.get_host()
    assert "mel-db" in host.registry["featurizer"]
    assert host.plugins[name].error


def test_plugin_that_raises_in_a_hook_warns(install):
    name = install("""
        import aetk
        @aetk.hookimpl
        def register_models(register):
            raise RuntimeError("boom")
    """)
    with pytest.warns(
        aetk.AetkWarning, match=rf"plugin '{name}' raised in register_models: .*boom"
    ):
        host = aetk.plugin.host.get_host()
    assert "improved-ae" in host.registry["model"]


def test_invalid_component_is_refused_with_a_warning(install):
    name = install("""
        import aetk
        class NotAModel:
            name = "fake"
        class NoName(aetk.Scorer):
            pass
        @aetk.hookimpl
        def register_models(register):
            register(NotAModel)
        @aetk.hookimpl
        def register_scorers(register):
            register(NoName)
    """)
    with pytest.warns(aetk.AetkWarning) as caught:
        host = aetk.plugin.host.get_host()
    messages = [str(w.message) for w in caught]
    assert any(f"plugin '{name}' registered an invalid model" in m for m in messages)
    assert any("NoName has no name" in m for m in messages)
    assert "fake" not in host.registry["model"]


def test_duplicate_component_name_names_both_plugins(install):
    name = install("""
        import aetk
        class Other(aetk.Scorer):
            name = "mse"
        @aetk.hookimpl
        def register_scorers(register):
            register(Other)
    """)
    with pytest.warns(aetk.AetkWarning, match=rf"plugin '{name}' registered scorer 'mse', .*'mse'"):
        host = aetk.plugin.host.get_host()
    assert host.registration("scorer", "mse").plugin == "mse"


@pytest.mark.parametrize(
    "source",
    [
        "import no_such_module_anywhere\n",
        "import aetk\n@aetk.hookimpl\ndef register_models(register):\n    raise ValueError('x')\n",
        "import aetk\n@aetk.hookimpl\ndef register_scorers(register):\n    register(object)\n",
    ],
    ids=["import", "raises", "invalid"],
)
def test_strict_mode_turns_plugin_problems_into_errors(install, monkeypatch, source):
    name = install(source)
    monkeypatch.setenv("AETK_STRICT_PLUGINS", "1")
    with pytest.raises(aetk.PluginError, match=f"plugin '{name}'"):
        aetk.plugin.host.get_host()


def test_misspelled_hook_is_an_error(install):
    name = install("""
        import aetk
        @aetk.hookimpl
        def register_scorer(register):
            pass
    """)
    with pytest.raises(aetk.PluginError, match=rf"'{name}'.*'register_scorer'.*'register_scorers'"):
        aetk.plugin.host.get_host()


def test_load_plugins_env_restricts_third_party_plugins(install, monkeypatch):
    install(SCORER_PLUGIN)
    monkeypatch.setenv("AETK_LOAD_PLUGINS", "")
    host = aetk.plugin.host.get_host()
    assert "loudest" not in host.registry["scorer"]
    assert {"mel-db", "autoencoders", "mse"} <= set(host.plugins)


def test_plugins_load_once(fresh_plugins):
    first = fresh_plugins.get_host()
    assert fresh_plugins.get_host() is first
    plugin = first.manager.get_plugin("mse")
    first.load()
    assert first.manager.get_plugin("mse") is plugin


def test_trace_logs_hook_calls(fresh_plugins, capsys, monkeypatch):
    monkeypatch.setenv("AETK_TRACE_PLUGINS", "1")
    fresh_plugins.get_host()
    err = capsys.readouterr().err
    assert "aetk: trace: mse.register_scorers(register=" in err
    assert "aetk: trace: mse registered scorer 'mse'" in err


def test_plugins_command_lists_builtins_with_distribution(cli):
    result = cli("plugins", "--json")
    assert result.code == 0
    records = {record["name"]: record for record in json.loads(result.stdout)}
    assert records["mel-db"]["distribution"] == "aetk"
    assert records["mel-db"]["version"] == aetk.__version__
    assert records["mel-db"]["hooks"] == ["register_featurizers"]
    assert records["autoencoders"]["components"] == {
        "model": ["baseline-ae", "improved-ae", "conditioned-ae"]
    }
    assert records["mse"]["builtin"] is True


def test_builtins_are_registered_through_entry_points():
    from importlib import metadata

    entry_points = {ep.name: ep.value for ep in metadata.entry_points(group="aetk")}
    assert entry_points["mel-db"] == "aetk_builtins.mel_db"
    assert entry_points["autoencoders"] == "aetk_builtins.autoencoders"
    assert entry_points["mse"] == "aetk_builtins.mse"


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["plugins", "--json"]])
def test_help_and_plugins_do_not_import_torch(args):
    code = (
        "import sys; from aetk.cli import run; code = run(sys.argv[1:]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(code)"
    )
    import subprocess

    completed = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


def test_cli_reports_plugin_problem_in_one_line(tmp_path):
    site = make_distribution(
        tmp_path, "aetk-broken", "import no_such_module_anywhere\n", {"broken": "aetk_broken"}
    )
    result = run_aetk("plugins", env={"PYTHONPATH": str(site)})
    assert result.code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: plugin 'broken' failed to import: ModuleNotFoundError: "
        "No module named 'no_such_module_anywhere'"
    ]
    strict = run_aetk("plugins", env={"PYTHONPATH": str(site), "AETK_STRICT_PLUGINS": "1"})
    assert strict.code == 2
    assert strict.stderr.strip().splitlines() == [
        "error: plugin 'broken' failed to import: ModuleNotFoundError: "
        "No module named 'no_such_module_anywhere'"
    ]


#: A featurizer with a bug of its own on recordings under a second, and a model whose network
#: cannot be built: what a third party's code does wrong is named, not a traceback.
FAULTY_PLUGIN = """
    import aetk

    class Fussy(aetk.Featurizer):
        '''Log energy of 400-sample frames, as 4 equal numbers.'''
        name = "fussy"

        def featurize(self, waveform, sample_rate):
            if waveform.shape[-1] < sample_rate:
                raise ValueError("this recording is too short for me")
            mono = waveform.mean(0)
            frames = mono[: mono.shape[-1] // 400 * 400].reshape(-1, 1, 400)
            return frames.square().mean(-1, keepdim=True).log1p().repeat(1, 1, 4)

    class Brittle(aetk.Model):
        '''An autoencoder whose network cannot be built.'''
        name = "brittle"

        def __init__(self, hidden=(16,), bottleneck=4):
            self.hidden = hidden
            self.bottleneck = bottleneck

        def build(self, input_shape):
            raise RuntimeError("no room for the network")

    @aetk.hookimpl
    def register_featurizers(register):
        register(Fussy)

    @aetk.hookimpl
    def register_models(register):
        register(Brittle)
"""


def faulty_recordings(folder):
    """Six 1.2-s recordings of a hum and one of 0.6 s (which the fussy featurizer fails on)."""
    rng = np.random.default_rng(0)
    time = np.arange(int(1.2 * 16000)) / 16000
    for index in range(6):
        hum = 0.3 * np.sin(2 * np.pi * 120 * time) + 0.01 * rng.standard_normal(time.size)
        write_wav(folder / f"hum_{index}.wav", hum.astype(np.float32))
    return write_wav(folder / "short.wav", hum[: hum.size // 2].astype(np.float32))


def test_a_featurizer_that_raises_on_one_recording_costs_that_recording_alone(
    install, cli, tmp_path
):
    install(FAULTY_PLUGIN)
    short = faulty_recordings(tmp_path / "normal")
    reason = "the featurizer 'fussy' raised ValueError: this recording is too short for me"
    fitted = cli("fit", tmp_path / "normal", "-o", tmp_path / "d.aetk", "--featurizer", "fussy")
    assert fitted.code == 0, fitted.stderr
    assert f"warning: skipped {short}: {reason}" in fitted.stderr.splitlines()
    scored = cli("score", tmp_path / "normal", "-d", tmp_path / "d.aetk", "--json")
    assert scored.code == 1 and "Traceback" not in scored.stderr
    rows = {row["path"]: row for row in map(json.loads, scored.stdout.splitlines())}
    assert rows.pop(str(short))["error"] == reason
    assert len(rows) == 6 and all(row["score"] is not None for row in rows.values())


def test_a_plugin_component_that_raises_is_named_in_one_line(install, cli, tmp_path, monkeypatch):
    name = install(FAULTY_PLUGIN)
    faulty_recordings(tmp_path / "normal")
    args = ["fit", tmp_path / "normal", "-o", tmp_path / "d.aetk", *TINY_ARGS, "--model", "brittle"]
    result = cli(*args)
    assert result.code == 2
    line = 1 + FAULTY_PLUGIN.splitlines().index(
        '            raise RuntimeError("no room for the network")'
    )
    module = name.replace("-", "_")
    assert result.stderr.splitlines()[-1] == (
        f"error: plugin '{name}' ({name} 1.0) raised RuntimeError in build ({module}.py, line "
        f"{line}): no room for the network (AETK_TRACE_PLUGINS=1 shows the traceback)"
    )
    assert not (tmp_path / "d.aetk").exists()
    monkeypatch.setenv("AETK_TRACE_PLUGINS", "1")
    aetk.plugin.host.set_host(None)
    with pytest.raises(RuntimeError, match="no room for the network"):
        cli(*args)


def test_an_error_of_aetk_itself_keeps_its_traceback(install, cli, tmp_path, monkeypatch):
    """Only a plugin's code is blamed in one line: aetk's own fault is a bug to report whole."""
    install(FAULTY_PLUGIN)
    faulty_recordings(tmp_path / "normal")
    from aetk.fitting import stages

    def broken(*args, **kwargs):
        raise RuntimeError("a bug of aetk's")

    monkeypatch.setattr(stages, "train_model", broken)
    with pytest.raises(RuntimeError, match="a bug of aetk's"):
        cli("fit", tmp_path / "normal", "-o", tmp_path / "d.aetk", *TINY_ARGS)


@pytest.mark.parametrize(
    ("value", "refused"),
    [(float("nan"), True), (float("inf"), True), (-float("inf"), True), (3e38, False)],
    ids=["nan", "inf", "-inf", "huge-but-finite"],
)
def test_a_featurizer_yielding_non_finite_features_is_named_for_that_file(value, refused):
    """One non-finite element among finite features is refused for its file; features that
    are only large are not (their sum may not overflow into a false refusal)."""
    import torch

    from aetk.data.audio import Audio
    from aetk.data.features import featurize_audio

    class Spiky:
        name = "spiky"

        def featurize(self, waveform, sample_rate):
            features = torch.full((50, 8), 3e38)
            features[7, 3] = value
            return features

    audio = Audio(np.zeros((1, 1600), dtype=np.float32), 16000)
    if refused:
        with pytest.raises(aetk.AudioError, match=r"x\.wav: yields NaN or infinite features"):
            featurize_audio(Spiky(), audio, "x.wav")
    else:
        assert torch.equal(featurize_audio(Spiky(), audio, "x.wav"), torch.full((50, 8), 3e38))
