"""Evaluation the way DCASE Task 2 does it: labels and groups from paths, AUC and pAUC per group.

Labels come from a token ``normal`` versus ``anomaly``/``abnormal`` in the file name or a folder
name (MIMII ``fan/id_00/abnormal/00000001.wav``, DCASE 2020 ``normal_id_00_00000001.wav``,
DCASE 2021+ ``section_00_source_test_anomaly_0001_....wav``), or from a CSV file
``path,label[,group]``. Groups combine the machine (the nearest folder that is not a split, label
or ID folder), the machine ID or section, and the source/target domain.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aetk_core.fileio import resolved
from aetk_core.names import (
    ANOMALY,
    LABEL_TOKENS,
    NORMAL,
    labels_said,
    named_domain,
    named_machine,
    names_only_a_machine,
)
from aetk_core.verdict import is_anomalous

from aetk.errors import ConfigError

SPLIT_FOLDERS = {
    "train",
    "test",
    "eval",
    "dev",
    "source_test",
    "target_test",
    "supplemental",
    "source_train",
    "target_train",
    "validation",
    "val",
}


@dataclass(frozen=True)
class Labelled:
    """A file's label (``0`` normal, ``1`` anomaly, ``None`` unknown) and group."""

    label: int | None
    group: str


def label_from_path(path: str | Path) -> int | None:
    """``1`` for an anomaly token, ``0`` for a normal token, looking at the file name first,
    then at the folders from the nearest up; ``None`` when no part says, or one part says both."""
    path = Path(path)
    for part in (path.stem, *(parent.name for parent in path.parents)):
        found = labels_said(part)
        if len(found) == 1:
            return found.pop()
        if found:
            return None
    return None


def group_from_path(path: str | Path) -> str:
    """``<machine>[_id_NN|_section_NN][_source|_target]``, e.g. ``fan_id_00``."""
    return _join_group(*_group_parts(path))


def _group_parts(path: str | Path) -> tuple[str, str | None, str | None]:
    """The machine, the ID or section (or None) and the domain (or None) of ``path``."""
    path = Path(path).absolute()
    number = named_machine(path.stem)
    machine = None
    for folder in (parent.name for parent in path.parents):
        if number is None:
            number = named_machine(folder)
        if (
            not folder
            or folder.lower() in SPLIT_FOLDERS
            or folder.lower() in LABEL_TOKENS
            or names_only_a_machine(folder)
        ):
            continue
        machine = folder
        break
    return machine or "all", number, named_domain(path.stem)


def _join_group(machine: str, number: str | None, domain: str | None) -> str:
    return "_".join(part for part in (machine, number, domain) if part)


def groups_from_paths(files: Iterable[str | Path]) -> dict[str, str]:
    """:func:`group_from_path` for every file, except that when the files of a machine name
    exactly one ID or section, those that name none share it: one machine's clips stay one group
    whether or not every file name repeats its ID."""
    parts = {str(file): _group_parts(file) for file in files}
    numbers: dict[str, set[str]] = {}
    for machine, number, _ in parts.values():
        if number:
            numbers.setdefault(machine, set()).add(number)
    groups = {}
    for file, (machine, number, domain) in parts.items():
        named = numbers.get(machine, set())
        if number is None and len(named) == 1:
            number = next(iter(named))
        groups[file] = _join_group(machine, number, domain)
    return groups


