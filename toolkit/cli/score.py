"""``aetk score``: score recordings with a fitted detector."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from aetk.cli import EXIT_ANOMALY, EXIT_FAILED, console
from aetk.errors import ConfigError


def register(app: typer.Typer) -> None:
    app.command(name="score")(score_command)


def score_command(
    paths: Annotated[
        list[Path], typer.Argument(metavar="PATH", help="Recordings or folders of recordings.")
    ],
    detector_path: Annotated[
        Path, typer.Option("-d", "--detector", help="Detector file written by 'aetk fit'.")
    ] = Path("detector.aetk"),
    threshold: Annotated[
        float | None, typer.Option(help="Override the detector's threshold.")
    ] = None,
    segment: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Score in windows of this many seconds (recordings of any length, bounded "
            "memory); the file's score is its worst window. 0: whole files.",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print JSON Lines on stdout, one object per file.")
    ] = False,
    fail_on_anomaly: Annotated[
        bool, typer.Option("--fail-on-anomaly", help="Exit with status 3 if any file is anomalous.")
    ] = False,
) -> None:
    """Score recordings: higher scores are more anomalous; above the threshold is an anomaly.

    Exit status: 0 all files scored, 1 some file could not be scored, 2 usage error,
    3 with --fail-on-anomaly when a file is anomalous (and none failed).
    """
    from aetk.detector import Detector

    detector = Detector.load(detector_path)
    results = []
    for result in detector.iter_scores(paths, threshold=threshold, segment=segment):
        results.append(result)
        if result.error:
            console.error(f"{result.path}: {result.error}")
        if json_output:
            print(json.dumps(result.as_dict()), flush=True)
    if not results:
        raise ConfigError(f"no audio files found in {', '.join(map(str, paths))}")
    if not json_output:
        _print_table(results)
    if any(result.error for result in results):
        raise typer.Exit(EXIT_FAILED)
    if fail_on_anomaly and any(result.anomalous for result in results):
        raise typer.Exit(EXIT_ANOMALY)


def _print_table(results) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("file", overflow="fold")
    table.add_column("score", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("verdict")
    for result in results:
        if result.error:
            verdict, score = f"[yellow]error[/yellow]: {result.error}", "-"
        else:
            verdict = (
                "[bold red]ANOMALY[/bold red]" if result.anomalous else "[green]normal[/green]"
            )
            score = f"{result.score:.5g}"
        table.add_row(result.path, score, f"{result.threshold:.5g}", verdict)
    console.stdout.print(table, highlight=False)
    anomalous = sum(bool(result.anomalous) for result in results)
    failed = sum(bool(result.error) for result in results)
    console.stdout.print(
        f"{len(results)} files: {anomalous} anomalous, {len(results) - anomalous - failed} normal"
        + (f", {failed} failed" if failed else ""),
        highlight=False,
    )
