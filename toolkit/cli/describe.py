"""A detector in words: the lines ``aetk fit`` prints of the detector it wrote and ``aetk info``
prints of a detector file, from their summaries (``Detector.summary``,
``FleetDetector.summary``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def print_described(console: Console, headline: str, lines: Sequence[str]) -> None:
    """``headline`` in bold, a colon and the first line, the others indented under it; taken as
    text (a path or a plugin's name may hold brackets that rich would read as markup)."""
    from rich.markup import escape

    console.print(
        f"[bold]{escape(headline)}[/bold]: " + escape("\n  ".join(lines)), highlight=False
    )


def detector_lines(summary: dict[str, Any]) -> list[str]:
    """Its pipeline, what it learned from, its threshold and its views: one line each. A detector
    file written by an older aetk may lack a figure; its line then leaves it out."""
    from aetk.detect.calibration import Calibration
    from aetk.detect.explain import describe_views

    lines = [
        f"{summary['featurizer']} → {summary['model']} → {summary['scorer']} "
        f"(preset {summary['preset']}, {summary['parameters']:,} parameters)"
    ]
    if summary["train_files"] is not None:
        lines.append(
            f"{summary['train_files']} training and {summary['validation_files']} validation "
            f"files ({summary['skipped_files']} skipped), {_training(summary)}"
        )
    fitted = "" if summary["seconds"] is None else f", fitted in {summary['seconds']:.1f} s"
    lines.append(
        f"threshold {summary['threshold']:.6g} "
        f"({Calibration.describe(summary['calibration'])}){fitted}"
    )
    if summary["views"]:
        lines.append(describe_views(summary["views"]))
    analysed, heard = summary["analysed_hz"], summary["heard_hz"]
    if heard is not None and analysed is not None and heard < analysed:
        lines.append(
            f"hears up to {heard:.0f} Hz of the {analysed:.0f} Hz analysed: no training "
            "recording held more, so faster recordings are heard through that band"
        )
    return lines


def fleet_lines(summary: dict[str, Any], groups: Sequence[Sequence[str]]) -> list[str]:
    """A fleet: its categories, whether one network judges every machine, and a line per group
    of machines judged by one detector (``groups``: ``FleetDetector.machine_groups()``)."""
    columns = ", ".join(
        f"{column['name']} ({len(column['values'])} values, {column['encoding']})"
        for column in summary["categories"]
    )
    machines = summary["machines"]
    lines = [f"a fleet of {len(machines)} machines ({columns})"]
    if summary["one_network"]:
        model = next(iter(machines.values()))["model"]
        lines.append(f"one {model} network for the fleet, bound to each machine")
    for names in groups:
        machine = machines[names[0]]
        shared = "the whole fleet's detector, " if len(names) > 1 else ""
        lines.append(
            f"{', '.join(names)}: {shared}{machine['train_files']} training and "
            f"{machine['validation_files']} validation files, threshold {machine['threshold']:.6g}"
        )
    return lines


def _training(summary: dict[str, Any]) -> str:
    if not summary["epochs"]:
        return "no training (the model has no parameters)"
    best = "" if not summary["val_loss"] else f", best validation loss {summary['val_loss']:.4g}"
    return f"{summary['epochs']} epochs, best epoch {summary['best_epoch']}{best}"
