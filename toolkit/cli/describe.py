"""A detector in words, as ``aetk fit`` prints the detector it wrote and ``aetk info`` a detector
file: a fleet's lines here, a detector's in :mod:`aetk_core.describe` (aetk-runtime prints them
too)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aetk_core.describe import threshold_caveat

if TYPE_CHECKING:
    from rich.console import Console


def print_described(console: Console, headline: str, lines: Sequence[str]) -> None:
    """``headline`` in bold, a colon and the first line, the others indented under it; taken as
    text (a path or a plugin's name may hold brackets that rich would read as markup)."""
    from rich.markup import escape

    console.print(
        f"[bold]{escape(headline)}[/bold]: " + escape("\n  ".join(lines)), highlight=False
    )


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
        caveat = threshold_caveat(machine["calibration"])
        lines.append(
            f"{', '.join(names)}: {shared}{machine['train_files']} training and "
            f"{machine['validation_files']} validation files, threshold "
            f"{machine['threshold']:.6g}{caveat}"
        )
    if summary["skipped_files"]:
        lines.append(
            f"{len(summary['skipped_files'])} recording(s) left out: no machine could be told"
        )
    return lines
