"""``aetk report``: one self-contained HTML page that explains a detector's verdicts.

The page holds the detector's summary (components, parameters, training data, loss curves), every
scored file sorted by score with its verdict, and for the most anomalous files the input
spectrogram, its reconstruction, the error map with the events marked and the score over time.
With labelled files it adds the ROC curve and the score histogram. Images are embedded PNGs.

A fleet detector's page judges every recording by its machine's detector, at that machine's
threshold: recordings are ranked, and plotted, by their score relative to their own threshold,
and labelled recordings are measured machine by machine, as ``aetk evaluate`` measures them.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aetk_core.describe import describe_views, detector_facts
from aetk_core.results import describe_view, events_to_hear

from aetk._version import __version__
from aetk.data.fileio import REPORT_MARK
from aetk.errors import AudioError
from aetk.eval import metrics, plots
from aetk.eval.evaluation import ANOMALY, NORMAL, group_metrics, label_files

if TYPE_CHECKING:
    from aetk.detect.detector import Detector, ScoreResult
    from aetk.fleet.detector import FleetDetector

T = TypeVar("T")

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta { color: #666; } table { border-collapse: collapse; margin: 0.6em 0; width: 100%; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #eee; text-align: left;
         vertical-align: top; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.anomalous { color: #b00020; font-weight: 600; } .normal { color: #1b7a2e; }
.error { color: #a65e00; } code { font-size: 0.9em; }
img { max-width: 100%; border: 1px solid #eee; } .figures img { margin: 0.4em 0.6em 0 0; }
section.file { margin-bottom: 2.5em; }
p.lead { font-size: 1.2em; } p.warning { background: #fff4e0; padding: 0.5em 0.8em; }
table.sortable th { cursor: pointer; } details summary { cursor: pointer; margin: 0.5em 0; }
"""


def build_report(
    detector: Detector | FleetDetector,
    paths: Sequence[str | Path],
    *,
    detector_path: str | Path,
    labels_csv: str | Path | None = None,
    top: int = 5,
    machines: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    files: Sequence[Path] | None = None,
) -> str:
    """Score ``paths`` and return the report as one HTML string. A fleet routes each recording
    to its machine (``machines``: how to tell which is which, as ``aetk score --machines``;
    default: the way the fleet was fitted). ``progress`` is called with how many steps are done
    of how many (a file scored, then a recording explained), after each. ``files``: the
    recordings under ``paths``, when they were found already (the folders are not walked
    again)."""
    from aetk.data.audio import require_audio_files
    from aetk.fleet.detector import FleetDetector

    files = require_audio_files(paths) if files is None else list(files)
    labels = {path: info.label for path, info in label_files(files, labels_csv).items()}
    steps = _Steps(len(files), progress)
    if isinstance(detector, FleetDetector):
        unrouted: dict[Path, str] = {}
        routed = detector.route(paths, source=machines, files=files, unrouted=unrouted)
        scored, failed = _ranked(steps.counted(detector.iter_routed(routed, unrouted)))
        summary = _fleet_summary_section(scored, failed, labels, detector)
        described = _fleet_section(detector)
    else:
        scored, failed = _ranked(steps.counted(detector.iter_scores(files)))
        summary = _summary_section(scored, failed, labels, detector)
        described = _detector_section(detector)
    # What a reader needs first: the verdicts in numbers and plots, then the cases explained,
    # then the detector, and the whole table last (collapsible, sortable).
    parts = [
        f"<h1>aetk report</h1><p class=meta>{len(scored) + len(failed)} recordings scored with "
        f"<code>{_e(detector_path)}</code> on {datetime.date.today().isoformat()} "
        f"(aetk {__version__}).</p>",
        summary,
        _explanations_section(_judge(detector), scored, labels, top, steps),
        described,
        _verdicts_section(scored, failed, labels, isinstance(detector, FleetDetector)),
    ]
    body = "\n".join(part for part in parts if part)
    return (
        f"<!doctype html>\n<html lang=en><head><meta charset=utf-8>{REPORT_MARK}"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>aetk report</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n<script>{_SORT_SCRIPT}</script>\n</body></html>\n"
    )


