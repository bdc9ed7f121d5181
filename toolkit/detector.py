"""A fitted detector: featurizer, standardiser, model and scorer, saved as one ``.aetk`` file.

Scoring reads top to bottom: file → waveform → feature vectors → standardised → scorer (with the
model) → score → compared with the threshold → verdict.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aetk import __version__
from aetk.audio import find_audio_files
from aetk.components import Component, Featurizer, Model, Scorer
from aetk.detector_file import read_detector, write_detector
from aetk.errors import AetkError, AudioError, ConfigError, DetectorFileError
from aetk.features import check_vector_shape, featurize_file
from aetk.normalization import Standardizer
from aetk.plugins import get_host

DEFAULT_DETECTOR = "detector.aetk"
_ROLES = ("featurizer", "normalizer", "model", "scorer")
_STATE_KEY = re.compile(r"^[a-z][a-z0-9_]*_$")


@dataclass
class ScoreResult:
    """The verdict on one file; ``error`` is set (and ``score`` is None) when it failed."""

    path: str
    score: float | None
    threshold: float
    anomalous: bool | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score": self.score,
            "threshold": self.threshold,
            "anomalous": self.anomalous,
            "error": self.error,
        }


class Detector:
    """A fitted anomaly detector. Create one with :func:`aetk.fit` or :meth:`Detector.load`."""

    def __init__(
        self,
        featurizer: Featurizer,
        normalizer: Standardizer,
        model: Model,
        scorer: Scorer,
        training: dict[str, Any] | None = None,
    ):
        self.featurizer = featurizer
        self.normalizer = normalizer
        self.model = model
        self.scorer = scorer
        self.training = training or {}

    @property
    def threshold(self) -> float:
        """Scores above it are anomalous."""
        self.scorer.check_fitted()
        return float(self.scorer.threshold_)

    # -- scoring --------------------------------------------------------------------------------

    def vectors(self, path: str | Path) -> torch.Tensor:
        """The standardised feature vectors of one file, as the model sees them."""
        features = featurize_file(self.featurizer, path)
        check_vector_shape(features, self.model.input_shape_, path)
        return self.normalizer.transform(features)

    def score(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        threshold: float | None = None,
    ) -> list[ScoreResult]:
        """Score files and folders (searched recursively); one result per file, in order."""
        return list(self.iter_scores(paths, threshold=threshold))

    def iter_scores(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        threshold: float | None = None,
        batch_files: int = 64,
    ) -> Iterator[ScoreResult]:
        """Like :meth:`score`, yielding each result as soon as its batch of files is scored."""
        threshold = self.threshold if threshold is None else float(threshold)
        files = find_audio_files([paths] if isinstance(paths, (str, Path)) else paths)
        for start in range(0, len(files), batch_files):
            yield from self._score_batch(files[start : start + batch_files], threshold)

    def _score_batch(self, files: list[Path], threshold: float) -> list[ScoreResult]:
        results: list[ScoreResult | None] = []
        clips, positions = [], []
        for path in files:
            try:
                clips.append(self.vectors(path))
            except AudioError as exc:
                results.append(ScoreResult(str(path), None, threshold, None, exc.reason))
            else:
                positions.append(len(results))
                results.append(None)
        scores = self.scorer.score(self.model, clips) if clips else []
        for position, score in zip(positions, scores, strict=True):
            path = str(files[position])
            score = float(score)
            if math.isfinite(score):
                results[position] = ScoreResult(path, score, threshold, score > threshold)
            else:
                results[position] = ScoreResult(path, None, threshold, None, "score is not finite")
        return results

    # -- the detector file ----------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the detector atomically to ``path``; an existing file is replaced only whole."""
        tensors: dict[str, torch.Tensor] = {}
        host = get_host()
        components = {}
        for role in _ROLES:
            component = getattr(self, role)
            entry: dict[str, Any] = {"name": component.name, "params": component.get_params()}
            if role != "normalizer":
                registration = host.registration(role, component.name)
                record = host.plugins.get(registration.plugin)
                entry["plugin"] = registration.plugin
                entry["distribution"] = record.distribution if record else None
                entry["version"] = record.version if record else None
            entry["state"] = _encode_state(role, component, tensors)
            components[role] = entry
        manifest = {
            "aetk_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "components": components,
            "training": self.training,
        }
        path = Path(path)
        write_detector(path, _jsonable(manifest), tensors)
        return path

    @classmethod
    def load(cls, path: str | Path = DEFAULT_DETECTOR) -> Detector:
        """Read a detector file; refuses, with a clear error, anything it cannot trust."""
        manifest, tensors = read_detector(path)
        components = manifest.get("components")
        if not isinstance(components, dict) or set(components) != set(_ROLES):
            raise DetectorFileError(f"{path}: detector manifest does not list its components")
        built = {role: _build_component(path, role, components[role]) for role in _ROLES}
        for role, component in built.items():
            _decode_state(path, role, component, components[role].get("state") or {}, tensors)
        return cls(**built, training=manifest.get("training") or {})

    def summary(self) -> dict[str, Any]:
        """Components, parameters, threshold and training figures, for display."""
        return {
            "featurizer": {"name": self.featurizer.name, **self.featurizer.get_params()},
            "model": {"name": self.model.name, **self.model.get_params()},
            "scorer": {"name": self.scorer.name, **self.scorer.get_params()},
            "threshold": self.threshold,
            "training": self.training,
        }


