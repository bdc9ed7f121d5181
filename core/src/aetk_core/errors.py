"""The errors and the warning aetk and aetk-runtime share: every failure a user can cause is an
``AetkError`` whose message is one line naming what went wrong."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path


class AetkError(Exception):
    """Base class of every error aetk reports to users."""


class ConfigError(AetkError):
    """An option, preset, config file or component parameter is invalid."""


class AetkWarning(UserWarning):
    """A problem worked around: a skipped file, a plugin that failed to load, a threshold that
    cannot hold the false-alarm rate asked for."""


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


def featurizer_raised(name: str, error: Exception) -> AudioError:
    """A recording's error when its featurizer (a plugin's, most likely) raised something else
    than an :class:`AudioError` on it: named, so that a batch goes on with the other files."""
    return AudioError(f"the featurizer '{name}' raised {type(error).__name__}: {error}")


def show_warnings_as_lines(say: Callable[[str], None]) -> None:
    """From now on each :class:`AetkWarning` is handed to ``say`` (a command line's one
    ``warning:`` line, without file and line numbers), every time it is raised; other warnings
    show as Python shows them."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AetkWarning):
            say(str(message))
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", AetkWarning)
