"""``aetk cv``: K-fold cross-validation with a lockbox test set set aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aetk.cli import console, options


def register(app: typer.Typer) -> None:
    app.command(name="cv")(cv_command)


def cv_command(
    normal_dir: Annotated[
        list[Path], typer.Argument(metavar="NORMAL_DIR", help="Normal recordings.")
    ],
    folds: Annotated[int, typer.Option(min=2, help="Number of folds (K).")] = 5,
    anomalies: Annotated[
        list[Path] | None,
        typer.Option("--anomalies", help="Labelled anomalous recordings, for AUC per fold."),
    ] = None,
    test_ratio: Annotated[
        float, typer.Option(help="Fraction set aside as the untouched lockbox test set.")
    ] = 0.2,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the lockbox split and of training.")
    ] = 42,
    preset: options.Preset = None,
    featurizer: options.FeaturizerName = None,
    model: options.ModelName = None,
    scorer: options.ScorerName = None,
    config: options.ConfigFile = None,
    assignments: options.Assignments = None,
    epochs: options.Epochs = None,
    device: options.Device = None,
    json_output: options.JsonOutput = False,
) -> None:
    """Cross-validate a configuration on normal recordings, the lockbox left untouched.

    For each fold: fit on the other folds, then report the held-out fold's reconstruction loss,
    the threshold, the false-alarm rate, and AUC/pAUC against --anomalies when given.
    """
    from aetk.eval.crossval import cross_validate

    fit_config = options.resolve(
        preset=preset,
        config=config,
        assignments=assignments,
        featurizer=featurizer,
        model=model,
        scorer=scorer,
        epochs=epochs,
        seed=seed,
        device=device,
    )

    def announce(lockbox, parts) -> None:
        console.stderr.print(
            f"Lockbox: {len(lockbox)} files set aside, never used. "
            f"Fold sizes: {', '.join(str(len(part)) for part in parts)}",
            highlight=False,
        )

    with console.each_warning_once():
        result = cross_validate(
            normal_dir,
            fit_config,
            folds=folds,
            anomalies=anomalies or (),
            test_ratio=test_ratio,
            seed=seed,
            on_split=announce,
            on_fold=lambda fold: _report_fold(fold, folds),
        )
    if json_output:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        _print_table(result, folds)


def _report_fold(fold, folds: int) -> None:
    from aetk_core.describe import threshold_caveat

    auc = "" if fold.auc is None else f", AUC {fold.auc:.3f}, pAUC {fold.pauc:.3f}"
    loss = "" if fold.val_loss is None else f"loss {fold.val_loss:.5g}, "
    caveat = threshold_caveat(fold.calibration) if fold.calibration else ""
    console.stderr.print(
        f"fold {fold.fold}/{folds}: trained on {fold.train_files}, held out "
        f"{fold.held_out_files}: {loss}threshold {fold.threshold:.5g}{caveat}, "
        f"false alarms {fold.false_alarm_rate:.1%}{auc}",
        highlight=False,
    )


def _print_table(result, folds: int) -> None:
    from rich.table import Table

    table = Table(
        title=f"{folds}-fold cross-validation ({len(result.lockbox)} files in the lockbox)",
        box=None,
        pad_edge=False,
    )
    table.add_column("measure")
    table.add_column("mean ± std", justify="right")
    for fold in result.folds:
        table.add_column(f"fold {fold.fold}", justify="right")
    names = {
        "val_loss": "held-out loss",
        "threshold": "threshold",
        "false_alarm_rate": "false-alarm rate",
        "auc": "AUC",
        "pauc": "pAUC",
    }
    for key, label in names.items():
        summary = result.summary()[key]
        if summary is None:
            continue
        values = [getattr(fold, key) for fold in result.folds]
        table.add_row(
            label,
            f"{summary['mean']:.4g} ± {summary['std']:.2g}",
            *(f"{value:.4g}" for value in values),
        )
    console.stdout.print(table, highlight=False)
