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
    NotFittedError,
    PluginError,
)
from aetk.plugin.hookspecs import hookimpl

__version__ = "0.1.0"

if TYPE_CHECKING:
    from aetk import metrics, networks, scoring, synth, testing
    from aetk.data.audio import Audio, find_audio_files, read_audio
    from aetk.detect.calibration import fit_threshold
    from aetk.detect.detector import Detector
    from aetk.detect.scoring import ScoreResult
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
    "fit_threshold": "aetk.detect.calibration",
    "metrics": None,
    "networks": None,
    "plugins": "aetk.plugin.host",
    "scoring": None,
    "synth": None,
    "testing": None,
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'aetk' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f"aetk.{name}")
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
    "Model",
    "NotFittedError",
    "PluginError",
    "ScoreResult",
    "Scorer",
    "__version__",
    "find_audio_files",
    "fit",
    "fit_threshold",
    "hookimpl",
    "metrics",
    "networks",
    "plugins",
    "read_audio",
    "scoring",
    "synth",
    "testing",
]
