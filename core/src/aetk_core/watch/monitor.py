"""Continuous scoring of a stream or a folder, with alerts, in bounded memory however long it
runs: ``aetk watch`` with aetk's detectors, ``aetk-runtime watch`` with exported ones.

A detector here is one that scores as both do (:class:`aetk_core.detector.ScoringDetector`) and
says its ``clip_seconds``; a fleet (:class:`aetk_core.fleet.Fleet`) also gives each machine's
detector and routes a recording to its machine."""

from __future__ import annotations

import datetime
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aetk_core.errors import AetkError, ConfigError
from aetk_core.fleet import Fleet
from aetk_core.machines import MACHINE
from aetk_core.results import ScoreResult, view_from
from aetk_core.verdict import is_anomalous, window_length_warning
from aetk_core.watch.alerts import AlertTracker
from aetk_core.watch.events import describe_watch
from aetk_core.watch.outputs import Metrics, Mqtt, Recorder, Webhook
from aetk_core.watch.refit import DetectorFileWatch
from aetk_core.watch.sources import REST_FACTOR, FolderWatch, StreamFormat
from aetk_core.watch.state import StateFile, state_lock

if TYPE_CHECKING:
    from aetk_core.watch.dashboard import Dashboard

#: While a folder watch scores a batch of files, its ``--state`` is written at most this often
#: (and after the batch).
STATE_SECONDS = 1.0


@dataclass
class WatchOptions:
    window: float | None = None
    hop: float | None = None
    confirm: int = 2
    clear: int = 2
    cooldown: float = 0.0
    threshold: float | None = None
    false_alarm_rate: float | None = None
    record: Path | None = None
    pre: float = 2.0
    post: float = 2.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    webhook: str | None = None
    mqtt: str | None = None
    state: Path | None = None
    settle: float = 1.0
    interval: float = 1.0
    strict: bool = False
    #: The fleet machine watched (its detector is the one given), carried on every event, with
    #: its conditions in the fleet.
    machine: str | None = None
    conditions: dict[str, str] | None = None
    #: With a fleet detector watching a folder: how each file's machine is told (``folders``,
    #: ``dcase`` or a table; None: the way the fleet was fitted).
    machines: str | None = None
    #: ``[HOST:]PORT`` of the live page (``--dashboard``), and the detector's file, which the
    #: watch reads again when a refit replaces it (looked at every ``interval`` seconds).
    dashboard: str | None = None
    detector_file: Path | None = None


@dataclass
class Judge:
    """What judges one machine's recordings: its detector, the threshold it is held to, its
    alerts, and the machine and conditions its events carry (None: a single detector)."""

    detector: Any
    threshold: float
    tracker: AlertTracker
    machine: str | None = None
    conditions: dict[str, str] | None = None
    #: Why its threshold holds no false-alarm rate (:meth:`ScoringDetector.threshold_note`).
    note: str = ""


