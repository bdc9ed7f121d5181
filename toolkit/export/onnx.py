"""``aetk export``: a detector as one ONNX file for the torch-free runtime (``aetk-runtime``).

The graph holds everything after the featurizer: standardisation, model and scorer, from one
clip's feature vectors ``[n_vectors, *vector_shape]`` (``n_vectors`` dynamic) to its score
``[1]``, and, for a scorer that judges clips through several views, ``winning_view`` ``[3]``:
which view gave the score and the vectors ``[first, last)`` of its moment; for a scorer that
localizes, ``vector_scores`` ``[n_vectors]`` and ``contributions`` ``[n_vectors, *vector_shape]``
too, from which the runtime finds events and their bands as aetk does. Windows for
``--segment`` are clips of their own, so the same graph scores them. The file's
``metadata_props`` hold, under the key ``aetk``, a JSON object: the featurizer's name and
parameters, the training recordings' band (``band_rate``) and norms (``recordings``, and the
``machines`` their names said), the threshold and its calibration (normal scores included, for
``--false-alarm-rate``), the segment and calibrated clip lengths, what turns ``winning_view``
into a row's ``view`` (``views``) and the localization into events (``localization``: the event
threshold, each band's normal contribution and edges, the time layout), aetk's version, the
export schema version and the SHA-256 of the graph. Each component opts in through
``export_module``; one that returns None is named in a one-line error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from aetk_core.features import featurizer_for
from aetk_core.fileio import atomic_file

from aetk._version import __version__
from aetk.detect.detector import Detector
from aetk.detect.explain import normal_band_contributions
from aetk.errors import ConfigError

#: Version of the file the runtime reads: 2 adds the graph's optional ``winning_view`` output and
#: the metadata that turns it into a row's ``view``. The optional ``vector_scores`` and
#: ``contributions`` outputs after it, and the ``localization`` metadata, are additive: a runtime
#: that does not read them takes the outputs it knows by position.
EXPORT_SCHEMA = 2
#: The graph's outputs, in order; a scorer's module returns the first one, two or four.
OUTPUTS = ("score", "winning_view", "vector_scores", "contributions")
METADATA_KEY = "aetk"
DEFAULT_OPSET = 18


class _DetectorGraph(torch.nn.Module):
    def __init__(self, normalizer: torch.nn.Module, scorer: torch.nn.Module):
        super().__init__()
        self.normalizer = normalizer
        self.scorer = scorer

    def forward(self, features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return self.scorer(self.normalizer(features))


def graph_of(detector: Detector) -> torch.nn.Module:
    """The detector after its featurizer as one module, or a ConfigError naming the component
    that cannot be exported (a featurizer without a torch-free implementation in aetk-core
    included: the runtime could not feed the graph)."""
    featurizer_for({"name": detector.featurizer.name, "params": detector.featurizer.get_params()})
    normalizer = detector.normalizer.export_module()
    if normalizer is None:
        raise ConfigError(f"normalizer '{detector.normalizer.name}' cannot be exported")
    scorer = detector.scorer.export_module(detector.model)
    if scorer is None:
        raise ConfigError(
            f"scorer '{detector.scorer.name}' cannot be exported (it has no export_module); "
            "score with aetk itself"
        )
    return _DetectorGraph(normalizer, scorer).eval()


def metadata(
    detector: Detector,
    graph_sha256: str,
    machine: str | None = None,
    conditions: dict[str, str] | None = None,
    outputs: Sequence[str] = OUTPUTS[:1],
    machines_from: str | None = None,
) -> dict[str, Any]:
    """The ``aetk`` metadata of a graph with ``outputs``."""
    calibration = detector.calibration
    return {
        "machine": machine,
        "conditions": conditions,
        # How the fleet told its recordings' machines apart (folders, dcase or table), so that
        # aetk-runtime routes a folder of the fleet's files the same way.
        "machines_from": machines_from,
        "schema_version": EXPORT_SCHEMA,
        "aetk_version": __version__,
        "featurizer": {
            "name": detector.featurizer.name,
            "params": detector.featurizer.get_params(),
        },
        "vector_shape": list(detector.model.input_shape_),
        # The training recordings' rate when they were all narrower than the analysed band: the
        # runtime hears faster recordings through their band, as aetk does.
        "band_rate": detector.recording_norms().band_rate,
        # What the training recordings were like, so that the runtime names the same mismatches.
        "recordings": detector.recording_norms().as_dict(),
        "machines": detector.learned_machines(),
        "segment_seconds": detector.segment_seconds,
        "views": reported_views(detector),
        "localization": reported_localization(detector) if "contributions" in outputs else None,
        # How long the clips were that calibrated the threshold, for --segment's warning.
        "clip_seconds": detector.clip_seconds,
        "threshold": detector.threshold,
        "calibration": {
            **calibration.as_dict(),
            "normal_scores": [float(score) for score in calibration.normal_scores],
        },
        "graph_sha256": graph_sha256,
        # What aetk fit said of the detector (aetk-runtime info prints it as aetk info does).
        "summary": {key: value for key, value in detector.summary().items() if key != "detector"},
    }


def check_opset(model: Any, opset: int) -> None:
    """A :class:`ConfigError` unless ``model`` (an ``onnx.ModelProto``) is at ``opset``: the
    exporter falls back to an opset of its own where it cannot convert the graph."""
    written = next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))
    if written != opset:
        raise ConfigError(
            f"--opset {opset}: the exporter cannot write this detector's graph at that opset "
            f"(it would write opset {written}); choose another, e.g. {DEFAULT_OPSET}"
        )


def reported_views(detector: Detector) -> dict[str, Any] | None:
    """What turns the graph's ``winning_view`` output into a row's ``view`` as aetk reports it: the
    scorer's views and where its vectors lie in time; None where aetk reports no view (a
    scorer of one view, a featurizer without a time layout, a scorer that cannot localize)."""
    names = detector.scorer.views()
    layout = detector.featurizer.layout()
    if (
        not names
        or layout is None
        or getattr(detector.scorer, "normal_contributions_", None) is None
    ):
        return None
    return {
        "names": list(names),
        "vector_frames": int(detector.model.input_shape_[-1]),
        "frame_seconds": layout.frame_seconds,
        "vector_step": layout.vector_step,
    }


def reported_localization(detector: Detector) -> dict[str, Any] | None:
    """What turns the graph's ``vector_scores`` and ``contributions`` into a row's ``segments``
    (:func:`aetk_core.localization.event_map`): the scorer's event threshold, each band's normal
    contribution, the bands' edges and where vectors lie in time; None where aetk finds no
    events (a featurizer without a time layout, a scorer whose normal does not fit it)."""
    layout = detector.featurizer.layout()
    normal = getattr(detector.scorer, "normal_contributions_", None)
    shape = tuple(detector.model.input_shape_)
    if layout is None or normal is None or tuple(normal.shape) != shape or len(shape) != 3:
        return None
    if shape[1] != len(layout.band_edges_hz):
        return None
    return {
        "event_threshold": float(detector.scorer.event_threshold_),
        "normal_bands": normal_band_contributions(normal).tolist(),
        "band_edges_hz": [list(edges) for edges in layout.band_edges_hz],
        "frame_seconds": layout.frame_seconds,
        "vector_step": layout.vector_step,
    }


def export(
    detector: Detector,
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    machine: str | None = None,
    conditions: dict[str, str] | None = None,
    machines_from: str | None = None,
) -> Path:
    """Write ``detector`` as an ONNX file at ``path`` (atomically) and check it; ``machine``:
    the fleet machine it is the detector of, and ``conditions`` that machine's conditions in the
    fleet, carried in the metadata to the runtime's rows; ``machines_from``: how the fleet told
    its machines apart (``folders``, ``dcase`` or ``table``), for the runtime's routing."""
    import onnx

    graph = graph_of(detector)
    example = torch.zeros((3, *detector.model.input_shape_))
    with torch.no_grad():
        returned = graph(example)
    count = len(returned) if isinstance(returned, tuple) else 1
    if count not in (1, 2, 4):
        raise ConfigError(
            f"scorer '{detector.scorer.name}': its export module returns {count} outputs; aetk "
            "export reads 1 (score), 2 (score, view) or 4 (score, view, vector_scores, "
            "contributions)"
        )
    outputs = list(OUTPUTS[:count])
    vectors = torch.export.Dim("vectors", min=1)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter reports every op library it skips
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["features"],
            output_names=outputs,
            dynamic_shapes={"features": {0: vectors}},
            verbose=False,
        )
    quiet.setLevel(level)
    if program is None:
        raise ConfigError("the ONNX exporter produced no program")
    model = program.model_proto
    check_opset(model, opset)
    onnx.checker.check_model(model)
    digest = hashlib.sha256(model.graph.SerializeToString()).hexdigest()
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(
        metadata(detector, digest, machine, conditions, outputs, machines_from)
    )
    path = Path(path)
    with atomic_file(path) as handle:
        handle.write(model.SerializeToString())
    return path
