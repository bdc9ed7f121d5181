"""Options shared by the commands: those that fit detectors (fit, cv) and those that use one."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aetk.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aetk.fitting.config import FitConfig


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


Preset = Annotated[
    str | None, typer.Option(help="Preset to start from (default, dcase, seed, ...).")
]
FeaturizerName = Annotated[str | None, typer.Option("--featurizer", help="Featurizer by name.")]
ModelName = Annotated[str | None, typer.Option("--model", help="Model by name.")]
ScorerName = Annotated[str | None, typer.Option("--scorer", help="Scorer by name.")]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="TOML file overriding the preset.")
]
Assignments = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="SECTION.KEY=VALUE", help="Override one setting (repeatable)."),
]
Epochs = Annotated[int | None, typer.Option(min=1, help="Training epochs.")]
BatchSize = Annotated[int | None, typer.Option(min=1, help="Training batch size.")]
LearningRate = Annotated[float | None, typer.Option("--lr", help="Adam learning rate.")]
ValFraction = Annotated[
    float | None,
    typer.Option(help="Fraction of files held out for early stopping and the threshold."),
]
Device = Annotated[DeviceChoice | None, typer.Option(help="Where to train.")]
FalseAlarmRate = Annotated[
    float | None,
    typer.Option(
        help="Share of normal recordings that may be flagged: the threshold is set for it from "
        "held-out normal scores (conformal rule).",
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
Force = Annotated[
    bool,
    typer.Option("--force", help="Replace an existing output file even if aetk did not write it."),
]

# Options of the commands that use a fitted detector (score, evaluate, report).
Recordings = Annotated[
    list[Path],
    typer.Argument(metavar="PATH", help="Recordings, folders of recordings, or manifests."),
]
ScoredRecordings = Annotated[
    list[Path],
    typer.Argument(
        metavar="PATH",
        help="Recordings, folders of recordings, or manifests; - alone: one recording on "
        "standard input.",
    ),
]
DetectorFile = Annotated[
    Path, typer.Option("-d", "--detector", help="Detector file written by 'aetk fit'.")
]
#: The detector as the argument of the commands that take no recordings (info, export), and
#: as ``-d`` too, as the commands that score take it (:func:`aetk_core.fileio.given_detector`).
DetectorArgument = Annotated[
    Path | None,
    typer.Argument(
        metavar="DETECTOR",
        help="Detector file written by 'aetk fit'.",
        show_default="detector.aetk",
    ),
]
DetectorArgumentAlso = Annotated[
    Path | None,
    typer.Option("-d", "--detector", help="The detector file, given as an option instead."),
]


def check_detector_among_recordings(detector_path: Path, paths: Sequence[Path]) -> None:
    """Refuse in one line a detector file given as a recording while ``-d`` names none (``aetk
    score fan.aetk new/``, the commonest slip), saying how to give it."""
    if detector_path.exists():
        return
    for path in paths:
        if path.suffix == ".aetk" and path.is_file():
            raise ConfigError(
                f"{detector_path}: no detector file here; {path} looks like one: "
                f"give it with -d {path}"
            )


Threshold = Annotated[
    float | None, typer.Option(help="Override the detector's threshold (a finite number).")
]
Machines = Annotated[
    str | None,
    typer.Option(
        "--machines",
        metavar="folders|dcase|TABLE.csv",
        help="A fleet: which machine each recording is. folders: each sub-folder is a machine; "
        "dcase: section/ID in the file names; a CSV with columns file, machine (and more).",
    ),
]
Machine = Annotated[
    str | None,
    typer.Option("--machine", help="With a fleet detector: score every recording as this machine."),
]
Strict = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="A recording unlike the training recordings (band limit, codec, gain, clipping, "
        "quantization, dropout, channels, DC offset, duration, machine) is an error, not a "
        "warning.",
    ),
]
ScoringFalseAlarmRate = Annotated[
    float | None,
    typer.Option(
        "--false-alarm-rate",
        help="Recompute the threshold for this false-alarm rate from the normal scores the "
        "detector keeps (no refit).",
    ),
]
Labels = Annotated[
    Path | None,
    typer.Option("--labels", help="CSV of path,label[,group] instead of labels in paths."),
]


def resolve(
    *,
    preset: str | None,
    config: Path | None,
    assignments: list[str] | None,
    featurizer: str | None,
    model: str | None,
    scorer: str | None,
    false_alarm_rate: float | None = None,
    **training,
) -> FitConfig:
    """The fit configuration these options describe, as :func:`aetk.fit` reads its keywords."""
    from aetk.fitting.stages import options_config

    device = training.get("device")
    if isinstance(device, DeviceChoice):
        training["device"] = device.value
    return options_config(
        preset=preset,
        config_file=config,
        set=assignments or (),
        featurizer=featurizer,
        model=model,
        scorer=scorer,
        false_alarm_rate=false_alarm_rate,
        **training,
    )
