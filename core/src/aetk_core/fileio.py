"""Atomic file writes (a file is either its old self or complete, never half-written), the
folders an option's files go to, and the detector file a command is given."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from aetk_core.errors import ConfigError


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


def resolved(path: str | Path) -> Path:
    """``path`` made absolute, its symbolic links followed. A link in a loop is left as it is:
    ``Path.resolve`` raises on one (RuntimeError before Python 3.13, OSError since), and a
    user's folder holding one is no reason for a traceback; reading the file names the loop."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        return Path(path).absolute()


@contextmanager
def _replacing(path: Path, durable: bool) -> Iterator[tuple[int, Path]]:
    # A symbolic link is written through: the file it points to is replaced, the link stays.
    path = resolved(path) if path.is_symlink() else path
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        # mkstemp makes 0600 files; the result keeps an existing file's mode, or follows the umask.
        os.chmod(temporary, _mode_for(path))
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


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


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


def ensure_folder(folder: Path, option: str) -> None:
    """Create ``folder`` (and its parents) for ``option``'s files, or say in one line why it
    cannot be, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            reason = "a file stands where a folder would be"
        raise ConfigError(f"{option}: cannot create the folder {folder} ({reason})") from None


def given_detector(argument: str | Path | None, option: str | Path | None, default: str) -> Path:
    """The detector file a command that takes it as its argument (``aetk info DETECTOR``) was
    given, also as ``-d DETECTOR``, as the commands that score take it: either, or both naming
    the same file; ``default`` when neither is given."""
    if argument is not None and option is not None and Path(argument) != Path(option):
        raise ConfigError(f"two detector files, {argument} and -d {option}: give one")
    return Path(argument if argument is not None else option if option is not None else default)
