"""``aetk score``: score recordings with a fitted detector."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from aetk.cli import console, options
from aetk.cli.status import EXIT_ANOMALY, EXIT_FAILED
from aetk.errors import ConfigError


class Engine(str, Enum):
    local = "local"
    ray = "ray"


def register(app: typer.Typer) -> None:
    app.command(name="score")(score_command)


def score_command(
    paths: options.ScoredRecordings,
    detector_path: options.DetectorFile = Path("detector.aetk"),
    threshold: options.Threshold = None,
    false_alarm_rate: options.ScoringFalseAlarmRate = None,
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
    strict: options.Strict = False,
    machine: options.Machine = None,
    machines: options.Machines = None,
    shard: Annotated[
        str | None,
        typer.Option(metavar="I/N", help="Score only shard I of N (a stable split by path)."),
    ] = None,
    engine: Annotated[
        Engine,
        # Help is rich markup, where an unescaped [ray] would vanish as a style tag.
        typer.Option(help="local: this process; ray: a Ray cluster (pip install 'aetk\\[ray]')."),
    ] = Engine.local,
    out: Annotated[
        Path | None,
        typer.Option(
            help="With --engine ray: results file (.parquet or .csv), resumed if present."
        ),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join (default: start a local one).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="CPUs of the local Ray instance (default: all).")
    ] = None,
    actors: Annotated[
        int | None, typer.Option(min=1, help="Scoring actors (Ray; default: one per CPU).")
    ] = None,
    gpus_per_actor: Annotated[
        float, typer.Option(min=0.0, help="GPUs each scoring actor asks Ray for.")
    ] = 0.0,
) -> None:
    """Score recordings: higher scores are more anomalous; above the threshold is an anomaly.

    Exit status: 0 all files scored, 1 some file could not be scored, 2 usage error,
    3 with --fail-on-anomaly when a file is anomalous (and none failed).
    """
    from aetk.data.audio import require_audio_files, select_shard

    options.check_detector_among_recordings(detector_path, paths)
    stdin = _reads_standard_input(paths, engine, shard)
    files = [] if stdin else require_audio_files(paths)
    if shard is not None:
        total = len(files)
        files = select_shard(files, shard)
        if not files:
            # A job array's task with nothing to do has not failed.
            console.stderr.print(
                f"shard {shard} holds none of the {total} recordings; nothing to score",
                highlight=False,
            )
            return
    if segment is not None and not math.isfinite(segment):
        raise ConfigError(f"--segment must be a finite number of seconds, not {segment}")
    if engine is Engine.ray:
        if strict:
            raise ConfigError("--strict applies to the local engine; Ray rows carry the warnings")
        ray = RayOptions(out, ray_address, workers, actors, gpus_per_actor)
        run = _score_with_ray(detector_path, files, threshold, false_alarm_rate, segment, ray)
        _print_ray_run(run, out, json_output)
        if run.failed:
            raise typer.Exit(EXIT_FAILED)
        if fail_on_anomaly and run.anomalous:
            raise typer.Exit(EXIT_ANOMALY)
        return
    if out is not None:
        raise ConfigError("--out writes Ray's results: use it with --engine ray (or --json)")
    settings: dict[str, Any] = {
        "threshold": threshold,
        "false_alarm_rate": false_alarm_rate,
        "segment": segment,
        # The table says where the anomalies are; localizing the normal files would cost more.
        "localize": True if json_output else "anomalous",
        "strict": strict,
    }
    routing = (machine, machines)
    results = _score_locally(detector_path, paths, files, routing, settings, json_output, stdin)
    if not json_output:
        _print_table(results)
    if any(result.error for result in results):
        raise typer.Exit(EXIT_FAILED)
    if fail_on_anomaly and any(result.anomalous for result in results):
        raise typer.Exit(EXIT_ANOMALY)


def _reads_standard_input(paths: list[Path], engine: Engine, shard: str | None) -> bool:
    """Whether the recording to score is on standard input (``-``), which is scored alone."""
    if not any(str(path) == "-" for path in paths):
        return False
    if len(paths) > 1 or engine is Engine.ray or shard is not None:
        raise ConfigError(
            "'-' (a recording on standard input) is scored alone: not beside other recordings, "
            "--shard or --engine ray"
        )
    return True


def _score_locally(
    detector_path: Path,
    paths: list[Path],
    files: list[Path],
    routing: tuple[str | None, str | None],
    settings: dict[str, Any],
    json_output: bool,
    stdin: bool = False,
) -> list:
    """Score ``files`` (or, with ``stdin``, the recording on standard input) in this process,
    each line printed as it comes (``--json``) and each error and recording warning said on
    stderr; a fleet routes each file to its machine (``routing``: ``--machine``,
    ``--machines``)."""
    from aetk_core.audio import check_segment, score_input
    from aetk_core.fleet import verdicts_warning
    from aetk_core.recording import describe_warnings
    from aetk_core.verdict import window_length_warning

    from aetk.fleet.detector import FleetDetector, load_any

    detector = load_any(detector_path)
    machine, machines = routing
    if not isinstance(detector, FleetDetector) and (machine is not None or machines is not None):
        raise ConfigError(
            f"{detector_path}: --machine and --machines need a fleet detector "
            "(fitted with --machines)"
        )
    # Windows too short for the featurizer, refused once rather than on every file's row (a
    # fleet's machines share one featurizer: its first machine's detector tells).
    checked = (
        detector.detector(detector.machines[0]) if isinstance(detector, FleetDetector) else detector
    )
    check_segment(checked.score_audio, settings["segment"], files)
    if stdin:
        fleet = isinstance(detector, FleetDetector)
        one = score_input(detector.score_audio, fleet, machine, **settings)
        scored, files = iter([one]), [Path("-")]
    elif isinstance(detector, FleetDetector):
        unrouted: dict[Path, str] = {}  # files of this shard whose machine cannot be told
        routed = detector.route(paths, machine, machines, files=files, unrouted=unrouted)
        scored = detector.iter_routed(routed, unrouted, **settings)
    else:
        scored = detector.iter_scores(files, **settings)
    mismatch = window_length_warning(settings["segment"], detector.clip_seconds)
    if mismatch:
        console.warn(mismatch)
    results = []
    with console.progress("Scoring", prints=json_output) as update:
        for done, result in enumerate(scored, start=1):
            results.append(result)
            update(done, len(files))
            if result.error:
                console.error(f"{result.path}: {result.error}")
            elif result.warnings:
                console.warn(f"{result.path}: {describe_warnings(result.warnings)}")
            if json_output:
                print(json.dumps(result.as_dict()), flush=True)
    unheld = verdicts_warning(
        detector, results, settings["threshold"], settings["false_alarm_rate"]
    )
    if unheld:
        console.warn(unheld)
    return results


@dataclass
class RayOptions:
    """Where and how ``--engine ray`` runs."""

    out: Path | None
    address: str | None
    cpus: int | None
    actors: int | None
    gpus_per_actor: float


def _score_with_ray(
    detector_path: Path,
    files: list[Path],
    threshold: float | None,
    false_alarm_rate: float | None,
    segment: float | None,
    ray: RayOptions,
):
    if ray.out is None:
        raise ConfigError("--engine ray needs --out results.parquet (or .csv)")
    try:
        from aetk.engines.ray import score_with_ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'aetk[ray]'") from None
    return score_with_ray(
        detector_path,
        files,
        ray.out,
        threshold=threshold,
        false_alarm_rate=false_alarm_rate,
        segment=segment,
        address=ray.address,
        cpus=ray.cpus,
        actors=ray.actors,
        gpus_per_actor=ray.gpus_per_actor,
    )


def _print_ray_run(run, out: Path | None, json_output: bool) -> None:
    from aetk_core.describe import verdicts_note

    unheld = verdicts_note({"": run.threshold_note} if run.threshold_note else {})
    if unheld:
        console.warn(unheld)  # as the local engine warns
    if json_output:
        print(json.dumps({"out": str(out), **vars(run)}))
    else:
        console.stderr.print(
            f"Scored {run.scored} files with Ray ({run.failed} failed, {run.anomalous} anomalous; "
            f"{run.skipped} already in {out}) in {run.seconds:.1f} s",
            highlight=False,
        )


def _print_table(results) -> None:
    from aetk_core.results import from_common_folder, table, tally

    rows = table(results)
    if not console.stdout.is_terminal:
        # Redirected to a file or a pipe: plain tab-separated rows, never wrapped.
        for row in rows:
            print("\t".join(row))
        console.stderr.print(tally(results), highlight=False)
        return
    from rich.markup import escape
    from rich.table import Table

    folder, (header, *cells) = from_common_folder(rows)
    if folder:
        console.stdout.print(f"in {escape(folder)}{os.sep}", style="dim", highlight=False)
    # The file keeps its width (up to half the terminal's); the events fold beside it.
    widest = max((len(row[0]) for row in cells), default=0)
    shown = Table(box=None, pad_edge=False)
    for column in header:
        shown.add_column(
            column,
            overflow="fold" if column in ("file", "events") else "ellipsis",
            justify="right" if column in ("score", "threshold") else "left",
            min_width=min(widest, console.stdout.width // 2) if column == "file" else None,
        )
    verdict = header.index("verdict")
    for result, row in zip(results, cells, strict=True):
        texts = [escape(cell) for cell in row]
        if result.error:
            texts[verdict] = f"[yellow]error[/]: {escape(result.error)}"
        else:
            texts[verdict] = (
                "[bold red]ANOMALY[/bold red]" if result.anomalous else "[green]normal[/green]"
            )
        if header[-1] == "recording":
            texts[-1] = f"[yellow]{texts[-1]}[/]"
        shown.add_row(*texts)
    console.stdout.print(shown, highlight=False)
    console.stdout.print(tally(results), highlight=False)
