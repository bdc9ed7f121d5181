"""Errors and warnings that aetk raises on purpose.

Every failure a user can cause (a bad file, a bad option, a broken plugin) is an ``AetkError`` whose
message is one line naming what went wrong; the CLI prints it without a traceback.
"""

from __future__ import annotations

from aetk_core.errors import AetkError, AetkWarning, AudioError, ConfigError

__all__ = [
    "AetkError",
    "AetkWarning",
    "AudioError",
    "ConfigError",
    "DetectorFileError",
    "MissingPluginError",
    "NotFittedError",
    "PluginError",
]


class PluginError(AetkError):
    """A plugin is broken: it fails to import, raises in a hook or registers something invalid."""


class DetectorFileError(AetkError):
    """A detector file is missing, corrupt, edited, or from an incompatible version."""


class MissingPluginError(DetectorFileError):
    """A detector file names a component whose plugin is not installed here; the message names
    the ``pip install`` that would bring it."""


class NotFittedError(AetkError):
    """A component was used before ``fit``."""
