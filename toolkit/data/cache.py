"""The feature cache: features of whole files, stored by file content and featurizer.

Fitting again on the same recordings with the same featurizer (another model, another scorer,
cross-validation folds, benchmarks) reads features from here instead of decoding and featurizing
again. Entries are keyed by the SHA-256 of the file's bytes, so a changed file is featurized
again and a moved or renamed one is not; and by the featurizer's name, parameters, source code
(of its class) and ``cache_version`` (which a featurizer bumps when helpers outside its class
change what it computes), so a changed featurizer never reads stale features. An entry is one
file: a JSON header (the array's type and shape, the SHA-256 of its values, how the file was
recorded) and the raw array, opened memory-mapped: a training set does not have to fit in memory.

``AETK_CACHE_DIR`` sets the folder (default ``$XDG_CACHE_HOME/aetk`` or ``~/.cache/aetk``);
``AETK_CACHE=0`` turns caching off (features then go to a temporary folder removed after use).
``AETK_CACHE_MAX_MB`` caps its size (2,048 MB by default): after each fit the least recently
used entries are removed until it fits. ``aetk cache info`` and ``aetk cache clear`` show and
empty it. A fit pins the entries it reads (hard links in a ``work`` folder of its own), so that
another process's eviction or clear cannot remove them while it still reads them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import math
import os
import shutil
import socket
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from aetk_core.fileio import atomic_file
from aetk_core.recording import RecordingProfile

from aetk.components.base import Featurizer
from aetk.data.audio import check_regular_file, read_audio
from aetk.data.features import featurize_audio
from aetk.errors import AetkWarning, AudioError, ConfigError

#: Bump when the layout of cache entries changes (2: a checksum file beside each entry; 3: the
#: checksum and the recording in the entry's header, one file per entry).
FORMAT = 3
#: An entry's first bytes, then the header's length (4 bytes, little-endian) and the header.
_MAGIC = b"AETKFEAT"
#: The array starts at a multiple of this, so that it is aligned where it is mapped.
_ALIGNMENT = 64
_SUFFIX = ".features"
#: Larger files are hashed in blocks and decoded from disk rather than from the bytes read.
_WHOLE_READ_BYTES = 64 << 20


def default_folder() -> Path | None:
    """The cache folder the environment asks for; ``None`` when caching is off."""
    if os.environ.get("AETK_CACHE", "1") == "0":
        return None
    if "AETK_CACHE_DIR" in os.environ:
        return Path(os.environ["AETK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "aetk"


class FeatureCache:
    """Features of whole files on disk. ``FeatureCache(None)`` keeps entries in a temporary
    folder that :meth:`close` removes, so memory stays flat either way."""

    def __init__(self, folder: str | Path | None):
        self.persistent = folder is not None
        # Read as the cache opens: a bad AETK_CACHE_MAX_MB is said before any work.
        self.limit = max_bytes() if self.persistent else math.inf
        self.root = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="aetk-"))
        self._scratch: Path | None = None
        self._lock = threading.Lock()
        #: Whether a write failed (a full disk): the rest of this run keeps features in memory.
        self.unwritable = False

    @classmethod
    def from_environment(cls) -> FeatureCache:
        """The cache the environment asks for; one that cannot be used (a read-only folder, a
        file in its place) means a temporary cache for this run and one warning."""
        folder = default_folder()
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as exc:
                warnings.warn(
                    f"feature cache {folder} is not usable ({exc.strerror or exc}): features are "
                    "kept only for this run (set AETK_CACHE_DIR, or AETK_CACHE=0)",
                    AetkWarning,
                    stacklevel=2,
                )
                folder = None
        return cls(folder)

    @property
    def scratch(self) -> Path:
        """A folder of this process's alone, removed by :meth:`close`: its pinned entries and
        temporary files. Another process's eviction or ``aetk cache clear`` leaves it alone."""
        with self._lock:  # featurizing threads pin at once
            if self._scratch is None:
                work = self.root / "work"
                work.mkdir(parents=True, exist_ok=True)
                self._scratch = Path(tempfile.mkdtemp(prefix=_owner_prefix(), dir=work))
            return self._scratch

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        if not self.persistent:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        evict(self.root, self.limit)

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def store(
        self, featurizer: Featurizer, path: str | Path, pin: bool = False
    ) -> tuple[Path | torch.Tensor, int, str, RecordingProfile]:
        """Make sure the features of the whole file ``path`` are cached; returns the entry (or,
        where the cache cannot be written, a full disk, the features themselves: this run goes
        on with them in memory, after one warning), its number of vectors, the SHA-256 of the
        file's contents, and how it was recorded.

        ``pin``: the entry returned is a hard link in :attr:`scratch`, which stays readable until
        :meth:`close` whatever another process evicts or clears meanwhile (a fit reads its
        clips' features again and again, minutes apart).

        :raises AudioError: the file cannot be read or featurized (nothing is stored).
        """
        data, digest = _read_and_hash(Path(path))
        entry = (
            self.root / "features" / featurizer_key(featurizer) / digest[:2] / f"{digest}{_SUFFIX}"
        )
        found = _reusable(entry) if entry.exists() else None
        if found is not None:
            held = self._pin(entry) if pin else entry
            if held is not None:
                return held, found[0], digest, found[1]
        audio = read_audio(path, featurizer.frames_to_read, data=data)
        features = featurize_audio(featurizer, audio, path)
        recording = RecordingProfile.of(audio)
        kept = None if self.unwritable else self._keep(entry, features, recording, pin)
        return features if kept is None else kept, len(features), digest, recording

    def _keep(
        self, entry: Path, features: torch.Tensor, recording: RecordingProfile, pin: bool
    ) -> Path | None:
        """Write the entry (pinned, with ``pin``); where another process evicts or clears it
        meanwhile, the features are kept in :attr:`scratch` instead. None: the cache cannot be
        written (said once)."""
        array = np.ascontiguousarray(features.numpy())
        try:
            with contextlib.suppress(FileNotFoundError):
                entry.parent.mkdir(parents=True, exist_ok=True)
                _write_entry(entry, array, recording)
                held = self._pin(entry) if pin else entry
                if held is not None:
                    return held
            own = self._pinned_name(entry)
            _write_entry(own, array, recording)
            return own
        except OSError as exc:
            with self._lock:
                said, self.unwritable = self.unwritable, True
            if not said:
                warnings.warn(
                    f"feature cache {self.root} cannot be written ({exc.strerror or exc}): this "
                    "run keeps its features in memory (free space there, or set AETK_CACHE_DIR "
                    "elsewhere)",
                    AetkWarning,
                    stacklevel=4,
                )
            return None

    def _pin(self, entry: Path) -> Path | None:
        """A hard link to ``entry`` in :attr:`scratch` (None: the entry is gone)."""
        if not self.persistent:
            return entry  # the whole cache is this process's own
        try:
            pinned = self._pinned_name(entry)
            os.link(entry, pinned)
        except FileExistsError:
            pass  # the same recording, pinned earlier
        except FileNotFoundError:
            return None
        except OSError:
            return entry  # a file system without hard links: read where it is, unpinned
        return pinned

    def _pinned_name(self, entry: Path) -> Path:
        return self.scratch / f"{entry.parent.parent.name}-{entry.name}"

    def features(self, featurizer: Featurizer, path: str | Path) -> tuple[torch.Tensor, str]:
        """The features of the whole file ``path`` (memory-mapped) and its content SHA-256."""
        held, _, digest, _ = self.store(featurizer, path)
        return held_vectors(held), digest


