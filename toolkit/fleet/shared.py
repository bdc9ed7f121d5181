"""A fleet judged by one network: a conditioned model trained on every machine's recordings, then
bound to each machine.

files, split machine by machine into training and validation → featurize (through the feature
cache) → standardize with the whole fleet's statistics → train the one conditioned network on
every vector with its machine's categories → for each machine: bind the network to it, fit the
scorer on its clips, calibrate its threshold on its own held-out clips → one
:class:`aetk.Detector` per machine, all sharing the featurizer, the normalizer and the network.

A machine is encoded by the method text's rule (one-hot below 50 machines, a learned embedding
from 50), so the network learns what is common to the fleet once and what sets each machine
apart from its code. A machine with fewer than :data:`~aetk.fleet.categories.MIN_MACHINE_FILES`
recordings still trains the network; its scorer and threshold learn from the whole fleet's
recordings seen through the network bound to it (with a warning), as a per-machine fleet judges
it by a detector of the whole fleet.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from aetk_core.machines import MACHINE

from aetk.components.state import check_storable
from aetk.data.cache import FeatureCache
from aetk.data.clips import StandardizedClips, clip_lengths
from aetk.data.recording import analysed_hz, analysis_rate
from aetk.detect.calibration import calibrate
from aetk.detect.detector import Detector
from aetk.errors import AetkError, AetkWarning
from aetk.fitting import distributed
from aetk.fitting.config import FitConfig
from aetk.fitting.progress import FitObserver
from aetk.fitting.stages import (
    Components,
    FeaturizedSets,
    build_components,
    featurize,
    for_recordings,
    split_files,
    training_summary,
    vector_sets,
)
from aetk.fitting.trainer import train
from aetk.fleet.categories import MIN_MACHINE_FILES, Categories
from aetk.plugin.host import get_host


def fit_shared(
    by_machine: dict[str, list[Path]],
    categories: Categories,
    config: FitConfig,
    observer: FitObserver | None = None,
) -> dict[str, Detector]:
    """Each machine's detector, all sharing one conditioned network (see the module
    documentation); ``by_machine``: each machine's normal recordings."""
    observer = observer or FitObserver()
    started = time.perf_counter()
    every_file = [path for files in by_machine.values() for path in files]
    config, rates = for_recordings(config, every_file)
    parts = build_components(config)
    machines = Categories((categories.column(MACHINE),))
    parts.model.categories_ = machines.as_dict()
    train_files, validation_files = _split_by_machine(by_machine, config)
    observer.on_start(config, len(train_files), len(validation_files))
    observer.on_recordings(rates, analysis_rate(parts.featurizer))
    machine_of = {path: machine for machine, files in by_machine.items() for path in files}
    with FeatureCache.from_environment() as cache:
        sets = featurize(
            parts.featurizer,
            train_files,
            validation_files,
            config.training.segment_seconds,
            cache,
            observer,
        )
        parts.normalizer.fit(sets.train)
        codes = {
            role: _vector_codes(machines, [machine_of[path] for path in sets.sources[role]], clips)
            for role, clips in (("train", sets.train), ("validation", sets.validation))
        }
        with vector_sets(sets, parts.normalizer, cache.scratch) as vectors:
            train(
                parts.model,
                *vectors,
                config.training,
                on_epoch=observer.on_epoch,
                codes=(codes["train"], codes["validation"] if sets.validation else None),
            )
        observer.on_stage(f"Fitting scorer {parts.scorer.name} and calibrating each machine")
        band_hz = analysed_hz(parts.featurizer)
        detectors = {}
        # Inside the cache's lifetime: the clips may be the cache's files.
        for machine, files in by_machine.items():
            own = sets.of_files(set(files), band_hz) if _enough(machine, files) else sets
            condition = machines.indices([{MACHINE: machine}])[0].tolist()
            try:
                detectors[machine] = _machine_detector(parts, own, condition, config, started)
            except AetkError as exc:
                raise type(exc)(f"machine {machine}: {exc}") from None
            observer.on_calibrated(detectors[machine].calibration)
        return detectors


def _split_by_machine(
    by_machine: dict[str, list[Path]], config: FitConfig
) -> tuple[list[Path], list[Path]]:
    """Training and validation files, each machine's recordings split as a fit splits them."""
    train_files: list[Path] = []
    validation_files: list[Path] = []
    for files in by_machine.values():
        train_part, validation_part = split_files(
            files, config.training.val_fraction, config.training.seed
        )
        train_files += train_part
        validation_files += validation_part
    return train_files, validation_files


def _enough(machine: str, files: list[Path]) -> bool:
    """Whether ``machine`` has recordings enough for a scorer and a threshold of its own; if
    not, a warning says that the whole fleet's recordings, seen through the network bound to
    it, stand in."""
    if len(files) >= MIN_MACHINE_FILES:
        return True
    warnings.warn(
        f"machine {machine}: {len(files)} normal recording(s), fewer than {MIN_MACHINE_FILES}: "
        "its scorer and threshold learn from the whole fleet's recordings, seen through the "
        "network bound to it",
        AetkWarning,
        stacklevel=3,
    )
    return False


def _vector_codes(
    machines: Categories, names: list[str], clips: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Each vector's machine code ``[vectors, 1]``: its clip's, repeated over the clip."""
    lengths = clip_lengths(clips)
    per_clip = machines.indices({MACHINE: name} for name in names)
    return torch.from_numpy(np.repeat(per_clip, lengths, axis=0).reshape(-1, 1))


def _machine_detector(
    parts: Components,
    own: FeaturizedSets,
    condition: list[int],
    config: FitConfig,
    started: float,
) -> Detector:
    """One machine's detector: the shared network bound to it, a scorer fitted on its clips,
    and a threshold from its held-out clips' scores."""
    model = parts.model.bind(condition)
    scorer = get_host().create("scorer", config.scorer.name, config.scorer.params)
    train_clips = StandardizedClips(own.train, parts.normalizer)
    validation_clips = StandardizedClips(own.validation, parts.normalizer)
    scorer.fit(model, train_clips, validation_clips)
    check_storable("scorer", scorer)
    calibration = calibrate(
        scorer.held_out_scores(model, train_clips, validation_clips), config.threshold
    )
    mine = Components(parts.featurizer, parts.normalizer, model, scorer)
    summary = training_summary(config, mine, own, distributed.SINGLE, started)
    return Detector(parts.featurizer, parts.normalizer, model, scorer, calibration, summary)
