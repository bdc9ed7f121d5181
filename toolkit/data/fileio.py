"""The kinds of output file aetk writes, and what it checks before writing one (the writes
themselves are atomic: :mod:`aetk_core.fileio`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from aetk_core.fileio import atomic_path, resolved

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

    target = resolved(path)
    if any(target == resolved(item) for item in inputs):
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
