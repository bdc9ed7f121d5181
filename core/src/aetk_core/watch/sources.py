"""Where a watch listens: standard input (a WAV stream or raw PCM), a live input device
(``mic[:NAME|INDEX]``: aetk's built-in plugin ``microphone`` registers it, aetk-runtime opens it
itself), or a folder whose new files are scored once each."""

from __future__ import annotations

import math
import os
import queue
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from aetk_core.audio import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    audio_entries,
    has_audio_suffix,
    is_hidden,
)
from aetk_core.errors import ConfigError
from aetk_core.fileio import resolved

WATCH_EXTRA = "pip install 'aetk[watch]'"
#: What a device needs, for aetk and for aetk-runtime.
DEVICE_EXTRA = f"{WATCH_EXTRA}, or beside aetk-runtime: pip install sounddevice"
#: A device's blocks waiting for the monitor (0.1-s blocks: 100 s of sound) before the device's
#: thread waits.
QUEUED_BLOCKS = 1000
#: A folder watch's upkeep (a poll of the folder, a write of its state) waits at least this
#: many times as long as it last took before it runs again: it then takes at most a tenth of a
#: core, however many recordings the folder keeps (see :class:`FolderWatch`).
REST_FACTOR = 9.0
#: Two readings of a file closer than this never show it settled, whatever ``--settle`` says: a
#: file's modification time advances by the kernel's clock ticks (up to 10 ms), so two readings
#: within a few ticks cannot tell a writer's last step that kept the size (libsndfile rewrites
#: a WAV file's header as it closes it).
SETTLE_FLOOR = 0.05
RAW_FORMATS = {"s16le": ("<i2", 32768.0), "s32le": ("<i4", 2147483648.0), "f32le": ("<f4", 1.0)}


@dataclass
class StreamFormat:
    """What a live stream's blocks are: ``rate`` samples per second of ``channels`` channels;
    raw samples of numpy ``dtype`` are divided by ``scale`` to lie in [-1, 1] (blocks a source
    already gives as float32 in [-1, 1]: ``"float32"``, 1.0)."""

    rate: int
    channels: int
    dtype: str
    scale: float

    @property
    def frame_bytes(self) -> int:
        return np.dtype(self.dtype).itemsize * self.channels


def raw_format(rate: int | None, channels: int, name: str) -> StreamFormat | None:
    """What ``--rate``, ``--channels`` and ``--format`` say of raw PCM on standard input (None
    without ``--rate``: the stream is WAV and its header says).

    :raises ConfigError: a ``--format`` that is not one of :data:`RAW_FORMATS`.
    """
    if name not in RAW_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(RAW_FORMATS)}")
    dtype, scale = RAW_FORMATS[name]
    return StreamFormat(rate, channels, dtype, scale) if rate else None


#: The largest chunk before a WAV stream's data that is read (format, LIST tags, ...).
MAX_CHUNK_BYTES = 1 << 20


def read_exactly(stream: BinaryIO, count: int) -> bytes:
    data = b""
    while len(data) < count:
        part = stream.read(count - len(data))
        if not part:
            break
        data += part
    return data