class _Steps:
    """Counts the report's steps for a progress callback: the files to score first, then the
    recordings to explain, added once they are chosen."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None):
        self.done, self.total, self._progress = 0, total, progress

    def counted(self, items: Iterable[T]) -> list[T]:
        kept = []
        for item in items:
            kept.append(item)
            self.step()
        return kept

    def step(self) -> None:
        self.done += 1
        if self._progress is not None:
            self._progress(self.done, self.total)


def _judge(detector: Detector | FleetDetector) -> Callable[[ScoreResult], Detector]:
    """Which detector judged a result: a fleet's machine's, or the one detector."""
    from aetk.fleet.detector import FleetDetector

    if isinstance(detector, FleetDetector):
        fleet = detector
        return lambda result: fleet.detectors[str(result.machine)]
    single = detector
    return lambda result: single


def _ranked(results: list[ScoreResult]) -> tuple[list[ScoreResult], list[ScoreResult]]:
    """The scored results, most anomalous first (:func:`_relative`), and the failed ones."""
    scored = [result for result in results if result.score is not None]
    failed = [result for result in results if result.error is not None]
    return sorted(scored, key=lambda result: -_relative(result)), failed


def _relative(result: ScoreResult) -> float:
    """The score relative to the threshold it was judged at, 1 at the threshold (the score
    divided by a positive threshold): what ranks the recordings of machines whose scores come
    in different units. For one detector, the same order as the scores'."""
    score, threshold = float(result.score or 0.0), float(result.threshold or 0.0)
    return 1 + (score - threshold) / abs(threshold) if threshold else score - threshold + 1


#: Click a column header to sort the verdicts table by it (numbers as numbers).
_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, column) => {
  th.addEventListener('click', () => {
    const body = th.closest('table').tBodies[0];
    const rows = Array.from(body.rows);
    const ascending = th.dataset.order !== 'asc';
    th.dataset.order = ascending ? 'asc' : 'desc';
    const key = row => {
      const text = row.cells[column].textContent.trim();
      const number = parseFloat(text);
      return text === '' ? null : isNaN(number) ? text : number;
    };
    rows.sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      if (x === null || y === null) return (x === null) - (y === null);  // blanks last
      return (x > y ? 1 : x < y ? -1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(row => body.appendChild(row));
  });
});
"""


def _summary_section(
    scored: list[ScoreResult],
    failed: list[ScoreResult],
    labels: dict[str, int | None],
    detector: Detector,
) -> str:
    lines = [_lead(scored, failed, f"(threshold {detector.threshold:.4g})")]
    if detector.calibration.warning:
        lines.append(
            "<p class=warning><b>The threshold may not be reliable:</b> "
            f"{_e(detector.calibration.warning)}</p>"
        )
    lines.append(_against_labels(scored, labels))
    return (
        "<section id=summary><h2>Summary</h2>"
        + "".join(lines)
        + (_labelled_section(scored, labels, detector.threshold) or _histogram(scored, detector))
        + "</section>"
    )


def _lead(scored: list[ScoreResult], failed: list[ScoreResult], judged: str) -> str:
    """The summary's first line: how many recordings are anomalous, judged how."""
    anomalous = sum(bool(r.anomalous) for r in scored)
    return (
        f"<p class=lead><b>{anomalous}</b> of {len(scored)} recordings are anomalous {judged}"
        + (f"; {len(failed)} could not be scored" if failed else "")
        + ".</p>"
    )


def _against_labels(scored: list[ScoreResult], labels: dict[str, int | None]) -> str:
    """With labels of both classes, the verdicts' false alarms and misses; else nothing."""
    known = [(labels[r.path], r) for r in scored if labels.get(r.path) is not None]
    if {label for label, _ in known} != {NORMAL, ANOMALY}:
        return ""
    false_alarms = sum(bool(r.anomalous) for label, r in known if label == NORMAL)
    missed = sum(not r.anomalous for label, r in known if label == ANOMALY)
    return (
        f"<p>Against the labels: {_recordings(false_alarms, 'normal')} flagged, "
        f"{_recordings(missed, 'anomalous')} missed.</p>"
    )


def _recordings(count: int, kind: str) -> str:
    return f"{count} {kind} recording" + ("" if count == 1 else "s")


def _fleet_summary_section(
    scored: list[ScoreResult],
    failed: list[ScoreResult],
    labels: dict[str, int | None],
    fleet: FleetDetector,
) -> str:
    judged = sorted({r.machine for r in scored if r.machine})
    lines = [
        _lead(
            scored,
            failed,
            "(each judged by its machine's detector at its own threshold; "
            f"{len(judged)} of the fleet's {len(fleet.machines)} machines)",
        )
    ]
    warned: dict[str, list[str]] = {}
    for machine in judged:
        if warning := fleet.detectors[machine].calibration.warning:
            warned.setdefault(warning, []).append(machine)
    lines += [
        f"<p class=warning><b>The threshold of {_e(', '.join(machines))} may not be "
        f"reliable:</b> {_e(warning)}</p>"
        for warning, machines in warned.items()
    ]
    lines.append(_against_labels(scored, labels))
    return (
        "<section id=summary><h2>Summary</h2>"
        + "".join(lines)
        + _machines_table(scored, labels, judged)
        + _relative_histogram(scored, labels)
        + "</section>"
    )


