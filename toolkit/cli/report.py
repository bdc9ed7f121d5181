"""``aetk report``: a self-contained HTML page explaining a detector's verdicts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aetk.cli import console, options
from aetk.cli.status import EXIT_FAILED


def register(app: typer.Typer) -> None:
    app.command(name="report")(report_command)


def report_command(
    paths: options.Recordings,
    detector_path: options.DetectorFile = Path("detector.aetk"),
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write.")] = Path(
        "report.html"
    ),
    labels: options.Labels = None,
    top: Annotated[
        int, typer.Option(min=1, help="How many of the most anomalous recordings to explain.")
    ] = 5,
    force: options.Force = False,
    machine: options.Machine = None,
    machines: options.Machines = None,
) -> None:
    """Write one self-contained HTML page of verdicts, spectrograms and error maps.

    The page shows the detector, every verdict, and for the most anomalous recordings where in
    time and frequency they depart from normal. With a fleet detector, each recording is judged
    by its machine's detector.
    """
    from aetk_core.fileio import atomic_write_text

    from aetk.data.audio import require_audio_files
    from aetk.data.fileio import check_output
    from aetk.eval.report import build_report
    from aetk.fleet.detector import load_judging

    options.check_detector_among_recordings(detector_path, paths)
    files = require_audio_files(paths)
    check_output(output, "report", [*files, detector_path], force)

    detector, _ = load_judging(detector_path, machine, machines)
    with console.progress("Scoring and explaining") as update:
        page = build_report(
            detector,
            paths,
            detector_path=detector_path,
            labels_csv=labels,
            top=top,
            machines=machines,
            progress=update,
            files=files,
        )
    try:
        atomic_write_text(output, page)
    except OSError as exc:
        console.error(f"{output}: cannot write the report ({exc.strerror or exc})")
        raise typer.Exit(EXIT_FAILED) from None
    console.stderr.print(f"Wrote {output} ({console.size(len(page))})", highlight=False)
