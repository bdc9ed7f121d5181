"""``aetk watch``: listen to a folder, a live input device or standard input, and raise alerts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from aetk.cli import console, options


def register(app: typer.Typer) -> None:
    app.command(name="watch")(watch_command)


def watch_command(
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="SOURCE",
            help="A folder, 'mic' or 'mic:NAME|INDEX', '-' (standard input), or SCHEME:ADDRESS "
            "of a source a plugin adds.",
        ),
    ] = None,
    detector_path: options.DetectorFile = Path("detector.aetk"),
    window: Annotated[
        float | None,
        typer.Option(
            help="Window length in seconds (default: the detector's); a folder's files are "
            "scored in windows of this length, each by its worst."
        ),
    ] = None,
    hop: Annotated[
        float | None, typer.Option(help="Hop between windows (default: window/2).")
    ] = None,
    confirm: Annotated[int, typer.Option(min=1, help="Windows above threshold to start.")] = 2,
    clear: Annotated[int, typer.Option(min=1, help="Windows below threshold to end.")] = 2,
    cooldown: Annotated[float, typer.Option(min=0.0, help="Seconds between two alerts.")] = 0.0,
    threshold: options.Threshold = None,
    false_alarm_rate: options.ScoringFalseAlarmRate = None,
    json_output: Annotated[bool, typer.Option("--json", help="Events as JSON Lines.")] = False,
    record: Annotated[
        Path | None, typer.Option(help="Keep the audio around each alert here, as WAV.")
    ] = None,
    pre: Annotated[float, typer.Option(min=0.0, help="Seconds recorded before an alert.")] = 2.0,
    post: Annotated[float, typer.Option(min=0.0, help="Seconds recorded after it starts.")] = 2.0,
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Serve Prometheus metrics on this port.")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the metrics server.")] = "127.0.0.1",
    webhook: Annotated[
        str | None,
        typer.Option(
            help="POST start/end events to this URL (a login as USER:PASSWORD@ in it, or a "
            "bearer token in AETK_WEBHOOK_TOKEN)."
        ),
    ] = None,
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="Publish alerts to an MQTT broker: HOST[:PORT]/TOPIC, or a URL such as "
            "mqtts://USER@HOST/TOPIC (mqtts: TLS; the password in AETK_MQTT_PASSWORD)."
        ),
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="Remember scored files here, across restarts.")
    ] = None,
    rate: Annotated[
        int | None, typer.Option(min=1000, help="Raw PCM on stdin at this rate (else WAV).")
    ] = None,
    channels: Annotated[int, typer.Option(min=1, max=256, help="Channels of raw PCM / mic.")] = 1,
    pcm_format: Annotated[
        str, typer.Option("--format", help="Raw PCM sample format: s16le, s32le or f32le.")
    ] = "s16le",
    settle: Annotated[
        float, typer.Option(min=0.0, help="A new file is read once its size is stable this long.")
    ] = 1.0,
    interval: Annotated[
        float,
        typer.Option(
            min=0.05,
            help="How often a folder is walked whole (s; between walks, watchdog reports new "
            "files at once); the detector file is looked at as often.",
        ),
    ] = 1.0,
    strict: options.Strict = False,
    machine: options.Machine = None,
    machines: options.Machines = None,
    dashboard: Annotated[
        str | None,
        typer.Option(
            metavar="[HOST:]PORT",
            help="Serve a live page (scores, alerts with audio and spectrogram, acknowledge) "
            "on this port (127.0.0.1 unless HOST is given).",
        ),
    ] = None,
    list_devices: Annotated[
        bool, typer.Option("--list-devices", help="List input devices and exit.")
    ] = False,
    test_alert: Annotated[
        bool,
        typer.Option(
            "--test-alert",
            help="Send one test_alert event to the --webhook and --mqtt outputs, say whether "
            "each took it, and exit (1 when one did not).",
        ),
    ] = False,
) -> None:
    """Score continuously: new files in a folder, or a live device or stream in windows.

    Files are scored as they arrive; a live device or standard input (arecord, ffmpeg, sox) in
    sliding windows. Alerts start after --confirm windows above the threshold and end after
    --clear windows below it. Ctrl-C or SIGTERM stops cleanly. A fleet detector watches a
    folder, each file judged by its machine's detector. A refit written over the detector file
    judges from then on, without a restart.
    """
    from aetk_core.watch import sources
    from aetk_core.watch.events import window_warnings
    from aetk_core.watch.monitor import WatchOptions, finite

    from aetk.detect.detector import Detector
    from aetk.errors import ConfigError
    from aetk.fleet.detector import load_judging

    if list_devices:
        print(sources.list_devices())
        return
    if source is None:
        raise ConfigError("aetk watch needs a SOURCE: a folder, 'mic[:NAME|INDEX]' or '-'")
    finite(window, "window")
    finite(hop, "hop")
    raw = sources.raw_format(rate, channels, pcm_format)
    detector, conditions = load_judging(detector_path, machine, machines)
    if isinstance(detector, Detector):
        for warning in window_warnings(window, hop, detector.clip_seconds, Path(source).is_dir()):
            console.warn(warning)
    settings = WatchOptions(
        window=window,
        hop=hop,
        confirm=confirm,
        clear=clear,
        cooldown=cooldown,
        threshold=threshold,
        false_alarm_rate=false_alarm_rate,
        record=record,
        pre=pre,
        post=post,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        webhook=webhook,
        mqtt=mqtt,
        state=state,
        settle=settle,
        interval=interval,
        strict=strict,
        machine=machine,
        conditions=conditions,
        machines=machines,
        dashboard=dashboard,
        detector_file=detector_path,
    )
    _run(detector, source, settings, json_output, (rate, channels, raw), test_alert)


def _run(
    detector, source: str, settings, json_output: bool, raw: tuple, test_alert: bool = False
) -> None:
    """Watch ``source`` until it ends or a signal stops it; ``raw``: the rate and channels asked
    of a device, and the format of raw PCM on standard input (None: a WAV stream). With
    ``test_alert``, only test the outputs (:func:`_test_outputs`)."""
    from aetk_core.watch import sources
    from aetk_core.watch.monitor import stop_on_signals

    from aetk.errors import ConfigError
    from aetk.plugin.host import get_host
    from aetk.watch.monitor import Monitor

    rate, channels, form = raw
    view = _View(json_output, source)
    monitor = Monitor(detector, source, settings, view.show, None if json_output else view.say)
    if test_alert:
        _test_outputs(monitor, view)
        return
    if monitor.dashboard is not None:
        console.stderr.print(f"Dashboard: {monitor.dashboard.url}", highlight=False)
    plugin_source = get_host().watch_source(source)
    try:
        with stop_on_signals(monitor):
            if plugin_source is not None:
                opener, address = plugin_source
                monitor.run_stream(*opener(address, rate, channels, lambda: monitor.stopping))
            elif source == "-":
                monitor.run_stream(*sources.stdin_blocks(sources.stdin(), form))
            else:
                folder = Path(source)
                if not folder.is_dir():
                    schemes = ", ".join(sorted(get_host().watch_sources))
                    raise ConfigError(
                        f"{folder}: not a folder, '-' or a source of a known scheme ({schemes})"
                    )
                monitor.run_folder(folder, view.progress)
    finally:
        monitor.close()
        view.close()


def _test_outputs(monitor, view) -> None:
    """``--test-alert``: one test event to every output, then exit 1 when one did not take it."""
    from aetk_core.watch.events import describe_test_alert

    try:
        missed = monitor.send_test_alert()
    finally:
        monitor.close()
        view.close()
    if missed:
        console.error(describe_test_alert(missed))
        raise typer.Exit(1)
    console.stderr.print(describe_test_alert(missed), highlight=False)


#: How the lines of alerts and failures stand out on a terminal.
_STYLES = {
    "anomaly_start": "bold red",
    "anomaly_end": "green",
    "error": "yellow",
    "webhook_failed": "yellow",
    "mqtt_failed": "yellow",
    "test_alert": "bold",
}


class _View:
    """JSON Lines on stdout, or readable lines and a live status on stderr."""

    def __init__(self, json_output: bool, source: str):
        self.json_output, self.source = json_output, source
        self.status = None if json_output else console.stderr.status("watching")
        if self.status is not None:
            self.status.start()
        self.bar = None
        #: The live status of the last score, shown again once the files already there are.
        self.last_score = "watching"

    def show(self, event: dict) -> None:
        from aetk_core.watch.events import describe_event, describe_score, warning_lines

        if self.json_output:
            print(json.dumps(event), flush=True)
            return
        name = event["event"]
        for line in warning_lines(event):
            console.warn(line)
        if name == "scored":
            if self.status is not None:
                self.last_score = describe_score(event, self.source)
                self.status.update(self.last_score)
            return
        text = Text(describe_event(event, self.source), style=_STYLES.get(name, ""))
        console.stdout.print(f"{event['at']}  ", text, sep="", highlight=False)

    def say(self, line: str) -> None:
        """A line on stderr above the live status (what the watch judges, as it starts)."""
        console.stderr.print(line, highlight=False)

    def progress(self, done: int, total: int) -> None:
        if self.json_output or total < 2:
            return
        if self.status is not None:
            # Once they are all scored, the watch waits for new files: the last score stands.
            self.status.update(
                f"scoring the {total} files already there: {done}/{total}"
                if done < total
                else self.last_score
            )

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