class Monitor:
    """Scores windows or files, tracks alerts and sends every event where it is asked to go.

    With a fleet detector it watches a folder: each file is judged by its machine's detector,
    at its machine's threshold, and each machine's alerts start and end on their own.

    A subclass says how its detector file is read again after a refit (:meth:`load`)."""

    def __init__(
        self,
        detector: Any,
        source: str,
        options: WatchOptions,
        emit: Callable[[dict[str, Any]], None],
        on_start: Callable[[str], None] | None = None,
    ):
        """``emit`` gets every event; ``on_start``, once the source is open and the watch about
        to listen, what it judges in a line (:meth:`describe`)."""
        self.source, self.options, self.emit = source, options, emit
        self.on_start = on_start
        self.fleet: Fleet | None = None
        self.judges: dict[str, Judge] = {}
        self.main: Judge | None = None
        self._judge_with(detector, options.conditions)
        self.detector_file = (
            DetectorFileWatch(options.detector_file, options.interval)
            if options.detector_file
            else None
        )
        self.metrics = (
            Metrics(options.metrics_port, options.metrics_host, per_machine=bool(self.fleet))
            if options.metrics_port is not None
            else None
        )
        if self.metrics:
            for judge in self._every_judge():
                self.metrics.gauge("anomalous", judge.machine).set(0)
        #: The outputs (``webhook``, ``mqtt``) that did not deliver a test alert.
        self.missed_test_alert: set[str] = set()
        # Before the senders: their threads may report a failure as soon as they start.
        self.dashboard = self.open_dashboard() if options.dashboard else None
        try:
            self.senders = self._senders()
        except ConfigError:  # a target that is none: the page goes with the watch
            if self.dashboard:
                self.dashboard.close()
            raise
        self._show_thresholds()
        self.stopping = False
        self.scored = 0
        #: A stream's window length (None: a folder's files are scored whole).
        self.window_seconds: float | None = None
        self._state_unwritten = False  # the last write of --state failed (said once)
        self._state_due = 0.0  # while files are scored, --state is not written before this
        self._folder_window_checked = False  # a folder's --window, at its first readable file

    def load(self) -> tuple[Any, dict[str, str] | None]:
        """The detector file read again (``options.detector_file``, for ``options.machine``
        and ``options.machines``), and the conditions of the one machine judged."""
        raise NotImplementedError("a watch of a detector file says how to read it")

    def open_dashboard(self) -> Dashboard:
        """The live page for ``options.dashboard``, its pictures drawn by :meth:`draw_alert`;
        it plays files of the watched folder and of ``--record``."""
        from aetk_core.watch.dashboard import Dashboard, parse_address

        allowed = [Path(self.source)] if Path(self.source).is_dir() else []
        allowed += [self.options.record] if self.options.record else []
        return Dashboard(
            parse_address(self.options.dashboard or ""),
            self.options.machine or self.source,
            self.main.threshold if self.main else None,
            self.draw_alert,
            allowed,
            confirm=self.options.confirm,
            clear=self.options.clear,
        )

    def draw_alert(self, audio: Path, machine: str | None, threshold: float | None) -> bytes | None:
        """PNG of ``audio``'s spectrogram with its events marked (:mod:`aetk_core.watch.picture`),
        as the detector judging it now (a fleet's: ``machine``'s) explains it at ``threshold``
        (its ``explain(path, threshold)``: the one scoring path, localized); None when it cannot
        be read or localized, or the detector does not explain."""
        from aetk_core.watch.picture import alert_picture

        judge = self.judges.get(str(machine)) if self.fleet else self.main
        explain = getattr(judge.detector, "explain", None) if judge else None
        if explain is None:
            return None
        try:
            explained = explain(audio, threshold)
        except AetkError:
            return None
        if explained is None:
            return None
        return alert_picture(
            explained.spectrogram,
            explained.events,
            explained.band_edges_hz,
            explained.frame_seconds,
        )

    def _judge_with(self, detector: Any, conditions: dict[str, str] | None) -> None:
        """Judge with ``detector`` (each machine's, for a fleet; ``conditions``: the one
        detector's machine's), keeping the alerts of the machines judged before: an alert open
        under one detector stays open under its refit until windows below the new threshold
        clear it."""
        trackers = {judge.machine: judge.tracker for judge in self._every_judge()}
        if isinstance(detector, Fleet):
            _check_fleet_watch(detector, self.source, self.options)
            self.fleet = detector
            self.judges = {
                name: self._judge_for(machine_detector, name, machine_conditions)
                for name, (machine_detector, machine_conditions) in (
                    detector.machine_detectors().items()
                )
            }
        else:
            self.main = self._judge_for(detector, self.options.machine, conditions)
        for judge in self._every_judge():
            judge.tracker = trackers.get(judge.machine, judge.tracker)

    def _show_thresholds(self) -> None:
        if self.metrics:
            for judge in self._every_judge():
                self.metrics.gauge("threshold", judge.machine).set(judge.threshold)
        if self.dashboard:
            self.dashboard.threshold = self.main.threshold if self.main else None
            self.dashboard.notes = self._notes(unnamed=self.dashboard.name)

    def reload_if_refitted(self) -> bool:
        """Judge with the detector file again once a refit has replaced it (an ``error`` event,
        and the detector read before, when the new file cannot be read or is of another kind:
        a fleet for one detector, or the other way round); whether it did."""
        if self.detector_file is None or not self.detector_file.replaced():
            return False
        path = self.detector_file.path
        try:
            detector, conditions = self.load()
            if isinstance(detector, Fleet) != (self.fleet is not None):
                kind = "a fleet detector" if self.fleet is None else "one machine's detector"
                raise ConfigError(f"it is now {kind}: restart the watch to judge with it")
            self._judge_with(detector, conditions)
        except (AetkError, OSError) as exc:
            self.error(
                f"{path} was replaced and cannot be judged with ({exc}): still judging with the "
                "detector read before"
            )
            return False
        self._show_thresholds()
        said: dict[str, Any] = {"machines": sorted(self.judges)} if self.fleet else {}
        self.event("detector_reloaded", None, path=str(path), **said, **self._rewindowed())
        return True

    def _rewindowed(self) -> dict[str, Any]:
        """A stream's windows under a refit: of the refit's calibrated clip length from the next
        window on (the event's ``window``, when it changed), unless ``--window`` sets their
        length, which the event's ``warning`` then says misreads the refit's threshold when the
        refit was calibrated on clips of another length."""
        if self.main is None or self.window_seconds is None:
            return {}
        if self.options.window:
            mismatch = window_length_warning(self.options.window, self.main.detector.clip_seconds)
            return {"warning": mismatch} if mismatch else {}
        # An export that does not say its clips' length leaves the windows as they were.
        seconds = float(self.main.detector.clip_seconds or self.window_seconds)
        if seconds == self.window_seconds:
            return {}
        self.window_seconds = seconds
        return {"window": seconds}

    def _judge_for(
        self, detector: Any, machine: str | None, conditions: dict[str, str] | None
    ) -> Judge:
        options = self.options
        return Judge(
            detector,
            detector.threshold_for(options.threshold, options.false_alarm_rate),
            AlertTracker(options.confirm, options.clear, options.cooldown),
            machine,
            conditions,
            detector.threshold_note(options.threshold, options.false_alarm_rate),
        )

    def describe(self) -> str:
        """What this watch judges, in a line (:func:`aetk_core.watch.events.describe_watch`)."""
        options = self.options
        return describe_watch(
            self.source,
            options.detector_file,
            [judge.threshold for judge in self._every_judge()],
            options.confirm,
            options.clear,
            self._notes(unnamed=""),
        )

    def _notes(self, unnamed: str) -> dict[str, str]:
        """Each judge's note where its threshold holds no false-alarm rate, by its machine
        (``unnamed`` for a single detector's)."""
        return {judge.machine or unnamed: judge.note for judge in self._every_judge() if judge.note}

    def _say_start(self) -> None:
        if self.on_start is not None:
            self.on_start(self.describe())

    def _every_judge(self) -> list[Judge]:
        return [self.main] if self.main else list(self.judges.values())

    def _single(self) -> Judge:
        """The one detector's judge (a stream is one machine's)."""
        if self.main is None:
            raise ConfigError("a fleet detector watches a folder: give --machine NAME")
        return self.main

    # -- events ---------------------------------------------------------------------------------

    def event(
        self,
        name: str,
        time: float | None,
        source: str | None = None,
        judge: Judge | None = None,
        **fields: Any,
    ):
        """Emit one event, with the threshold, machine and conditions of ``judge`` (default:
        the one detector's; a fleet's file that reached no machine has none)."""
        judge = judge or self.main
        event = {
            "event": name,
            "source": source or self.source,
            "time": None if time is None else round(time, 3),
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "threshold": judge.threshold if judge else None,
            **(
                {"machine": judge.machine, "conditions": judge.conditions or {}}
                if judge and judge.machine
                else {}
            ),
            **fields,
        }
        self.emit(event)
        if self.dashboard:
            self.dashboard.record(event)
        if name in ("anomaly_start", "anomaly_end"):
            for sender in self.senders:
                sender.send(event)
        return event

    def judge(
        self,
        start: float,
        score: float,
        source: str | None = None,
        lag: float = 0.0,
        warnings: list[dict[str, str]] | None = None,
        judge: Judge | None = None,
        view: dict[str, Any] | None = None,
    ) -> str | None:
        """Track one scored window or file (scored ``lag`` seconds behind real time, recorded
        with the recording ``warnings``, by ``judge``: default the one detector's; ``view``:
        which of the scorer's views gave the score, and when); emits ``scored`` and any alert it
        completes, the alert with the view of the score that completed it."""
        judge = judge or self._single()
        self.scored += 1
        anomalous = is_anomalous(score, judge.threshold)
        raised_by = {"view": view} if view else {}
        extra = {"warnings": warnings} if warnings else {}
        self.event(
            "scored",
            start,
            source,
            judge,
            score=score,
            anomalous=anomalous,
            lag=round(lag, 3),
            **raised_by,
            **extra,
        )
        if self.metrics:
            self.metrics.gauge("score", judge.machine).set(score)
            self.metrics.gauge("scored_at", judge.machine).set_to_current_time()
            self.metrics.lag.set(lag)
            for warning in warnings or []:
                self.metrics.recording_warnings.labels(warning["name"]).inc()
        change, since = judge.tracker.update(start, score, judge.threshold)
        if change is not None:
            started = raised_by if change == "anomaly_start" else {}
            self.event(change, since, source, judge, score=score, **started)
            if self.metrics:
                self.metrics.gauge("anomalous", judge.machine).set(int(judge.tracker.active))
                if change == "anomaly_start":
                    self.metrics.anomalies.inc()
        return change

    def error(
        self,
        reason: str,
        time: float | None = None,
        source: str | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.event("error", time, source, judge, error=reason)
        if self.metrics:
            self.metrics.errors.inc()

    def _senders(self) -> list[Webhook | Mqtt]:
        """The webhook and MQTT senders asked for, each telling its failures as an event."""
        senders: list[Webhook | Mqtt] = []
        if self.options.webhook:
            senders.append(
                Webhook(self.options.webhook, on_failure=self._failed_to("webhook_failed"))
            )
        if self.options.mqtt:
            senders.append(Mqtt(self.options.mqtt, on_failure=self._failed_to("mqtt_failed")))
        return senders

    def _failed_to(self, name: str) -> Callable[[str, dict[str, Any]], None]:
        """What a sender (the webhook, MQTT) calls, from its own thread, when it could not deliver
        an event (or, with an empty one, cannot reach its endpoint): an event ``name`` on the
        event stream and the live page, counted as an error."""

        def failed(reason: str, event: dict[str, Any]) -> None:
            undelivered = event.get("event")
            source = event.get("source")
            self.event(name, event.get("time"), source, error=reason, undelivered=undelivered)
            if undelivered == "test_alert":
                self.missed_test_alert.add(name.removesuffix("_failed"))
            if self.metrics:
                self.metrics.errors.inc()

        return failed

    def send_test_alert(self) -> list[str]:
        """A ``test_alert`` event said and sent to every webhook and MQTT output, which are then
        closed, each given the time a stopping watch gives it to deliver: the outputs that did
        not take it (each such failure also said as any is, ``webhook_failed`` or
        ``mqtt_failed``). For checking the outputs when a watch is set up, with no anomaly to
        wait for."""
        if not self.senders:
            raise ConfigError("--test-alert needs --webhook or --mqtt: there is no output to test")
        event = self.event("test_alert", None)
        senders, self.senders = self.senders, []
        for sender in senders:
            sender.send(event)
        for sender in senders:
            sender.close()
        return sorted(self.missed_test_alert)

    def close(self) -> None:
        if self.dashboard:
            self.dashboard.close()
        for sender in self.senders:
            sender.close()
        if self.metrics:
            self.metrics.close()

    # -- streams --------------------------------------------------------------------------------

    def score_window(self, samples: np.ndarray, rate: int) -> ScoreResult | None:
        """One window through the detector's scoring path; None (and an error event) if it
        cannot be scored."""
        judge = self._single()
        # A window of the length asked for: its recording is checked as such a window, not
        # against the training clips' length (said once as the watch starts, not every window).
        result = judge.detector.score_audio(
            samples,
            rate,
            name=self.source,
            threshold=judge.threshold,
            segment=samples.shape[-1] / rate,
            strict=self.options.strict,
        )
        if result.error is not None or result.score is None:
            self.error(result.error or "not scored")
            return None
        return result

    def run_stream(self, form: StreamFormat, blocks: Iterator[np.ndarray]) -> None:
        window_seconds = self.window_seconds = self._window_length()
        window, hop = self._in_samples(form.rate)
        self._check_window(form, window)
        recorder = self._recorder(form.rate, window_seconds)
        buffer = np.zeros((form.channels, 0), np.float32)
        consumed = 0  # samples before the buffer's first
        self._say_start()
        next_start = 0
        started = time.monotonic()
        for block in blocks:
            if self.reload_if_refitted():
                window, hop = self._in_samples(form.rate)
                if recorder:
                    recorder.resize(self.window_seconds or window_seconds)
            buffer = np.concatenate([buffer, block], axis=1)
            end_time = (consumed + buffer.shape[1]) / form.rate
            if recorder:
                for path in recorder.add(block, end_time):
                    self.event("recorded", end_time, path=str(path))
            while next_start + window <= consumed + buffer.shape[1]:
                offset = next_start - consumed
                lag = max(0.0, time.monotonic() - started - (next_start + window) / form.rate)
                self._stream_window(
                    buffer[:, offset : offset + window], next_start / form.rate, form, lag, recorder
                )
                next_start += hop
            # Bounded memory: only what the next window still needs stays.
            keep_from = min(next_start, consumed + buffer.shape[1]) - consumed
            buffer, consumed = buffer[:, keep_from:], consumed + keep_from
            if self.stopping:
                break
        if not next_start and not self.stopping:
            self.error(
                f"the stream ended after {consumed / form.rate + buffer.shape[1] / form.rate:.1f}"
                f" s, before its first window of {window_seconds:g} s: nothing was scored "
                "(--window sets the length)"
            )
        if recorder:
            for path in recorder.flush():
                self.event("recorded", None, path=str(path))

    def _recorder(self, rate: int, window_seconds: float) -> Recorder | None:
        """What keeps the audio around each alert (``--record``; None: not asked for)."""
        options = self.options
        if options.record is None:
            return None
        return Recorder(
            options.record, rate, options.pre, options.post, window_seconds, on_failure=self.error
        )

    def _in_samples(self, rate: int) -> tuple[int, int]:
        """The stream's window and hop (``--hop``, or half a window) in samples at ``rate``."""
        seconds = self.window_seconds or self._window_length()
        hop_seconds = self.options.hop or seconds / 2
        return round(seconds * rate), max(1, round(hop_seconds * rate))

    def _window_length(self) -> float:
        """``--window``, or by default the length of the clips the threshold was calibrated on."""
        seconds = self.options.window or self._single().detector.clip_seconds
        if not seconds:
            raise ConfigError(
                "give --window: the detector does not say how long the clips were that its "
                "threshold was calibrated on"
            )
        return float(seconds)

    def _check_window(self, form: StreamFormat, window: int) -> None:
        """Refuse, as the stream starts, windows that no sound could be scored in, rather than
        every window of the stream becoming an error event, twice a window for as long as it
        runs (:func:`aetk_core.audio.check_window`)."""
        from aetk_core.audio import check_window

        score_audio = self._single().detector.score_audio
        check_window(score_audio, window / form.rate, form.rate, form.channels, "--window")

    def _stream_window(
        self,
        samples: np.ndarray,
        start: float,
        form: StreamFormat,
        lag: float,
        recorder: Recorder | None,
    ) -> None:
        """Score and judge one window of a stream that begins ``start`` seconds in."""
        result = self.score_window(samples, form.rate)
        if result is not None and result.score is not None:
            change = self.judge(
                start,
                result.score,
                lag=lag,
                warnings=result.warnings,
                view=view_from(result.view, start),
            )
            if change == "anomaly_start" and recorder:
                recorder.start(start)
        if self.metrics:
            self.metrics.windows.inc()

    # -- folders --------------------------------------------------------------------------------

    def run_folder(self, folder: Path, progress: Callable[[int, int], None] | None = None) -> None:
        with state_lock(self.options.state):
            self._run_folder(folder, progress)

    def _run_folder(self, folder: Path, progress: Callable[[int, int], None] | None) -> None:
        state = StateFile(self.options.state)
        scored, active = state.read()
        self._restore_alerts(active)
        watcher = FolderWatch(folder, scored, self.options.settle, self.options.interval)
        first = True
        self._say_start()
        try:
            while not self.stopping:
                self.reload_if_refitted()
                ready = watcher.ready()
                kept = True
                for done, path in enumerate(ready, start=1):
                    self._score_file(folder, path)
                    watcher.mark_scored(path)
                    kept = self._keep_state(state, scored, unless_recent=True)
                    if first and progress is not None:
                        progress(done, len(ready))
                    if self.stopping:
                        break
                if not kept:  # the batch's last files
                    self._keep_state(state, scored)
                first = first and not ready
                watcher.wait()
        finally:
            watcher.close()
            self._keep_state(state, scored, fold=True)

    def _keep_state(
        self,
        state: StateFile,
        scored: dict[str, list[int] | None],
        unless_recent: bool = False,
        fold: bool = False,
    ) -> bool:
        """Write the state (``fold``: into one file, as the watch stops); where it cannot be
        written (a full disk), the watch goes on and says so in one ``error`` event, until a
        write succeeds again. ``unless_recent``: not within ``STATE_SECONDS`` of the last write,
        nor ``REST_FACTOR`` times as long as it took: a backlog of 50,000 files written out
        after each took 0.2–0.3 s a file here before the journal, and each write is a flush to
        disk (a crash then scores again the files of that second). Whether it was written (or
        tried)."""
        started = time.monotonic()
        if unless_recent and started < self._state_due:
            return False
        try:
            state.write(scored, self._active_alerts(), fold=fold)
        except OSError as exc:
            if not self._state_unwritten:
                self.error(
                    f"cannot write the watch state {self.options.state} ({exc.strerror or exc}): "
                    "scoring goes on, and the files scored since may be scored again after a "
                    "restart"
                )
            self._state_unwritten = True
        else:
            self._state_unwritten = False
        took = time.monotonic() - started
        self._state_due = started + max(STATE_SECONDS, REST_FACTOR * took)
        return True

    def _active_alerts(self) -> bool | dict[str, bool]:
        """Whether an alert is on, as the state keeps it: for each machine of a fleet."""
        if self.main:
            return self.main.tracker.active
        return {name: judge.tracker.active for name, judge in self.judges.items()}

    def _restore_alerts(self, active: object) -> None:
        """Open the alerts the state says were open (a state of another kind opens none)."""
        if self.main:
            self.main.tracker.active = active is True
        for name, judge in self.judges.items():
            judge.tracker.active = isinstance(active, dict) and active.get(name) is True
        if self.metrics:
            for judge in self._every_judge():
                self.metrics.gauge("anomalous", judge.machine).set(int(judge.tracker.active))

    def _score_file(self, folder: Path, path: Path) -> None:
        judge = self._judge_of(folder, path)
        if judge is None:
            return
        self._check_folder_window(judge, path)
        # Localized for its view: which view raised the score, and when. With --window, in
        # windows of that length (a file longer than the training clips: its worst window).
        (result,) = judge.detector.score(
            [path],
            threshold=judge.threshold,
            segment=self.options.window,
            localize=True,
            strict=self.options.strict,
        )
        lag = 0.0
        with suppress(OSError):
            lag = max(0.0, time.time() - path.stat().st_mtime)
        if self.metrics:
            self.metrics.files.inc()
        if result.error is not None or result.score is None:
            self.error(result.error or "not scored", None, str(path), judge)
            return
        self.judge(
            0.0,
            result.score,
            str(path),
            lag=lag,
            warnings=result.warnings,
            judge=judge,
            view=result.view,
        )

    def _check_folder_window(self, judge: Judge, path: Path) -> None:
        """Refuse a ``--window`` that no file could be scored in at the first file that can be
        read (at its rate and channels: a folder's files say theirs only once they come), as a
        stream's is refused as it starts, rather than every file becoming an error event."""
        if self.options.window and not self._folder_window_checked:
            from aetk_core.audio import check_segment

            self._folder_window_checked = check_segment(
                judge.detector.score_audio, self.options.window, [path], "--window"
            )

    def _judge_of(self, folder: Path, path: Path) -> Judge | None:
        """The judge of a file in the watched ``folder``: the one detector's, or its machine's
        in a fleet (None, with an error event, when its machine cannot be told or is not one
        of the fleet's)."""
        if self.fleet is None:
            return self._single()
        try:
            (row,) = self.fleet.route([folder], source=self.options.machines, files=[path]).values()
        except ConfigError as exc:
            self.error(str(exc).removeprefix(f"{path}: "), None, str(path))
            return None
        return self.judges[row[MACHINE]]


def _check_fleet_watch(fleet: Fleet, source: str, options: WatchOptions) -> None:
    """What a fleet detector can watch: a folder of its machines' recordings (a stream is one
    machine's), whose files' machines it can tell (a fleet fitted with a table needs one)."""
    if not Path(source).is_dir():
        raise ConfigError(
            f"{source}: a fleet detector watches a folder of its machines' recordings; a stream "
            "is one machine: give --machine NAME"
        )
    fleet.route([source], source=options.machines, files=[])


@contextmanager
def stop_on_signals(monitor: Monitor) -> Iterator[None]:
    """SIGINT and SIGTERM finish the current window, write the state and end the watch."""

    def stop(signum, frame) -> None:
        monitor.stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def finite(value: float | None, name: str) -> None:
    if value is not None and (not math.isfinite(value) or value <= 0):
        raise ConfigError(f"--{name} must be a positive number of seconds, not {value}")
