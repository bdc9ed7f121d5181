"""A fitted detector: featurizer, normalizer, model, scorer and calibrated threshold, saved as one
``.aetk`` file.

Scoring reads top to bottom: file → waveform → feature vectors → standardised → scorer (with the
model) → score → compared with the threshold → verdict (:mod:`aetk.detect.scoring`).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from aetk_core.detector import Localize, ScoringDetector, ScoringRun
from aetk_core.processes import scored_files
from aetk_core.recording import RecordingNorms
from aetk_core.verdict import chosen_threshold

from aetk._version import __version__
from aetk.components.base import Featurizer, Model, Normalizer, Scorer
from aetk.components.state import build_component, decode_state, encode_state, jsonable
from aetk.data.audio import audio_clips, default_workers
from aetk.data.features import (
    Clip,
    FileClips,
    audio_clip,
    check_vector_shape,
    featurized_files,
    iter_clips,
)
from aetk.data.recording import analysed_hz
from aetk.detect.calibration import Calibration
from aetk.detect.detector_file import read_detector, write_detector
from aetk.detect.manifest import ROLES, check_manifest, read_calibration
from aetk.detect.scoring import BATCH_WINDOWS, ScoreResult, score_clips
from aetk.errors import DetectorFileError
from aetk.plugin.host import get_host

if TYPE_CHECKING:
    from aetk.detect.explanation import Explanation

DEFAULT_DETECTOR = "detector.aetk"


class Detector(ScoringDetector):
    """A fitted anomaly detector. Create one with :func:`aetk.fit` or :meth:`Detector.load`;
    score with :meth:`score`, :meth:`iter_scores` and :meth:`score_audio`
    (:class:`aetk_core.detector.ScoringDetector`)."""

    def __init__(
        self,
        featurizer: Featurizer,
        normalizer: Normalizer,
        model: Model,
        scorer: Scorer,
        calibration: Calibration,
        training: dict[str, Any] | None = None,
    ):
        self.featurizer = featurizer
        self.normalizer = normalizer
        self.model = model
        self.scorer = scorer
        self.calibration = calibration
        self.training = training or {}

    @property
    def threshold(self) -> float:
        """Scores above it are anomalous."""
        return self.calibration.threshold

    def threshold_for(
        self, threshold: float | None = None, false_alarm_rate: float | None = None
    ) -> float:
        """The threshold a scoring run uses: ``threshold`` as given, or recomputed from the stored
        normal scores for ``false_alarm_rate``, or the detector's own."""
        return chosen_threshold(
            self.threshold, self.calibration.normal_scores, threshold, false_alarm_rate
        )

    def calibration_summary(self) -> dict[str, Any]:
        return self.calibration.as_dict()

    @property
    def segment_seconds(self) -> float:
        """Window length the detector was fitted on (0: whole files)."""
        config = self.training.get("config", {}).get("training", {})
        return float(config.get("segment_seconds", 0.0))

    @property
    def clip_seconds(self) -> float:
        """How long the clips were whose scores calibrated the threshold: the segment length,
        or the featurizer's fixed clip length, or the training clips' median length as measured
        (the one the ``duration`` check compares with; for a detector file from before it was
        kept, their average from the feature vector counts; 1 s when none of these is known).
        Windows scored against the threshold should be as long."""
        if self.segment_seconds:
            return self.segment_seconds
        params = self.featurizer.get_params()
        rate, length = params.get("sample_rate"), params.get("target_length")
        if isinstance(rate, int) and isinstance(length, int) and length > 0:
            return length / rate
        measured = self.recording_norms().seconds
        if measured:
            return measured
        layout = self.featurizer.layout()
        files, vectors = self.training.get("train_files"), self.training.get("train_vectors")
        if layout is not None and layout.vector_step and files and vectors:
            frames = vectors / files + self.model.input_shape_[-1] - 1
            return round(frames * layout.frame_seconds, 3)
        return 1.0

    # -- scoring --------------------------------------------------------------------------------

    def clip(self, path: str | Path) -> Clip:
        """One whole file as a clip (its feature vectors, checked against the model's input
        shape, and how it was recorded)."""
        clip = next(iter_clips(self.featurizer, path, band_rate=self.recording_norms().band_rate))
        check_vector_shape(clip.vectors, self.model.input_shape_, path)
        return clip

    def features(self, path: str | Path) -> torch.Tensor:
        """The feature vectors of one whole file, checked against the model's input shape."""
        return self.clip(path).vectors

    def recording_norms(self) -> RecordingNorms:
        """What the training recordings were like, for the recording checks; a detector fitted
        before they were kept checks the band limit and dropouts only."""
        band_hz = analysed_hz(self.featurizer)
        stored = self.training.get("recordings")
        if isinstance(stored, dict):
            return RecordingNorms.from_dict(stored, band_hz)
        return RecordingNorms(band_hz)

    def learned_machines(self) -> list[str]:
        """The machines the training recordings' DCASE or MIMII names said, for the ``machine``
        check; empty when their names did not all say one (nothing is checked)."""
        stored = self.training.get("machines")
        return (
            [name for name in stored if isinstance(name, str)] if isinstance(stored, list) else []
        )

    def vectors(self, path: str | Path) -> torch.Tensor:
        """The standardised feature vectors of one whole file, as the model sees them."""
        return self.normalizer.transform(self.features(path))

    def _scored_files(self, files: list[Path], run: ScoringRun) -> Iterator[ScoreResult]:
        """The local engine: many files are scored in forked processes, one per core, each on
        one torch thread (:mod:`aetk_core.processes`); else this process decodes and featurizes
        them (whole files on a few threads, windows one at a time) and feeds them to the scoring
        path."""
        yield from scored_files(
            files,
            default_workers(),
            lambda part, workers: self._scored_here(part, run, workers),
            initializer=partial(torch.set_num_threads, 1),
        )

    def _scored_here(
        self, files: Sequence[Path], run: ScoringRun, workers: int
    ) -> Iterator[ScoreResult]:
        featurized = featurized_files(
            self.featurizer,
            files,
            run.segment,
            ahead=2 * BATCH_WINDOWS,
            band_rate=self.recording_norms().band_rate,
            workers=workers,
        )
        yield from score_clips(self, featurized, run.threshold, run.localize, strict=run.strict)

    def _scored_audio(
        self, samples: Any, sample_rate: int | None, name: str, run: ScoringRun
    ) -> ScoreResult:
        band_rate = self.recording_norms().band_rate

        def clips() -> Iterator[Clip]:  # its AudioError is the result's error, as for a file
            pieces = audio_clips(samples, sample_rate, run.segment, self.featurizer.frames_to_read)
            for start, piece in pieces:
                yield audio_clip(self.featurizer, piece, name, start, band_rate)

        files = [FileClips(name, clips(), segment_seconds=run.segment)]
        (result,) = score_clips(self, files, run.threshold, run.localize, strict=run.strict)
        return result

    def score_clips(
        self,
        files: Sequence[FileClips],
        *,
        threshold: float | None = None,
        localize: Localize = True,
        strict: bool = False,
    ) -> list[ScoreResult]:
        """Results of clips featurized elsewhere (another process, a stream), through the same
        scoring path as :meth:`score`."""
        return list(
            score_clips(self, files, self.threshold_for(threshold), localize, strict=strict)
        )

    def explain(self, path: str | Path, threshold: float | None = None) -> Explanation | None:
        """One whole recording explained through the scoring path (:func:`aetk.detect.explanation.
        explain`): its spectrogram and where it departs from normal, judged at ``threshold``
        (the detector's unless given); None where the scorer does not localize."""
        from aetk.detect.explanation import explain

        return explain(self, path, threshold)

    # -- the detector file ----------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the detector atomically to ``path``; an existing file is replaced only whole."""
        tensors: dict[str, torch.Tensor] = {}
        manifest = {
            "aetk_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **self.manifest(tensors),
        }
        path = Path(path)
        write_detector(path, jsonable(manifest), tensors)
        return path

    def manifest(self, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The detector's components, calibration and training as its file keeps them; its
        tensors are added to ``tensors``."""
        host = get_host()
        components = {}
        for role in ROLES:
            component = getattr(self, role)
            registration = host.registration(role, component.name)
            record = host.plugins.get(registration.plugin)
            components[role] = {
                "name": component.name,
                "params": component.get_params(),
                "plugin": registration.plugin,
                "distribution": record.distribution if record else None,
                "version": record.version if record else None,
                "state": encode_state(role, component, tensors),
            }
        calibration = {
            **self.calibration.as_dict(),
            "normal_scores": [float(score) for score in self.calibration.normal_scores],
        }
        return {"components": components, "calibration": calibration, "training": self.training}

    @classmethod
    def load(cls, path: str | Path = DEFAULT_DETECTOR) -> Detector:
        """Read a detector file; refuses, with a clear error, anything it cannot trust."""
        manifest, tensors = read_detector(path)
        if "fleet" in manifest:
            raise DetectorFileError(
                f"{path}: a fleet detector ({len(manifest['fleet'].get('machines', {}))} "
                "machines): load it with aetk.fleet.detector.FleetDetector.load, or use "
                "aetk score, which routes each recording to its machine"
            )
        return cls.from_manifest(path, manifest, tensors)

    @classmethod
    def from_manifest(
        cls, path: str | Path, manifest: dict[str, Any], tensors: dict[str, torch.Tensor]
    ) -> Detector:
        """The detector a manifest (and its tensors) describes, every field checked."""
        check_manifest(path, manifest)
        components = manifest["components"]
        built: dict[str, Any] = {
            role: build_component(path, role, components[role]) for role in ROLES
        }
        for role, component in built.items():
            decode_state(path, role, component, components[role].get("state") or {}, tensors)
        return cls(
            **built,
            calibration=read_calibration(path, manifest),
            training=manifest.get("training") or {},
        )

    def views(self) -> list[dict[str, Any]] | None:
        """The views the scorer judges a clip through, each with its scale (the median score of
        held-out normal clips in that view, times its ``tail`` factor where the scorer keeps
        one in ``view_tails_``; a scorer with local scales measures each clip against its
        nearest normal clips' scores, never below it), or None for a scorer with one view."""
        names = self.scorer.views()
        if not names:
            return None
        scales = getattr(self.scorer, "view_scales_", [None] * len(names))
        tails = getattr(self.scorer, "view_tails_", None)
        views = []
        for index, (name, scale) in enumerate(zip(names, scales, strict=True)):
            tail = 1.0 if tails is None else float(tails[index])
            view = {"view": name, "scale": None if scale is None else float(scale) * tail}
            if tails is not None:
                view["tail"] = tail
            views.append(view)
        return views

    def summary(self, output: str | Path | None = None) -> dict[str, Any]:
        """What ``aetk fit --json`` prints and the report shows: components, training figures,
        threshold and calibration."""
        training, norms = self.training, self.recording_norms()
        val_losses = [loss for loss in training.get("val_loss", []) if loss is not None]
        train_losses = training.get("train_loss", [])
        return {
            "detector": None if output is None else str(output),
            "preset": training.get("config", {}).get("preset"),
            "method": training.get("config", {}).get("method"),
            "featurizer": self.featurizer.name,
            "model": self.model.name,
            "scorer": self.scorer.name,
            "views": self.views(),
            **{
                key: None if hz is None else round(hz, 1)
                for key, hz in (("analysed_hz", norms.analysed_hz), ("heard_hz", norms.heard_hz))
            },
            "params": {
                role: getattr(self, role).get_params() for role in ("featurizer", "model", "scorer")
            },
            "files": training.get("files"),
            "train_files": training.get("train_files"),
            "validation_files": training.get("validation_files"),
            "skipped_files": len(training.get("skipped_files", [])),
            "train_vectors": training.get("train_vectors"),
            "segment_seconds": self.segment_seconds or None,
            "epochs": len(train_losses),
            "best_epoch": training.get("best_epoch"),
            "train_loss": train_losses[-1] if train_losses else None,
            "val_loss": min(val_losses) if val_losses else None,
            "inherited": training.get("config", {}).get("inherited", []),
            "threshold": self.threshold,
            "threshold_method": self.calibration.method,
            "calibration": self.calibration.as_dict(),
            "parameters": sum(p.numel() for p in self.model.module_.parameters()),
            "seed": training.get("seed"),
            "seconds": training.get("seconds"),
            "recordings": {
                "channels": None if norms.channels is None else list(norms.channels),
                "level_db": None
                if norms.level_db is None
                else [round(v, 1) for v in norms.level_db],
                "seconds": norms.seconds,
                "codecs": None if norms.codecs is None else list(norms.codecs),
            },
        }


__all__ = ["DEFAULT_DETECTOR", "Detector", "ScoreResult"]
