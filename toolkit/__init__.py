"""aetk: detect anomalous machine sounds, trained only on recordings of a healthy machine.

Public API::

    import aetk
    detector = aetk.fit("normal_dir/")          # mirrors `aetk fit`
    detector.save("detector.aetk")
    results = aetk.Detector.load("detector.aetk").score(["new.wav"])

Plugins implement the hooks in :mod:`aetk.hookspecs` with :data:`aetk.hookimpl` and subclass
:class:`aetk.Featurizer`, :class:`aetk.Model` or :class:`aetk.Scorer`. Scores are always
"higher means more anomalous".

Importing ``aetk`` does not import torch; the names that need it load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aetk.components import (
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
from aetk.hookspecs import hookimpl

__version__ = "0.1.0"

if TYPE_CHECKING:
    from aetk import networks, plugins, scoring, testing
    from aetk.audio import Audio, find_audio_files, read_audio
    from aetk.detector import Detector, ScoreResult
    from aetk.pipeline import fit
    from aetk.progress import FitObserver
    from aetk.thresholds import fit_threshold

_LAZY = {
    "fit": "aetk.pipeline",
    "FitObserver": "aetk.progress",
    "Detector": "aetk.detector",
    "ScoreResult": "aetk.detector",
    "Audio": "aetk.audio",
    "read_audio": "aetk.audio",
    "find_audio_files": "aetk.audio",
    "fit_threshold": "aetk.thresholds",
    "networks": None,
    "plugins": None,
    "scoring": None,
    "testing": None,
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'aetk' has no attribute {name!r}")
    module = _LAZY[name]
    if module is None:
        return importlib.import_module(f"aetk.{name}")
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
    "networks",
    "plugins",
    "read_audio",
    "scoring",
    "testing",
]
