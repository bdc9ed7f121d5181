"""``aetk-runtime score``: the same table, JSON Lines and exit statuses as ``aetk score``;
``aetk-runtime info``: what an exported detector holds, in the words of ``aetk info``.

Exit status: 0 all scored, 1 some file could not be scored, 2 usage error, 3 ``--fail-on-anomaly``
found an anomaly (and none failed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from aetk_core.errors import ConfigError

from aetk_runtime.errors import RuntimeUsageError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ANOMALY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="aetk-runtime", description="Score recordings with a detector exported by aetk."
    )
    root.add_argument("--version", action="store_true", help="print the version and exit")
    commands = root.add_subparsers(dest="command")
    score = commands.add_parser("score", help="score recordings; higher is more anomalous")
    score.add_argument("paths", nargs="+", metavar="PATH", help="recordings, folders, or - (stdin)")
    score.add_argument(
        "-d",
        "--detector",
        default="detector.onnx",
        help="file from aetk export (a fleet: the folder of its files, one per machine)",
    )
    score.add_argument("--json", action="store_true", help="JSON Lines on stdout")
    score.add_argument("--threshold", type=float, help="override the detector's threshold")
    score.add_argument(
        "--false-alarm-rate", type=float, help="recompute the threshold for this rate"
    )
    score.add_argument("--segment", type=float, help="score in windows of this many seconds")
    score.add_argument(
        "--fail-on-anomaly", action="store_true", help="exit with status 3 if any is anomalous"
    )
    score.add_argument(
        "--machine", metavar="NAME", help="a fleet's folder: score every recording as NAME's"
    )
    score.add_argument(
        "--machines",
        metavar="SOURCE",
        help="a fleet's folder: tell each recording's machine by 'folders', 'dcase' or a "
        "TABLE.csv (default: as the fleet was fitted)",
    )
    score.add_argument(
        "--strict",
        action="store_true",
        help="a recording that does not match the training recordings is an error, not a warning",
    )
    info = commands.add_parser(
        "info", help="describe an exported detector, or each of a fleet's folder"
    )
    info.add_argument(
        "detector",
        nargs="?",
        default="detector.onnx",
        metavar="DETECTOR",
        help="file from aetk export (a fleet: the folder of its files)",
    )
    info.add_argument("--json", action="store_true", help="one JSON object per detector")
    return root


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader of stdout went away (``| head``): stop quietly, as aetk does, with no
        # traceback from the flush at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FAILED
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    try:
        arguments = parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and EXIT_USAGE
    if arguments.version:
        from aetk_runtime import __version__

        print(f"aetk-runtime {__version__}")
        return EXIT_OK
    if arguments.command not in ("score", "info"):
        parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return score(arguments) if arguments.command == "score" else info(arguments)
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except (
        RuntimeUsageError,
        ConfigError,
    ) as exc:  # ConfigError: a setting such as AETK_MAX_SECONDS
        error(str(exc))
        return EXIT_USAGE


def score(arguments: argparse.Namespace) -> int:
    from aetk_core.audio import find_audio_files
    from aetk_core.recording import describe_warnings
    from aetk_core.verdict import window_length_warning

    if "-" in arguments.paths:
        if len(arguments.paths) > 1:
            raise RuntimeUsageError(
                "'-' (a recording on standard input) is scored alone, not beside other recordings"
            )
        files = [Path("-")]
    else:
        files = find_audio_files(arguments.paths)
    if not files:
        raise RuntimeUsageError(f"no audio files found in {', '.join(arguments.paths)}")
    scored, clip_seconds = _scoring(arguments, files)
    mismatch = window_length_warning(arguments.segment, clip_seconds)
    if mismatch:
        warn(mismatch)
    results = []
    for result in scored:
        results.append(result)
        if result.error:
            error(f"{result.path}: {result.error}")
        elif result.warnings:
            warn(f"{result.path}: {describe_warnings(result.warnings)}")
        if arguments.json:
            print(json.dumps(result.as_dict()), flush=True)
    if not arguments.json:
        print_table(results)
    if any(result.error for result in results):
        return EXIT_FAILED
    if arguments.fail_on_anomaly and any(result.anomalous for result in results):
        return EXIT_ANOMALY
    return EXIT_OK


def info(arguments: argparse.Namespace) -> int:
    """What each exported detector holds: who exported it, its features, its threshold, and
    what aetk fit said of it (an export written before it was carried says less)."""
    from aetk_core.describe import describe_threshold, detector_lines

    from aetk_runtime.detector import load
    from aetk_runtime.fleet import load_fleet

    path = Path(arguments.detector)
    fleet = load_fleet(path) if path.is_dir() else None
    detectors = [fleet.detector(name) for name in fleet.machines] if fleet else [load(path)]
    for detector in detectors:
        meta = detector.meta
        about = {
            "detector": str(detector.path),
            "machine": meta.get("machine"),
            "aetk_version": meta.get("aetk_version"),
            "schema_version": meta["schema_version"],
            "featurizer": meta["featurizer"],
            "threshold": detector.threshold,
            "summary": meta.get("summary"),
        }
        if arguments.json:
            print(json.dumps(about), flush=True)
            continue
        calibration = dict(
            meta["calibration"], normal_scores=len(meta["calibration"]["normal_scores"])
        )
        lines = (
            detector_lines(about["summary"])
            if about["summary"]
            else [f"threshold {detector.threshold:.6g} ({describe_threshold(calibration)})"]
        )
        features = ", ".join(
            f"{key}={value}" for key, value in meta["featurizer"]["params"].items()
        )
        machine = f", machine {about['machine']}" if about["machine"] else ""
        print(
            f"{detector.path}: exported by aetk {about['aetk_version']} "
            f"(export schema {about['schema_version']}{machine})",
            *lines,
            f"features: {meta['featurizer']['name']} ({features})",
            sep="\n  ",
        )
    return EXIT_OK


def _scoring(arguments: argparse.Namespace, files: list[Path]) -> tuple[Iterator, float | None]:
    """The rows of ``files`` as they come, from one exported detector or a fleet's folder of
    them, and the length of the clips that calibrated its threshold."""
    from aetk_core.audio import score_input

    from aetk_runtime.detector import load
    from aetk_runtime.fleet import load_fleet

    settings = {
        "threshold": arguments.threshold,
        "false_alarm_rate": arguments.false_alarm_rate,
        "segment": arguments.segment,
        "strict": arguments.strict,
        # As aetk score: every file's events and bands in the JSON rows, the anomalies' alone in
        # the table.
        "localize": True if arguments.json else "anomalous",
    }
    stdin = files == [Path("-")]
    if Path(arguments.detector).is_dir():
        fleet = load_fleet(arguments.detector)
        if stdin:
            one = score_input(fleet.score_audio, True, arguments.machine, **settings)
            return iter([one]), fleet.clip_seconds
        routing = {"machine": arguments.machine, "source": arguments.machines, "files": files}
        return fleet.iter_scores(arguments.paths, **routing, **settings), fleet.clip_seconds
    if arguments.machine is not None or arguments.machines is not None:
        raise RuntimeUsageError(
            f"{arguments.detector}: --machine and --machines need a fleet's folder of exported "
            "detectors (aetk export fleet.aetk -o FOLDER)"
        )
    detector = load(arguments.detector)
    if stdin:
        one = score_input(detector.score_audio, False, None, **settings)
        return iter([one]), detector.meta.get("clip_seconds")
    return detector.iter_scores(files, **settings), detector.meta.get("clip_seconds")


def print_table(results) -> None:
    """aetk score's table (:func:`aetk_core.results.table`): tab-separated when redirected,
    aligned on a terminal."""
    from aetk_core.results import from_common_folder, table, tally

    rows = table(results)
    if not sys.stdout.isatty():
        for row in rows:
            print("\t".join(row))
        print(tally(results), file=sys.stderr)
        return
    folder, rows = from_common_folder(rows)
    if folder:
        print(f"in {folder}{os.sep}")
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    print(tally(results))


def error(message: str) -> None:
    _say("error", message)


def warn(message: str) -> None:
    _say("warning", message)


def _say(kind: str, message: str) -> None:
    text = " ".join(str(message).split())
    print(f"{kind}: {text[:2000]}", file=sys.stderr, flush=True)
