"""K-fold cross-validation with a lockbox test set, as the method text prescribes.

1. A lockbox split (``test_ratio``, shuffled, ``seed``) is set aside and never touched: tuning on
   it would leak the test set into the choices.
2. The rest is cut into K folds with ``numpy.array_split`` (uneven counts split evenly:
   100 items into 3 folds → 34, 33, 33).
3. For each fold, a detector is fitted on the other folds and measured on the held-out fold:
   reconstruction loss (for trained models), threshold, false-alarm rate, and AUC against
   labelled anomalies if given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aetk.errors import AudioError, ConfigError
from aetk.fitting.config import FitConfig
from aetk.fitting.progress import FitObserver


@dataclass
class FoldResult:
    fold: int
    train_files: int
    held_out_files: int
    #: None for a model without trainable parameters (``identity``): it reconstructs exactly.
    val_loss: float | None
    threshold: float
    false_alarm_rate: float
    auc: float | None = None
    pauc: float | None = None
    #: The fold detector's threshold and what it was calibrated on, as ``aetk fit --json`` gives
    #: them: few held-out normal scores cannot hold a small false-alarm rate.
    calibration: dict[str, Any] | None = None


@dataclass
class CrossValidation:
    lockbox: list[str]
    fold_sizes: list[int]
    folds: list[FoldResult] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float] | None]:
        """Mean and standard deviation over folds of each measure (None where undefined)."""
        result = {}
        for name in ("val_loss", "threshold", "false_alarm_rate", "auc", "pauc"):
            values = [getattr(fold, name) for fold in self.folds if getattr(fold, name) is not None]
            result[name] = (
                {"mean": float(np.mean(values)), "std": float(np.std(values))} if values else None
            )
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "lockbox": self.lockbox,
            "fold_sizes": self.fold_sizes,
            "folds": [asdict(fold) for fold in self.folds],
            "summary": self.summary(),
        }


def lockbox_and_folds(
    files: Sequence[Path], *, folds: int, test_ratio: float, seed: int
) -> tuple[list[Path], list[list[Path]]]:
    """Split off the lockbox (shuffled with ``seed``), then cut the rest into ``folds``."""
    from sklearn.model_selection import train_test_split

    files = list(files)
    if not 0 <= test_ratio < 1:
        raise ConfigError(f"test ratio must lie in [0, 1), not {test_ratio}")
    if test_ratio > 0 and len(files) - math.ceil(test_ratio * len(files)) < 1:
        raise ConfigError(
            f"cannot set {test_ratio:.0%} of {len(files)} file(s) aside as a lockbox and keep "
            "files to cross-validate on: record more, or lower --test-ratio"
        )
    if test_ratio > 0:
        rest, lockbox = train_test_split(
            files, test_size=test_ratio, shuffle=True, random_state=seed
        )
    else:
        order = np.random.default_rng(seed).permutation(len(files))
        rest, lockbox = [files[index] for index in order], []
    if folds < 2 or folds > len(rest):
        raise ConfigError(
            f"cannot cut {len(rest)} files (after the lockbox) into {folds} folds: "
            "need 2 ≤ folds ≤ files"
        )
    return list(lockbox), [
        list(part) for part in np.array_split(np.array(rest, dtype=object), folds)
    ]


def cross_validate(
    paths: Sequence[str | Path],
    config: FitConfig,
    *,
    folds: int = 5,
    anomalies: Sequence[str | Path] = (),
    test_ratio: float = 0.2,
    seed: int = 42,
    observer: FitObserver | None = None,
    on_split: Callable[[list[Path], list[list[Path]]], None] | None = None,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> CrossValidation:
    """Cross-validate ``config`` on the normal recordings in ``paths``.

    ``on_split(lockbox, folds)`` is called once the files are split, ``on_fold(result)`` after
    each fold.
    """
    from aetk.data.audio import require_audio_files
    from aetk.detect.scoring import scores_of
    from aetk.eval import metrics
    from aetk.fitting.stages import fit_config

    files = require_audio_files(paths)
    anomaly_files = anomalous_files(anomalies) if anomalies else []
    lockbox, parts = lockbox_and_folds(files, folds=folds, test_ratio=test_ratio, seed=seed)
    rest = sum(len(part) for part in parts)
    if rest - max(len(part) for part in parts) < 2 and not config.training.segment_seconds:
        raise ConfigError(
            f"{folds} folds of {rest} file(s) leave a fold one recording to fit on, and each "
            "fold must fit on at least 2: record more, or cut smaller folds (--folds)"
        )
    if on_split is not None:
        on_split(lockbox, parts)
    result = CrossValidation([str(path) for path in lockbox], [len(part) for part in parts])
    for index, held_out in enumerate(parts):
        train = [path for other, part in enumerate(parts) if other != index for path in part]
        detector = fit_config(train, config, observer)
        assert detector is not None  # cross-validation runs in one process
        normal = [r for r in detector.score(held_out, localize=False) if r.error is None]
        fold = FoldResult(
            fold=index + 1,
            train_files=len(train),
            held_out_files=len(held_out),
            val_loss=_held_out_loss(detector, held_out),
            threshold=detector.threshold,
            false_alarm_rate=float(np.mean([r.anomalous for r in normal])) if normal else 0.0,
            calibration=detector.calibration.as_dict(),
        )
        if anomaly_files:
            faulty = [r for r in detector.score(anomaly_files, localize=False) if r.error is None]
            labels = [0] * len(normal) + [1] * len(faulty)
            scores = scores_of(normal + faulty)
            fold.auc, fold.pauc = metrics.auc(labels, scores), metrics.pauc(labels, scores)
        result.folds.append(fold)
        if on_fold is not None:
            on_fold(fold)
    return result


def anomalous_files(paths: Sequence[str | Path]) -> list[Path]:
    """The recordings given as anomalies, labelled by the rule ``evaluate`` uses: a file whose
    name says ``normal`` is left out, with a warning."""
    import warnings

    from aetk.data.audio import require_audio_files
    from aetk.errors import AetkWarning, ConfigError
    from aetk.eval.evaluation import NORMAL, label_from_path

    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        raise ConfigError(f"--anomalies {missing[0]}: no such file or folder")
    files = require_audio_files(paths)
    named_normal = [path for path in files if label_from_path(path) == NORMAL]
    if named_normal:
        warnings.warn(
            f"{len(named_normal)} of the {len(files)} files given as anomalies are named normal "
            f"(e.g. {named_normal[0]}); they are left out of the anomalies",
            AetkWarning,
            stacklevel=3,
        )
    return [path for path in files if path not in named_normal]


def _held_out_loss(detector, held_out: list) -> float | None:
    """The model's mean reconstruction error on the held-out files; None for a model that does
    not train (``identity``), whose reconstruction is exact by construction."""
    import torch

    from aetk.fitting.trainer import mean_error

    if not detector.model.trainable:
        return None
    vectors = []
    for path in held_out:
        try:
            vectors.append(detector.vectors(path))
        except AudioError:
            continue  # reported by the scoring, like any unreadable file
    return mean_error(detector.model, torch.cat(vectors)) if vectors else float("nan")
