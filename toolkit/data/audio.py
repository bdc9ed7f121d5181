"""Audio input for aetk: the shared finding and decoding (:mod:`aetk_core.audio`) and the rate
a resampler starts from, and what only aetk needs around them: refusing an empty input,
counting sample rates, shards of a job array."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import soundfile
from aetk_core.audio import (
    AUDIO_SUFFIXES,
    DEFAULT_MAX_SECONDS,
    MANIFEST_SUFFIXES,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    Audio,
    FrameLimit,
    as_audio,
    audio_clips,
    check_regular_file,
    default_workers,
    find_audio_files,
    map_in_order,
    max_seconds,
    read_audio,
    read_clips,
    read_manifest,
    read_windows,
)
from aetk_core.features import (
    empty_mel_bands,
    mel_filter_bank,
    mel_points_hz,
    power_to_decibels,
    tractable_rate,
)

from aetk.errors import AudioError, ConfigError

__all__ = [
    "AUDIO_SUFFIXES",
    "DEFAULT_MAX_SECONDS",
    "MANIFEST_SUFFIXES",
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "Audio",
    "FrameLimit",
    "as_audio",
    "audio_clips",
    "check_regular_file",
    "default_workers",
    "empty_mel_bands",
    "find_audio_files",
    "map_in_order",
    "max_seconds",
    "mel_filter_bank",
    "mel_points_hz",
    "power_to_decibels",
    "read_audio",
    "read_clips",
    "read_manifest",
    "read_windows",
    "require_audio_files",
    "sample_rates",
    "select_shard",
    "tractable_rate",
]


def require_audio_files(paths: Iterable[str | Path]) -> list[Path]:
    """:func:`find_audio_files`, or a :class:`ConfigError` naming ``paths`` when none are found."""
    paths = list(paths)
    files = find_audio_files(paths)
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(map(str, paths))}")
    return files


def read_header(path: Path) -> Any | None:
    """The file's header as libsndfile reads it (``samplerate``, ``channels``, ``duration``), or
    None when it cannot be read (decoding reports why); a FIFO is never opened."""
    try:
        check_regular_file(path)
        return soundfile.info(str(path))
    except (AudioError, RuntimeError, OSError, TypeError, ValueError):
        return None


def sample_rates(files: Sequence[Path], most: int = 500) -> dict[int, int]:
    """How many of (at most ``most`` of) ``files`` are at each sample rate, from their headers;
    files that cannot be read are left out (decoding reports them)."""
    counts: dict[int, int] = {}
    for path in files[:most]:
        header = read_header(path)
        if header is not None:
            rate = int(header.samplerate)
            counts[rate] = counts.get(rate, 0) + 1
    return dict(sorted(counts.items()))


def select_shard(files: Sequence[Path], shard: str) -> list[Path]:
    """The files of shard ``"I/N"``: those whose path hashes (BLAKE2b) to I modulo N. The same
    path is in the same shard whatever else the inputs hold, so a job array of N tasks covers
    every file exactly once. (A cryptographic hash, because CRC-32 is linear: paths that differ
    only in a few characters can all land in one shard.)"""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise ConfigError(f"--shard expects I/N (like 0/4), not {shard!r}") from None
    if not 0 <= index < count:
        raise ConfigError(f"--shard {shard}: I must lie in 0..N-1")
    return [path for path in files if _path_hash(path) % count == index]


def _path_hash(path: Path) -> int:
    return int.from_bytes(hashlib.blake2b(str(path).encode(), digest_size=8).digest(), "big")