def wav_header(stream: BinaryIO) -> StreamFormat:
    """Parse a WAV header from a non-seekable stream, up to the start of its data."""
    head = read_exactly(stream, 12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ConfigError("standard input is not a WAV stream (give --rate for raw PCM)")
    layout = None
    while True:
        chunk = read_exactly(stream, 8)
        if len(chunk) < 8:
            raise ConfigError("the WAV stream ends before its data")
        name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if name == b"data":
            break
        if size > MAX_CHUNK_BYTES:  # held in memory whole: a stream that lies is refused
            raise ConfigError(
                f"the WAV stream's '{name.decode('latin-1')}' chunk before its data claims "
                f"{size:,} bytes"
            )
        body = read_exactly(stream, size + (size & 1))
        if name == b"fmt ":
            if len(body) < 16:
                raise ConfigError("the WAV stream's format chunk is cut short")
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag follows
                tag = struct.unpack("<H", body[24:26])[0]
            layout = (tag, channels, rate, bits)
    if layout is None:
        raise ConfigError("the WAV stream has no format chunk")
    tag, channels, rate, bits = layout
    if not (0 < channels <= MAX_CHANNELS and MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise ConfigError(
            f"the WAV stream claims an implausible format ({channels} channels at {rate} Hz)"
        )
    formats = {(1, 16): ("<i2", 32768.0), (1, 32): ("<i4", 2147483648.0), (3, 32): ("<f4", 1.0)}
    if (tag, bits) not in formats:
        raise ConfigError(f"WAV streams of format {tag} with {bits} bits are not supported")
    dtype, scale = formats[(tag, bits)]
    return StreamFormat(rate, channels, dtype, scale)


def stdin_blocks(
    stream: BinaryIO, raw: StreamFormat | None, block_seconds: float = 0.1
) -> tuple[StreamFormat, Iterator[np.ndarray]]:
    """The stream's format and its samples as ``[channels, frames]`` float32 blocks."""
    form = raw or wav_header(stream)

    def blocks() -> Iterator[np.ndarray]:
        size = max(1, int(form.rate * block_seconds)) * form.frame_bytes
        pending = b""
        while True:
            data = stream.read(size)
            if not data:
                return
            pending += data
            whole = len(pending) - len(pending) % form.frame_bytes
            if whole:
                samples = np.frombuffer(pending[:whole], dtype=form.dtype)
                pending = pending[whole:]
                yield (samples.reshape(-1, form.channels).T / form.scale).astype(np.float32)

    return form, blocks()


def list_devices() -> str:
    return str(_sounddevice("listing devices").query_devices())


def open_input_device(
    address: str, rate: int | None, channels: int, stopping: Callable[[], bool]
) -> tuple[StreamFormat, Iterator[np.ndarray]]:
    """Blocks from the input device named or numbered by ``address`` (the default one when
    empty), through sounddevice's input stream, at ``rate`` (the device's default when None),
    until ``stopping()``."""
    sounddevice = _sounddevice("listening to a device")
    chosen: int | str | None = int(address) if address.isdigit() else address or None
    try:
        info = sounddevice.query_devices(chosen, "input")
    except Exception as exc:  # sounddevice raises ValueError or its PortAudioError
        raise ConfigError(f"no input device {address!r} ({exc})") from None
    rate = rate or int(info["default_samplerate"])
    blocks: queue.Queue = queue.Queue(maxsize=QUEUED_BLOCKS)

    def callback(data, frames, timing, status) -> None:
        blocks.put(np.ascontiguousarray(data.T, dtype=np.float32).copy())

    stream = sounddevice.InputStream(
        device=chosen, channels=channels, samplerate=rate, dtype="float32", callback=callback
    )

    def generate() -> Iterator[np.ndarray]:
        with stream:
            while not stopping():
                try:
                    yield blocks.get(timeout=0.5)
                except queue.Empty:
                    continue

    return StreamFormat(rate, channels, "<f4", 1.0), generate()


def _sounddevice(doing: str) -> Any:
    try:
        import sounddevice
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library is missing
        raise ConfigError(f"{doing} needs sounddevice ({DEVICE_EXTRA}): {exc}") from None
    return sounddevice


@dataclass
class _Unsettled:
    """A file seen with ``stamp`` (modification time and size), read so no later than
    ``since`` (monotonic seconds: the end of the poll that read it), at ``path`` (a link to it
    where no other path to it was seen)."""

    stamp: tuple[int, int]
    since: float
    path: str
    is_link: bool


#: Watchdog's kinds of event that change nothing in a file: it was opened or read (the watch's
#: own reading of each recording among them).
_READS = frozenset({"opened", "closed_no_write"})
#: Watchdog's kinds of event after which only a walk of the whole folder can tell what is new:
#: a folder created or moved in (its files send no events of their own), or events the kernel's
#: queue dropped.
_WALK_AGAIN = frozenset({"created", "moved", "events_lost"})


class FolderWatch:
    """New files in a folder (recursively), each returned once, and only when complete: its size
    and modification time unchanged for ``settle`` seconds. A file rewritten since it was scored
    (a recorder that reuses its names) is new again.

    The whole folder is walked every ``interval`` seconds (network filesystems tell no one of
    their changes), but never sooner than ``REST_FACTOR`` times as long as the last walk took: a
    folder that keeps every recording grows without end, and a walk reads the status of all of
    them (50,000 files took 0.45 s here), so walking takes at most a tenth of a core. Between
    walks, where watchdog is installed, the files it reports changed are looked at on their own
    as soon as it reports them, and the files not yet settled once they may have: a new file is
    found within ``settle`` seconds however many the folder keeps.

    ``scored``: each file scored, by resolved path, and its ``[mtime_ns, size]`` when scored
    (None: scored by an aetk that did not keep it, taken as scored as the file now is).
    """

    def __init__(
        self,
        folder: Path,
        scored: dict[str, list[int] | None],
        settle: float = 1.0,
        interval: float = 1.0,
    ):
        self.folder, self.scored, self.settle, self.interval = folder, scored, settle, interval
        self._unsettled: dict[str, _Unsettled] = {}  # by key in ``scored``
        self._fresh: list[_Unsettled] = []  # stamps read in this poll
        self._keys: dict[Path, str] = {}  # the files ready: their keys in ``scored``
        self._walk_seconds = 0.0
        self._walk_due = 0.0  # when the whole folder may be walked again (monotonic)
        self._changed: set[str] = set()  # paths watchdog reported since they were looked at
        self._walk_again = True
        self._lock = threading.Lock()
        self._wake: threading.Event | None = None
        self._observer: Any = None
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            heard = self._heard

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event) -> None:
                    heard(event)

            self._wake = threading.Event()
            self._observer = Observer()
            self._observer.schedule(Handler(), str(folder), recursive=True)
            self._observer.start()
        except (ImportError, OSError):
            self._observer, self._wake = None, None

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)

    def _heard(self, event: Any) -> None:
        """Watchdog's thread: remember what changed, and wake :meth:`wait`."""
        if event.event_type in _READS:
            return
        with self._lock:
            if event.is_directory or event.event_type == "events_lost":
                self._walk_again = self._walk_again or event.event_type in _WALK_AGAIN
            else:
                self._changed.add(os.fsdecode(event.src_path))
                if getattr(event, "dest_path", ""):  # a move: where the file went
                    self._changed.add(os.fsdecode(event.dest_path))
        if self._wake is not None:
            self._wake.set()

    def ready(self) -> list[Path]:
        """Files complete and not scored as they now are, in name order (hidden ones left out,
        as :func:`aetk_core.audio.walked_audio` leaves them), each recording once: a link to a
        recording beside it (a recorder's ``latest.wav``) is not a second one. Files scored and
        since removed are forgotten (a recorder that rotates its files would otherwise grow the
        state without end), but only after a walk that read every folder and found files: a
        folder unmounted or unreadable for a while forgets nothing."""
        now = time.monotonic()
        with self._lock:
            changed, self._changed = self._changed, set()
            walk = self._observer is None or self._walk_again or now >= self._walk_due
            self._walk_again = self._walk_again and not walk
        chosen = self._walked(now, changed) if walk else self._looked_at(changed, now)
        # Each stamp read in this poll was read by now: one time for all the files of a walk,
        # which then settle together.
        read = time.monotonic()
        for waiting in self._fresh:
            waiting.since = read
        self._fresh.clear()
        self._keys = {Path(path): key for key, (path, _) in chosen.items()}
        return sorted(self._keys)

    def _walked(self, now: float, changed: set[str]) -> dict[str, tuple[str, bool]]:
        """The files ready, from a walk of the whole folder (``changed``: the paths watchdog
        reported since the last poll)."""
        chosen: dict[str, tuple[str, bool]] = {}  # one path for each recording ready
        present: set[str] = set()
        failed: list[object] = []  # folders the walk could not read, files that vanished in it
        for entry, key in self._keyed(audio_entries(self.folder, onerror=failed.append)):
            try:
                status = entry.stat()
            except OSError:
                if not _dangling(entry):  # a link to a file rotated away is no unmounted folder
                    failed.append(key)
                continue
            present.add(key)
            heard = entry.path in changed
            self._consider(key, entry.path, entry.is_symlink(), status, heard, now, chosen)
        if present and not failed:
            for key in self.scored.keys() - present:
                del self.scored[key]
        for key in self._unsettled.keys() - present:  # gone before it settled: seen afresh if back
            del self._unsettled[key]
        walked = time.monotonic()
        self._walk_seconds = walked - now
        self._walk_due = walked + max(self.interval, REST_FACTOR * self._walk_seconds)
        return chosen

    def _looked_at(self, changed: set[str], now: float) -> dict[str, tuple[str, bool]]:
        """The files ready among those watchdog reported changed and those not yet settled."""
        chosen: dict[str, tuple[str, bool]] = {}
        looked: set[str] = set()
        for path in sorted(changed.union(waiting.path for waiting in self._unsettled.values())):
            found = self._recording(path)
            if found is not None:
                key, is_link, status = found
                looked.add(key)
                self._consider(key, path, is_link, status, path in changed, now, chosen)
        # Gone before it settled (or its link now points elsewhere): seen afresh if back. So
        # no file waits past its settle time unchosen, and :meth:`wait` never spins.
        for key in self._unsettled.keys() - looked:
            del self._unsettled[key]
        return chosen

    def _recording(self, path: str) -> tuple[str, bool, os.stat_result] | None:
        """The key, whether it is a link, and the status of a file a walk of the folder would
        find at ``path`` (None: a walk would not: hidden, not audio, in a linked folder, not a
        file, or gone)."""
        relative = os.path.relpath(path, self.folder)
        parts = relative.split(os.sep)
        if relative.startswith(os.pardir) or any(is_hidden(part) for part in parts):
            return None
        if not has_audio_suffix(parts[-1]):
            return None
        parent = os.path.dirname(path)
        if resolved(parent) != resolved(self.folder).joinpath(*parts[:-1]):
            return None  # the walk does not follow a link to a folder
        try:
            is_link = os.path.islink(path)
            status = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(status.st_mode):
            return None
        key = str(resolved(path)) if is_link else os.path.join(resolved(parent), parts[-1])
        return key, is_link, status

    def _consider(
        self,
        key: str,
        path: str,
        is_link: bool,
        status: os.stat_result,
        heard: bool,
        now: float,
        chosen: dict[str, tuple[str, bool]],
    ) -> None:
        """Count one file found at ``path`` with ``status``, read in the poll that began at
        ``now``: ready (into ``chosen``) once its stamp has not changed for ``settle`` seconds
        (and :data:`SETTLE_FLOOR`), nor watchdog reported it (``heard``: a writer touched it
        since the last poll, whatever its stamp says), unless it was scored as it now is. From
        the end of the poll that first read the stamp to the start of this one: a walk of a
        large folder takes seconds, and a file read at its end and again at once by a look had
        counted as unchanged since the walk began."""
        stamp = (status.st_mtime_ns, status.st_size)
        if key in self.scored and self.scored[key] is None:
            self.scored[key] = list(stamp)
        if self.scored.get(key) == list(stamp):
            return
        last = self._unsettled.get(key)
        if last is None or last.stamp != stamp or heard:
            waiting = _Unsettled(stamp, math.inf, path, is_link)  # its time: the poll's end
            if last is not None and last.stamp == stamp and not last.is_link:
                waiting.path, waiting.is_link = last.path, False
            self._unsettled[key] = waiting
            self._fresh.append(waiting)
            return
        if last.is_link and not is_link:  # the file itself rather than a link to it (latest.wav)
            last.path, last.is_link = path, False
        settled = now - last.since >= max(self.settle, SETTLE_FLOOR)
        if settled and (key not in chosen or chosen[key][1]):
            chosen[key] = (path, is_link)

    @staticmethod
    def _keyed(entries: Iterator[os.DirEntry[str]]) -> Iterator[tuple[os.DirEntry[str], str]]:
        """Each entry with its key: the file's resolved path, each folder resolved once (not
        each file: resolving was two thirds of a poll's time), a link resolved on its own."""
        folders: dict[str, str] = {}
        for entry in entries:
            if entry.is_symlink():
                yield entry, str(resolved(entry.path))
                continue
            parent = entry.path[: -len(entry.name)]  # with its separator
            if parent not in folders:
                folders[parent] = os.path.join(resolved(parent), "")
            yield entry, folders[parent] + entry.name

    def mark_scored(self, path: Path) -> None:
        """``path`` is scored as it was when :meth:`ready` returned it."""
        key = self._keys.get(path) or str(resolved(path))
        self.scored[key] = list(self._unsettled.pop(key).stamp)

    def wait(self) -> None:
        """Until the folder's next walk is due; where watchdog is installed, only until it
        reports a change, or until the first file not yet settled may have settled."""
        if self._wake is None:
            time.sleep(max(0.0, self._walk_due - time.monotonic()))
            return
        due = self._walk_due
        if self._unsettled:
            settle = max(self.settle, SETTLE_FLOOR)
            due = min(due, min(waiting.since for waiting in self._unsettled.values()) + settle)
        if self._wake.wait(max(0.0, due - time.monotonic())):
            self._wake.clear()


def _dangling(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a link whose target is gone, the link itself still readable."""
    try:
        return entry.is_symlink() and entry.stat(follow_symlinks=False) is not None
    except OSError:
        return False


def stdin() -> BinaryIO:
    return sys.stdin.buffer
