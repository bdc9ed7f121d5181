"""Fitting a detector, top to bottom.

files → split by file into training and validation → waveforms → feature vectors → standardised
with training statistics → model trained (best validation weights kept) → scorer fitted, threshold
set on the validation clips → :class:`aetk.Detector`.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetk import __version__
from aetk.audio import find_audio_files
from aetk.components import Featurizer
from aetk.config import FitConfig, resolve_config
from aetk.detector import Detector
from aetk.errors import AetkError, AetkWarning, AudioError, ConfigError
from aetk.features import check_vector_shape, iter_clips
from aetk.normalization import Standardizer
from aetk.plugins import get_host
from aetk.progress import FitObserver


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
) -> Detector:
    """Fit a detector with an already resolved configuration."""
    observer = observer or FitObserver()
    started = time.perf_counter()
    host = get_host()
    featurizer = host.create("featurizer", config.featurizer.name, config.featurizer.params)
    model = host.create("model", config.model.name, config.model.params)
    scorer = host.create("scorer", config.scorer.name, config.scorer.params)
    training = config.training

    files = find_audio_files(paths)
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(map(str, paths))}")
    train_files, validation_files = split_files(files, training.val_fraction, training.seed)
    observer.on_start(config, len(train_files), len(validation_files))
    train_clips, validation_clips, used, skipped = _featurize_sets(
        featurizer, train_files, validation_files, training.segment_seconds, observer
    )
    if not train_clips:
        raise AetkError(f"none of the {len(train_files)} training files could be used")

    normalizer = Standardizer(training.normalize).fit(torch.cat(train_clips))
    train_clips = [normalizer.transform(clip) for clip in train_clips]
    validation_clips = [normalizer.transform(clip) for clip in validation_clips]
    model.fit(
        torch.cat(train_clips),
        torch.cat(validation_clips) if validation_clips else None,
        training=training,
        on_epoch=observer.on_epoch,
    )
    scorer.fit(model, train_clips, validation_clips)

    history = model.history_
    watched = [r["val_loss"] if r["val_loss"] is not None else r["train_loss"] for r in history]
    best_epoch = history[int(np.argmin(watched))]["epoch"] if history else None
    summary: dict[str, Any] = {
        "aetk_version": __version__,
        "config": config.as_dict(),
        "files": len(used["train"]) + len(used["validation"]),
        "train_files": len(used["train"]),
        "validation_files": len(used["validation"]),
        "skipped_files": skipped,
        "train_vectors": sum(len(clip) for clip in train_clips),
        "seed": training.seed,
        "best_epoch": best_epoch,
        "train_loss": [report["train_loss"] for report in history],
        "val_loss": [report["val_loss"] for report in history],
        "data_fingerprint": fingerprint(used["train"] + used["validation"]),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return Detector(featurizer, normalizer, model, scorer, summary)


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


def fingerprint(files: Sequence[Path]) -> str:
    """SHA-256 over the sorted content digests of the files: the same recordings, wherever they
    lie, give the same fingerprint."""
    digests = sorted(_file_digest(path) for path in files)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _featurize_sets(
    featurizer: Featurizer,
    train_files: list[Path],
    validation_files: list[Path],
    segment_seconds: float,
    observer: FitObserver,
) -> tuple[list[torch.Tensor], list[torch.Tensor], dict[str, list[Path]], list[dict[str, str]]]:
    """Clips of every file; an unreadable file is skipped with a warning, whole."""
    total = len(train_files) + len(validation_files)
    clips: dict[str, list[torch.Tensor]] = {"train": [], "validation": []}
    used: dict[str, list[Path]] = {"train": [], "validation": []}
    skipped: list[dict[str, str]] = []
    shape = None
    done = 0
    for role, files in (("train", train_files), ("validation", validation_files)):
        for path in files:
            try:
                file_clips = [
                    clip.vectors for clip in iter_clips(featurizer, path, segment_seconds)
                ]
                for vectors in file_clips:
                    shape = shape or tuple(vectors.shape[1:])
                    check_vector_shape(vectors, shape, path)
            except AudioError as exc:
                warnings.warn(f"skipped {exc}", AetkWarning, stacklevel=3)
                skipped.append({"path": str(path), "error": exc.reason})
            else:
                clips[role].extend(file_clips)
                used[role].append(path)
            done += 1
            observer.on_featurized(done, total)
    return clips["train"], clips["validation"], used, skipped


def _as_list(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    return [paths] if isinstance(paths, (str, Path)) else list(paths)
