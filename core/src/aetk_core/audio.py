"""Finding recordings and decoding them with soundfile (libsndfile), for aetk and aetk-runtime.

soundfile reads WAV (PCM 8/16/24/32-bit, float, WAVE_FORMAT_EXTENSIBLE multichannel), FLAC, OGG
and MP3 without FFmpeg. Every failure becomes an :class:`aetk.AudioError` naming the file.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import soundfile

from aetk_core.errors import AudioError, ConfigError

Item = TypeVar("Item")
Result = TypeVar("Result")

AUDIO_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff"}
)
#: Longest recording decoded at once (seconds); ``AETK_MAX_SECONDS`` overrides it. Longer ones
#: are read in windows (``--segment``), so memory stays bounded whatever the recording's length.
DEFAULT_MAX_SECONDS = 600.0
#: Headers outside these bounds are refused before anything is decoded.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 1_000_000
MAX_CHANNELS = 256
#: Samples decoded per read call: a header that lies about the length cannot make aetk allocate
#: more than the data really holds.
_BLOCK_SAMPLES = 1 << 22
_INT16_SCALE = np.float32(1 / 32768)


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is ``[channels, frames]`` float32 in [-1, 1]; ``coding``, how
    its file stored them (soundfile's subtype: ``"PCM_16"``, ``"VORBIS"``, ...; None: samples
    given in memory)."""

    samples: np.ndarray
    sample_rate: int
    coding: str | None = None

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate


MANIFEST_SUFFIXES = frozenset({".txt", ".csv", ".lst"})


def find_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, sorted, audio suffixes only) and manifests, and keep files
    as given.

    A manifest (``.txt``, ``.csv`` or ``.lst``) lists one recording per line (a CSV's ``path``
    column, or its first one); relative paths are relative to the manifest's folder. A path that
    does not exist is kept, so that the caller reports it like any unreadable file. Symbolic links
    to folders are not followed, so a link loop cannot trap the walk. Hidden files and folders
    under a folder are left out (:func:`walked_audio`).
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
            found.extend(read_manifest(path))
            continue
        if not path.is_dir():
            found.append(path)
            continue
        found.extend(sorted(walked_audio(path)))
    return found


def walked_audio(folder: Path, onerror: Callable[[OSError], None] | None = None) -> Iterator[Path]:
    """The audio files under ``folder`` (by suffix), hidden ones left out as a walk of files
    usually leaves them: a name that starts with a dot is no recording of the machine's (the
    ``._name.wav`` that macOS writes beside each file on a foreign disk, a ``.snapshot`` folder
    of copies, a file being copied). ``onerror``: :func:`os.walk`'s."""
    return (Path(entry.path) for entry in audio_entries(folder, onerror))


def is_hidden(name: str) -> bool:
    """Whether a walk leaves out the file or folder called ``name`` (:func:`walked_audio`)."""
    return name.startswith(".")


def has_audio_suffix(name: str) -> bool:
    """Whether a walk takes a file called ``name`` for audio (:data:`AUDIO_SUFFIXES`)."""
    return os.path.splitext(name)[1].lower() in AUDIO_SUFFIXES


def audio_entries(
    folder: str | Path, onerror: Callable[[OSError], None] | None = None
) -> Iterator[os.DirEntry[str]]:
    """The directory entries of :func:`walked_audio`'s files, in :func:`os.walk`'s order (a
    folder's files, then its folders'; links to folders not followed): a caller that needs each
    file's status or kind asks the entry, which knows the kind without a system call."""
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except OSError as exc:
        if onerror is not None:
            onerror(exc)
        return
    folders = []
    for entry in entries:
        if is_hidden(entry.name):
            continue
        try:
            is_folder = entry.is_dir()
        except OSError:  # as os.walk takes it: not a folder
            is_folder = False
        if is_folder:
            if not entry.is_symlink():
                folders.append(entry.path)
        elif has_audio_suffix(entry.name):
            yield entry
    for path in folders:
        yield from audio_entries(path, onerror)


