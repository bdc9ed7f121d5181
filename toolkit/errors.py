"""Errors and warnings that aetk raises on purpose.

Every failure a user can cause (a bad file, a bad option, a broken plugin) is an ``AetkError`` whose
message is one line naming what went wrong; the CLI prints it without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class AetkError(Exception):
    """Base class of every error aetk reports to users."""


class ConfigError(AetkError):
    """An option, preset, config file or component parameter is invalid."""


class AudioError(AetkError):
    """An audio file cannot be read or featurized.

    Featurizers raise it with only a reason; aetk adds the path of the file it was reading.
    """

    def __init__(self, reason: str, path: str | Path | None = None):
        self.reason = reason
        self.path = None if path is None else str(path)
        super().__init__(reason if path is None else f"{path}: {reason}")

    def with_path(self, path: str | Path) -> AudioError:
        return AudioError(self.reason, path)


class PluginError(AetkError):
    """A plugin is broken: it fails to import, raises in a hook or registers something invalid."""


class DetectorFileError(AetkError):
    """A detector file is missing, corrupt, edited, or from an incompatible version."""


class NotFittedError(AetkError):
    """A component was used before ``fit``."""


class AetkWarning(UserWarning):
    """A problem aetk worked around: a skipped file, a plugin that failed to load."""