def _build_component(path: str | Path, role: str, entry: dict[str, Any]) -> Component:
    name, params = entry.get("name"), entry.get("params")
    if not isinstance(name, str) or not isinstance(params, dict):
        raise DetectorFileError(f"{path}: detector manifest entry for the {role} is malformed")
    if role == "normalizer":
        if name != Standardizer.name:
            raise DetectorFileError(f"{path}: unknown normalizer '{name}'")
        return Standardizer(**params)
    try:
        return get_host().create(role, name, params)
    except ConfigError as exc:
        if "unknown" in str(exc) and name not in get_host().registry[role]:
            distribution = entry.get("distribution") or entry.get("plugin") or "the plugin"
            raise DetectorFileError(
                f"{path}: this detector uses {role} '{name}' from plugin '{entry.get('plugin')}', "
                f"which is not installed (pip install {distribution})"
            ) from None
        raise DetectorFileError(f"{path}: {exc}") from None


def _encode_state(role: str, component: Component, tensors: dict[str, torch.Tensor]) -> dict:
    encoded: dict[str, Any] = {}
    for key, value in component.learned_state().items():
        name = f"{role}.{key}"
        if isinstance(value, torch.nn.Module):
            for parameter, tensor in value.state_dict().items():
                tensors[f"{name}.{parameter}"] = tensor
            encoded[key] = {"$module": name}
        elif isinstance(value, torch.Tensor):
            tensors[name] = value
            encoded[key] = {"$tensor": name}
        elif isinstance(value, np.ndarray):
            tensors[name] = torch.from_numpy(np.ascontiguousarray(value))
            encoded[key] = {"$array": name}
        else:
            encoded[key] = value
    return encoded


def _decode_state(
    path: str | Path, role: str, component: Component, state: dict, tensors: dict[str, torch.Tensor]
) -> None:
    if not isinstance(state, dict):
        raise DetectorFileError(f"{path}: detector state of the {role} is malformed")
    modules = {}
    for key, value in state.items():
        if not _STATE_KEY.match(key):
            raise DetectorFileError(
                f"{path}: detector state of the {role} has an invalid key {key!r}"
            )
        if isinstance(value, dict) and "$module" in value:
            modules[key] = value["$module"]
        elif isinstance(value, dict) and ("$tensor" in value or "$array" in value):
            name = value.get("$tensor", value.get("$array"))
            if name not in tensors:
                raise DetectorFileError(f"{path}: detector lacks tensor {name!r}")
            tensor = tensors[name]
            setattr(component, key, tensor.numpy() if "$array" in value else tensor)
        else:
            setattr(component, key, value)
    for key, prefix in modules.items():
        if key != "module_" or not isinstance(component, Model):
            raise DetectorFileError(f"{path}: only a model may hold network weights ({role}.{key})")
        _load_module(path, component, prefix, tensors)


def _load_module(path: str | Path, model: Model, prefix: str, tensors: dict) -> None:
    try:
        model.initialize(model.input_shape_)
    except (AttributeError, TypeError, ValueError, AetkError) as exc:
        raise DetectorFileError(f"{path}: cannot rebuild model '{model.name}' ({exc})") from None
    weights = {
        name.removeprefix(prefix + "."): tensor
        for name, tensor in tensors.items()
        if name.startswith(prefix + ".")
    }
    try:
        model.module_.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise DetectorFileError(
            f"{path}: weights do not match model '{model.name}' as the manifest describes it "
            f"({detail})"
        ) from None
    model.module_.eval()


def _jsonable(value: Any) -> Any:
    """Tuples to lists and NumPy scalars to Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
