"""Presets, config files, --set and flags combine into one validated configuration."""

from __future__ import annotations

import pytest

import aetk
from aetk.fitting.config import (
    DEFAULT_PRESET,
    at_recordings_rate,
    load_preset,
    parse_assignment,
    preset_names,
    resolve_config,
)


def test_presets_ship_with_the_package():
    assert {"seed", "dcase", DEFAULT_PRESET} <= set(preset_names())
    for name in preset_names():
        preset = load_preset(name)
        assert preset["description"]
        assert {"featurizer", "model", "scorer", "training"} <= set(preset)


# A fixed rate either upsamples (empty bands, more frames for nothing) or drops the upper band
# of a machine recorded faster (docs/quality.md: the lathe's autoencoder 0.972 → 0.986).
@pytest.mark.parametrize("preset", ["default", "transient", "autoencoder"])
@pytest.mark.parametrize(
    "rates, expected",
    [
        ({16000: 30}, (16000, 1024, 512)),
        ({44100: 236, 48000: 164}, (44100, 2048, 1024)),  # the lowest: no band empty in any
        ({48000: 2}, (48000, 2048, 1024)),  # 43 ms frames: no longer than 1,024 at 16 kHz
        ({22050: 1}, (22050, 1024, 512)),
        ({96000: 1}, (96000, 4096, 2048)),
        ({16000: 1, 48000: 9}, (16000, 1024, 512)),
        ({8000: 5}, (16000, 1024, 512)),  # never below 16 kHz: as before, silent upper bands
        ({47999: 4, 48000: 1}, (44100, 2048, 1024)),  # a standard rate: small resampling kernels
        ({50000: 2}, (48000, 2048, 1024)),
    ],
)
def test_presets_analyse_at_the_training_recordings_own_rate(preset, rates, expected):
    config = at_recordings_rate(resolve_config(preset=preset), rates)
    params = config.featurizer.params
    assert (params["sample_rate"], params["n_fft"], params["hop_length"]) == expected
    # The preset itself is not changed by resolving it.
    assert resolve_config(preset=preset).featurizer.params["sample_rate"] == "recordings"


def test_recordings_rate_scales_a_fixed_length_and_leaves_fixed_rates_alone():
    assignments = ["featurizer.sample_rate=recordings", "featurizer.target_length=16000"]
    config = at_recordings_rate(resolve_config(assignments=assignments), {44100: 1})
    assert config.featurizer.params["target_length"] == 44100  # one second at either rate
    fixed = resolve_config(assignments=["featurizer.sample_rate=16000"])
    assert at_recordings_rate(fixed, {48000: 3}) is fixed


def test_seed_preset_is_the_text_exactly():
    config = resolve_config(preset="seed")
    assert config.featurizer.name == "mel-db"
    assert config.featurizer.params == {
        "sample_rate": 16000,
        "channels": 2,
        "target_length": 100000,
        "n_fft": 1024,
        "hop_length": 256,
        "n_mels": 32,
        "top_db": 80.0,
        "frames": 0,
    }
    assert config.model.name == "improved-ae"
    assert config.model.params == {"hidden": [8224, 2056, 1024, 512], "bottleneck": 256}
    assert (config.training.epochs, config.training.batch_size, config.training.lr) == (
        20,
        25,
        1e-3,
    )


def test_dcase_preset_is_the_field_baseline():
    config = resolve_config(preset="dcase")
    assert config.featurizer.params["n_mels"] * config.featurizer.params["frames"] == 640
    assert config.featurizer.params["hop_length"] == 512
    assert config.model.params == {"hidden": [128, 128, 128, 128], "bottleneck": 8}
    assert config.training.batch_size == 256


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model.hidden=[64, 32]", ("model", "hidden", [64, 32])),
        ("training.lr=0.01", ("training", "lr", 0.01)),
        ("featurizer.channels=mono", ("featurizer", "channels", "mono")),
        ("featurizer.channels=2", ("featurizer", "channels", 2)),
        ("scorer.threshold_method='quantile'", ("scorer", "threshold_method", "quantile")),
    ],
)
def test_parse_assignment(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["model", "model=3", "nowhere.x=1", ".x=1"])
def test_bad_assignments_are_config_errors(text):
    with pytest.raises(aetk.ConfigError):
        parse_assignment(text)


def test_layers_override_in_order(tmp_path):
    config_file = tmp_path / "c.toml"
    config_file.write_text('preset = "dcase"\n[model]\nbottleneck = 16\n[training]\nepochs = 7\n')
    config = resolve_config(
        config_file=config_file, assignments=["training.epochs=5"], training={"lr": 0.01}
    )
    assert config.preset == "dcase"
    assert config.model.params["bottleneck"] == 16
    assert config.training.epochs == 5
    assert config.training.lr == 0.01


def test_switching_model_keeps_the_preset_parameters_it_accepts():
    config = resolve_config(preset="dcase", model="baseline-ae")
    assert config.model.name == "baseline-ae"
    assert config.model.params == {"hidden": [128, 128, 128, 128], "bottleneck": 8}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"preset": "nope"}, "unknown preset 'nope'"),
        ({"model": "nope"}, "unknown model 'nope' .*improved-ae"),
        ({"assignments": ["training.epoch=3"]}, "unknown training setting 'epoch'"),
        ({"assignments": ["training.epochs=0"]}, "epochs must be an integer"),
        ({"assignments": ["training.device='tpu'"]}, "device must be one of"),
        ({"assignments": ["training.val_fraction=1.5"]}, "val_fraction"),
    ],
)
def test_invalid_configuration_is_a_clear_error(kwargs, message):
    with pytest.raises(aetk.ConfigError, match=message):
        resolve_config(**kwargs)


def test_unknown_component_parameter_lists_the_known_ones(machine_sounds):
    with pytest.raises(aetk.ConfigError, match="model 'improved-ae' has no parameter 'bottlenek'"):
        aetk.fit(machine_sounds["train"], preset="autoencoder", set=["model.bottlenek=3"])


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    with pytest.raises(aetk.ConfigError, match="not valid TOML"):
        resolve_config(config_file=bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[modle]\nx = 1\n")
    with pytest.raises(aetk.ConfigError, match="unknown section 'modle'"):
        resolve_config(config_file=unknown)
    with pytest.raises(aetk.ConfigError, match="cannot read config file"):
        resolve_config(config_file=tmp_path / "missing.toml")
