"""``aetk fit``: fit a detector on recordings of a healthy machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from aetk_core.describe import detector_lines

from aetk.cli import console, options
from aetk.cli.describe import fleet_lines, print_described
from aetk.cli.status import EXIT_FAILED, EXIT_INTERRUPTED
from aetk.errors import ConfigError
from aetk.fitting.config import BASE_RATE, RECORDINGS_RATE
from aetk.fitting.progress import FitObserver

if TYPE_CHECKING:
    from rich.progress import TaskID

    from aetk.detect.calibration import Calibration
    from aetk.detect.detector import Detector
    from aetk.fitting.config import EpochReport, FitConfig
    from aetk.fleet.detector import FleetDetector


def register(app: typer.Typer) -> None:
    app.command(name="fit")(fit_command)


def fit_command(
    context: typer.Context,
    normal_dirs: Annotated[
        list[Path],
        typer.Argument(metavar="NORMAL_DIR", help="Folders or files of normal recordings."),
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the detector.")
    ] = Path("detector.aetk"),
    preset: options.Preset = None,
    featurizer: options.FeaturizerName = None,
    model: options.ModelName = None,
    scorer: options.ScorerName = None,
    config: options.ConfigFile = None,
    assignments: options.Assignments = None,
    epochs: options.Epochs = None,
    batch_size: options.BatchSize = None,
    lr: options.LearningRate = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of the split and of training.")
    ] = None,
    val_fraction: options.ValFraction = None,
    device: options.Device = None,
    false_alarm_rate: options.FalseAlarmRate = None,
    segment: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Cut each recording into clips of this many seconds (a few long recordings "
            "of the healthy machine); the detector then scores in windows of this length.",
        ),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="Train on this many local processes (torchrun, DistributedDataParallel).",
        ),
    ] = 1,
    machines: options.Machines = None,
    force: options.Force = False,
    json_output: options.JsonOutput = False,
) -> None:
    """Fit a detector on normal recordings and write it atomically.

    NORMAL_DIR is searched recursively. With --machines, one fleet detector: one detector per
    machine, in one file.
    """
    from aetk.data.audio import find_audio_files
    from aetk.data.fileio import check_output
    from aetk.fitting import distributed
    from aetk.fitting.stages import fit_config

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(_launch(nproc, context.obj["argv"]))

    fit_config_ = options.resolve(
        preset=preset,
        config=config,
        assignments=assignments,
        featurizer=featurizer,
        model=model,
        scorer=scorer,
        false_alarm_rate=false_alarm_rate,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        val_fraction=val_fraction,
        device=device,
        segment_seconds=segment,
    )
    missing = [path for path in normal_dirs if not path.exists()]
    if missing:
        raise ConfigError(f"{missing[0]}: no such file or folder")
    # Found once: the output check and the fit read the same list (the folder is walked once).
    files = find_audio_files(normal_dirs)
    check_output(output, "detector", files, force)
    if machines is not None:
        if nproc > 1:
            raise ConfigError("--machines fits machine by machine: use it without --nproc")
        _fit_fleet(normal_dirs, files, machines, fit_config_, output, json_output)
        return
    _name_the_machines(files)

    def fit_one() -> Detector | None:
        with distributed.session(), ProgressObserver() as observer:
            return fit_config(files or normal_dirs, fit_config_, observer)

    detector, previous = _fit_and_save(fit_one, output)
    if detector is None:  # a rank other than 0 of a distributed fit: rank 0 writes
        return
    summary = {**detector.summary(output), "previous": previous and str(previous)}
    if json_output:
        print(json.dumps(summary))
    else:
        print_described(console.stderr, _wrote(output, previous), detector_lines(summary))


def _wrote(output: Path, previous: Path | None) -> str:
    kept = f" (the detector it replaced kept as {previous})" if previous else ""
    return f"Wrote {output}{kept}"


def _name_the_machines(files: Sequence[Path]) -> None:
    """When the file names say which machine each recording comes from (DCASE, MIMII) and name
    several, say that one detector will judge them all against one normal, and how to fit one
    per machine instead (pooling them is a choice, as DCASE's baseline makes it: not a
    warning)."""
    from aetk_core.machines import named_machines

    from aetk.fitting import distributed

    named = named_machines(files)
    if len(named) > 1 and distributed.current().is_main:
        shown = ", ".join(named[:4]) + (", …" if len(named) > 4 else "")
        console.stderr.print(
            f"Machines: the file names name {len(named)} ({shown}); one detector judges them "
            "all (--machines dcase fits one per machine)",
            highlight=False,
        )


def _fit_and_save(fit: Callable[[], Any], output: Path) -> tuple[Any, Path | None]:
    """What ``fit()`` returns, saved to ``output`` (None: nothing to save), and where the
    detector it replaced is kept (``detector.previous.aetk``: a refit that a running watch takes
    up at once can be rolled back by copying it over; None: there was none). An interruption or
    a failure to write is one line, and ``output`` is left as it was."""
    try:
        fitted = fit()
    except KeyboardInterrupt:
        console.error(f"interrupted: fitting stopped, nothing written to {output}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if fitted is None:
        return None, None
    from aetk.data.fileio import is_kind, keep_previous

    try:
        previous = keep_previous(output) if is_kind(output, "detector") else None
        fitted.save(output)
    except KeyboardInterrupt:
        console.error(f"interrupted while saving: {output} left as it was")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as exc:
        console.error(f"{output}: cannot write detector ({exc.strerror or exc})")
        raise typer.Exit(EXIT_FAILED) from None
    return fitted, previous


def _fit_fleet(
    normal_dirs: list[Path],
    files: list[Path],
    source: str,
    config: FitConfig,
    output: Path,
    json_output: bool,
) -> None:
    from aetk.fleet.detector import fit_fleet

    def fit() -> FleetDetector:
        with ProgressObserver() as observer:
            return fit_fleet(normal_dirs, source, config=config, observer=observer, files=files)

    fleet, previous = _fit_and_save(fit, output)
    summary = {**fleet.summary(output), "previous": previous and str(previous)}
    if json_output:
        print(json.dumps(summary))
        return
    lines = fleet_lines(summary, fleet.machine_groups())
    print_described(console.stderr, _wrote(output, previous), lines)


def _rate_that_keeps_it(sample_rates: dict[int, int], analysis_rate: int) -> str:
    """The setting that keeps the upper band of recordings above the analysed rate. Where every
    recording is above a fixed 16 kHz (a preset's, whose lengths in samples are given at
    16 kHz), ``recordings`` analyses them at their own rate with frames as long as now; where
    some are at the analysed rate, or the rate was the user's, only a number can raise it."""
    if analysis_rate == BASE_RATE and min(sample_rates) > analysis_rate:
        return f"featurizer.sample_rate={RECORDINGS_RATE}"
    return f"featurizer.sample_rate={max(sample_rates)}"


