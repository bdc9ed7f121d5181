"""``aetk export``: a detector as one ONNX file for the torch-free runtime."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aetk.cli import console, options
from aetk.cli.status import EXIT_FAILED

if TYPE_CHECKING:
    from aetk.fleet.detector import FleetDetector


def register(app: typer.Typer) -> None:
    app.command(name="export")(export_command)


def export_command(
    detector_argument: options.DetectorArgument = None,
    detector_option: options.DetectorArgumentAlso = None,
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="ONNX file to write (a fleet: a folder, one file per machine)."
        ),
    ] = Path("detector.onnx"),
    opset: Annotated[int, typer.Option(min=1, help="ONNX opset version.")] = 18,
    force: options.Force = False,
    machine: options.Machine = None,
) -> None:
    """Export a detector as ONNX for aetk-runtime, which needs no PyTorch.

    Everything after the featurizer (standardisation, model, scorer) becomes one ONNX file, with
    the featurizer, threshold and normal scores in its metadata. A fleet detector: one file per
    machine in the folder -o names, or one machine with --machine.
    """
    from aetk_core.fileio import given_detector

    from aetk.data.fileio import check_output
    from aetk.fleet.detector import FleetDetector, load_judging

    detector_path = given_detector(detector_argument, detector_option, "detector.aetk")
    detector, conditions = load_judging(detector_path, machine)
    if isinstance(detector, FleetDetector):
        _export_fleet(detector, detector_path, output, opset, force)
        return
    check_output(output, "onnx", [detector_path], force)
    _write(detector, output, opset, machine=machine, conditions=conditions)
    console.stderr.print(
        f"Wrote {output} ({console.size(output.stat().st_size)}): {detector.featurizer.name} "
        f"features in, score out; threshold {detector.threshold:.6g}",
        highlight=False,
    )


def _export_fleet(
    fleet: FleetDetector, detector_path: Path, folder: Path, opset: int, force: bool
) -> None:
    """Each machine of ``fleet`` as ``folder/MACHINE.onnx``, every path checked before any is
    written, and every file written (as a hidden ``.MACHINE.onnx.partial``) before any replaces
    the one before: a failed export leaves the folder's files as they were, and a watch of the
    folder (``aetk-runtime watch -d folder``) takes the new export up in one piece, not machine
    by machine as each file is written."""
    from aetk.errors import ConfigError

    if folder.suffix.lower() == ".onnx":
        raise ConfigError(
            f"{detector_path}: a fleet of {len(fleet.machines)} machines is exported as one file "
            "per machine: give -o FOLDER, or --machine NAME for one"
        )
    for name in fleet.machines:
        if Path(name).name != name or name in (".", ".."):
            raise ConfigError(
                f"machine {name!r}: not usable as a file name; export it with --machine and -o FILE"
            )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder; a fleet is exported as one file per machine")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    paths = {name: folder / f"{name}.onnx" for name in fleet.machines}
    try:
        try:
            _write_fleet(fleet, paths, detector_path, opset, force)
        finally:
            for path in paths.values():
                _partial(path).unlink(missing_ok=True)
    except (ConfigError, typer.Exit):
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a refused export leaves no trace
        raise
    console.stderr.print(
        f"Wrote {len(paths)} files to {folder}, one per machine ({', '.join(list(paths)[:4])}"
        f"{', …' if len(paths) > 4 else ''}), for aetk-runtime",
        highlight=False,
    )


def _partial(path: Path) -> Path:
    """Where a fleet's export writes ``path`` before moving it into place (hidden)."""
    return path.with_name(f".{path.name}.partial")


def _write_fleet(
    fleet: FleetDetector, paths: dict[str, Path], detector_path: Path, opset: int, force: bool
) -> None:
    """Each machine's file written aside (:func:`_partial`), then all moved to their ``paths``."""
    import os

    from aetk_core.machines import SOURCES, conditions

    from aetk.data.fileio import check_output

    for path in paths.values():
        check_output(path, "onnx", [detector_path], force)
    # The runtime routes a folder of these files as the fleet routed its recordings; a table's
    # path would not travel with them, so it is named only as a table.
    told_by = fleet.source if fleet.source in SOURCES else "table"
    for name in paths:
        row = conditions(fleet.rows.get(name, {}))
        _write(
            fleet.detector(name),
            _partial(paths[name]),
            opset,
            machine=name,
            conditions=row,
            machines_from=told_by,
        )
    for path in paths.values():
        os.replace(_partial(path), path)


def _write(detector, path: Path, opset: int, **fleet_place: Any) -> None:
    """:func:`aetk.export.onnx.export` (``fleet_place``: its ``machine``, ``conditions`` and
    ``machines_from``), a missing extra or a failed write said in one line."""
    from aetk.errors import ConfigError

    try:
        from aetk.export.onnx import export

        export(detector, path, opset=opset, **fleet_place)
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "onnx"
        raise ConfigError(f"aetk export needs {missing}: pip install 'aetk[export]'") from None
    except OSError as exc:
        console.error(f"{path}: cannot write ({exc.strerror or exc})")
        raise typer.Exit(EXIT_FAILED) from None
