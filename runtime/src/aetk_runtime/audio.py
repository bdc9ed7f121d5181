"""Finding and decoding recordings with soundfile, as aetk does."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import soundfile

from aetk_runtime.errors import AudioError

AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"})
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE, MAX_CHANNELS = 1_000, 1_000_000, 256
MAX_SECONDS = float(os.environ.get("AETK_MAX_SECONDS", "600"))


def find_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Folders searched recursively (sorted, audio suffixes only); files kept as given."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        inside = [
            Path(folder, name)
            for folder, _, names in os.walk(path)
            for name in names
            if Path(name).suffix.lower() in AUDIO_SUFFIXES
        ]
        found.extend(sorted(inside))
    return found


def _open(path: Path) -> soundfile.SoundFile:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise AudioError(exc.strerror or str(exc)) from None
    if stat.S_ISDIR(mode):
        raise AudioError("is a folder, not an audio file")
    if not stat.S_ISREG(mode):
        raise AudioError("is not a regular file (a FIFO, socket or device)")
    if path.stat().st_size == 0:
        raise AudioError("is empty (0 bytes)")
    try:
        with open(path, "rb"):
            pass
        sound = soundfile.SoundFile(os.fsencode(path))
    except OSError as exc:
        raise AudioError(exc.strerror or str(exc)) from None
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", "") or str(exc)
        raise AudioError(f"not a readable audio file ({reason.strip().rstrip('.')})") from None
    if not MIN_SAMPLE_RATE <= sound.samplerate <= MAX_SAMPLE_RATE:
        sound.close()
        raise AudioError(f"has an implausible sample rate ({sound.samplerate} Hz)")
    if not 0 < sound.channels <= MAX_CHANNELS:
        sound.close()
        raise AudioError(f"has an implausible channel count ({sound.channels})")
    return sound


def _read(sound: soundfile.SoundFile, frames: int) -> np.ndarray:
    try:
        if sound.subtype == "PCM_16":
            data = sound.read(frames, dtype="int16", always_2d=True).astype(np.float32) / 32768.0
        else:
            data = sound.read(frames, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"not a readable audio file ({exc})") from None
    if not np.isfinite(data).all():
        raise AudioError("holds NaN or infinite samples")
    return np.ascontiguousarray(data.T)


def read_audio(path: Path, frames_for_rate=None) -> tuple[np.ndarray, int]:
    """``[channels, samples]`` float32 and the rate; at most ``frames_for_rate(rate)`` frames."""
    with _open(path) as sound:
        limit = frames_for_rate(sound.samplerate) if frames_for_rate else None
        most = int(MAX_SECONDS * sound.samplerate)
        data = _read(sound, (most + 1) if limit is None else limit)
        if limit is None and data.shape[1] > most:
            raise AudioError(
                f"is longer than the {MAX_SECONDS:.0f} s decoded at once: score it in windows "
                "(--segment SECONDS)"
            )
        if data.shape[1] == 0:
            raise AudioError("holds no audio samples")
        return data, int(sound.samplerate)


def read_windows(path: Path, seconds: float) -> Iterator[tuple[float, np.ndarray, int]]:
    """Consecutive windows ``(start, samples, rate)``, decoded one at a time."""
    with _open(path) as sound:
        window = max(1, round(seconds * sound.samplerate))
        start = 0
        while True:
            data = _read(sound, window)
            if data.shape[1] == 0:
                if start == 0:
                    raise AudioError("holds no audio samples")
                return
            yield start / sound.samplerate, data, int(sound.samplerate)
            start += data.shape[1]
