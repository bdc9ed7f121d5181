"""Terminal output: tables on stdout, progress and one-line messages on stderr."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator

from rich.console import Console

from aetk.errors import AetkWarning

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr, never wrapped, whatever the terminal width."""
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def progress(description: str, total: int, *, prints: bool = False) -> Iterator[Callable[[], None]]:
    """A bar on stderr while ``total`` items are worked through, advanced by the function it
    yields and gone when the work is done; ``error`` and ``warn`` lines print above it. Only on
    a terminal: a log or a pipe gets none, nor does a terminal that the work also ``prints`` to
    on stdout (its lines would break through the bar)."""
    if not stderr.is_terminal or total < 2 or (prints and stdout.is_terminal):
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        # Whatever goes to stdout (JSON Lines, into a file) must stay there, not join the bar.
        redirect_stdout=False,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


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