def read_labels_csv(path: str | Path) -> dict[Path, Labelled]:
    """``path,label[,group]`` rows (a header row is allowed); labels ``normal``/``anomaly``/
    ``abnormal``/``0``/``1``. Relative paths are relative to the CSV file's folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read labels ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read labels (not UTF-8 text)") from None
    labels: dict[Path, Labelled] = {}
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        if number == 1 and row[0].strip().lower() in {"path", "file", "filename"}:
            continue
        if len(row) < 2:
            raise ConfigError(f"{path}:{number}: expected path,label[,group], got {row!r}")
        value = row[1].strip().lower()
        label = {"0": NORMAL, "1": ANOMALY}.get(value, LABEL_TOKENS.get(value))
        if label is None:
            raise ConfigError(f"{path}:{number}: label {row[1]!r} is not normal or anomaly")
        if "\0" in row[0]:
            raise ConfigError(f"{path}:{number}: the path holds a NUL character")
        file = Path(row[0].strip())
        file = file if file.is_absolute() else path.parent / file
        group = row[2].strip() if len(row) > 2 and row[2].strip() else group_from_path(file)
        labels[resolved(file)] = Labelled(label, group)
    return labels


def label_files(
    files: Iterable[str | Path], labels_csv: str | Path | None = None
) -> dict[str, Labelled]:
    """Label and group every file, from ``labels_csv`` when given, else from its path."""
    files = list(files)
    table = read_labels_csv(labels_csv) if labels_csv is not None else None
    groups = groups_from_paths(files)
    result = {}
    for file in files:
        if table is None:
            result[str(file)] = Labelled(label_from_path(file), groups[str(file)])
        else:
            result[str(file)] = table.get(resolved(file), Labelled(None, groups[str(file)]))
    return result


@dataclass
class GroupMetrics:
    """Metrics of one group; a metric that is undefined is ``None`` with the reason in ``notes``."""

    group: str
    normal: int
    anomalous: int
    auc: float | None = None
    pauc: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


METRICS = ("auc", "pauc", "precision", "recall", "f1")


def group_metrics(
    group: str,
    labels: Sequence[int],
    scores: Sequence[float],
    threshold: float,
    max_fpr: float = 0.1,
) -> GroupMetrics:
    """AUC, pAUC (FPR ≤ ``max_fpr``, scikit-learn's standardised partial AUC) and precision,
    recall and F1 of the decisions ``score > threshold``."""
    from aetk.eval import metrics as detection

    labels_array = np.asarray(labels, dtype=int)
    scores_array = np.asarray(scores, dtype=np.float64)
    normal = int((labels_array == NORMAL).sum())
    anomalous = int((labels_array == ANOMALY).sum())
    metrics = GroupMetrics(group, normal, anomalous)
    if normal and anomalous:
        metrics.auc = detection.auc(labels_array.tolist(), scores_array.tolist())
        metrics.pauc = detection.pauc(labels_array.tolist(), scores_array.tolist(), max_fpr)
    else:
        present = "normal" if normal else "anomalous"
        metrics.notes.append(f"only {present} clips: AUC and pAUC are undefined")
    decisions = np.array([is_anomalous(score, threshold) for score in scores_array], dtype=bool)
    true_positive = int((decisions & (labels_array == ANOMALY)).sum())
    flagged = int(decisions.sum())
    if flagged:
        metrics.precision = true_positive / flagged
    else:
        metrics.notes.append("no clip is above the threshold: precision is undefined")
    if anomalous:
        metrics.recall = true_positive / anomalous
    if metrics.precision is not None and metrics.recall is not None:
        total = metrics.precision + metrics.recall
        metrics.f1 = 2 * metrics.precision * metrics.recall / total if total else 0.0
    return metrics


def means(groups: Sequence[GroupMetrics]) -> dict[str, dict[str, float | None]]:
    """Arithmetic and harmonic means over groups of every metric, over the groups where it is
    defined (``None`` where no group defines it)."""
    from scipy.stats import hmean

    result: dict[str, dict[str, float | None]] = {"arithmetic_mean": {}, "harmonic_mean": {}}
    for name in METRICS:
        values = [getattr(g, name) for g in groups if getattr(g, name) is not None]
        result["arithmetic_mean"][name] = float(np.mean(values)) if values else None
        if not values:
            result["harmonic_mean"][name] = None
        elif min(values) <= 0:
            result["harmonic_mean"][name] = 0.0
        else:
            result["harmonic_mean"][name] = float(hmean(values))
    return result


def safe_group_name(group: str) -> str:
    """A group name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", group).strip("_") or "all"


def format_metric(value: float | None) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.3f}"
    )


@dataclass
class Evaluation:
    """Scores, labels and metrics of one evaluation run (``threshold``: None for a fleet, whose
    machines each have their own)."""

    threshold: float | None
    groups: list[GroupMetrics]
    means: dict[str, dict[str, float | None]]
    scored: list[dict[str, Any]]
    unlabelled: list[str]
    failed: list[dict[str, str]]
    #: Why the threshold holds no false-alarm rate (the detector's own, the largest of too few
    #: held-out normal scores: :meth:`aetk_core.detector.ScoringDetector.threshold_note`), so
    #: that precision, recall and F1 are read as such; None where it holds one, or for a fleet.
    threshold_note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "threshold_note": self.threshold_note,
            "groups": [group.as_dict() for group in self.groups],
            **self.means,
            "unlabelled": self.unlabelled,
            "failed": self.failed,
        }


