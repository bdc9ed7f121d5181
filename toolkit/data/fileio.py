"""Atomic file writes: a file is either its old self or complete, never half-written."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
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
    # A symbolic link is written through: the file it points to is replaced, the link stays.
    path = path.resolve() if path.is_symlink() else path
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


#: What each kind of output file starts with, so that aetk replaces only its own kind of file.
OUTPUT_KINDS = {
    "detector": "an aetk detector",
    "report": "an HTML report aetk wrote",
    "onnx": "an ONNX detector aetk exported",
}
REPORT_MARK = "<meta name=generator content=aetk>"


def check_output(path: Path, kind: str, inputs: Iterable[Path] = (), force: bool = False) -> None:
    """Refuse, before any work, an output path that is one of ``inputs``, that is an existing file
    of another kind than ``kind`` (unless ``force``), or whose folder is missing or not writable."""
    from aetk.errors import ConfigError

    target = path.resolve()
    if any(target == Path(item).resolve() for item in inputs):
        raise ConfigError(f"{path}: is one of the inputs; choose another output path")
    if target.is_dir():
        raise ConfigError(f"{path}: is a folder; name the file to write")
    if target.exists() and not force and not is_kind(target, kind):
        raise ConfigError(
            f"{path}: exists and is not {OUTPUT_KINDS[kind]}; use --force to replace it"
        )
    folder = target.parent
    if not folder.is_dir():
        existing = next(part for part in (folder, *folder.parents) if part.exists())
        if not existing.is_dir():
            raise ConfigError(f"{path}: {existing} is a file, not a folder")
        raise ConfigError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{path}: cannot write in {folder} (permission denied)")


def is_kind(path: Path, kind: str) -> bool:
    """Whether ``path`` is a file of ``kind`` (:data:`OUTPUT_KINDS`) that aetk wrote."""
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as handle:
            if kind == "report":
                return REPORT_MARK.encode() in handle.read(4096)
            if kind == "onnx":  # the metadata key and the featurizer entry aetk writes
                data = handle.read(256 << 20)
                return b"graph_sha256" in data and b"aetk_version" in data
            # A detector is a safetensors file whose JSON header names the aetk format.
            size = int.from_bytes(handle.read(8), "little")
            return 0 < size <= 64_000_000 and b"aetk-detector" in handle.read(size)
    except OSError:
        return False


def keep_previous(path: Path) -> Path:
    """Copy the file at ``path`` beside it as ``<name>.previous<suffix>`` (replacing the copy
    kept before, atomically), before ``path`` is written again; the copy's path."""
    import shutil

    kept = path.with_name(f"{path.stem}.previous{path.suffix}")
    with atomic_path(kept) as temporary:
        shutil.copyfile(path, temporary)
    return kept


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
    from aetk.errors import ConfigError

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            reason = "a file stands where a folder would be"
        raise ConfigError(f"{option}: cannot create the folder {folder} ({reason})") from None
