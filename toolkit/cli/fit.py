"""``aetk fit``: fit a detector on recordings of a healthy machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aetk.cli import EXIT_FAILED, EXIT_INTERRUPTED, console, options
from aetk.fitting.progress import FitObserver

if TYPE_CHECKING:
    from aetk.detect.detector import Detector
    from aetk.fitting.config import EpochReport, FitConfig


def register(app: typer.Typer) -> None:
    app.command(name="fit")(fit_command)


def fit_command(
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
    seed: Annotated[int | None, typer.Option(help="Seed of the split and of training.")] = None,
    val_fraction: options.ValFraction = None,
    device: options.Device = None,
    nproc: Annotated[
        int,
        typer.Option(
            min=1,
            help="Train on this many local processes (torchrun, DistributedDataParallel).",
        ),
    ] = 1,
    json_output: options.JsonOutput = False,
) -> None:
    """Fit a detector on NORMAL_DIR (searched recursively) and write it atomically."""
    from aetk.fitting import distributed
    from aetk.fitting.stages import fit_config

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        raise typer.Exit(_launch(nproc))

    fit_config_ = options.resolve(
        preset=preset,
        config=config,
        assignments=assignments,
        featurizer=featurizer,
        model=model,
        scorer=scorer,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        val_fraction=val_fraction,
        device=device,
    )
    try:
        with ProgressObserver() as observer:
            detector = fit_config(normal_dirs, fit_config_, observer)
    except KeyboardInterrupt:
        console.error(f"interrupted: fitting stopped, nothing written to {output}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        distributed.finish()
    if detector is None:  # a rank other than 0 of a distributed fit: rank 0 writes
        return
    try:
        detector.save(output)
    except KeyboardInterrupt:
        console.error(f"interrupted while saving: {output} left as it was")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as exc:
        console.error(f"{output}: cannot write detector ({exc.strerror or exc})")
        raise typer.Exit(EXIT_FAILED) from None
    summary = _summary(detector, output)
    if json_output:
        print(json.dumps(summary))
    else:
        _print_summary(summary)


def _summary(detector: Detector, output: Path) -> dict:
    training = detector.training
    val_losses = [loss for loss in training["val_loss"] if loss is not None]
    return {
        "detector": str(output),
        "preset": training["config"]["preset"],
        "featurizer": detector.featurizer.name,
        "model": detector.model.name,
        "scorer": detector.scorer.name,
        "files": training["files"],
        "train_files": training["train_files"],
        "validation_files": training["validation_files"],
        "skipped_files": len(training["skipped_files"]),
        "train_vectors": training["train_vectors"],
        "epochs": len(training["train_loss"]),
        "best_epoch": training["best_epoch"],
        "train_loss": training["train_loss"][-1] if training["train_loss"] else None,
        "val_loss": min(val_losses) if val_losses else None,
        "threshold": detector.threshold,
        "threshold_method": getattr(detector.scorer, "threshold_method_", None),
        "parameters": sum(p.numel() for p in detector.model.module_.parameters()),
        "seconds": training["seconds"],
    }


def _print_summary(summary: dict) -> None:
    if summary["epochs"]:
        val = f", best validation loss {summary['val_loss']:.4g}" if summary["val_loss"] else ""
        training = f"{summary['epochs']} epochs, best epoch {summary['best_epoch']}{val}"
    else:
        training = "no training (the model has no parameters)"
    console.stderr.print(
        f"[bold]Wrote {summary['detector']}[/bold]: {summary['featurizer']} → {summary['model']} "
        f"→ {summary['scorer']} (preset {summary['preset']}, "
        f"{summary['parameters']:,} parameters)\n"
        f"  {summary['train_files']} training and {summary['validation_files']} validation files"
        f" ({summary['skipped_files']} skipped), {training}\n"
        f"  threshold {summary['threshold']:.6g} ({summary['threshold_method']}), "
        f"fitted in {summary['seconds']:.1f} s",
        highlight=False,
    )


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
        self._tasks: dict[str, int] = {}
        return self

    def __exit__(self, *exc_info) -> None:
        self._progress.__exit__(*exc_info)

    def on_start(self, config: FitConfig, train_files: int, validation_files: int) -> None:
        self._progress.console.print(
            f"Fitting {config.featurizer.name} → {config.model.name} → {config.scorer.name} "
            f"(preset {config.preset}) on {train_files} training and {validation_files} "
            "validation files",
            highlight=False,
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

    def _advance(self, stage: str, done: int, total: int) -> None:
        if stage not in self._tasks:
            self._tasks[stage] = self._progress.add_task(stage, total=total)
        self._progress.update(self._tasks[stage], completed=done)


def _launch(nproc: int) -> int:
    """Run this very command on ``nproc`` local processes with torchrun; its exit status."""
    from aetk.cli import invocation

    arguments, skip = [], False
    for argument in invocation:
        if skip:
            skip = False
        elif argument == "--nproc":
            skip = True
        elif not argument.startswith("--nproc="):
            arguments.append(argument)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "aetk",
        *arguments,
    ]
    return subprocess.run(command).returncode
