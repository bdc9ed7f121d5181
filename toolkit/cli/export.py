"""``aetk export``: a detector as one ONNX file for the torch-free runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aetk.cli import console, options
from aetk.cli.status import EXIT_FAILED


def register(app: typer.Typer) -> None:
    app.command(name="export")(export_command)


def export_command(
    detector_path: Annotated[
        Path, typer.Argument(metavar="DETECTOR", help="Detector file written by 'aetk fit'.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="ONNX file to write.")] = Path(
        "detector.onnx"
    ),
    opset: Annotated[int, typer.Option(min=17, help="ONNX opset version.")] = 18,
    force: options.Force = False,
    machine: options.Machine = None,
) -> None:
    """Write everything after the featurizer (standardisation, model, scorer) as one ONNX file,
    with the featurizer, threshold and normal scores in its metadata, for aetk-runtime."""
    from aetk.data.fileio import check_output
    from aetk.errors import ConfigError
    from aetk.fleet.detector import load_machine

    check_output(output, "onnx", [detector_path], force)
    detector, conditions = load_machine(detector_path, machine)
    try:
        from aetk.export.onnx import export

        export(detector, output, opset=opset, machine=machine, conditions=conditions)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "onnx"
        raise ConfigError(f"aetk export needs {missing}: pip install 'aetk[export]'") from None
    except OSError as exc:
        console.error(f"{output}: cannot write ({exc.strerror or exc})")
        raise typer.Exit(EXIT_FAILED) from None
    console.stderr.print(
        f"Wrote {output} ({output.stat().st_size / 1e6:.1f} MB): {detector.featurizer.name} "
        f"features in, score out; threshold {detector.threshold:.6g}",
        highlight=False,
    )
