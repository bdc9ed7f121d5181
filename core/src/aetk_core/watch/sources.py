"""Where a watch listens: standard input (a WAV stream or raw PCM), a live input device
(``mic[:NAME|INDEX]``: aetk's built-in plugin ``microphone`` registers it, aetk-runtime opens it
itself), or a folder whose new files are scored once each."""

from __future__ import annotations

import os
import queue
import struct
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from aetk_core.audio import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, audio_entries
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


class FolderWatch:
    """New files in a folder (recursively), each returned once, and only when complete: its size
    and modification time unchanged for ``settle`` seconds. A file rewritten since it was scored
    (a recorder that reuses its names) is new again. Polls (network filesystems tell no one);
    watchdog, when installed, only wakes the poll early. A folder that keeps every recording
    grows without end, and each poll reads the status of all of them: the next poll waits at
    least ``REST_FACTOR`` times as long as the last one took, so that polling never takes more
    than a tenth of a core (a poll of 50,000 files took 0.45 s here).

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
        self._stamps: dict[str, tuple[tuple[int, int], float]] = {}
        self._keys: dict[Path, str] = {}  # the files ready: their keys in ``scored``
        self._walk_seconds = 0.0
        self._wake = None
        self._observer: Any = None
        try:
            from threading import Event

            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer

            self._wake = Event()
            wake = self._wake

            class Handler(FileSystemEventHandler):
                def on_any_event(self, event) -> None:
                    wake.set()

            self._observer = Observer()
            self._observer.schedule(Handler(), str(folder), recursive=True)
            self._observer.start()
        except (ImportError, OSError):
            self._observer = None

    def close(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)

    def ready(self) -> list[Path]:
        """Files complete and not scored as they now are, in name order (hidden ones left out,
        as :func:`aetk_core.audio.walked_audio` leaves them), each recording once: a link to a
        recording beside it (a recorder's ``latest.wav``) is not a second one. Files scored and
        since removed are forgotten (a recorder that rotates its files would otherwise grow the
        state without end), but only after a walk that read every folder and found files: a
        folder unmounted or unreadable for a while forgets nothing."""
        now = time.monotonic()
        chosen: dict[str, os.DirEntry[str]] = {}  # one path for each recording ready
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
            stamp = (status.st_mtime_ns, status.st_size)
            if key in self.scored and self.scored[key] is None:
                self.scored[key] = list(stamp)
            if self.scored.get(key) == list(stamp):
                continue
            last = self._stamps.get(key)
            if last is None or last[0] != stamp:
                self._stamps[key] = (stamp, now)
            elif now - last[1] >= self.settle and (key not in chosen or chosen[key].is_symlink()):
                chosen[key] = entry  # the file itself rather than a link to it (latest.wav)
        if present and not failed:
            for key in self.scored.keys() - present:
                del self.scored[key]
        for key in self._stamps.keys() - present:  # gone before it settled: seen afresh if back
            del self._stamps[key]
        self._keys = {Path(entry.path): key for key, entry in chosen.items()}
        self._walk_seconds = time.monotonic() - now
        return sorted(self._keys)

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
        self.scored[key] = list(self._stamps.pop(key)[0])

    def wait(self) -> None:
        """Until the next poll: ``interval`` seconds, or less where watchdog sees a change, but
        never less than ``REST_FACTOR`` times the last poll's time."""
        rest = REST_FACTOR * self._walk_seconds
        if self._wake is None:
            time.sleep(max(self.interval, rest))
            return
        time.sleep(rest)
        self._wake.wait(max(0.0, self.interval - rest))
        self._wake.clear()


def _dangling(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a link whose target is gone, the link itself still readable."""
    try:
        return entry.is_symlink() and entry.stat(follow_symlinks=False) is not None
    except OSError:
        return False


def stdin() -> BinaryIO:
    return sys.stdin.buffer
