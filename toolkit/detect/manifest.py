"""The detector manifest: what each field must hold, and the migration of older schemas.

Schema 2 (this aetk) keeps the threshold with the core: a ``calibration`` object holds the method,
the threshold, the target false-alarm rate and the held-out normal scores it was computed from.
Schema 1 kept the threshold inside the scorer's state (``threshold_`` and the normal scores as
``validation_scores_`` or ``reference_scores_``), with ``percentile`` and ``threshold_method``
among the scorer's parameters; such a file is migrated on load, its verdicts unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from aetk.detect.calibration import THRESHOLD_METHODS, Calibration
from aetk.errors import DetectorFileError

ROLES = ("featurizer", "normalizer", "model", "scorer")
#: A component may have at most this many parameters or state entries in a detector file.
MAX_ENTRIES = 1000
_V1_THRESHOLD_PARAMS = ("percentile", "threshold_method")
_V1_SCORE_STATES = ("validation_scores_", "reference_scores_")


def check_manifest(path: str | Path, manifest: dict[str, Any]) -> None:
    """Refuse, naming the field, a manifest whose fields do not have the type and range this aetk
    needs; the components' own parameters are checked when each component is built."""
    components = manifest.get("components")
    if not isinstance(components, dict) or set(components) != set(ROLES):
        raise DetectorFileError(f"{path}: detector manifest does not list its components")
    for role in ROLES:
        entry = components[role]
        if not isinstance(entry, dict):
            raise DetectorFileError(f"{path}: detector manifest entry for the {role} is malformed")
        name, params, state = entry.get("name"), entry.get("params"), entry.get("state", {})
        if not isinstance(name, str) or not name or len(name) > 200:
            raise DetectorFileError(f"{path}: the {role}'s name in the manifest is not a name")
        for label, value in (("parameters", params), ("state", state)):
            if not isinstance(value, dict):
                raise DetectorFileError(f"{path}: the {role}'s {label} are not a JSON object")
            if len(value) > MAX_ENTRIES:
                raise DetectorFileError(
                    f"{path}: the {role} has {len(value)} {label} (at most {MAX_ENTRIES})"
                )
    training = manifest.get("training", {})
    if not isinstance(training, dict):
        raise DetectorFileError(f"{path}: the manifest's 'training' is not a JSON object")


def read_calibration(path: str | Path, manifest: dict[str, Any]) -> Calibration:
    """The manifest's ``calibration``, every field checked."""
    entry = manifest.get("calibration")
    if not isinstance(entry, dict):
        raise DetectorFileError(f"{path}: the manifest has no calibration (threshold)")
    method, threshold = entry.get("method"), entry.get("threshold")
    scores, rate, warning = (
        entry.get("normal_scores"),
        entry.get("target_false_alarm_rate"),
        entry.get("warning"),
    )
    if method not in THRESHOLD_METHODS:
        raise DetectorFileError(f"{path}: calibration method {method!r} is not one aetk knows")
    if not _finite(threshold):
        raise DetectorFileError(f"{path}: the detector's threshold {threshold!r} is not finite")
    if not isinstance(scores, list) or not scores or not all(_finite(s) for s in scores):
        raise DetectorFileError(f"{path}: calibration normal_scores are not a list of numbers")
    if rate is not None and not (_finite(rate) and 0 < rate < 1):
        raise DetectorFileError(f"{path}: target_false_alarm_rate {rate!r} is not in (0, 1)")
    if warning is not None and not isinstance(warning, str):
        raise DetectorFileError(f"{path}: calibration warning is not text")
    return Calibration(
        method, float(threshold), np.asarray(scores, dtype=np.float64), rate, warning
    )


def migrate_v1(
    path: str | Path, manifest: dict[str, Any], tensors: dict[str, Any]
) -> dict[str, Any]:
    """A schema-1 manifest as schema 2: the scorer's threshold state becomes the calibration
    (tensors holding the normal scores are removed from ``tensors``)."""
    scorer = (manifest.get("components") or {}).get("scorer")
    if not isinstance(scorer, dict):
        raise DetectorFileError(f"{path}: detector manifest does not list its components")
    params = dict(scorer.get("params") or {})
    state = dict(scorer.get("state") or {})
    threshold = state.pop("threshold_", None)
    method = state.pop("threshold_method_", "gamma")
    scores = None
    for key in _V1_SCORE_STATES:
        value = state.pop(key, None)
        if isinstance(value, dict) and value.get("$array") in tensors:
            scores = tensors.pop(value["$array"]).double().flatten().tolist()
    percentile = params.get("percentile", 90.0)
    for key in _V1_THRESHOLD_PARAMS:
        params.pop(key, None)
    if scores is None or not _finite(threshold):
        raise DetectorFileError(
            f"{path}: this schema-1 detector keeps no normal scores to migrate its threshold "
            "from: fit it again with this aetk ('aetk fit')"
        )
    components = dict(manifest["components"])
    components["scorer"] = {**scorer, "params": params, "state": state}
    normalizer = components.get("normalizer")
    if isinstance(normalizer, dict):
        components["normalizer"] = {"plugin": "aetk-core", **normalizer}
    rate = (
        round(1 - float(percentile) / 100, 12)
        if _finite(percentile) and 0 < float(percentile) < 100
        else None
    )
    return {
        **manifest,
        "components": components,
        "calibration": {
            "method": method if method in THRESHOLD_METHODS else "gamma",
            "threshold": threshold,
            "normal_scores": scores,
            "target_false_alarm_rate": rate,
            "warning": None,
        },
        "schema_version": 2,
        "migrated_from_schema": 1,
    }


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
