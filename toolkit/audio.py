"""Audio input: finding recordings and decoding them with soundfile (libsndfile).

soundfile reads WAV (PCM 8/16/24/32-bit, float, WAVE_FORMAT_EXTENSIBLE multichannel), FLAC, OGG
and MP3 without FFmpeg. Every failure becomes an :class:`aetk.AudioError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from aetk.errors import AudioError

AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff"})


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is ``[channels, frames]`` float32 in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate


def find_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, sorted, audio suffixes only) and keep files as given.

    A path that does not exist is kept, so that the caller reports it like any unreadable file.
    Symbolic links to folders are not followed, so a link loop cannot trap the walk.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        in_folder = []
        for folder, _, names in os.walk(path):
            in_folder.extend(
                Path(folder, name) for name in names if Path(name).suffix.lower() in AUDIO_SUFFIXES
            )
        found.extend(sorted(in_folder))
    return found


FrameLimit = int | Callable[[int], int | None] | None


def read_audio(path: str | Path, frames: FrameLimit = None) -> Audio:
    """Decode ``path`` into float32 ``[channels, frames]``.

    :param frames: read at most this many sample frames, or a function of the file's sample rate
        returning that limit (``None``: the whole file).
    :raises AudioError: the file is missing, unreadable, empty, or holds non-finite samples.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise AudioError("is a folder, not an audio file", path)
        if path.stat().st_size == 0:
            raise AudioError("is empty (0 bytes)", path)
        with soundfile.SoundFile(path) as sound:
            limit = frames(sound.samplerate) if callable(frames) else frames
            data = sound.read(limit if limit is not None else -1, dtype="float32", always_2d=True)
            sample_rate = sound.samplerate
    except AudioError:
        raise
    except soundfile.LibsndfileError as exc:
        raise AudioError(f"not a readable audio file ({_libsndfile_reason(exc)})", path) from None
    except OSError as exc:
        raise AudioError(exc.strerror or str(exc), path) from None
    except (RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(f"not a readable audio file ({exc})", path) from None
    if data.shape[0] == 0:
        raise AudioError("holds no audio samples", path)
    if not np.isfinite(data).all():
        raise AudioError("holds NaN or infinite samples", path)
    return Audio(np.ascontiguousarray(data.T), int(sample_rate))


def _libsndfile_reason(exc: soundfile.LibsndfileError) -> str:
    reason = getattr(exc, "error_string", "") or str(exc)
    return reason.strip().rstrip(".") or "unknown format"
