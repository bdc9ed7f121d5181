"""Atomic file writes: a file is either its old self or complete, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block succeeds, flush it to disk and
    rename it over ``path``. On any error (Ctrl-C included) the temporary file is removed and
    ``path`` is untouched.

    ``durable=False`` skips the flushes (readers never see a partial file either way; only a
    power cut could lose the write): for caches, whose entries can always be made again.
    """
    with _replacing(Path(path), durable) as (descriptor, temporary):
        os.close(descriptor)
        yield temporary


@contextmanager
def atomic_file(path: str | Path, durable: bool = True) -> Iterator[BinaryIO]:
    """Like :func:`atomic_path`, but yields the temporary file already open for writing."""
    with _replacing(Path(path), durable) as (descriptor, _), os.fdopen(descriptor, "wb") as handle:
        yield handle


@contextmanager
def _replacing(path: Path, durable: bool) -> Iterator[tuple[int, Path]]:
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        yield descriptor, temporary
        if durable:
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