def evaluate(
    detector,
    paths: Sequence[str | Path],
    *,
    labels_csv: str | Path | None = None,
    threshold: float | None = None,
    false_alarm_rate: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Evaluation:
    """Score ``paths`` with ``detector`` and compute the metrics of every group. A fleet
    detector's groups are its machines, each judged at its own threshold. ``progress`` is
    called with how many files are scored of how many, after each."""
    from aetk.data.audio import require_audio_files
    from aetk.fleet.detector import FleetDetector

    files = require_audio_files(paths)
    labelled = label_files(files, labels_csv)
    fleet = isinstance(detector, FleetDetector)
    note = None
    if fleet:
        unrouted: dict[Path, str] = {}
        routed = detector.route(paths, files=files, unrouted=unrouted)
        results = detector.iter_routed(
            routed, unrouted, threshold=threshold, false_alarm_rate=false_alarm_rate, localize=False
        )
        threshold = None
    else:
        note = detector.threshold_note(threshold, false_alarm_rate) or None
        threshold = detector.threshold_for(threshold, false_alarm_rate)
        results = detector.iter_scores(files, threshold=threshold, localize=False)
    scored, unlabelled, failed = [], [], []
    for done, result in enumerate(results, start=1):
        if progress is not None:
            progress(done, len(files))
        info = labelled[result.path]
        if result.error:
            failed.append({"path": result.path, "error": result.error})
            continue
        group = result.machine if fleet else info.group
        scored.append({**result.as_dict(), "label": info.label, "group": group})
        if info.label is None:
            unlabelled.append(result.path)
    groups = []
    for group in sorted({row["group"] for row in scored}):
        rows = [row for row in scored if row["group"] == group and row["label"] is not None]
        if rows:
            labels, scores = [r["label"] for r in rows], [r["score"] for r in rows]
            groups.append(group_metrics(group, labels, scores, rows[0]["threshold"]))
    return Evaluation(threshold, groups, means(groups), scored, unlabelled, failed, note)


#: The file aetk writes in an ``evaluate --out`` folder, listing the files of its output set.
OUTPUT_MARK = ".aetk-evaluation"


def check_output_folder(folder: str | Path) -> None:
    """Refuse, before any work, an ``--out`` that is a file, cannot be written, or is a folder
    holding files aetk did not write (a folder aetk wrote holds its mark)."""
    import os

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: is a file; --out names a folder")
    if folder.is_dir():
        if any(folder.iterdir()) and not (folder / OUTPUT_MARK).is_file():
            raise ConfigError(
                f"{folder}: holds files aetk did not write; choose an empty or new folder"
            )
        if not os.access(folder, os.W_OK):
            raise ConfigError(f"{folder}: cannot write there (permission denied)")
    elif not folder.parent.is_dir() or not os.access(folder.parent, os.W_OK):
        raise ConfigError(f"{folder}: cannot create it in {folder.parent}")


def write_outputs(evaluation: Evaluation, folder: str | Path) -> list[Path]:
    """DCASE-format CSVs per group, ``metrics.json`` and PNG plots; returns the written files.

    The folder's earlier aetk output set (listed in its mark) is replaced as a whole: files of a
    previous run that this run does not write again are removed.
    """
    import json

    from aetk_core.fileio import atomic_write_text

    from aetk.eval import plots

    folder = Path(folder)
    check_output_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mark = folder / OUTPUT_MARK
    previous = mark.read_text().split() if mark.is_file() else []
    written = []
    for group in sorted({row["group"] for row in evaluation.scored}):
        rows = [row for row in evaluation.scored if row["group"] == group]
        name = safe_group_name(group)
        for prefix, value in (
            ("anomaly_score", lambda r: repr(r["score"])),
            ("decision_result", lambda r: str(int(r["anomalous"]))),
        ):
            lines = "".join(f"{Path(r['path']).name},{value(r)}\n" for r in rows)
            written.append(atomic_write_text(folder / f"{prefix}_{name}.csv", lines))
        labelled = [row for row in rows if row["label"] is not None]
        normal = [r["score"] for r in labelled if r["label"] == NORMAL]
        anomalous = [r["score"] for r in labelled if r["label"] == ANOMALY]
        if normal and anomalous:
            roc = plots.roc_curve(
                [r["label"] for r in labelled], [r["score"] for r in labelled], f"ROC: {group}"
            )
            written.append(plots.save(roc, folder / f"roc_{name}.png"))
        if labelled:
            histogram = plots.score_histogram(
                normal, anomalous, rows[0]["threshold"], f"Scores: {group}"
            )
            written.append(plots.save(histogram, folder / f"score_histogram_{name}.png"))
    metrics_text = json.dumps(evaluation.as_dict(), indent=2)
    written.append(atomic_write_text(folder / "metrics.json", metrics_text + "\n"))
    names = {path.name for path in written}
    for name in previous:
        if name not in names and "/" not in name:
            (folder / name).unlink(missing_ok=True)
    atomic_write_text(mark, "\n".join(sorted(names)) + "\n")
    return written
