"""Terminal output: tables on stdout, progress and one-line messages on stderr."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator

from aetk_core import errors as core_errors
from rich.console import Console

from aetk.errors import AetkWarning

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def error(message: str) -> None:
    """One line on stderr, never wrapped, whatever the terminal width."""
    print(f"error: {_one_line(message)}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {_one_line(message)}", file=sys.stderr, flush=True)


def size(count: float) -> str:
    """A number of bytes as people read it: ``3.0 kB``, ``12.4 MB``, ``1.2 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count:.0f} bytes"


@contextlib.contextmanager
def progress(description: str, *, prints: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A bar on stderr while items are worked through, moved by the function it yields (called
    with how many are done of how many) and gone when the work is done; ``error`` and ``warn``
    lines print above it. Only on a terminal, and only for two items or more: a log or a pipe
    gets none, nor does a terminal that the work also ``prints`` to on stdout (its lines would
    break through the bar)."""
    if not stderr.is_terminal or (prints and stdout.is_terminal):
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with contextlib.ExitStack() as drawn:
        bar: Progress | None = None
        task = None

        def update(done: int, total: int) -> None:
            nonlocal bar, task
            if bar is None and total >= 2:  # drawn once there is something to count
                bar = drawn.enter_context(
                    Progress(
                        "[progress.description]{task.description}",
                        BarColumn(),
                        MofNCompleteColumn(),
                        TimeRemainingColumn(),
                        console=stderr,
                        transient=True,
                        # What goes to stdout (JSON Lines, into a file) stays there.
                        redirect_stdout=False,
                    )
                )
                task = bar.add_task(description, total=total)
            if bar is not None and task is not None:
                bar.update(task, completed=done, total=total)

        yield update


def show_warnings_as_lines() -> None:
    """aetk's own warnings print as one ``warning:`` line, without file and line numbers."""
    core_errors.show_warnings_as_lines(warn)


@contextlib.contextmanager
def each_warning_once() -> Iterator[None]:
    """While the block runs, each distinct aetk warning is shown once: the folds of a
    cross-validation fit the same recordings again and again, and would say the same of them
    each time."""
    show = warnings.showwarning
    seen: set[str] = set()

    def once(message, category, *args, **kwargs):
        if issubclass(category, AetkWarning):
            if str(message) in seen:
                return
            seen.add(str(message))
        show(message, category, *args, **kwargs)

    warnings.showwarning = once
    try:
        yield
    finally:
        warnings.showwarning = show


#: A message longer than this is cut: one line, however large the thing it quotes.
MAX_MESSAGE = 2000


def _one_line(message: str) -> str:
    text = " ".join(str(message)[: 4 * MAX_MESSAGE].split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
