"""Scoring very many recordings with Ray Data (``aetk score --engine ray``; ``pip install
aetk[ray]``).

The pipeline: the list of files → decode and featurize in CPU tasks → score in actors that load
the detector once (each with a GPU when ``--gpus-per-actor`` asks for one), through the same
scoring path as the local engine (:meth:`aetk.Detector.score_clips`) → rows with the columns of
``aetk score --json`` → one Parquet or CSV file. The files are scored in parts of
:data:`PART_FILES`, and the results file is rewritten atomically after each part, so a killed run
keeps what it finished and a rerun resumes there. A sidecar ``<out>.run.json`` records the
detector's SHA-256, the threshold and the segment length: a rerun that would mix rows made
otherwise is refused. Paths compare resolved. An unreadable file becomes a row with ``error`` set;
it never fails the job. The detector travels in Ray's object store, so workers on other machines
need no shared filesystem; a Ray instance started here is stopped on every way out.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aetk_core.fileio import resolved
from aetk_core.results import KEYS

from aetk.errors import ConfigError

#: The results file's columns: the keys of a result row.
COLUMNS = KEYS
#: Columns holding JSON text (nested values in a flat table).
JSON_COLUMNS = ("segments", "view", "warnings")
FORMATS = (".parquet", ".csv")
#: Files scored between two writes of the results file.
PART_FILES = 256


@dataclass
class RayRun:
    """What a Ray scoring run did; ``anomalous`` counts every row of the results file."""

    scored: int
    failed: int
    anomalous: int
    skipped: int
    seconds: float
    #: Why the threshold the run judged at holds no false-alarm rate (None where it holds one:
    #: :meth:`aetk_core.detector.ScoringDetector.threshold_note`).
    threshold_note: str | None = None


def score_with_ray(
    detector_path: str | Path,
    files: Sequence[Path],
    out: str | Path,
    *,
    threshold: float | None = None,
    false_alarm_rate: float | None = None,
    segment: float | None = None,
    address: str | None = None,
    cpus: int | None = None,
    gpus_per_actor: float = 0.0,
    actors: int | None = None,
    batch_size: int = 32,
) -> RayRun:
    """Score ``files`` with the detector at ``detector_path`` on a Ray cluster (``address``, or a
    local instance with ``cpus`` CPUs) and write or extend the results file ``out``.

    ``actors`` defaults to one per CPU of the cluster: Ray fuses the featurizing tasks into the
    scoring actors' stage, so the actors are where the work runs.
    """
    import time

    import ray

    from aetk.detect.detector import Detector

    out = Path(out)
    if out.suffix not in FORMATS:
        raise ConfigError(f"--out must end in {' or '.join(FORMATS)}, not {out.name!r}")
    started = time.perf_counter()
    detector = Detector.load(detector_path)
    run = {
        "detector_sha256": hashlib.sha256(Path(detector_path).read_bytes()).hexdigest(),
        "threshold": detector.threshold_for(threshold, false_alarm_rate),
        "segment": detector.segment_seconds if segment is None else float(segment),
    }
    table = read_results(out, run)
    done = {str(resolved(path)) for path in table["path"]} if table is not None else set()
    todo = [str(path) for path in files if str(resolved(path)) not in done]
    scored = failed = 0
    if todo:
        with _ray_session(address, cpus):
            write_run(out, run)
            actors = actors or max(1, int(ray.available_resources().get("CPU", 1)))
            for begin in range(0, len(todo), PART_FILES):
                part = todo[begin : begin + PART_FILES]
                new = _score_dataset(detector_path, part, run, actors, gpus_per_actor, batch_size)
                table = new if table is None else _concat(table, new)
                write_results(table, out)
                scored += int(new["error"].isna().sum())
                failed += int(new["error"].notna().sum())
    anomalous = 0 if table is None else int((table["anomalous"] == True).sum())  # noqa: E712
    note = detector.threshold_note(threshold, false_alarm_rate) or None
    skipped, seconds = len(files) - len(todo), time.perf_counter() - started
    return RayRun(scored, failed, anomalous, skipped, seconds, note)


@contextlib.contextmanager
def _ray_session(address: str | None, cpus: int | None) -> Iterator[None]:
    """Ray, joined at ``address`` or started here. Ray reports its workers' fate on stdout, which
    belongs to our results (--json), so its messages go to stderr; a Ray started here is stopped
    on every way out (Ctrl-C and errors included), so none outlive the run."""
    import ray

    started_here = not ray.is_initialized()
    with contextlib.redirect_stdout(sys.stderr):
        if started_here:
            ray.init(
                address=address,
                num_cpus=None if address else cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        try:
            yield
        finally:
            if started_here:
                ray.shutdown()


def _score_dataset(detector_path, todo, run, actors, gpus_per_actor, batch_size):
    """The Ray Data pipeline over the paths ``todo``: a pandas table with one row per path."""
    import ray

    from aetk.detect.detector import Detector

    detector = Detector.load(detector_path)
    featurizer = {
        "name": detector.featurizer.name,
        "params": detector.featurizer.get_params(),
        "segment": run["segment"],
        "band_rate": detector.recording_norms().band_rate,
    }
    detector_bytes = ray.put(Path(detector_path).read_bytes())
    # Workers may run elsewhere, in another folder: they read absolute paths; rows keep the paths
    # as given, like aetk score --json.
    dataset = ray.data.from_items(
        [{"path": path, "source": str(Path(path).absolute())} for path in todo]
    )
    dataset = dataset.map_batches(
        _featurize,
        fn_kwargs={"featurizer": featurizer},
        batch_size=batch_size,
        batch_format="pandas",
    )
    dataset = dataset.map_batches(
        _Scorer,
        fn_constructor_kwargs={"detector_bytes": detector_bytes, "threshold": run["threshold"]},
        batch_size=batch_size,
        batch_format="pandas",
        concurrency=actors,
        num_gpus=gpus_per_actor,
    )
    return dataset.to_pandas()[list(COLUMNS)]


def run_file(out: Path) -> Path:
    return out.with_name(out.name + ".run.json")


def write_run(out: Path, run: dict[str, Any]) -> None:
    from aetk_core.fileio import atomic_write_text

    atomic_write_text(run_file(out), json.dumps(run) + "\n")


def read_results(out: Path, run: dict[str, Any] | None = None):
    """The rows already in ``out`` (a pandas DataFrame), or None if there is no such file; with
    ``run``, a :class:`ConfigError` when they were made with another detector, threshold or
    segment length."""
    import pandas

    if not out.exists():
        return None
    if run is not None:
        try:
            made = json.loads(run_file(out).read_text())
        except (OSError, ValueError):
            made = None
        if made != run:
            raise ConfigError(
                f"{out}: its rows were made with another detector, threshold or segment length "
                "(or their record is missing): write to another --out, or remove it to start over"
            )
    try:
        if out.suffix == ".parquet":
            return pandas.read_parquet(out)
        return pandas.read_csv(
            out, dtype={"error": "object", **dict.fromkeys(JSON_COLUMNS, "object")}
        )
    except Exception as exc:  # pyarrow and pandas raise many kinds for a foreign file
        raise ConfigError(f"{out}: cannot read earlier results to resume ({exc})") from None


def write_results(table, out: Path) -> None:
    """Write the DataFrame ``table`` to ``out`` (Parquet or CSV by suffix) atomically."""
    from aetk_core.fileio import atomic_path

    with atomic_path(out) as temporary:
        if out.suffix == ".parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, index=False)


class _Scorer:
    """A Ray actor: loads the detector once, then scores batches of featurized files through the
    detector's scoring path."""

    def __init__(self, detector_bytes: bytes, threshold: float):
        import torch

        torch.set_num_threads(1)  # one actor per core: torch must not take them all
        self.detector = _load(detector_bytes)
        self.threshold = threshold

    def __call__(self, batch):
        import pandas

        files = [
            _file_clips(path, blob, error)
            for path, blob, error in zip(batch["path"], batch["clips"], batch["error"], strict=True)
        ]
        results = self.detector.score_clips(files, threshold=self.threshold, localize=True)
        rows = [result.as_dict() for result in results]
        for row in rows:
            for column in JSON_COLUMNS:
                row[column] = None if row[column] is None else json.dumps(row[column])
        return pandas.DataFrame(rows, columns=list(COLUMNS))