def read_manifest(path: Path) -> list[Path]:
    """The recordings a manifest lists (blank lines and ``#`` comments are skipped)."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read manifest ({exc})") from None
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if path.suffix.lower() == ".csv" and rows:
        table = list(csv.reader(rows))
        header = [name.strip().lower() for name in table[0]]
        column = header.index("path") if "path" in header else 0
        rows = [row[column] for row in table[1 if "path" in header else 0 :] if row]
    return [
        entry if entry.is_absolute() else path.parent / entry
        for entry in (Path(row.strip()) for row in rows)
    ]


FrameLimit = int | Callable[[int], int | None] | None


def max_seconds() -> float:
    """The decode limit: ``AETK_MAX_SECONDS`` or :data:`DEFAULT_MAX_SECONDS`."""
    text = os.environ.get("AETK_MAX_SECONDS")
    if text is None:
        return DEFAULT_MAX_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"AETK_MAX_SECONDS must be a positive number of seconds, not {text!r}")
    return value


def default_workers() -> int:
    """Threads that decode and featurize files (in aetk and aetk-runtime): ``AETK_WORKERS``, or
    the CPU count (at most 8) shared among the processes of a distributed fit on this
    machine."""
    text = os.environ.get("AETK_WORKERS")
    if text is None:
        processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        return max(1, min(os.cpu_count() or 1, 8) // processes)
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"AETK_WORKERS must be a positive integer, not {text!r}")
    return int(text)


def map_in_order(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    workers: int,
    ahead: int = 0,
    initializer: Callable[[], object] | None = None,
) -> Iterator[Result]:
    """``function(item)`` for every item, in order, on ``workers`` threads (decoding, FFTs and
    matrix products release the GIL). At most ``2 × workers`` items (or ``ahead``, if more) are
    in flight, so memory stays flat; a consumer that takes results in batches asks for a batch
    ahead, so that the workers go on while it works on one. ``initializer`` runs once in each
    worker thread before its first item (settings that are per thread)."""
    if workers <= 1 or len(items) <= 1:
        yield from map(function, items)
        return
    started: list[int] = []

    def start() -> None:
        started.append(threading.get_native_id())
        if initializer is not None:
            initializer()

    try:
        with ThreadPoolExecutor(workers, initializer=start) as pool:
            for done in submitted_in_order(pool, function, items, max(2 * workers, ahead)):
                yield done.result()
    finally:
        wait_until_exited(started)


def wait_until_exited(threads: Sequence[int], timeout: float = 5.0) -> None:
    """Return once the operating system's threads ``threads`` (native ids) have ended.

    Joining a Python thread returns before its native thread has run its thread-local
    destructors, and MKL's free the thread's buffers under MKL's allocator lock: a process
    forked just then holds that lock forever, and its first FFT spins on it (a forked scoring
    worker hung so, about one run in five of a test that scores right after featurizing on
    threads). Linux lists a process's live threads in ``/proc/self/task``; elsewhere, and after
    ``timeout`` seconds, this returns at once."""
    if not threads or not os.path.isdir("/proc/self/task"):
        return
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/proc/self/task/{tid}") for tid in threads):
        if time.monotonic() > deadline:
            return
        time.sleep(0.0005)


def submitted_in_order(
    pool: Executor, function: Callable[[Item], Result], items: Iterable[Item], in_flight: int
) -> Iterator[Future[Result]]:
    """``function(item)`` submitted to ``pool`` for every item, each future handed back in the
    items' order for its result to be taken, with at most ``in_flight`` submitted and not yet
    handed back (threads or processes)."""
    waiting: deque[Future[Result]] = deque()
    for item in items:
        waiting.append(pool.submit(function, item))
        if len(waiting) >= in_flight:
            yield waiting.popleft()
    while waiting:
        yield waiting.popleft()


def read_audio(path: str | Path, frames: FrameLimit = None, data: bytes | None = None) -> Audio:
    """Decode ``path`` into float32 ``[channels, frames]``.

    :param frames: read at most this many sample frames, or a function of the file's sample rate
        returning that limit (``None``: the whole file, up to :func:`max_seconds`).
    :param data: the file's bytes, if already read; ``path`` then only names it in errors.
    :raises AudioError: the file is missing, unreadable, empty, too long to decode at once, or
        holds non-finite samples.
    """
    with _open(path, data) as sound:
        limit = frames(sound.samplerate) if callable(frames) else frames
        if limit is None:
            most = int(max_seconds() * sound.samplerate)
            samples = _read(sound, path, most + 1)
            if len(samples) > most:
                raise AudioError(
                    f"is longer than the {max_seconds():.0f} s aetk decodes at once: score it "
                    "in windows (--segment SECONDS) or raise AETK_MAX_SECONDS",
                    path,
                )
        else:
            samples = _read(sound, path, limit)
        return Audio(np.ascontiguousarray(samples.T), int(sound.samplerate), sound.subtype)


def read_windows(
    path: str | Path, seconds: float, data: bytes | None = None
) -> Iterator[tuple[float, Audio]]:
    """Consecutive windows of ``seconds`` as ``(start_seconds, Audio)``, decoded one at a time
    (from ``data``, the file's bytes, if given).

    The last window may be shorter. Raises :class:`AudioError` like :func:`read_audio`.
    """
    if not seconds > 0:
        raise ConfigError(f"segment length must be a positive number of seconds, not {seconds}")
    with _open(path, data) as sound:
        window = max(1, round(seconds * sound.samplerate))
        start = 0
        while True:
            samples = _read(sound, path, window, allow_empty=start > 0)
            if len(samples) == 0:
                return
            audio = Audio(np.ascontiguousarray(samples.T), sound.samplerate, sound.subtype)
            yield start / sound.samplerate, audio
            start += len(samples)


def read_clips(
    path: str | Path,
    segment_seconds: float = 0.0,
    frames: FrameLimit = None,
    data: bytes | None = None,
) -> Iterator[tuple[float, Audio]]:
    """The file as one clip (``segment_seconds`` 0; ``frames`` as :func:`read_audio` takes it)
    or as consecutive windows of ``segment_seconds``, each ``(start_seconds, Audio)``; ``data``:
    the file's bytes, if already read.

    A last window shorter than half the segment length is dropped: it would be scored on less
    sound than the others.
    """
    if not segment_seconds:
        yield 0.0, read_audio(path, frames, data)
        return
    yield from _whole_windows(read_windows(path, segment_seconds, data), segment_seconds)


def audio_clips(
    samples: object,
    sample_rate: int | None = None,
    segment_seconds: float = 0.0,
    frames: FrameLimit = None,
) -> Iterator[tuple[float, Audio]]:
    """A recording held in memory (what :func:`as_audio` takes) as :func:`read_clips` cuts a
    file: whole (``segment_seconds`` 0, at most ``frames`` of it, as :func:`read_audio`
    decodes) or in consecutive windows, a last one shorter than half the segment length
    dropped. An audio file's bytes are decoded as its file would be: in windows, one at a time,
    so that a recording longer than :func:`max_seconds` can be scored in windows."""
    data = _file_bytes(samples, sample_rate)
    if data is not None:
        yield from read_clips("-", segment_seconds, frames, data)
        return
    audio = as_audio(samples, sample_rate)
    if not segment_seconds:
        limit = frames(audio.sample_rate) if callable(frames) else frames
        yield 0.0, audio if limit is None else Audio(audio.samples[:, :limit], audio.sample_rate)
        return
    if not segment_seconds > 0:
        raise ConfigError(
            f"segment length must be a positive number of seconds, not {segment_seconds}"
        )
    window = max(1, round(segment_seconds * audio.sample_rate))
    pieces = (
        (
            first / audio.sample_rate,
            Audio(audio.samples[:, first : first + window], audio.sample_rate),
        )
        for first in range(0, audio.samples.shape[1], window)
    )
    yield from _whole_windows(pieces, segment_seconds)


def _whole_windows(
    windows: Iterable[tuple[float, Audio]], seconds: float
) -> Iterator[tuple[float, Audio]]:
    for start, audio in windows:
        if start > 0 and audio.seconds < seconds / 2:
            return
        yield start, audio


#: Standard input given as a recording (``score -``) is read up to this: a recording, not a
#: stream that never ends.
MAX_INPUT_BYTES = 1 << 30


def read_input(stream: BinaryIO, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the one recording on ``stream`` (standard input), for :func:`as_audio`.

    :raises ConfigError: it is a terminal (nothing was piped in), or holds more than ``limit``
        bytes.
    """
    if stream.isatty():
        raise ConfigError(
            "'-' reads one recording from standard input, a terminal here: pipe one in "
            "(cat recording.wav | … score -)"
        )
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(
            f"standard input holds more than {limit >> 20:,} MB: '-' reads one recording, not a "
            "stream"
        )
    return data


Scored = TypeVar("Scored")


def score_input(
    score_audio: Callable[..., Scored], fleet: bool, machine: str | None, **settings: object
) -> Scored:
    """The one recording on standard input (:func:`read_input`) scored by a detector's
    ``score_audio`` as ``-``; a fleet's (``fleet``) as ``machine``'s, which it needs.

    :raises ConfigError: a fleet without ``machine``, or :func:`read_input`'s.
    """
    if fleet and machine is None:
        raise ConfigError("a recording on standard input needs --machine NAME of the fleet")
    judged_as = {"machine": machine} if fleet else {}
    return score_audio(read_input(sys.stdin.buffer), name="-", **judged_as, **settings)


def check_window(
    score_audio: Callable[..., object], seconds: float, rate: int, channels: int, option: str
) -> None:
    """Refuse windows of ``seconds`` that no sound could be scored in (shorter than the
    featurizer needs), before any is: a window of faint noise at ``rate`` with ``channels`` is
    scored by ``score_audio`` first, rather than every window or file giving the same error.
    Noise, not digital silence, which a featurizer may rightly refuse.

    :raises ConfigError: naming ``option`` and the featurizer's reason.
    """
    samples = max(1, round(seconds * rate))
    faint = 1e-3 * np.random.default_rng(0).standard_normal((channels, samples))
    result = score_audio(faint.astype(np.float32), rate, segment=samples / rate)
    error = getattr(result, "error", None)
    if error is not None:
        raise ConfigError(f"{option} {seconds:g}: no window of that length can be scored ({error})")


def check_segment(
    score_audio: Callable[..., object],
    segment: float | None,
    files: Sequence[Path],
    option: str = "--segment",
) -> bool:
    """Windows of ``segment`` seconds too short for the featurizer refused once
    (:func:`check_window`, at the first recording's rate and channels; ``option`` names them)
    rather than on every file's row; nothing is checked when the first recording cannot be read,
    or is of a rate or channel count no recording may have (its row says why).

    :returns: whether the windows were checked (False without ``segment`` or a first recording
        to check them at).
    """
    if not segment or not files:
        return False
    try:
        info = soundfile.info(str(files[0]))
    except (RuntimeError, OSError):
        return False
    plausible = MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE
    if not plausible or not 0 < info.channels <= MAX_CHANNELS:
        return False
    check_window(score_audio, segment, info.samplerate, info.channels, option)
    return True


def as_audio(samples: object, sample_rate: int | None = None) -> Audio:
    """Audio held in memory as :class:`Audio`: ``[samples]`` (mono) or ``[channels, samples]``,
    floats in [-1, 1] or 16- or 32-bit integers (scaled as a decoder scales them), at
    ``sample_rate``; or the bytes of an audio file (WAV, FLAC, ...), which give their own rate.

    :raises AudioError: (without a path) what a file holding them would be refused for, or an
        array that is not audio of that layout.
    :raises ConfigError: an array without its rate, or a file's bytes with one.
    """
    data = _file_bytes(samples, sample_rate)
    if data is not None:
        return read_audio("-", data=data)
    if sample_rate is None:
        raise ConfigError("samples in an array need their sample_rate")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ConfigError(
            f"sample_rate must be a whole number of samples a second, not {sample_rate!r}"
        )
    array = np.asarray(samples)
    if array.dtype in (np.int16, np.int32):
        array = array / np.float32(2 ** (8 * array.itemsize - 1))
    elif not np.issubdtype(array.dtype, np.floating):
        raise AudioError(
            f"holds samples of type {array.dtype}: give floats in [-1, 1] or 16- or 32-bit integers"
        )
    if array.ndim == 1:
        array = array[np.newaxis]
    if array.ndim != 2:
        raise AudioError(f"has {array.ndim} dimensions: give [samples] or [channels, samples]")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioError(f"has an implausible sample rate ({sample_rate} Hz)")
    if array.shape[0] > MAX_CHANNELS:
        raise AudioError(
            f"has an implausible channel count ({array.shape[0]}): give [channels, samples] "
            "(soundfile.read returns [samples, channels]: transpose it)"
        )
    if array.shape[1] == 0:
        raise AudioError("holds no audio samples")
    if not np.isfinite(array).all():
        raise AudioError("holds NaN or infinite samples")
    return Audio(np.ascontiguousarray(array, dtype=np.float32), int(sample_rate))


def _file_bytes(samples: object, sample_rate: int | None) -> bytes | None:
    """``samples`` as an audio file's bytes, or None when they are not bytes."""
    if not isinstance(samples, (bytes, bytearray, memoryview)):
        return None
    if sample_rate is not None:
        raise ConfigError("a file's bytes give their own sample rate: leave sample_rate out")
    return bytes(samples)


@contextmanager
def _open(path: str | Path, data: bytes | None = None) -> Iterator[soundfile.SoundFile]:
    """Open ``path`` (or its bytes ``data``) with soundfile; every failure becomes an AudioError
    naming the file."""
    path = Path(path)
    try:
        if data is not None:
            if not data:
                raise AudioError("is empty (0 bytes)", path)
            sound = soundfile.SoundFile(io.BytesIO(data))
        else:
            if check_regular_file(path).st_size == 0:
                raise AudioError("is empty (0 bytes)", path)
            # libsndfile reports every operating-system failure as "System error"; opening the
            # file here first gives the real reason (permission denied, symlink loop, ...).
            with open(path, "rb"):
                pass
            # The name as bytes: a file name that is not valid UTF-8 opens like any other.
            sound = soundfile.SoundFile(os.fsencode(path))
    except AudioError:
        raise
    except soundfile.LibsndfileError as exc:
        raise AudioError(f"not a readable audio file ({_libsndfile_reason(exc)})", path) from None
    except OSError as exc:
        raise AudioError(exc.strerror or str(exc), path) from None
    except (RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"not a readable audio file ({exc})", path) from None
    with sound:
        if not MIN_SAMPLE_RATE <= sound.samplerate <= MAX_SAMPLE_RATE:
            raise AudioError(f"has an implausible sample rate ({sound.samplerate} Hz)", path)
        if not 0 < sound.channels <= MAX_CHANNELS:
            raise AudioError(f"has an implausible channel count ({sound.channels})", path)
        yield sound


def check_regular_file(path: Path) -> os.stat_result:
    """Only regular files are opened: reading a FIFO or a device named like a recording would
    block forever (or never end). The file's status, from one ``stat`` (every file scored pays
    for it)."""
    try:
        status = path.stat()
    except OSError as exc:
        raise AudioError(exc.strerror or str(exc), path) from None
    if stat.S_ISDIR(status.st_mode):
        raise AudioError("is a folder, not an audio file", path)
    if not stat.S_ISREG(status.st_mode):
        raise AudioError("is not a regular file (a FIFO, socket or device)", path)
    return status


def _read(
    sound: soundfile.SoundFile, path: str | Path, frames: int, allow_empty: bool = False
) -> np.ndarray:
    """Up to ``frames`` sample frames, decoded in bounded blocks until the data ends."""
    block = max(1, _BLOCK_SAMPLES // sound.channels)
    # 16-bit PCM decodes faster as integers; libsndfile's float conversion is the same / 32768,
    # done here in one pass (a power of two: exact). Integers cannot be NaN or infinite.
    as_int16 = sound.subtype == "PCM_16"
    parts, remaining = [], frames
    try:
        while remaining > 0:
            part = sound.read(
                min(block, remaining), dtype="int16" if as_int16 else "float32", always_2d=True
            )
            if len(part) == 0:
                break
            parts.append(np.multiply(part, _INT16_SCALE, dtype=np.float32) if as_int16 else part)
            remaining -= len(part)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"not a readable audio file ({exc})", path) from None
    if not parts:
        data = np.empty((0, sound.channels), np.float32)
    else:
        data = parts[0] if len(parts) == 1 else np.concatenate(parts)
    if data.shape[0] == 0 and not allow_empty:
        raise AudioError("holds no audio samples", path)
    if not as_int16 and not np.isfinite(data).all():
        raise AudioError("holds NaN or infinite samples", path)
    return data


def _libsndfile_reason(exc: soundfile.LibsndfileError) -> str:
    reason = getattr(exc, "error_string", "") or str(exc)
    return reason.strip().rstrip(".") or "unknown format"
