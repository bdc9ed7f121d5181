"""``aetk demo``: the whole job on synthetic machine sounds, no data of yours needed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from aetk_core.fileio import ensure_folder

from aetk.cli import console
from aetk.cli.fit import ProgressObserver

if TYPE_CHECKING:
    from aetk.detect.scoring import ScoreResult
    from aetk.fitting.config import FitConfig


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo_command)


def demo_command(
    out: Annotated[
        Path | None,
        typer.Option(help="Keep the generated clips and detector in this folder."),
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Preset to fit.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generator and of training.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Generate a synthetic motor-hum set with four kinds of fault, fit, score and report AUC."""
    config = _demo_config(preset, seed)
    if out is not None:
        ensure_folder(out, "--out")
        _demo(out, config, json_output, keep=True)
        return
    with tempfile.TemporaryDirectory(prefix="aetk-demo-") as folder:
        _demo(Path(folder), config, json_output, keep=False)


def _demo_config(preset: str | None, seed: int) -> FitConfig:
    """The preset's configuration with the demo's seed; a preset for fleets is refused before
    anything is written."""
    from aetk.fitting.config import resolve_config
    from aetk.fitting.stages import refuse_fleet_model

    config = resolve_config(preset=preset, training={"seed": seed})
    refuse_fleet_model(config)
    return config


def _demo(folder: Path, config: FitConfig, json_output: bool, keep: bool) -> None:
    from aetk.data import synth
    from aetk.detect.detector import Detector
    from aetk.fitting.stages import fit_config

    console.stderr.print(
        f"Generating synthetic machine sounds in {folder}: 40 normal clips to train on; "
        f"20 normal and {5 * len(synth.ANOMALIES)} faulty clips ({', '.join(synth.ANOMALIES)}) "
        "to test on",
        highlight=False,
    )
    written = synth.write_dataset(folder / "sounds", seed=config.training.seed)
    with ProgressObserver() as observer:
        fitted = fit_config([folder / "sounds" / "train"], config, observer)
    assert fitted is not None  # the demo runs in one process
    detector = Detector.load(fitted.save(folder / "detector.aetk"))
    results = detector.score(written["test"], localize=False)
    rows, normal = _rows_by_fault(results)
    summary = {
        "rows": rows,
        "normal_clips": len(normal),
        "false_alarms": sum(bool(r.anomalous) for r in normal),
        "threshold": detector.threshold,
        "preset": config.preset,
    }
    if json_output:
        print(json.dumps(summary))
    else:
        _print_summary(summary, folder if keep else None)


def _rows_by_fault(results: list[ScoreResult]) -> tuple[list[dict[str, Any]], list[ScoreResult]]:
    """AUC, pAUC and how many were flagged, for each kind of fault and for all of them, against
    the normal test clips; and the normal clips' results."""
    from aetk.data import synth
    from aetk.detect.scoring import scores_of
    from aetk.eval import metrics
    from aetk.eval.evaluation import NORMAL, label_from_path

    def kind(result: ScoreResult) -> str:
        if label_from_path(result.path) == NORMAL:
            return "normal"
        return next(name for name in synth.ANOMALIES if name in Path(result.path).stem)

    normal = [r for r in results if kind(r) == "normal"]
    rows: list[dict[str, Any]] = []
    for group in (*synth.ANOMALIES, "all"):
        faulty = [r for r in results if kind(r) != "normal" and group in ("all", kind(r))]
        labels = [0] * len(normal) + [1] * len(faulty)
        scores = scores_of(normal + faulty)
        rows.append(
            {
                "anomaly": group,
                "clips": len(faulty),
                "auc": metrics.auc(labels, scores),
                "pauc": metrics.pauc(labels, scores),
                "detected": sum(bool(r.anomalous) for r in faulty),
            }
        )
    return rows, normal


def _print_summary(summary: dict[str, Any], kept_in: Path | None) -> None:
    from rich.table import Table

    table = Table(
        title=f"aetk demo: preset {summary['preset']}, threshold {summary['threshold']:.4g}"
    )
    for column in ("anomaly", "test clips", "AUC", "pAUC (FPR ≤ 0.1)", "flagged"):
        table.add_column(column, justify="left" if column == "anomaly" else "right")
    for row in summary["rows"]:
        table.add_row(
            row["anomaly"],
            str(row["clips"]),
            f"{row['auc']:.3f}",
            f"{row['pauc']:.3f}",
            f"{row['detected']}/{row['clips']}",
        )
    console.stdout.print(table)
    kept = f" Clips and detector are in {kept_in}." if kept_in is not None else ""
    console.stdout.print(
        f"False alarms on normal test clips: {summary['false_alarms']}/"
        f"{summary['normal_clips']}.{kept}",
        highlight=False,
    )