def _featurize(batch, featurizer: dict):
    """A Ray task: decode and featurize a batch of files (clips as .npz bytes, or an error)."""
    from aetk.data.features import iter_clips
    from aetk.errors import AudioError
    from aetk.plugin.host import get_host

    component = get_host().create("featurizer", featurizer["name"], featurizer["params"])
    blobs: list[bytes | None] = []
    errors: list[str | None] = []
    for source in batch["source"]:
        try:
            clips = list(
                iter_clips(component, source, featurizer["segment"], featurizer["band_rate"])
            )
        except AudioError as exc:
            blobs.append(None)
            errors.append(exc.reason)
            continue
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {
            f"clip{index}": clip.vectors.numpy() for index, clip in enumerate(clips)
        }
        arrays["spans"] = np.array([[clip.start, clip.end] for clip in clips], dtype=np.float64)
        arrays["segment"] = np.array(float(featurizer["segment"] or 0.0))
        arrays["recordings"] = np.array(
            json.dumps([clip.recording and clip.recording.as_dict() for clip in clips])
        )
        np.savez(buffer, **arrays)
        blobs.append(buffer.getvalue())
        errors.append(None)
    batch = batch.copy()
    batch["clips"], batch["error"] = blobs, errors
    return batch


def _file_clips(path: str, blob: bytes | None, error: str | None):
    import torch
    from aetk_core.recording import RecordingProfile

    from aetk.data.features import Clip, FileClips

    if isinstance(error, str):
        return FileClips(path, error=error)
    stored = np.load(io.BytesIO(blob or b""))
    recordings = json.loads(str(stored["recordings"]))
    clips = [
        Clip(
            float(start),
            float(end),
            torch.from_numpy(stored[f"clip{index}"]),
            RecordingProfile.from_dict(recording) if recording else None,
        )
        for index, ((start, end), recording) in enumerate(
            zip(stored["spans"], recordings, strict=True)
        )
    ]
    return FileClips(path, clips, segment_seconds=float(stored["segment"]))


def _load(detector_bytes):
    """The detector from its file's bytes (or an object reference to them)."""
    import ray

    from aetk.detect.detector import Detector

    if isinstance(detector_bytes, ray.ObjectRef):  # references nested in arguments stay unresolved
        detector_bytes = ray.get(detector_bytes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "detector.aetk"
        path.write_bytes(detector_bytes)
        return Detector.load(path)


def _concat(table, new):
    import pandas

    return pandas.concat([table, new], ignore_index=True)
