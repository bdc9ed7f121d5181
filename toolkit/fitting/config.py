"""Fit configuration: a preset, overridden by a TOML file, ``--set`` assignments and flags.

A preset is a TOML file with the sections ``[featurizer]``, ``[model]``, ``[scorer]`` (each a
``name`` plus that component's parameters), ``[threshold]`` and ``[training]``. Later layers win.
When a layer chooses another component than the preset, the preset's parameters carry over only
where the new component accepts them; parameters the user sets explicitly must all be accepted.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any

from aetk.detect.calibration import ThresholdConfig
from aetk.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PRESET = "default"
COMPONENT_SECTIONS = ("featurizer", "model", "scorer")
SECTIONS = (*COMPONENT_SECTIONS, "threshold", "training")

#: ``featurizer.sample_rate = "recordings"``: analyse at the training recordings' own rate
#: (:func:`at_recordings_rate`).
RECORDINGS_RATE = "recordings"
#: The lowest rate ``"recordings"`` analyses at, and the rate at which the featurizer's lengths
#: in samples (``n_fft``, ``hop_length``, ``target_length``) are given alongside it.
BASE_RATE = 16000
#: The rates ``"recordings"`` analyses at: resampling between any two of them takes a small
#: kernel, where an odd rate (47,999 Hz from a drifting clock) would make it enormous.
STANDARD_RATES = (16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000)


DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32", "bf16")


@dataclass
class TrainingConfig:
    """How a detector is trained; the ``[training]`` section of a preset."""

    epochs: int = 20
    batch_size: int = 25
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 42
    #: Fraction of the normal files held out (by file) for early stopping and the threshold.
    val_fraction: float = 0.2
    device: str = "auto"
    #: Feature standardisation: "per-feature", "global" or "none".
    normalize: str = "per-feature"
    #: Cut recordings into clips of this many seconds (0: each file is one clip). The detector
    #: scores new recordings in windows of the same length.
    segment_seconds: float = 0.0
    #: "auto" (bf16 autocast on a CUDA GPU that supports it, float32 elsewhere), "float32", "bf16".
    precision: str = "auto"
    #: Compile the network with torch.compile for training (pays a compile time up front).
    compile: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {field.name: field.type for field in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown training setting {', '.join(map(repr, unknown))} "
                f"(settings: {', '.join(known)})"
            )
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs must be an integer ≥ 1"),
            (
                isinstance(self.batch_size, int) and self.batch_size >= 1,
                "batch_size must be an integer ≥ 1",
            ),
            (_is_number(self.lr) and self.lr > 0, "lr must be a number > 0"),
            (
                _is_number(self.weight_decay) and self.weight_decay >= 0,
                "weight_decay must be a number ≥ 0",
            ),
            (isinstance(self.seed, int), "seed must be an integer"),
            (
                _is_number(self.val_fraction) and 0 <= self.val_fraction < 1,
                "val_fraction must lie in [0, 1)",
            ),
            (self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}"),
            (
                _is_number(self.segment_seconds) and self.segment_seconds >= 0,
                "segment_seconds must be a number ≥ 0",
            ),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (isinstance(self.compile, bool), "compile must be true or false"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"invalid training setting: {message}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EpochReport:
    """One epoch's figures, as passed to ``on_epoch`` callbacks and stored in ``history_``."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    seconds: float
    best: bool


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class ComponentSpec:
    """A component chosen by name, with its constructor parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitConfig:
    """Everything ``aetk fit`` needs besides the recordings."""

    preset: str
    featurizer: ComponentSpec
    model: ComponentSpec
    scorer: ComponentSpec
    training: TrainingConfig
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    #: Preset parameters a swapped-in component kept (``"model.hidden"``): fit reports them.
    inherited: list[str] = field(default_factory=list)
    #: What the detector does and what it is for: the preset's description, or None once a
    #: component or the standardisation differs from the preset's (it would no longer hold).
    method: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            **{
                kind: {"name": spec.name, **spec.params}
                for kind, spec in zip(COMPONENT_SECTIONS, self.components(), strict=True)
            },
            "threshold": self.threshold.as_dict(),
            "training": self.training.as_dict(),
            "inherited": list(self.inherited),
            "method": self.method,
        }

    def components(self) -> tuple[ComponentSpec, ComponentSpec, ComponentSpec]:
        return self.featurizer, self.model, self.scorer


def preset_names() -> list[str]:
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in resources.files("aetk.fitting").joinpath("presets").iterdir()
        if entry.name.endswith(".toml")
    )


def load_preset(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}' (available: {', '.join(preset_names())})")
    text = resources.files("aetk.fitting").joinpath("presets").joinpath(f"{name}.toml").read_text()
    return tomllib.loads(text)


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(values) - {*SECTIONS, "preset"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown section {', '.join(map(repr, unknown))} "
            f"(sections: preset, {', '.join(SECTIONS)})"
        )
    return values


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``"model.hidden=[64, 32]"`` → ``("model", "hidden", [64, 32])``; values are TOML literals,
    and a value that is not one is taken as a string (``featurizer.channels=mono``)."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--set expects section.key=value, not {text!r}")
    if section not in SECTIONS:
        raise ConfigError(
            f"--set {text!r}: unknown section '{section}' (sections: {', '.join(SECTIONS)})"
        )
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, name.strip(), value


def resolve_config(
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    assignments: list[str] | tuple[str, ...] = (),
    featurizer: str | None = None,
    model: str | None = None,
    scorer: str | None = None,
    training: dict[str, Any] | None = None,
    false_alarm_rate: float | None = None,
) -> FitConfig:
    """Combine the layers into a validated :class:`FitConfig` (flags win over ``--set``, which
    wins over the config file, which wins over the preset)."""
    user, file_preset = _user_layers(config_file, assignments)
    for section, name in zip(COMPONENT_SECTIONS, (featurizer, model, scorer), strict=True):
        if name is not None:
            user[section]["name"] = name
    user["training"].update({k: v for k, v in (training or {}).items() if v is not None})
    if false_alarm_rate is not None:
        user["threshold"].update(method="conformal", false_alarm_rate=false_alarm_rate)
    preset = preset or file_preset or DEFAULT_PRESET
    base = load_preset(preset)
    specs, inherited = _component_specs(base, user)
    training = {**base.get("training", {}), **user["training"]}
    as_described = training.get("normalize") == base.get("training", {}).get("normalize") and all(
        {"name": spec.name, **spec.params} == base[section]
        for section, spec in zip(COMPONENT_SECTIONS, specs, strict=True)
    )
    return FitConfig(
        preset,
        *specs,
        training=TrainingConfig.from_dict(training),
        threshold=ThresholdConfig.from_dict({**base.get("threshold", {}), **user["threshold"]}),
        inherited=inherited,
        method=base.get("description") if as_described else None,
    )


def at_recordings_rate(config: FitConfig, rates: Mapping[int, int]) -> FitConfig:
    """``config`` with ``featurizer.sample_rate = "recordings"`` resolved for training
    recordings at ``rates`` (``{rate: count}``); any other configuration as it is.

    The rate is the highest standard rate (:data:`STANDARD_RATES`) not above the lowest among
    the recordings, so that no analysed band is empty in any of them, and at least 16 kHz
    (below it, as at any fixed rate, the bands a recording lacks are silent). Lengths in
    samples are given at 16 kHz and keep their duration at most: ``n_fft`` and ``hop_length``
    become the largest powers of two no longer than at 16 kHz (1,024 and 512 become 2,048 and
    1,024 at 44.1 or 48 kHz), ``target_length`` is scaled.
    """
    params = config.featurizer.params
    if params.get("sample_rate") != RECORDINGS_RATE:
        return config
    lowest = min(rates, default=BASE_RATE)
    rate = max([BASE_RATE, *(standard for standard in STANDARD_RATES if standard <= lowest)])
    resolved: dict[str, Any] = {**params, "sample_rate": rate}
    for key in ("n_fft", "hop_length"):
        if _is_number(params.get(key)) and params[key] >= 1:
            resolved[key] = 1 << (int(params[key] * rate / BASE_RATE).bit_length() - 1)
    if _is_number(params.get("target_length")) and params["target_length"] > 0:
        resolved["target_length"] = round(params["target_length"] * rate / BASE_RATE)
    return replace(config, featurizer=ComponentSpec(config.featurizer.name, resolved))


def _user_layers(
    config_file: str | Path | None, assignments: list[str] | tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """The user's settings by section, from the config file and then ``--set``; and the preset
    the config file names, if any."""
    user: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    preset = None
    if config_file is not None:
        values = read_config_file(config_file)
        preset = values.pop("preset", None)
        for section, settings in values.items():
            if not isinstance(settings, dict):
                raise ConfigError(f"{config_file}: [{section}] must be a table")
            user[section].update(settings)
    for text in assignments:
        section, key, value = parse_assignment(text)
        user[section][key] = value
    return user, preset


def _component_specs(
    base: dict[str, Any], user: dict[str, dict[str, Any]]
) -> tuple[tuple[ComponentSpec, ComponentSpec, ComponentSpec], list[str]]:
    """Each component's name and parameters. A component the user swaps in keeps the preset's
    parameters that it accepts (``--preset autoencoder --model baseline-ae`` keeps the widths);
    those carried over are returned as ``section.key`` so that fit can say so."""
    from aetk.plugin.host import get_host

    host = get_host()
    specs, inherited = [], []
    for section in COMPONENT_SECTIONS:
        base_params = dict(base.get(section, {}))
        base_name = base_params.pop("name")
        user_params = dict(user[section])
        name = user_params.pop("name", base_name)
        if name != base_name:
            accepted = host.component_class(section, name).param_names()
            base_params = {key: value for key, value in base_params.items() if key in accepted}
            inherited += [f"{section}.{key}" for key in base_params if key not in user_params]
        specs.append(ComponentSpec(name, {**base_params, **user_params}))
    featurizer, model, scorer = specs
    return (featurizer, model, scorer), inherited