class ProgressObserver(FitObserver):
    """Draws featurizing and training progress on stderr, and one line per epoch."""

    def __enter__(self) -> ProgressObserver:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console.stderr,
            transient=True,
        )
        self._progress.__enter__()
        self._tasks: dict[str, TaskID] = {}
        return self

    def __exit__(self, *exc_info) -> None:
        self._progress.__exit__(*exc_info)

    def on_start(self, config: FitConfig, train_files: int, validation_files: int) -> None:
        # A fleet fits machine after machine: each starts with bars of its own.
        for task in self._progress.task_ids:
            self._progress.remove_task(task)
        self._tasks = {}
        self._progress.console.print(
            f"Fitting {config.featurizer.name} → {config.model.name} → {config.scorer.name} "
            f"(preset {config.preset}) on {train_files} training and {validation_files} "
            "validation files",
            highlight=False,
        )
        if config.method:
            self._progress.console.print(f"Method: {config.method}", highlight=False)
        if config.inherited:
            self._progress.console.print(
                f"note: the swapped-in components keep these {config.preset} preset parameters: "
                f"{', '.join(config.inherited)} (set them with --set to change them)",
                highlight=False,
            )

    def on_recordings(self, sample_rates: dict[int, int], analysis_rate: int | None) -> None:
        if not sample_rates:  # no header could be read: each file's own error follows
            return
        found = ", ".join(f"{count} at {rate} Hz" for rate, count in sample_rates.items())
        if analysis_rate is None:
            self._progress.console.print(f"Recordings: {found}", highlight=False)
            return
        self._progress.console.print(
            f"Recordings: {found}; analysed at {analysis_rate} Hz", highlight=False
        )
        higher = [rate for rate in sample_rates if rate > analysis_rate]
        if higher:
            console.warn(
                f"recordings at {', '.join(map(str, higher))} Hz are analysed at {analysis_rate} "
                f"Hz: what they hold above {analysis_rate // 2} Hz is not used (set "
                f"{_rate_that_keeps_it(sample_rates, analysis_rate)} to keep it)"
            )

    def on_featurized(self, done: int, total: int) -> None:
        self._advance("Featurizing", done, total)

    def on_epoch(self, report: EpochReport) -> None:
        self._advance("Training", report.epoch, report.epochs)
        val = "" if report.val_loss is None else f"  val loss {report.val_loss:.5g}"
        mark = " *" if report.best else ""
        self._progress.console.print(
            f"epoch {report.epoch:>3}/{report.epochs}  train loss {report.train_loss:.5g}"
            f"{val}  ({report.seconds:.1f} s){mark}",
            highlight=False,
        )

    def on_stage(self, description: str) -> None:
        self._progress.add_task(description, total=None)

    def on_calibrated(self, calibration: Calibration) -> None:
        if calibration.warning:
            console.warn(calibration.warning)

    def _advance(self, stage: str, done: int, total: int) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done)


def _launch(nproc: int, arguments: list[str]) -> int:
    """Run the command ``arguments`` on ``nproc`` local processes with torchrun; its exit status."""
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument == "--nproc":
            skip = True
        elif not argument.startswith("--nproc="):
            kept.append(argument)
    # torchrun makes a folder for its workers' logs at every launch and leaves it behind (in
    # the system's temporary folder unless given one): this one goes when the fit ends.
    with tempfile.TemporaryDirectory(prefix="aetk-torchrun-") as logs:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            f"--log-dir={logs}",
            "-m",
            "aetk",
            *kept,
        ]
        return subprocess.run(command).returncode
