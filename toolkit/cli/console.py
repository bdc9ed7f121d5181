"""Terminal output: tables on stdout, progress and one-line messages on stderr."""

from __future__ import annotations

import sys
import warnings

from rich.console import Console

from aetk.errors import AetkWarning

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr, never wrapped, whatever the terminal width."""
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr, flush=True)


def show_warnings_as_lines() -> None:
    """aetk's own warnings print as one ``warning:`` line, without file and line numbers."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AetkWarning):
            warn(str(message))
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", AetkWarning)


#: A message longer than this is cut: one line, however large the thing it quotes.
MAX_MESSAGE = 2000


def _one_line(message: str) -> str:
    text = " ".join(str(message)[: 4 * MAX_MESSAGE].split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
