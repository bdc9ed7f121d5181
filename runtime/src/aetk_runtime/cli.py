"""``aetk-runtime score``: the same table, JSON Lines and exit statuses as ``aetk score``;
``aetk-runtime info``: what an exported detector holds, in the words of ``aetk info``;
``aetk-runtime watch``: ``aetk watch`` of a folder, an input device or standard input, with the
same events.

Exit status: 0 all scored, 1 some file could not be scored, 2 usage error, 3 ``--fail-on-anomaly``
found an anomaly (and none failed), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetk_core.errors import ConfigError, show_warnings_as_lines

from aetk_runtime.errors import RuntimeUsageError

if TYPE_CHECKING:
    from aetk_runtime.detector import ExportedDetector
    from aetk_runtime.fleet import ExportedFleet

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ANOMALY, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="aetk-runtime", description="Score recordings with a detector exported by aetk."
    )
    root.add_argument("--version", action="store_true", help="print the version and exit")
    commands = root.add_subparsers(dest="command")
    score = commands.add_parser("score", help="score recordings; higher is more anomalous")
    score.add_argument("paths", nargs="+", metavar="PATH", help="recordings, folders, or - (stdin)")
    _judging_options(score, "score every recording as NAME's")
    score.add_argument("--json", action="store_true", help="JSON Lines on stdout")
    score.add_argument("--segment", type=float, help="score in windows of this many seconds")
    score.add_argument(
        "--fail-on-anomaly", action="store_true", help="exit with status 3 if any is anomalous"
    )
    info = commands.add_parser(
        "info", help="describe an exported detector, or each of a fleet's folder"
    )
    info.add_argument(
        "detector",
        nargs="?",
        metavar="DETECTOR",
        help="file from aetk export (a fleet: the folder of its files; default: detector.onnx)",
    )
    info.add_argument(
        "-d",
        "--detector",
        dest="detector_option",
        metavar="DETECTOR",
        help="the detector, given as an option instead",
    )
    info.add_argument("--json", action="store_true", help="one JSON object per detector")
    _watch_parser(commands)
    return root


def _judging_options(command: argparse.ArgumentParser, machine_help: str) -> None:
    """What ``score`` and ``watch`` judge with: the exported detector (or a fleet's folder), its
    threshold, which machine, and how strictly recordings must match the training ones."""
    command.add_argument(
        "-d",
        "--detector",
        default="detector.onnx",
        help="file from aetk export (a fleet: the folder of its files, one per machine)",
    )
    command.add_argument("--threshold", type=float, help="override the detector's threshold")
    command.add_argument(
        "--false-alarm-rate", type=float, help="recompute the threshold for this rate"
    )
    command.add_argument("--machine", metavar="NAME", help=f"a fleet's folder: {machine_help}")
    command.add_argument(
        "--machines",
        metavar="SOURCE",
        help="a fleet's folder: tell each recording's machine by 'folders', 'dcase' or a "
        "TABLE.csv (default: as the fleet was fitted)",
    )
    command.add_argument(
        "--strict",
        action="store_true",
        help="a recording that does not match the training recordings is an error, not a warning",
    )


def _watch_parser(commands: Any) -> None:
    watch = commands.add_parser(
        "watch",
        help="score new files in a folder, or an input device or standard input in windows, and "
        "raise alerts",
        description="Files are scored as they arrive; an input device (mic) or standard input "
        "(arecord, ffmpeg, sox) in sliding windows. Alerts start after --confirm windows above "
        "the threshold and end after --clear windows below it. Ctrl-C or SIGTERM stops "
        "cleanly. With a fleet's folder of exported detectors (-d models/), each file is judged "
        "by its machine's. A new export written over the detector judges from then on, without "
        "a restart.",
    )
    watch.add_argument(
        "source",
        metavar="SOURCE",
        nargs="?",
        help="a folder, mic[:NAME|INDEX] (an input device: the default one, or one that "
        "--list-devices names), or - (standard input)",
    )
    watch.add_argument(
        "--list-devices", action="store_true", help="list input devices and exit (sounddevice)"
    )
    _judging_options(watch, "watch NAME's detector alone")
    watch.add_argument("--json", action="store_true", help="events as JSON Lines on stdout")
    watch.add_argument(
        "--window",
        type=float,
        help="window length in seconds (default: the detector's); a folder's files are scored "
        "in windows of this length, each by its worst",
    )
    watch.add_argument("--hop", type=float, help="hop between windows (default: window/2)")
    watch.add_argument(
        "--confirm", type=_within(int, 1), default=2, help="windows above threshold to start"
    )
    watch.add_argument(
        "--clear", type=_within(int, 1), default=2, help="windows below threshold to end"
    )
    watch.add_argument(
        "--cooldown", type=_within(float, 0), default=0.0, help="seconds between two alerts"
    )
    _watch_outputs(watch)
    _watch_inputs(watch)


def _watch_outputs(watch: argparse.ArgumentParser) -> None:
    """``watch``'s options for where events go."""
    watch.add_argument("--record", type=Path, help="keep the audio around each alert here, as WAV")
    watch.add_argument(
        "--pre", type=_within(float, 0), default=2.0, help="seconds recorded before an alert"
    )
    watch.add_argument(
        "--post", type=_within(float, 0), default=2.0, help="seconds recorded after it starts"
    )
    watch.add_argument(
        "--metrics-port",
        type=_within(int, 1, 65535),
        help="serve Prometheus metrics on this port (prometheus-client)",
    )
    watch.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics server")
    watch.add_argument(
        "--dashboard",
        metavar="[HOST:]PORT",
        help="serve a live page (scores, alerts with audio and spectrogram, acknowledge) on "
        "this port (127.0.0.1 unless HOST is given)",
    )
    watch.add_argument(
        "--webhook",
        metavar="URL",
        help="POST start/end events to this URL (a login as USER:PASSWORD@ in it, or a bearer "
        "token in AETK_WEBHOOK_TOKEN)",
    )
    watch.add_argument(
        "--test-alert",
        action="store_true",
        help="send one test_alert event to the --webhook and --mqtt outputs, say whether each "
        "took it, and exit (1 when one did not)",
    )
    watch.add_argument(
        "--mqtt",
        metavar="TARGET",
        help="publish alerts to an MQTT broker: HOST[:PORT]/TOPIC, or a URL such as "
        "mqtts://USER@HOST/TOPIC (mqtts: TLS; the password in AETK_MQTT_PASSWORD; needs paho-mqtt)",
    )


def _watch_inputs(watch: argparse.ArgumentParser) -> None:
    """``watch``'s options for what it reads: the stream's format, the folder's polling, and
    the state kept across restarts."""
    watch.add_argument("--state", type=Path, help="remember scored files here, across restarts")
    watch.add_argument(
        "--rate",
        type=_within(int, 1000),
        help="raw PCM on stdin at this rate (else WAV); the rate asked of a device",
    )
    watch.add_argument(
        "--channels",
        type=_within(int, 1, 256),
        default=1,
        help="channels of raw PCM; the channels asked of a device",
    )
    watch.add_argument(
        "--format", default="s16le", help="raw PCM sample format: s16le, s32le or f32le"
    )
    watch.add_argument(
        "--settle",
        type=_within(float, 0),
        default=1.0,
        help="a new file is read once its size is stable this long",
    )
    watch.add_argument(
        "--interval",
        type=_within(float, 0.05),
        default=1.0,
        help="how often a folder is walked whole (s; between walks, watchdog reports new files "
        "at once); the detector is looked at as often",
    )


def _within(kind: type, low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` from ``low`` to ``high`` (as aetk watch's options
    are bounded), refused in one line naming the bound."""

    def number(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {text}")
        return value

    return number


def main(argv: list[str] | None = None) -> None:
    show_warnings_as_lines(warn)  # once a process, as aetk's entry point does
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
    commands = {"score": score, "info": info, "watch": watch}
    if arguments.command not in commands:
        parser().print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return commands[arguments.command](arguments)
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
    from aetk_core.fleet import verdicts_warning
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
    scored, judging = _scoring(arguments, files)
    mismatch = window_length_warning(arguments.segment, judging.clip_seconds)
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
    unheld = verdicts_warning(judging, results, arguments.threshold, arguments.false_alarm_rate)
    if unheld:
        warn(unheld)
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
    from aetk_core.fileio import given_detector

    from aetk_runtime.detector import load
    from aetk_runtime.fleet import load_fleet

    path = given_detector(arguments.detector, arguments.detector_option, "detector.onnx")
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
        calibration = detector.calibration_summary()
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


def _scoring(
    arguments: argparse.Namespace, files: list[Path]
) -> tuple[Iterator, ExportedDetector | ExportedFleet]:
    """The rows of ``files`` as they come, and what judges them: one exported detector or a
    fleet's folder of them."""
    from aetk_core.audio import check_segment, score_input

    from aetk_runtime.detector import ExportedDetector
    from aetk_runtime.fleet import load_fleet, load_judging

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
        check_segment(fleet.detector(fleet.machines[0]).score_audio, arguments.segment, files)
        if stdin:
            one = score_input(fleet.score_audio, True, arguments.machine, **settings)
            return iter([one]), fleet
        routing = {"machine": arguments.machine, "source": arguments.machines, "files": files}
        return fleet.iter_scores(arguments.paths, **routing, **settings), fleet
    detector, _ = load_judging(arguments.detector, arguments.machine, arguments.machines)
    assert isinstance(detector, ExportedDetector)  # not a folder: one exported detector
    check_segment(detector.score_audio, arguments.segment, files)
    if stdin:
        one = score_input(detector.score_audio, False, None, **settings)
        return iter([one]), detector
    return detector.iter_scores(files, **settings), detector


def watch(arguments: argparse.Namespace) -> int:
    """Watch a folder or standard input until it ends or a signal stops it."""
    from aetk_core.watch import sources
    from aetk_core.watch.events import window_warnings
    from aetk_core.watch.monitor import Fleet, WatchOptions, finite, stop_on_signals

    from aetk_runtime.fleet import load_judging
    from aetk_runtime.watch import Monitor

    if arguments.list_devices:
        print(sources.list_devices())
        return EXIT_OK
    source = arguments.source
    if source is None:
        raise RuntimeUsageError("watch needs a SOURCE: a folder, 'mic[:NAME|INDEX]' or '-'")
    finite(arguments.window, "window")
    finite(arguments.hop, "hop")
    raw = sources.raw_format(arguments.rate, arguments.channels, arguments.format)
    is_folder = Path(source).is_dir()
    if source != "-" and not is_folder and source.partition(":")[0] != "mic":
        raise RuntimeUsageError(
            f"{source}: not a folder, 'mic[:NAME|INDEX]' (an input device) or '-' (standard input)"
        )
    detector, conditions = load_judging(arguments.detector, arguments.machine, arguments.machines)
    if not isinstance(detector, Fleet):
        clip_seconds = detector.clip_seconds
        for warning in window_warnings(arguments.window, arguments.hop, clip_seconds, is_folder):
            warn(warning)
    names = ["window", "hop", "confirm", "clear", "cooldown", "threshold", "false_alarm_rate"]
    names += ["record", "pre", "post", "metrics_port", "metrics_host", "webhook", "mqtt"]
    names += ["state", "settle", "interval", "strict", "machine", "machines", "dashboard"]
    settings = WatchOptions(
        **{name: getattr(arguments, name) for name in names},
        conditions=conditions,
        detector_file=Path(arguments.detector),
    )
    said = None if arguments.json else (lambda line: print(line, file=sys.stderr, flush=True))
    monitor = Monitor(detector, source, settings, _show_event(arguments.json, source), said)
    if arguments.test_alert:
        return _test_outputs(monitor)
    if monitor.dashboard is not None:
        print(f"Dashboard: {monitor.dashboard.url}", file=sys.stderr, flush=True)
    try:
        with stop_on_signals(monitor):
            _listen(monitor, arguments, raw, is_folder)
    finally:
        monitor.close()
    return EXIT_OK


def _test_outputs(monitor: Any) -> int:
    """``--test-alert``: one test event to every output; exit 1 when one did not take it."""
    from aetk_core.watch.events import describe_test_alert

    try:
        missed = monitor.send_test_alert()
    finally:
        monitor.close()
    if missed:
        error(describe_test_alert(missed))
        return EXIT_FAILED
    print(describe_test_alert(missed), file=sys.stderr, flush=True)
    return EXIT_OK


def _listen(monitor: Any, arguments: argparse.Namespace, raw: Any, is_folder: bool) -> None:
    """Watch the folder (``is_folder``), standard input (``raw``: its raw PCM's format, None for
    WAV) or input device that ``arguments.source`` names, until it ends or the watch stops."""
    from aetk_core.watch import sources

    source = arguments.source
    if is_folder:
        monitor.run_folder(Path(source))
    elif source == "-":
        monitor.run_stream(*sources.stdin_blocks(sources.stdin(), raw))
    else:
        address, rate, channels = source.partition(":")[2], arguments.rate, arguments.channels
        stream = sources.open_input_device(address, rate, channels, lambda: monitor.stopping)
        monitor.run_stream(*stream)


def _show_event(json_output: bool, source: str) -> Callable[[dict[str, Any]], None]:
    """A watch's events as JSON Lines, or each in words on a line (warnings on stderr)."""
    from aetk_core.watch.events import describe_event, describe_score, warning_lines

    def show(event: dict[str, Any]) -> None:
        if json_output:
            print(json.dumps(event), flush=True)
            return
        for line in warning_lines(event):
            warn(line)
        describe = describe_score if event["event"] == "scored" else describe_event
        print(f"{event['at']}  {describe(event, source)}", flush=True)

    return show


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