def _machines_table(
    scored: list[ScoreResult], labels: dict[str, int | None], machines: list[str]
) -> str:
    """Each machine's recordings, its verdicts and, with labels of both classes, its AUC and
    pAUC (as ``aetk evaluate`` groups a fleet)."""
    rows = []
    for machine in machines:
        own = [r for r in scored if r.machine == machine]
        known = [(label, r) for r in own if (label := labels.get(r.path)) is not None]
        threshold = own[0].threshold
        assert threshold is not None  # a scored recording was judged at its machine's
        measured = group_metrics(
            machine,
            [label for label, _ in known],
            [float(r.score or 0.0) for _, r in known],
            threshold,
        )
        rows.append(
            f"<tr><td>{_e(machine)}</td><td class=number>{len(own)}</td>"
            f"<td class=number>{sum(bool(r.anomalous) for r in own)}</td>"
            f"<td class=number>{measured.normal}</td><td class=number>{measured.anomalous}</td>"
            + "".join(
                f"<td class=number>{value:.3f}</td>" if value is not None else "<td></td>"
                for value in (measured.auc, measured.pauc)
            )
            + "</tr>"
        )
    return (
        "<table><thead><tr><th>machine</th><th>scored</th><th>anomalous</th>"
        "<th>labelled normal</th><th>labelled anomalous</th><th>AUC</th><th>pAUC</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _relative_histogram(scored: list[ScoreResult], labels: dict[str, int | None]) -> str:
    """The scores relative to their machines' thresholds (1: the threshold), by label when
    both classes are labelled."""
    relative = [_relative(r) for r in scored]
    normal = [v for v, r in zip(relative, scored, strict=True) if labels.get(r.path) == NORMAL]
    faulty = [v for v, r in zip(relative, scored, strict=True) if labels.get(r.path) == ANOMALY]
    labelled = bool(normal and faulty)
    if not labelled:
        normal, faulty = relative, []
    figure = plots.score_histogram(
        normal, faulty, 1.0, "score relative to its machine's threshold", labelled=labelled
    )
    return f"<div class=figures>{_image(figure, 'score histogram')}</div>"


def _fleet_section(fleet: FleetDetector) -> str:
    """The fleet's method (one configuration for all its machines) and each machine's
    threshold and training data."""
    first = next(iter(fleet.detectors.values())).summary()
    facts = [f"method: {_e(first['method'])}"] if first["method"] else []
    facts += [_e(describe_views(first["views"], scales=False))] if first["views"] else []
    groups = fleet.machine_groups()  # machines sharing the whole fleet's detector: one row
    rows = []
    for machines in groups:
        summary = fleet.detectors[machines[0]].summary()
        rows.append(
            f"<tr><td>{_e(', '.join(machines))}</td>"
            f"<td class=number>{summary['threshold']:.5g}</td>"
            f"<td class=number>{summary['train_files']}</td>"
            f"<td class=number>{summary['validation_files']}</td>"
            f"<td>{_e(summary['calibration']['warning'] or '')}</td></tr>"
        )
    shared = (
        " Machines listed together share one detector, the whole fleet's: each had too few "
        "normal recordings for one of its own."
        if any(len(machines) > 1 for machines in groups)
        else ""
    )
    return (
        f"<h2>Detector</h2><p>A fleet of {len(fleet.machines)} machines, told apart by "
        f"<code>{_e(fleet.source)}</code>; each machine has its own detector and threshold "
        f"(a score above it is anomalous).{shared}</p><ul>"
        + "".join(f"<li>{fact}</li>" for fact in facts)
        + "</ul><table><thead><tr><th>machine</th><th>threshold</th><th>training files</th>"
        "<th>validation files</th><th>threshold warning</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _histogram(scored: list[ScoreResult], detector: Detector) -> str:
    scores = [r.score for r in scored if r.score is not None]
    if not scores:
        return ""
    figure = plots.score_histogram(scores, [], detector.threshold, "scores", labelled=False)
    return f"<div class=figures>{_image(figure, 'score histogram')}</div>"


def _detector_section(detector: Detector) -> str:
    summary = detector.summary()  # the same summary aetk fit --json prints
    training = detector.training
    rows = []
    for role in ("featurizer", "model", "scorer"):
        params = json.dumps(summary["params"][role])
        rows.append(
            f"<tr><th>{role}</th><td><code>{_e(summary[role])}</code></td>"
            f"<td><code>{_e(params)}</code></td></tr>"
        )
    calibration = summary["calibration"]
    facts = _detector_facts(summary)
    history = training.get("train_loss") or []
    curves = (
        _image(
            plots.loss_curves(
                history, training.get("val_loss") or [], "training and validation loss"
            ),
            "loss curves",
        )
        if history
        else ""
    )
    warning = (
        f"<p class=warning><b>Threshold warning:</b> {_e(calibration['warning'])}</p>"
        if calibration["warning"]
        else ""
    )
    warning += "".join(
        f"<p class=warning><b>Training recording:</b> {_e(Path(noted['path']).name)}: "
        f"{_e(noted['name'])}: {_e(noted['message'])}</p>"
        for noted in (training.get("recording_warnings") or [])[:10]
    )
    return (
        f"<h2>Detector</h2>{warning}<table>"
        + "".join(rows)
        + "</table><ul>"
        + "".join(f"<li>{fact}</li>" for fact in facts)
        + f"</ul>{curves}"
    )


def _detector_facts(summary: dict[str, Any]) -> list[str]:
    """The detector section's list, as HTML: its method, the facts ``aetk info`` gives
    (:func:`aetk_core.describe.detector_facts`), and what only a report keeps."""
    facts = [f"method: {_e(summary['method'])}"] if summary["method"] else []
    facts += [_e(fact) for fact in detector_facts(summary)]
    return [*facts, f"seed {summary['seed']}, {summary['train_vectors']:,} training vectors"]


def _verdicts_section(
    scored: list[ScoreResult],
    failed: list[ScoreResult],
    labels: dict[str, int | None],
    show_machines: bool = False,
) -> str:
    show_labels = any(label is not None for label in labels.values())
    # A fleet's scores are each judged at their machine's threshold: the table shows it beside.
    header = "<thead><tr><th>#</th><th>file</th>" + ("<th>machine</th>" if show_machines else "")
    header += (
        "<th>score</th>" + ("<th>threshold</th>" if show_machines else "") + "<th>verdict</th>"
    )
    header += ("<th>label</th>" if show_labels else "") + "<th>events</th></tr></thead>"
    rows = [
        f"<tr><td class=number>{rank}</td><td title='{_e(result.path)}'>"
        f"{_e(Path(result.path).name)}</td>"
        + (f"<td>{_e(result.machine)}</td>" if show_machines else "")
        + f"<td class=number>{result.score:.4g}</td>"
        + (f"<td class=number>{result.threshold:.4g}</td>" if show_machines else "")
        + f"<td>{_verdict(result)}</td>"
        + (f"<td>{_label_name(labels.get(result.path))}</td>" if show_labels else "")
        + f"<td>{_e(_row_events(result))}</td></tr>"
        for rank, result in enumerate(scored, start=1)
    ]
    for result in failed:
        rows.append(
            f"<tr><td></td><td title='{_e(result.path)}'>{_e(Path(result.path).name)}"
            "</td>"
            + ("<td></td>" if show_machines else "")
            + "<td></td>"
            + ("<td></td>" if show_machines else "")
            + "<td class=error>error</td>"
            + ("<td></td>" if show_labels else "")
            + f"<td>{_e(result.error)}</td></tr>"
        )
    anomalous = sum(bool(r.anomalous) for r in scored)
    summary = (
        f"<p>{len(scored)} scored: {anomalous} anomalous, {len(scored) - anomalous} normal"
        + (f"; {len(failed)} could not be scored" if failed else "")
        + ".</p>"
    )
    return (
        f"<section id=verdicts><h2>Verdicts</h2>{summary}<details><summary>All {len(scored)} "
        "verdicts (click a column to sort)</summary>"
        f"<table class=sortable>{header}<tbody>{''.join(rows)}</tbody></table></details></section>"
    )


def _verdict(result: ScoreResult) -> str:
    if result.anomalous:
        return "<span class=anomalous>anomaly</span>"
    return "<span class=normal>normal</span>"


def _label_name(label: int | None) -> str:
    return {NORMAL: "normal", ANOMALY: "anomaly", None: "?"}[label]


def _row_events(result: ScoreResult) -> str:
    """A verdict row's last cell: the view that gave the score, the event to hear first and the
    recording warnings."""
    warnings = (
        f"recording {warning['name']}: {warning['message']}" for warning in result.warnings or []
    )
    events = events_to_hear(result.segments or [], result.view)
    parts = (describe_view(result.view), _events_summary(events), *warnings)
    return "; ".join(part for part in parts if part)


def _labelled_section(
    scored: list[ScoreResult], labels: dict[str, int | None], threshold: float
) -> str:
    known = [
        (label, r.score)
        for r in scored
        if (label := labels.get(r.path)) is not None and r.score is not None
    ]
    classes = {label for label, _ in known}
    if classes != {NORMAL, ANOMALY}:
        return ""
    y, scores = [label for label, _ in known], [score for _, score in known]
    auc, pauc = metrics.auc(y, scores), metrics.pauc(y, scores)
    normal = [score for label, score in known if label == NORMAL]
    anomalous = [score for label, score in known if label == ANOMALY]
    return (
        f"<h2>Against the labels</h2><p>{len(normal)} normal and {len(anomalous)} anomalous "
        f"labelled recordings: AUC <b>{auc:.3f}</b>, pAUC (FPR ≤ 0.1) <b>{pauc:.3f}</b>.</p>"
        "<div class=figures>"
        + _image(plots.roc_curve(y, scores, "ROC"), "ROC curve")
        + _image(plots.score_histogram(normal, anomalous, threshold, "scores"), "score histogram")
        + "</div>"
    )


def _explanations_section(
    judged_by: Callable[[ScoreResult], Detector],
    scored: list[ScoreResult],
    labels: dict[str, int | None],
    top: int,
    steps: _Steps,
) -> str:
    chosen = [r for r in scored if r.anomalous][:top]
    intro = f"<p>The {len(chosen)} highest-scoring anomalous recordings."
    if not chosen:
        chosen = scored[:1]
        intro = "<p>No recording is anomalous; the highest-scoring one is shown."
    intro += (
        " Spectrogram of the input, the model's reconstruction where it has one, where the "
        "score comes from (error map; events shaded), and the score over time.</p>"
    )
    false_alarms = [r for r in scored if r.anomalous and labels.get(r.path) == NORMAL][:top]
    missed = [r for r in scored if not r.anomalous and labels.get(r.path) == ANOMALY][:top]
    steps.total += len(chosen) + len(false_alarms) + len(missed)
    parts = ["<section id=explained><h2>Where the anomalies are</h2>", intro]
    parts += _explained(judged_by, chosen, steps)
    if false_alarms:
        parts.append("<h2>Normal recordings it flagged</h2>")
        parts += _explained(judged_by, false_alarms, steps)
    if missed:
        parts.append("<h2>Anomalous recordings it missed</h2>")
        parts += _explained(judged_by, missed, steps)
    return "".join(parts) + "</section>"


def _explained(
    judged_by: Callable[[ScoreResult], Detector], chosen: list[ScoreResult], steps: _Steps
) -> list[str]:
    sections = []
    for result in chosen:
        sections.append(_explained_one(judged_by(result), result))
        steps.step()
    return sections


def _explained_one(detector: Detector, result: ScoreResult) -> str:
    from aetk.detect.explanation import explain

    name = _e(Path(result.path).name)
    machine = f"machine {_e(result.machine)}, " if result.machine else ""
    head = (
        f"<section class=file><h3>{name}</h3><p>{machine}score {result.score:.4g} "
        f"(threshold {result.threshold:.4g})</p>"
    )
    try:
        explained = explain(detector, result.path)
    except AudioError as exc:
        return f"{head}<p class=error>{_e(exc.reason)}</p></section>"
    if explained is None:
        return (
            f"{head}<p>This detector's scorer ({_e(detector.scorer.name)} on "
            f"{_e(detector.model.name)}) cannot localize.</p></section>"
        )
    events = "".join(f"<li>{_e(event.describe())}</li>" for event in explained.errors.events)
    events = f"<ul>{events}</ul>" if events else "<p>No single moment stands out.</p>"
    if explained.errors.view:
        events = f"<p>score from the {_e(describe_view(explained.errors.view))}</p>" + events
    figure = plots.explanation(explained, Path(result.path).name)
    return f"{head}{events}{_image(figure, f'explanation of {name}')}</section>"


def _events_summary(events: list[dict]) -> str:
    """The first of the events (:func:`aetk_core.results.events_to_hear`), with its top band
    only, and how many more there are."""
    if not events:
        return ""
    first = events[0]
    text = _event_text({**first, "bands": first.get("bands", [])[:1]})
    return text + (f" (+{len(events) - 1} more)" if len(events) > 1 else "")


def _event_text(event: dict) -> str:
    from aetk_core.localization import BandExcess, Event

    bands = [BandExcess(b["low_hz"], b["high_hz"], b["ratio"]) for b in event.get("bands", [])]
    return Event(event["start"], event["end"], event["score"], bands).describe()


def _image(figure, alt: str) -> str:
    encoded = base64.b64encode(plots.png(figure)).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{encoded}'>"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)
