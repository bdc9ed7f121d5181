"""``aetk evaluate``: AUC, pAUC, precision, recall and F1 per group, DCASE-style."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aetk.cli import console, options
from aetk.cli.status import EXIT_FAILED


def register(app: typer.Typer) -> None:
    app.command(name="evaluate")(evaluate_command)


def evaluate_command(
    paths: options.Recordings,
    detector_path: options.DetectorFile = Path("detector.aetk"),
    labels: options.Labels = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write DCASE CSVs, metrics.json and PNG plots here."),
    ] = None,
    threshold: options.Threshold = None,
    false_alarm_rate: options.ScoringFalseAlarmRate = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Score labelled recordings and report how well anomalies separate from normal clips.

    Labels come from 'normal' / 'anomaly' / 'abnormal' in file or folder names (MIMII, DCASE
    2020, DCASE 2021+ layouts) or from --labels. Metrics per group (machine, ID or section,
    domain) and their arithmetic and harmonic means; pAUC is for FPR ≤ 0.1.
    """
    from aetk.eval.evaluation import check_output_folder, evaluate, write_outputs
    from aetk.fleet.detector import load_any

    if out is not None:
        check_output_folder(out)

    options.check_detector_among_recordings(detector_path, paths)
    detector = load_any(detector_path)
    with console.progress("Scoring") as update:
        evaluation = evaluate(
            detector,
            paths,
            labels_csv=labels,
            threshold=threshold,
            false_alarm_rate=false_alarm_rate,
            progress=update,
        )
    for failure in evaluation.failed:
        console.error(f"{failure['path']}: {failure['error']}")
    if evaluation.unlabelled:
        console.warn(
            f"skipped {len(evaluation.unlabelled)} unlabelled file(s) (no normal/anomaly token "
            f"in the path, or not in --labels), e.g. {evaluation.unlabelled[0]}"
        )
    for group in evaluation.groups:
        for note in group.notes:
            console.warn(f"group {group.group}: {note}")
    if out is not None:
        try:
            written = write_outputs(evaluation, out)
        except OSError as exc:
            console.error(f"{out}: cannot write the evaluation ({exc.strerror or exc})")
            raise typer.Exit(EXIT_FAILED) from None
        console.stderr.print(f"Wrote {len(written)} files to {out}", highlight=False)
    if json_output:
        print(json.dumps(evaluation.as_dict(), indent=2))
    else:
        _print_table(evaluation)
    if evaluation.failed:
        raise typer.Exit(EXIT_FAILED)


def _print_table(evaluation) -> None:
    from rich.table import Table

    from aetk.eval.evaluation import METRICS, format_metric

    note = f" ({evaluation.threshold_note})" if evaluation.threshold_note else ""
    title = (
        "each machine at its own threshold"
        if evaluation.threshold is None
        else f"threshold {evaluation.threshold:.5g}{note}"
    )
    table = Table(title=title, box=None, pad_edge=False)
    table.add_column("group")
    table.add_column("normal", justify="right")
    table.add_column("anomalous", justify="right")
    for header in ("AUC", "pAUC", "precision", "recall", "F1"):
        table.add_column(header, justify="right")
    for group in evaluation.groups:
        table.add_row(
            group.group,
            str(group.normal),
            str(group.anomalous),
            *(format_metric(getattr(group, name)) for name in METRICS),
        )
    for label, key in (("arithmetic mean", "arithmetic_mean"), ("harmonic mean", "harmonic_mean")):
        values = evaluation.means[key]
        table.add_row(f"[bold]{label}[/bold]", "", "", *(format_metric(values[m]) for m in METRICS))
    console.stdout.print(table, highlight=False)
