"""aetk: detect anomalous machine sounds, trained only on recordings of a healthy machine.

Public API::

    import aetk
    detector = aetk.fit("normal_dir/")          # mirrors `aetk fit`
    detector.save("detector.aetk")
    results = aetk.Detector.load("detector.aetk").score(["new.wav"])

Plugins implement the hooks in :mod:`aetk.plugin.hookspecs` with :data:`aetk.hookimpl` and subclass
:class:`aetk.Featurizer`, :class:`aetk.Model` or :class:`aetk.Scorer`. Scores are always
"higher means more anomalous".

Importing ``aetk`` does not import torch; the names that need it load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aetk._version import __version__
from aetk.components.base import (
    Component,
    FeatureLayout,
    Featurizer,
    Localization,
    Model,
    Scorer,
)
from aetk.errors import (
    AetkError,
    AetkWarning,
    AudioError,
    ConfigError,
    DetectorFileError,
    MissingPluginError,
    NotFittedError,
    PluginError,
)
from aetk.plugin.hookspecs import hookimpl

if TYPE_CHECKING:
    from aetk_core.watch.sources import StreamFormat, open_input_device

    from aetk import testing
    from aetk.components import networks
    from aetk.components import pooling as scoring
    from aetk.data import synth
    from aetk.data.audio import (
        Audio,
        empty_mel_bands,
        find_audio_files,
        mel_filter_bank,
        mel_points_hz,
        power_to_decibels,
        read_audio,
        tractable_rate,
    )
    from aetk.detect.calibration import fit_threshold
    from aetk.detect.detector import Detector
    from aetk.detect.scoring import ScoreResult
    from aetk.eval import metrics
    from aetk.fitting.progress import FitObserver
    from aetk.fitting.stages import fit
    from aetk.plugin import host as plugins

_LAZY = {
    "fit": "aetk.fitting.stages",
    "FitObserver": "aetk.fitting.progress",
    "Detector": "aetk.detect.detector",
    "ScoreResult": "aetk.detect.scoring",
    "Audio": "aetk.data.audio",
    "read_audio": "aetk.data.audio",
    "find_audio_files": "aetk.data.audio",
    "tractable_rate": "aetk.data.audio",
    "mel_filter_bank": "aetk.data.audio",
    "mel_points_hz": "aetk.data.audio",
    "power_to_decibels": "aetk.data.audio",
    "empty_mel_bands": "aetk.data.audio",
    "fit_threshold": "aetk.detect.calibration",
    "plugins": "aetk.plugin.host",
    "StreamFormat": "aetk_core.watch.sources",
    "open_input_device": "aetk_core.watch.sources",
}
#: Helper modules for plugins, by their public name: each lives with the job it serves.
_MODULES = {
    "metrics": "aetk.eval.metrics",
    "networks": "aetk.components.networks",
    "scoring": "aetk.components.pooling",
    "synth": "aetk.data.synth",
    "testing": "aetk.testing",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    if name not in _LAZY:
        raise AttributeError(f"module 'aetk' has no attribute {name!r}")
    module = _LAZY[name]
    if name == "plugins":
        return importlib.import_module(module)
    return getattr(importlib.import_module(module), name)


__all__ = [
    "AetkError",
    "AetkWarning",
    "Audio",
    "AudioError",
    "Component",
    "ConfigError",
    "Detector",
    "DetectorFileError",
    "FeatureLayout",
    "Featurizer",
    "FitObserver",
    "Localization",
    "MissingPluginError",
    "Model",
    "NotFittedError",
    "PluginError",
    "ScoreResult",
    "Scorer",
    "StreamFormat",
    "__version__",
    "empty_mel_bands",
    "find_audio_files",
    "fit",
    "fit_threshold",
    "hookimpl",
    "mel_filter_bank",
    "mel_points_hz",
    "metrics",
    "networks",
    "open_input_device",
    "plugins",
    "power_to_decibels",
    "read_audio",
    "scoring",
    "synth",
    "testing",
    "tractable_rate",
]
