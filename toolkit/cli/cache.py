"""``aetk cache``: what the feature cache holds, and emptying it."""

from __future__ import annotations

import math

import typer

from aetk.cli import console

cache_app = typer.Typer(help="Show or empty the feature cache.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


@cache_app.command("info")
def info_command() -> None:
    """Where the feature cache is, how many entries it holds, its size and its cap."""
    from aetk.data.cache import default_folder, max_bytes, usage

    folder = default_folder()
    if folder is None:
        print("feature cache: off (AETK_CACHE=0)")
        return
    limit = max_bytes()
    count, size, earlier = usage(folder)
    cap = (
        "no cap (AETK_CACHE_MAX_MB=inf)"
        if math.isinf(limit)
        else f"cap {limit / 1e6:.0f} MB, AETK_CACHE_MAX_MB; least recently used go first"
    )
    print(f"feature cache: {folder}\n{count} entries, {console.size(size)} ({cap})")
    if earlier:
        print(
            f"{console.size(earlier)} of it are an earlier aetk's entries, which this one does not "
            "read: they go first, or now with 'aetk cache clear'"
        )


@cache_app.command("clear")
def clear_command() -> None:
    """Remove every cached feature (they are computed again when needed)."""
    from aetk.data.cache import clear, default_folder

    folder = default_folder()
    if folder is None:
        print("feature cache: off (AETK_CACHE=0)")
        return
    console.stderr.print(f"Removed {clear(folder)} entries from {folder}", highlight=False)
