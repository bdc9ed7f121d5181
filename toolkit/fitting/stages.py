"""Fitting a detector, top to bottom.

files → split by file into training and validation → waveforms → feature vectors → standardised
with training statistics → model trained (best validation weights kept) → scorer fitted, threshold
set on the validation clips → :class:`aetk.Detector`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetk import __version__
from aetk.components.base import Featurizer
from aetk.components.normalizer import Standardizer
from aetk.data.audio import require_audio_files
from aetk.data.cache import FeatureCache, file_digest, load_entry
from aetk.data.clips import ClipFiles, StandardizedClips, VectorSet, clip_lengths
from aetk.data.features import check_vector_shape, iter_clips, map_files
from aetk.detect.detector import Detector
from aetk.errors import AetkError, AetkWarning, AudioError
from aetk.fitting import distributed
from aetk.fitting.config import FitConfig, resolve_config
from aetk.fitting.progress import FitObserver
from aetk.plugin.host import get_host


def fit(
    paths: str | Path | Sequence[str | Path],
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    set: Sequence[str] = (),
    featurizer: str | None = None,
    model: str | None = None,
    scorer: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    val_fraction: float | None = None,
    device: str | None = None,
    observer: FitObserver | None = None,
) -> Detector:
    """Fit a detector on recordings of a healthy machine; mirrors ``aetk fit``.

    :param paths: folders (searched recursively) and files of normal recordings.
    :param set: ``"section.key=value"`` overrides, as ``--set`` takes them.
    :return: the fitted :class:`aetk.Detector`; call ``.save(path)`` to keep it.
    """
    config = resolve_config(
        preset=preset,
        config_file=config_file,
        assignments=tuple(set),
        featurizer=featurizer,
        model=model,
        scorer=scorer,
        training={
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "val_fraction": val_fraction,
            "device": device,
        },
    )
    return fit_config(_as_list(paths), config, observer)


def fit_config(
    paths: Sequence[str | Path], config: FitConfig, observer: FitObserver | None = None
) -> Detector | None:
    """Fit a detector with an already resolved configuration.

    Started by torchrun (``WORLD_SIZE`` > 1), each rank featurizes and trains on its shard of
    the files (see :mod:`aetk.fitting.distributed`); rank 0 returns the detector, the others None.
    """
    group = distributed.current()
    main = group is None or group.is_main
    observer = observer if observer is not None and main else FitObserver()
    started = time.perf_counter()
    host = get_host()
    featurizer = host.create("featurizer", config.featurizer.name, config.featurizer.params)
    model = host.create("model", config.model.name, config.model.params)
    scorer = host.create("scorer", config.scorer.name, config.scorer.params)
    training = config.training

    files = require_audio_files(paths)
    train_files, validation_files = split_files(files, training.val_fraction, training.seed)
    observer.on_start(config, len(train_files), len(validation_files))
    with FeatureCache.from_environment() as cache, _warnings_on(main):
        shard = group.shard if group else list
        train_clips, validation_clips, digests, skipped = _featurize_sets(
            featurizer,
            shard(train_files),
            shard(validation_files),
            training.segment_seconds,
            cache,
            observer,
        )
        if not train_clips:
            raise AetkError(f"none of the {len(train_files)} training files could be used")
        reduce = group.all_reduce_sum if group else None
        normalizer = Standardizer(training.normalize).fit(train_clips, reduce=reduce)
        train_set = VectorSet(train_clips, normalizer, cache.root / "tmp")
        validation_set = (
            VectorSet(validation_clips, normalizer, cache.root / "tmp")
            if validation_clips
            else None
        )
        try:
            model.fit(
                train_set,
                validation_set,
                training=training,
                on_epoch=observer.on_epoch,
                group=group,
            )
        finally:
            for vector_set in (train_set, validation_set):
                if vector_set is not None:
                    vector_set.close()
        if group is not None:
            group.barrier()  # every rank's features are in its cache
            if not group.is_main:
                return None
            # Rank 0 fits the scorer on all clips: on one machine the ranks' features are in
            # the cache they share; across machines, rank 0 featurizes the others' shares.
            train_clips, validation_clips, digests, skipped = _featurize_sets(
                featurizer,
                train_files,
                validation_files,
                training.segment_seconds,
                cache,
                FitObserver(),
            )
        scorer.fit(
            model,
            StandardizedClips(train_clips, normalizer),
            StandardizedClips(validation_clips, normalizer),
        )

    history = model.history_
    watched = [r["val_loss"] if r["val_loss"] is not None else r["train_loss"] for r in history]
    best_epoch = history[int(np.argmin(watched))]["epoch"] if history else None
    summary: dict[str, Any] = {
        "aetk_version": __version__,
        "config": config.as_dict(),
        "files": len(digests["train"]) + len(digests["validation"]),
        "train_files": len(digests["train"]),
        "validation_files": len(digests["validation"]),
        "skipped_files": skipped,
        "train_vectors": sum(clip_lengths(train_clips)),
        "seed": training.seed,
        "processes": group.world if group else 1,
        "best_epoch": best_epoch,
        "train_loss": [report["train_loss"] for report in history],
        "val_loss": [report["val_loss"] for report in history],
        "data_fingerprint": fingerprint(digests["train"] + digests["validation"]),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Detector(featurizer, normalizer, model, scorer, summary)


@contextlib.contextmanager
def _warnings_on(shown: bool):
    """Only one rank of a distributed fit reports skipped files (each would, for its share)."""
    if shown:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AetkWarning)
        yield


def split_files(
    files: Sequence[Path], val_fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """Hold out ``val_fraction`` of the files (at least one, when there are two or more) by file,
    so frames of one recording never fall on both sides."""
    files = list(files)
    if val_fraction <= 0 or len(files) < 2:
        return files, []
    count = min(len(files) - 1, max(1, round(val_fraction * len(files))))
    order = np.random.default_rng(seed).permutation(len(files))
    held_out = set(order[:count].tolist())
    train = [path for index, path in enumerate(files) if index not in held_out]
    validation = [path for index, path in enumerate(files) if index in held_out]
    return train, validation


def fingerprint(digests: Sequence[str]) -> str:
    """SHA-256 over the sorted SHA-256 digests of the files' contents: the same recordings,
    wherever they lie and whatever their names, give the same fingerprint."""
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def _featurize_sets(
    featurizer: Featurizer,
    train_files: list[Path],
    validation_files: list[Path],
    segment_seconds: float,
    cache: FeatureCache,
    observer: FitObserver,
) -> tuple[Sequence[torch.Tensor], Sequence[torch.Tensor], dict[str, list[str]], list[dict]]:
    """Clips of every file, computed in parallel (whole files through the cache); an unreadable
    file is skipped, whole, with a warning. Returns the clips of each role, the content digests
    of the files used, and the skipped files."""

    def clips_of(path: Path) -> tuple[list, str]:
        if not segment_seconds:
            entry, length, digest = cache.store(featurizer, path)
            return [(entry, length)], digest
        windows = [clip.vectors for clip in iter_clips(featurizer, path, segment_seconds)]
        return windows, file_digest(path)

    roles = ["train"] * len(train_files) + ["validation"] * len(validation_files)
    clips: dict[str, list] = {"train": [], "validation": []}
    digests: dict[str, list[str]] = {"train": [], "validation": []}
    skipped: list[dict[str, str]] = []
    shape = None
    results = map_files(clips_of, [*train_files, *validation_files])
    for done, (role, (path, result)) in enumerate(zip(roles, results, strict=True), start=1):
        try:
            if isinstance(result, AudioError):
                raise result
            file_clips, digest = result
            for clip in file_clips:
                vectors = load_entry(clip[0]) if isinstance(clip, tuple) else clip
                shape = shape or tuple(vectors.shape[1:])
                check_vector_shape(vectors, shape, path)
        except AudioError as exc:
            warnings.warn(f"skipped {exc}", AetkWarning, stacklevel=3)
            skipped.append({"path": str(path), "error": exc.reason})
        else:
            clips[role].extend(file_clips)
            digests[role].append(digest)
        observer.on_featurized(done, len(roles))
    return _as_clips(clips["train"]), _as_clips(clips["validation"]), digests, skipped


def _as_clips(clips: list) -> Sequence[torch.Tensor]:
    """Cached whole files as :class:`ClipFiles` (read from disk when used); windows of
    segmented recordings as they are."""
    if clips and isinstance(clips[0], tuple):
        return ClipFiles([entry for entry, _ in clips], [length for _, length in clips])
    return clips


def _as_list(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [paths] if isinstance(paths, (str, Path)) else list(paths)
