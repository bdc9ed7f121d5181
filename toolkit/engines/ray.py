"""Scoring very many recordings with Ray Data (``aetk score --engine ray``; ``pip install
aetk[ray]``).

The pipeline: the list of files → decode and featurize in CPU tasks → score in actors that load
the detector once (each with a GPU when ``--gpus-per-actor`` asks for one) → rows with the columns
of ``aetk score --json`` → one Parquet or CSV file, written atomically. Rows already in the output
file are not scored again, so an interrupted run resumes where it stopped. An unreadable file
becomes a row with ``error`` set; it never fails the job. The detector travels in Ray's object
store, so workers on other machines need no shared filesystem.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aetk.errors import ConfigError

COLUMNS = ("path", "score", "threshold", "anomalous", "error", "segments")
FORMATS = (".parquet", ".csv")


@dataclass
class RayRun:
    """What a Ray scoring run did."""

    scored: int
    failed: int
    anomalous: int
    skipped: int
    seconds: float


def score_with_ray(
    detector_path: str | Path,
    files: Sequence[Path],
    out: str | Path,
    *,
    threshold: float | None = None,
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

    out = Path(out)
    if out.suffix not in FORMATS:
        raise ConfigError(f"--out must end in {' or '.join(FORMATS)}, not {out.name!r}")
    started = time.perf_counter()
    previous = read_results(out)
    done = set(previous["path"]) if previous is not None else set()
    todo = [str(path) for path in files if str(path) not in done]
    if not todo:
        return RayRun(0, 0, 0, len(files), time.perf_counter() - started)
    started_here = not ray.is_initialized()
    # Ray reports its workers' fate on stdout, which belongs to our results (--json): send its
    # messages to stderr, and stop a Ray we started before returning, so none come later.
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
            new = _score_dataset(detector_path, todo, threshold, actors, gpus_per_actor, batch_size)
        finally:
            if started_here:
                ray.shutdown()
    import pandas

    table = (
        new[list(COLUMNS)]
        if previous is None
        else pandas.concat([previous, new[list(COLUMNS)]], ignore_index=True)
    )
    write_results(table, out)
    return RayRun(
        scored=int(new["error"].isna().sum()),
        failed=int(new["error"].notna().sum()),
        anomalous=int((new["anomalous"] == True).sum()),  # noqa: E712 - a nullable column
        skipped=len(files) - len(todo),
        seconds=time.perf_counter() - started,
    )


def _score_dataset(detector_path, todo, threshold, actors, gpus_per_actor, batch_size):
    """The Ray Data pipeline over the paths ``todo``: a pandas table with one row per path."""
    import ray

    from aetk.detect.detector import Detector

    detector = Detector.load(detector_path)
    featurizer = {
        "name": detector.featurizer.name,
        "params": detector.featurizer.get_params(),
        "input_shape": list(detector.model.input_shape_),
    }
    actors = actors or max(1, int(ray.available_resources().get("CPU", 1)))
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
        fn_constructor_kwargs={"detector_bytes": detector_bytes, "threshold": threshold},
        batch_size=batch_size,
        batch_format="pandas",
        concurrency=actors,
        num_gpus=gpus_per_actor,
    )
    return dataset.to_pandas()


def read_results(out: Path):
    """The rows already in ``out`` (a pandas DataFrame), or None if there is no such file."""
    import pandas

    if not out.exists():
        return None
    try:
        if out.suffix == ".parquet":
            return pandas.read_parquet(out)
        return pandas.read_csv(out, dtype={"error": "object", "segments": "object"})
    except Exception as exc:  # pyarrow and pandas raise many kinds for a foreign file
        raise ConfigError(f"{out}: cannot read earlier results to resume ({exc})") from None


def write_results(table, out: Path) -> None:
    """Write the DataFrame ``table`` to ``out`` (Parquet or CSV by suffix) atomically."""
    from aetk.data.fileio import atomic_path

    with atomic_path(out) as temporary:
        if out.suffix == ".parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, index=False)


class _Scorer:
    """A Ray actor: loads the detector once, then scores batches of featurized clips."""

    def __init__(self, detector_bytes: bytes, threshold: float | None):
        import torch

        torch.set_num_threads(1)  # one actor per core: torch must not take them all
        self.detector = _load(detector_bytes)
        self.threshold = self.detector.threshold if threshold is None else float(threshold)

    def __call__(self, batch):
        import pandas

        from aetk.detect.explain import error_map

        rows, clips, positions = [], [], []
        for path, blob, error in zip(batch["path"], batch["vectors"], batch["error"], strict=True):
            if isinstance(error, str):
                rows.append(_row(path, None, self.threshold, error))
                continue
            positions.append(len(rows))
            rows.append(None)
            clips.append(self.detector.normalizer.transform(_tensor(blob)))
        scores = self.detector.scorer.score(self.detector.model, clips) if clips else []
        for position, vectors, score in zip(positions, clips, scores, strict=True):
            path, score = batch["path"].iloc[position], float(score)
            if not np.isfinite(score):
                rows[position] = _row(path, None, self.threshold, "score is not finite")
                continue
            errors = error_map(self.detector, vectors, anomalous=score > self.threshold)
            events = None if errors is None else [event.as_dict() for event in errors.events]
            rows[position] = _row(path, score, self.threshold, None, events)
        return pandas.DataFrame(rows, columns=list(COLUMNS))


def _featurize(batch, featurizer: dict):
    """A Ray task: decode and featurize a batch of files (vectors as .npy bytes, or an error)."""
    from aetk.data.features import check_vector_shape, featurize_file
    from aetk.errors import AudioError
    from aetk.plugin.host import get_host

    component = get_host().create("featurizer", featurizer["name"], featurizer["params"])
    vectors, errors = [], []
    for path, source in zip(batch["path"], batch["source"], strict=True):
        try:
            features = featurize_file(component, source)
            check_vector_shape(features, tuple(featurizer["input_shape"]), path)
        except AudioError as exc:
            vectors.append(None)
            errors.append(exc.reason)
            continue
        buffer = io.BytesIO()
        np.save(buffer, features.numpy())
        vectors.append(buffer.getvalue())
        errors.append(None)
    batch = batch.copy()
    batch["vectors"], batch["error"] = vectors, errors
    return batch


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


def _tensor(blob: bytes):
    import torch

    return torch.from_numpy(np.load(io.BytesIO(blob)))


def _row(
    path: str,
    score: float | None,
    threshold: float,
    error: str | None,
    segments: list | None = None,
) -> dict[str, Any]:
    return {
        "path": path,
        "score": score,
        "threshold": threshold,
        "anomalous": None if score is None else score > threshold,
        "error": error,
        "segments": None if segments is None else json.dumps(segments),
    }