def _reusable(entry: Path) -> tuple[int, RecordingProfile] | None:
    """A cached entry's vector count and recording, or None when it must be computed again
    (unreadable, damaged: with a warning, gone meanwhile); a reused entry is marked recently
    used, so that it is the last to be evicted."""
    try:
        array, recording = checked_entry(entry)
    except (OSError, ValueError):
        return None
    except CorruptEntry:
        warnings.warn(
            f"feature cache entry {entry} does not match its checksum: featurized again",
            AetkWarning,
            stacklevel=3,
        )
        return None
    with contextlib.suppress(OSError):
        os.utime(entry)
    return len(array), recording


class CorruptEntry(Exception):
    """A cache entry whose content does not match the checksum written with it."""


def _write_entry(entry: Path, array: np.ndarray, recording: RecordingProfile) -> None:
    header = json.dumps(
        {
            "dtype": array.dtype.str,
            "shape": list(array.shape),
            "sha256": _array_digest(array),
            "recording": recording.as_dict(),
        }
    ).encode()
    start = len(_MAGIC) + 4 + len(header)
    header += b" " * (-start % _ALIGNMENT)
    with atomic_file(entry, durable=False) as handle:
        handle.write(_MAGIC + len(header).to_bytes(4, "little") + header)
        handle.write(array.data)


