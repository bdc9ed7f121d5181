"""Fitting a detector, stage by stage, top to bottom.

find files → split by file into training and validation → featurize (through the feature cache)
→ standardize with training statistics → train the model (best validation weights kept) → fit the
scorer → calibrate the threshold on held-out normal scores → :class:`aetk.Detector`.

Each stage is a function of its own. Whether one process or several run them, the stages see the
same :class:`~aetk.fitting.distributed.Processes` interface and never branch on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from aetk_core.describe import too_few_scores
from aetk_core.machines import named_machines
from aetk_core.names import named_anomaly
from aetk_core.recording import (
    RecordingNorms,
    RecordingProfile,
    RecordingWarning,
    merged,
    training_warnings,
)
from aetk_core.verdict import scores_needed

from aetk._version import __version__
from aetk.components.base import Featurizer, Model, Normalizer, Scorer
from aetk.components.state import check_storable
from aetk.data.audio import read_header, require_audio_files, sample_rates
from aetk.data.cache import FeatureCache, file_digest, held_vectors
from aetk.data.clips import ClipFiles, StandardizedClips, VectorSet, clip_lengths, select
from aetk.data.features import check_vector_shape, iter_clips, map_files
from aetk.data.recording import analysed_hz, analysis_rate
from aetk.detect.calibration import Calibration, calibrate
from aetk.detect.detector import Detector
from aetk.errors import AetkError, AetkWarning, AudioError, ConfigError
from aetk.fitting import distributed
from aetk.fitting.config import FitConfig, at_recordings_rate, resolve_config
from aetk.fitting.progress import FitObserver
from aetk.fitting.trainer import train
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
    false_alarm_rate: float | None = None,
    segment_seconds: float | None = None,
    observer: FitObserver | None = None,
) -> Detector:
    """Fit a detector on recordings of a healthy machine; mirrors ``aetk fit``.

    :param paths: folders (searched recursively) and files of normal recordings.
    :param set: ``"section.key=value"`` overrides, as ``--set`` takes them.
    :param false_alarm_rate: calibrate the threshold for this share of false alarms on normal
        recordings (the conformal rule), as ``--false-alarm-rate`` does.
    :param segment_seconds: cut each recording into clips of this many seconds, as
        ``--segment`` does (a few long recordings); the detector then scores in windows of
        this length.
    :return: the fitted :class:`aetk.Detector`; call ``.save(path)`` to keep it.
    """
    config = options_config(
        preset=preset,
        config_file=config_file,
        set=set,
        featurizer=featurizer,
        model=model,
        scorer=scorer,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        val_fraction=val_fraction,
        device=device,
        false_alarm_rate=false_alarm_rate,
        segment_seconds=segment_seconds,
    )
    detector = fit_config(
        [paths] if isinstance(paths, (str, Path)) else list(paths), config, observer
    )
    assert detector is not None  # one process: it is the main one
    return detector


#: The keyword options of :func:`fit` that set ``[training]``.
TRAINING_OPTIONS = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "val_fraction",
    "device",
    "segment_seconds",
)
#: Every keyword option of :func:`fit` that describes the configuration.
FIT_OPTIONS = (
    "preset",
    "config_file",
    "set",
    "featurizer",
    "model",
    "scorer",
    "false_alarm_rate",
    *TRAINING_OPTIONS,
)


def options_config(**options: Any) -> FitConfig:
    """The configuration that :func:`fit`'s keyword options (any of :data:`FIT_OPTIONS`)
    describe; another keyword is a :class:`ConfigError`."""
    unknown = sorted(set(options) - set(FIT_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown fit option {', '.join(map(repr, unknown))}")
    return resolve_config(
        preset=options.get("preset"),
        config_file=options.get("config_file"),
        assignments=tuple(options.get("set", ())),
        featurizer=options.get("featurizer"),
        model=options.get("model"),
        scorer=options.get("scorer"),
        training={key: options[key] for key in TRAINING_OPTIONS if key in options},
        false_alarm_rate=options.get("false_alarm_rate"),
    )


@dataclass
class Components:
    """The four components of a detector, built from a configuration and not yet fitted."""

    featurizer: Featurizer
    normalizer: Normalizer
    model: Model
    scorer: Scorer


@dataclass
class FeaturizedSets:
    """The clips of the training and validation files, and what was used or skipped."""

    train: Sequence[torch.Tensor]
    validation: Sequence[torch.Tensor]
    #: The content SHA-256 of every file used, by role (``train``, ``validation``).
    digests: dict[str, list[str]] = field(default_factory=lambda: {"train": [], "validation": []})
    #: The files used, by role, in the order of ``digests``.
    files: dict[str, list[Path]] = field(default_factory=lambda: {"train": [], "validation": []})
    #: The file each clip comes from, by role, in the clips' order.
    sources: dict[str, list[Path]] = field(default_factory=lambda: {"train": [], "validation": []})
    skipped: list[dict[str, str]] = field(default_factory=list)
    #: How each file used was recorded (one profile per clip), by path.
    recordings: dict[str, list[RecordingProfile]] = field(default_factory=dict)
    #: ``{"path", "name", "message"}`` of each way a file was recorded unlike the others.
    recording_warnings: list[dict[str, str]] = field(default_factory=list)
    #: What the recordings were like, for the checks at score time.
    recording_norms: RecordingNorms | None = None

    def of_files(self, files: Collection[Path], band_hz: float | None) -> FeaturizedSets:
        """The clips of ``files`` only, with their digests, recordings and warnings, and the
        norms of their recordings (analysed up to ``band_hz``)."""
        own = FeaturizedSets([], [])
        clips = {"train": self.train, "validation": self.validation}
        for role, sources in self.sources.items():
            indices = [index for index, path in enumerate(sources) if path in files]
            setattr(own, role, select(clips[role], indices))
            own.sources[role] = [sources[index] for index in indices]
            kept = [i for i, path in enumerate(self.files[role]) if path in files]
            own.files[role] = [self.files[role][i] for i in kept]
            own.digests[role] = [self.digests[role][i] for i in kept]
        names = {str(path) for path in files}
        own.recordings = {path: kept for path, kept in self.recordings.items() if path in names}
        own.recording_warnings = [w for w in self.recording_warnings if w["path"] in names]
        profiles = [profile for kept in own.recordings.values() for profile in kept]
        own.recording_norms = RecordingNorms.learn(profiles, band_hz)
        return own


def fit_config(
    paths: Sequence[str | Path], config: FitConfig, observer: FitObserver | None = None
) -> Detector | None:
    """Fit a detector with an already resolved configuration.

    Started by torchrun (``WORLD_SIZE`` > 1), each process featurizes and trains on its shard of
    the files; the main process returns the detector, the others None.
    """
    processes = distributed.current()
    observer = observer if observer is not None and processes.is_main else FitObserver()
    started = time.perf_counter()
    refuse_fleet_model(config)
    build_components(at_recordings_rate(config, {}))  # its errors before any file's
    files = require_audio_files(paths)
    with _warnings_shown(processes.is_main):
        _warn_named_anomalies(files)
    if len(files) == 1 and not config.training.segment_seconds:
        refusal = one_recording(files[0])
        if refusal:
            raise ConfigError(refusal)
    config, rates = for_recordings(config, files)
    parts = build_components(config)
    train_files, validation_files = split_files(
        files, config.training.val_fraction, config.training.seed
    )
    observer.on_start(config, len(train_files), len(validation_files))
    observer.on_recordings(rates, analysis_rate(parts.featurizer))
    with FeatureCache.from_environment() as cache, _warnings_shown(processes.is_main):

        def featurize_all(
            files: tuple[list[Path], list[Path]], progress: FitObserver
        ) -> FeaturizedSets:
            return featurize(
                parts.featurizer, *files, config.training.segment_seconds, cache, progress
            )

        shard = featurize_all(
            (processes.shard(train_files), processes.shard(validation_files)), observer
        )
        parts.normalizer.fit(shard.train, reduce=processes.all_reduce_sum)
        train_model(parts, shard, config, cache.scratch, observer, processes)
        sets = processes.on_all_data(
            lambda: featurize_all((train_files, validation_files), FitObserver()), shard
        )
        if sets is None:  # not the main process: it writes nothing
            return None
        observer.on_stage(f"Fitting scorer {parts.scorer.name} and calibrating the threshold")
        calibration = fit_scorer(parts, sets, config, cache.scratch, observer)
    summary = training_summary(config, parts, sets, processes, started)
    return Detector(
        parts.featurizer, parts.normalizer, parts.model, parts.scorer, calibration, summary
    )


def _warn_named_anomalies(files: Sequence[Path]) -> None:
    """Training files whose names say they are faulty (``aetk fit test/`` for ``train/``): a
    detector fitted on them learns their faults as normal."""
    named = [path for path in files if named_anomaly(path)]
    if named:
        warnings.warn(
            f"{len(named)} of {len(files)} training files are named as faulty recordings (e.g. "
            f"{named[0]}): fitted on, their faults are learned as normal; fit on recordings of "
            "the healthy machine",
            AetkWarning,
            stacklevel=3,
        )


def one_recording(path: Path) -> str | None:
    """Why one whole recording cannot be fitted on, and the clip length that would make about
    ten clips of it: a threshold needs normal clips that the fit held out. None when it cannot
    be read (the fit names it as it reads it)."""
    header = read_header(path)
    if header is None:
        return None
    seconds = header.duration
    cut = f", or cut it into clips: --segment {advised_segment(seconds):g}" if seconds >= 5 else ""
    return (
        f"{path}: one recording ({seconds:.1f} s) leaves no normal clip to compare it with or "
        f"to set the threshold on: record more{cut}"
    )


def advised_segment(seconds: float, clips: int = 10) -> float:
    """The clip length that cuts ``seconds`` of recordings into about ``clips`` clips, from
    0.5 s to 10 s (the field's usual clip: DCASE's, MIMII's)."""
    return max(0.5, min(10.0, round(seconds / clips, 1)))


def advice_to_cut(norms: RecordingNorms | None, files: int, rate: float) -> str:
    """For a threshold that ``files`` whole recordings are too few to hold at the false-alarm
    ``rate``: the clip length (:func:`advised_segment`) that would give it enough clips, where
    the recordings (their median length, ``norms.seconds``) are long enough for two such clips
    each; empty otherwise."""
    median = norms.seconds if norms else None
    if not median:
        return ""
    segment = advised_segment(files * median, scores_needed(rate))
    if median < 2 * segment:
        return ""
    clips = files * int(median // segment)
    return f"; or cut the recordings into clips: --segment {segment:g} makes about {clips}"


def for_recordings(config: FitConfig, files: Sequence[Path]) -> tuple[FitConfig, dict[int, int]]:
    """``config`` resolved for the training recordings' rates (``featurizer.sample_rate =
    "recordings"``, :func:`~aetk.fitting.config.at_recordings_rate`), and those rates as
    ``{rate: count}`` from every file's header."""
    rates = sample_rates(files, most=len(files))
    return at_recordings_rate(config, rates), rates


def conditioned(config: FitConfig) -> bool:
    """Whether the configuration's model is one network for a whole fleet (``aetk.fleet``
    fits it, on every machine's recordings)."""
    model = get_host().component_class("model", config.model.name)
    return issubclass(model, Model) and model.conditioned


def refuse_fleet_model(config: FitConfig) -> None:
    """A :class:`ConfigError` when the configuration's model is one network for a fleet: a
    detector of one machine cannot be fitted with it."""
    if conditioned(config):
        raise ConfigError(
            f"model '{config.model.name}' is one network for a fleet of machines: fit it with "
            "aetk fit --machines folders|dcase|TABLE.csv"
        )


def build_components(config: FitConfig) -> Components:
    """The components the configuration names; a scorer that needs reconstruction errors is
    refused with a model that reconstructs exactly, before any work."""
    host = get_host()
    parts = Components(
        host.create("featurizer", config.featurizer.name, config.featurizer.params),
        host.create("normalizer", "standardizer", {"mode": config.training.normalize}),
        host.create("model", config.model.name, config.model.params),
        host.create("scorer", config.scorer.name, config.scorer.params),
    )
    for component in (parts.featurizer, parts.normalizer, parts.model, parts.scorer):
        component.validate()
    if parts.scorer.needs_reconstruction and not parts.model.trainable:
        raise ConfigError(
            f"scorer '{parts.scorer.name}' scores reconstruction errors, but model "
            f"'{parts.model.name}' reconstructs exactly (every clip would score the same): "
            "choose a trained model, e.g. --model improved-ae"
        )
    if parts.scorer.needs_reconstruction and not parts.model.reconstructs:
        raise ConfigError(
            f"scorer '{parts.scorer.name}' scores reconstruction errors, and model "
            f"'{parts.model.name}' does not reconstruct: choose another scorer"
        )
    return parts


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
    train_files = [path for index, path in enumerate(files) if index not in held_out]
    validation = [path for index, path in enumerate(files) if index in held_out]
    return train_files, validation


def featurize(
    featurizer: Featurizer,
    train_files: list[Path],
    validation_files: list[Path],
    segment_seconds: float,
    cache: FeatureCache,
    observer: FitObserver,
) -> FeaturizedSets:
    """Clips of every file, computed in parallel (whole files through the cache); an unreadable
    file is skipped, whole, with a warning, and so is a byte-for-byte copy of a file before it
    (counted twice, a recording would weigh double, and a copy held out for the threshold would
    score as if it were new)."""

    def clips_of(path: Path) -> tuple[list[Any], str, list[RecordingProfile]]:
        if not segment_seconds:
            entry, length, digest, recording = cache.store(featurizer, path, pin=True)
            return [(entry, length)], digest, [recording]
        windows = list(iter_clips(featurizer, path, segment_seconds))
        recordings = [clip.recording for clip in windows if clip.recording is not None]
        return [clip.vectors for clip in windows], file_digest(path), recordings

    roles = ["train"] * len(train_files) + ["validation"] * len(validation_files)
    clips: dict[str, list[Any]] = {"train": [], "validation": []}
    sets = FeaturizedSets([], [])
    shape = None
    kept_digests: set[str] = set()
    results = map_files(clips_of, [*train_files, *validation_files])
    for done, (role, (path, result)) in enumerate(zip(roles, results, strict=True), start=1):
        try:
            if isinstance(result, AudioError):
                raise result
            file_clips, digest, recordings = result
            if digest in kept_digests:
                raise AudioError(COPY)
            for clip in file_clips:
                vectors = held_vectors(clip[0]) if isinstance(clip, tuple) else clip
                shape = shape or tuple(vectors.shape[1:])
                check_vector_shape(vectors, shape, path)
        except AudioError as exc:
            sets.skipped.append({"path": str(path), "error": exc.reason, "role": role})
        else:
            clips[role].extend(file_clips)
            sets.sources[role].extend([path] * len(file_clips))
            sets.files[role].append(path)
            sets.digests[role].append(digest)
            kept_digests.add(digest)
            sets.recordings[str(path)] = recordings
        observer.on_featurized(done, len(roles))
    reasons = _warn_skipped(sets.skipped, len(roles))
    _check_recordings(sets, analysed_hz(featurizer))
    sets.train, sets.validation = _as_clips(clips["train"]), _as_clips(clips["validation"])
    if not sets.train and train_files:
        shared = f" (all of them: {next(iter(reasons))})" if len(reasons) == 1 else ""
        raise AetkError(f"none of the {len(train_files)} training files could be used{shared}")
    _check_not_copies_of_one(sets, reasons, segment_seconds)
    return sets


#: Why a training file is skipped that holds the same bytes as one before it.
COPY = "holds the same bytes as another training file (a copy counts once)"


def _check_not_copies_of_one(
    sets: FeaturizedSets, reasons: dict[str, list[str]], segment_seconds: float
) -> None:
    """Training files that are all copies of one recording leave one recording: refused as
    one recording is (:func:`one_recording`), unless it is cut into clips."""
    kept = [*sets.files["train"], *sets.files["validation"]]
    if segment_seconds or len(kept) != 1 or COPY not in reasons:
        return
    refusal = one_recording(kept[0])
    if refusal:
        raise ConfigError(
            f"the {len(reasons[COPY]) + 1} training files are copies of one recording; {refusal}"
        )


#: Training files warned about one by one; more that share a warning get one line.
MAX_WARNED_FILES = 3


def _warn_skipped(skipped: list[dict[str, str]], total: int) -> dict[str, list[str]]:
    """Warn of each skipped file, or once for a reason more than :data:`MAX_WARNED_FILES`
    share (a ``--segment`` too short, a featurizer that fails on every file); returns the
    skipped files by reason."""
    by_reason: dict[str, list[str]] = {}
    for skip in skipped:
        by_reason.setdefault(skip["error"], []).append(skip["path"])
    for reason, paths in by_reason.items():
        if len(paths) > MAX_WARNED_FILES:
            paths = [f"{len(paths)} of {total} files, e.g. {paths[0]}"]
        for where in paths:
            warnings.warn(f"skipped {where}: {reason}", AetkWarning, stacklevel=4)
    return by_reason


def _check_recordings(sets: FeaturizedSets, band_hz: float | None) -> None:
    """Learn the recordings' norms (``sets.recording_norms``), note each way a training file is
    recorded unlike the analysed band or the other files in ``sets.recording_warnings`` (both
    for the detector file), and warn: once per file, or once per kind when many files share
    it."""
    paths = [path for path, profiles in sets.recordings.items() for _ in profiles]
    profiles = [profile for file_profiles in sets.recordings.values() for profile in file_profiles]
    sets.recording_norms = RecordingNorms.learn(profiles, band_hz)
    by_file: dict[str, list[RecordingWarning]] = {}
    heard_hz = sets.recording_norms.heard_hz
    for path, clip_warnings in zip(paths, training_warnings(profiles, heard_hz), strict=True):
        by_file.setdefault(path, []).extend(clip_warnings)
    by_name: dict[str, list[tuple[str, RecordingWarning]]] = {}
    for path, file_warnings in by_file.items():
        for warning in merged(file_warnings):
            sets.recording_warnings.append({"path": path, **warning.as_dict()})
            by_name.setdefault(warning.name, []).append((path, warning))
    for name, found in by_name.items():
        if len(found) > MAX_WARNED_FILES:
            path, warning = found[0]
            found = [(f"{len(found)} of {len(sets.recordings)} files, e.g. {path}", warning)]
        for where, warning in found:
            warnings.warn(f"{where}: {name}: {warning.message}", AetkWarning, stacklevel=3)


def train_model(
    parts: Components,
    sets: FeaturizedSets,
    config: FitConfig,
    folder: Path,
    observer: FitObserver,
    processes: distributed.Processes,
) -> None:
    """Train the model on the standardised training vectors, validated on the validation ones;
    the vectors live in memory-mapped files under ``folder`` while training runs."""
    with vector_sets(sets, parts.normalizer, folder) as (train_vectors, validation_vectors):
        train(
            parts.model,
            train_vectors,
            validation_vectors,
            config.training,
            on_epoch=observer.on_epoch,
            processes=processes,
        )


#: With fewer normal files than this, a trained model's threshold is calibrated by cross-fitting
#: on every file instead of on the few validation files; from this many, a cross-fitted
#: threshold stands on one fold's files.
CROSS_FIT_BELOW = 20
CROSS_FIT_FOLDS = 5
#: Why the threshold of one recording cut into clips may stand low: nothing can be held out
#: whole (docs/cli.md).
ONE_RECORDING_CUT = (
    "one recording cut into clips: its clips resemble each other more than a later recording "
    "will resemble them, so the threshold may stand low and raise more false alarms than asked "
    "for; fit on recordings made on two or more occasions, or set the threshold on a later "
    "healthy recording's scores (aetk score --threshold)"
)


def fit_scorer(
    parts: Components,
    sets: FeaturizedSets,
    config: FitConfig,
    folder: Path,
    observer: FitObserver,
) -> Calibration:
    """Fit the scorer on all the standardised clips, then calibrate the threshold on the scores
    of normal clips that neither the model nor the scorer learned from."""
    train_clips = StandardizedClips(sets.train, parts.normalizer)
    validation_clips = StandardizedClips(sets.validation, parts.normalizer)
    parts.scorer.fit(parts.model, train_clips, validation_clips)
    check_storable("scorer", parts.scorer)
    files = len(sets.digests["train"]) + len(sets.digests["validation"])
    whole_files = not config.training.segment_seconds
    few_files = parts.model.trainable and files < CROSS_FIT_BELOW
    # Cut into clips, a recording's clips are each other's nearest neighbours: a scorer that
    # learns from every clip would measure a held-out clip against its own recording's others.
    cut_into_clips = not whole_files and not parts.model.trainable
    if files >= 2 and (few_files or cut_into_clips):
        normal_scores = cross_fitted_scores(parts, sets, config, folder)
    else:
        normal_scores = parts.scorer.held_out_scores(parts.model, train_clips, validation_clips)
    calibration = calibrate(normal_scores, config.threshold)
    if whole_files and calibration.warning and too_few_scores(calibration.as_dict()):
        rate = float(config.threshold.rate)
        calibration.warning += advice_to_cut(sets.recording_norms, files, rate)
    if files == 1 and not whole_files:
        calibration.warning = "; ".join(filter(None, (calibration.warning, ONE_RECORDING_CUT)))
    observer.on_calibrated(calibration)
    return calibration


def cross_fitted_scores(
    parts: Components, sets: FeaturizedSets, config: FitConfig, folder: Path
) -> np.ndarray:
    """A held-out score for every normal clip: the files are cut into folds, and each fold's
    clips are scored by a model and scorer fitted on the other folds (as the detector's own were
    fitted on all of them), so that no clip is measured against a clip of its own recording. A
    scorer with several views scales them on clips its model did not learn from (the detector's,
    on its validation files), so the fold's model then leaves out a validation share of the
    other folds, in about the detector's proportion and of whole recordings (a recording cut
    into clips on both sides would lend its validation clips their own nearest neighbours), for
    its scorer: scaled on clips the model had learned, every held-out score would read too high
    and the threshold would stand above every clip. With a handful of files this gives the
    threshold every file to stand on rather than one or two validation files; from
    :data:`CROSS_FIT_BELOW` files, one fold's clips are enough to stand on, at the cost of one
    more fit rather than :data:`CROSS_FIT_FOLDS`."""
    clips = [*sets.train, *sets.validation]
    sources = [*sets.sources["train"], *sets.sources["validation"]]
    files = list(dict.fromkeys(sources))
    file_of = {path: index for index, path in enumerate(files)}
    owners = np.array([file_of[path] for path in sources])
    order = np.random.default_rng(config.training.seed).permutation(len(files))
    validation_share = len(sets.validation) / len(clips)
    folds = np.array_split(order, min(CROSS_FIT_FOLDS, len(files)))
    if len(files) >= CROSS_FIT_BELOW:
        folds = folds[:1]
    scores = np.empty(len(clips))
    scored = np.zeros(len(clips), dtype=bool)
    host = get_host()
    for files_held_out in folds:
        held_out = np.isin(owners, files_held_out)
        fold, others = np.flatnonzero(held_out), np.flatnonzero(~held_out)
        rest = [clips[index] for index in others]
        cut = len(rest)
        if validation_share and parts.scorer.views():
            validating = min(len(rest) - 1, max(1, round(validation_share * len(rest))))
            cut = between_recordings(owners[others], len(rest) - validating)
        # The last of the other folds' files, as the detector's validation files are its last.
        fold_sets = FeaturizedSets(rest[:cut], rest[cut:])
        model = host.create("model", parts.model.name, parts.model.get_params())
        scorer = host.create("scorer", parts.scorer.name, parts.scorer.get_params())
        with vector_sets(fold_sets, parts.normalizer, folder) as (vectors, validation_vectors):
            train(model, vectors, validation_vectors, config.training)
        scorer.fit(
            model,
            StandardizedClips(fold_sets.train, parts.normalizer),
            StandardizedClips(fold_sets.validation, parts.normalizer),
        )
        held_out_clips = StandardizedClips([clips[index] for index in fold], parts.normalizer)
        scores[fold] = scorer.score(model, held_out_clips)
        scored[fold] = True
    return scores[scored]


def between_recordings(owners: np.ndarray, at: int) -> int:
    """The place nearest to ``at`` in a run of clips (``owners``: each one's recording, a
    recording's clips side by side) where one recording's clips end and another's begin, so that
    no recording lies on both sides of a cut; ``at`` itself when they are all one recording's."""
    boundaries = np.flatnonzero(owners[1:] != owners[:-1]) + 1
    if not len(boundaries):
        return at
    return int(boundaries[np.argmin(np.abs(boundaries - at))])


def training_summary(
    config: FitConfig,
    parts: Components,
    sets: FeaturizedSets,
    processes: distributed.Processes,
    started: float,
) -> dict[str, Any]:
    """What the detector file keeps about its training, for ``fit --json``, the report and the
    recording checks at score time."""
    history = parts.model.history_
    norms = sets.recording_norms or RecordingNorms(analysed_hz(parts.featurizer))
    watched = [r["val_loss"] if r["val_loss"] is not None else r["train_loss"] for r in history]
    return {
        "aetk_version": __version__,
        "config": config.as_dict(),
        "files": len(sets.digests["train"]) + len(sets.digests["validation"]),
        "train_files": len(sets.digests["train"]),
        "validation_files": len(sets.digests["validation"]),
        "skipped_files": sets.skipped,
        "train_vectors": sum(clip_lengths(sets.train)),
        "seed": config.training.seed,
        "processes": processes.world,
        "best_epoch": history[int(np.argmin(watched))]["epoch"] if history else None,
        "train_loss": [report["train_loss"] for report in history],
        "val_loss": [report["val_loss"] for report in history],
        "data_fingerprint": fingerprint(sets.digests["train"] + sets.digests["validation"]),
        "recordings": norms.as_dict(),
        "recording_warnings": sets.recording_warnings,
        "machines": named_machines([*sets.files["train"], *sets.files["validation"]]),
        "seconds": round(time.perf_counter() - started, 3),
    }


def fingerprint(digests: Sequence[str]) -> str:
    """SHA-256 over the sorted SHA-256 digests of the files' contents: the same recordings,
    wherever they lie and whatever their names, give the same fingerprint."""
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


@contextlib.contextmanager
def vector_sets(
    sets: FeaturizedSets, normalizer: Normalizer, folder: Path
) -> Iterator[tuple[VectorSet, VectorSet | None]]:
    train_vectors = VectorSet(sets.train, normalizer, folder)
    validation_vectors = VectorSet(sets.validation, normalizer, folder) if sets.validation else None
    try:
        yield train_vectors, validation_vectors
    finally:
        train_vectors.close()
        if validation_vectors is not None:
            validation_vectors.close()


@contextlib.contextmanager
def _warnings_shown(shown: bool) -> Iterator[None]:
    """Only the main process reports skipped files (each would, for its share)."""
    with warnings.catch_warnings():
        if not shown:
            warnings.simplefilter("ignore", AetkWarning)
        yield


def _as_clips(clips: list[Any]) -> Sequence[torch.Tensor]:
    """Cached whole files as :class:`ClipFiles` (read from disk when used); windows of
    segmented recordings as they are."""
    if clips and isinstance(clips[0], tuple):
        return ClipFiles([entry for entry, _ in clips], [length for _, length in clips])
    return clips