def _read_entry(entry: Path) -> tuple[np.ndarray, dict]:
    """A cache entry's array, memory-mapped copy-on-write (the file is never changed through
    it), and its header.

    :raises ValueError: not a cache entry, or a truncated one.
    """
    with open(entry, "rb") as handle:
        prefix = handle.read(len(_MAGIC) + 4)
        if len(prefix) < len(_MAGIC) + 4 or not prefix.startswith(_MAGIC):
            raise ValueError(f"{entry} is not a feature cache entry")
        length = int.from_bytes(prefix[len(_MAGIC) :], "little")
        header = json.loads(handle.read(length))
        size = os.fstat(handle.fileno()).st_size
    try:
        dtype, shape = np.dtype(header["dtype"]), tuple(int(n) for n in header["shape"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{entry} has a damaged header") from exc
    offset = len(prefix) + length
    if dtype.hasobject or size != offset + dtype.itemsize * math.prod(shape):
        raise ValueError(f"{entry} is truncated or damaged")
    if not math.prod(shape):
        return np.empty(shape, dtype), header
    return np.memmap(entry, dtype=dtype, mode="c", offset=offset, shape=shape), header


def checked_entry(entry: Path) -> tuple[torch.Tensor, RecordingProfile]:
    """A cache entry, verified against the SHA-256 of its values written with it, and how its
    file was recorded.

    :raises CorruptEntry: the values do not match the checksum.
    :raises ValueError: not a readable cache entry.
    """
    array, header = _read_entry(entry)
    if _array_digest(array) != header.get("sha256"):
        raise CorruptEntry(str(entry))
    try:
        recording = RecordingProfile.from_dict(header["recording"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{entry} has a damaged header") from exc
    return torch.from_numpy(array), recording


def _array_digest(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).view(np.uint8).data)
    return digest.hexdigest()


DEFAULT_MAX_MB = 2048


def max_bytes() -> float:
    """The cache's cap in bytes: ``AETK_CACHE_MAX_MB`` (``inf``: none) or
    :data:`DEFAULT_MAX_MB`."""
    text = os.environ.get("AETK_CACHE_MAX_MB")
    if text is None:
        return DEFAULT_MAX_MB * 1e6
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ConfigError(f"AETK_CACHE_MAX_MB must be a number of megabytes ≥ 0, not {text!r}")
    return value * 1e6


def entries(root: Path) -> list[Path]:
    return sorted(path for path in _files(root) if path.suffix == _SUFFIX)


def _files(root: Path) -> list[Path]:
    """Every file of the cache's entries: those of earlier formats are evicted like the rest.
    Files being written (``.name.tmp``) are left to their writers."""
    folder = root / "features"
    if not folder.is_dir():
        return []
    return [path for path in folder.rglob("*") if not path.name.startswith(".") and path.is_file()]


def usage(root: Path) -> tuple[int, int, int]:
    """How many entries the cache holds, the size in bytes of all its files, and how many of
    those bytes are files of an earlier cache format (never read again; evicted first)."""
    count = size = earlier = 0
    for path in _files(root):
        with contextlib.suppress(OSError):
            file_size = path.stat().st_size
            size += file_size
            if path.suffix == _SUFFIX:
                count += 1
            else:
                earlier += file_size
    return count, size, earlier


def evict(root: Path, limit: float) -> int:
    """Remove the least recently used files until the cache holds at most ``limit`` bytes;
    returns how many entries were removed."""
    _remove_abandoned(root)
    sized = []
    for path in _files(root):
        with contextlib.suppress(OSError):
            stat = path.stat()
            sized.append((stat.st_mtime, stat.st_size, path))
    total = sum(size for _, size, _ in sized)
    removed = 0
    for _, size, path in sorted(sized):
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed += path.suffix == _SUFFIX
    return removed


def clear(root: Path) -> int:
    """Remove every entry; a running fit keeps reading those it pinned (its ``work`` folder)."""
    count = len(entries(root))
    shutil.rmtree(root / "features", ignore_errors=True)
    shutil.rmtree(root / "tmp", ignore_errors=True)  # where an earlier aetk kept its files
    _remove_abandoned(root)
    return count


def _owner_prefix(pid: int | None = None) -> str:
    """A ``work`` folder's name begins with its process and host: a cache shared between hosts
    (or containers) never judges another host's processes."""
    return f"{os.getpid() if pid is None else pid}+{socket.gethostname()}+"


def _remove_abandoned(root: Path) -> None:
    """Remove the ``work`` folders of this host's processes that ended without removing theirs
    (killed)."""
    with contextlib.suppress(OSError):
        for folder in (root / "work").iterdir():
            pid = folder.name.partition("+")[0]
            if (
                pid.isdigit()
                and folder.name.startswith(_owner_prefix(int(pid)))
                and not _running(int(pid))
            ):
                shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's process
    return True


def load_entry(entry: Path) -> torch.Tensor:
    """A cache entry, memory-mapped copy-on-write: the file is never changed through it."""
    return torch.from_numpy(_read_entry(entry)[0])


def held_vectors(held: Path | torch.Tensor) -> torch.Tensor:
    """The features :meth:`FeatureCache.store` returned where they are: an entry's, read, or
    those it kept in memory."""
    return held if isinstance(held, torch.Tensor) else load_entry(held)


def featurizer_key(featurizer: Featurizer) -> str:
    """What determines a featurizer's output: its name, parameters and code."""
    description = json.dumps(
        {
            "format": FORMAT,
            "name": featurizer.name,
            "params": featurizer.get_params(),
            "code": _code_digest(type(featurizer)),  # type: ignore[arg-type]  # classes hash
            "cache_version": str(featurizer.cache_version),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(description.encode()).hexdigest()[:24]


@functools.cache
def _code_digest(cls: type) -> str:
    try:
        code = inspect.getsource(cls)
    except (OSError, TypeError):
        code = f"{cls.__module__}.{cls.__qualname__}"
    return hashlib.sha256(code.encode()).hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's contents."""
    return _read_and_hash(Path(path), keep=False)[1]


def _read_and_hash(path: Path, keep: bool = True) -> tuple[bytes | None, str]:
    """The file's SHA-256, and its bytes when small enough to decode from memory."""
    digest = hashlib.sha256()
    check_regular_file(path)
    try:
        with open(path, "rb") as handle:
            if keep and os.fstat(handle.fileno()).st_size <= _WHOLE_READ_BYTES:
                data = handle.read()
                digest.update(data)
                return data, digest.hexdigest()
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise AudioError(exc.strerror or str(exc), path) from None
    return None, digest.hexdigest()
