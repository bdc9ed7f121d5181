"""From files to feature vectors, with errors that name the file.

A file is featurized whole, or, with a segment length, as consecutive windows decoded one at a
time (bounded memory for recordings of any length). Each whole file or window is a *clip*.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from aetk_core.errors import featurizer_raised
from aetk_core.features import within_band
from aetk_core.recording import RecordingProfile

from aetk.components.base import Featurizer
from aetk.data.audio import Audio, default_workers, map_in_order, read_audio, read_clips
from aetk.errors import AetkError, AudioError


@dataclass
class Clip:
    """The feature vectors of a whole file or of one window of it, and how its sound was
    recorded (None: not measured)."""

    start: float
    end: float
    vectors: torch.Tensor
    recording: RecordingProfile | None = None


@dataclass
class FileClips:
    """The clips of one file as a scorer will see them: windows of ``segment_seconds``, decoded
    lazily (one window at a time, whatever the recording's length), or the one whole-file clip
    (``segment_seconds`` 0); ``error`` says why the file could not be featurized."""

    path: str
    clips: Iterable[Clip] = ()
    error: str | None = None
    segment_seconds: float = 0.0

    @property
    def windowed(self) -> bool:
        return bool(self.segment_seconds)


def featurized_files(
    featurizer: Featurizer,
    paths: Sequence[Path],
    segment_seconds: float = 0.0,
    ahead: int = 0,
    band_rate: int | None = None,
    workers: int | None = None,
) -> Iterator[FileClips]:
    """The clips of every file, in order: whole files decoded and featurized on ``workers``
    threads, up to ``ahead`` files ahead (see :func:`map_files`); windows of ``segment_seconds``
    decoded one at a time as they are consumed. ``band_rate``: see :func:`featurize_audio`."""
    if segment_seconds:
        for path in paths:
            clips = iter_clips(featurizer, path, segment_seconds, band_rate)
            yield FileClips(str(path), clips, segment_seconds=segment_seconds)
        return
    whole = map_files(
        lambda path: list(iter_clips(featurizer, path, band_rate=band_rate)),
        paths,
        workers,
        ahead=ahead,
    )
    for path, clips in whole:
        if isinstance(clips, AudioError):
            yield FileClips(str(path), error=clips.reason)
        else:
            yield FileClips(str(path), clips)


def featurize_audio(
    featurizer: Featurizer, audio: Audio, path: str | Path, band_rate: int | None = None
) -> torch.Tensor:
    """Featurize decoded audio; problems become an :class:`AudioError` naming ``path``.
    ``band_rate``: a detector's training recordings' rate when they were all narrower than the
    band it analyses; faster audio is heard through their band (``within_band``)."""
    samples, rate = within_band(audio.samples, audio.sample_rate, band_rate)
    try:
        features = featurizer.featurize(torch.from_numpy(samples), rate)
    except AudioError as exc:
        raise exc.with_path(path) from None
    except (AetkError, MemoryError):
        raise
    except Exception as exc:  # a featurizer that fails on one recording: the batch goes on
        raise featurizer_failed(featurizer, exc, path) from exc
    if features.dim() < 2 or len(features) == 0:
        raise AudioError("yields no feature vectors", path)
    # One float64 sum rather than a mask the size of the features: a NaN or an infinity makes
    # it non-finite, and finite float32 values cannot overflow it.
    if not torch.isfinite(features.sum(dtype=torch.float64)):
        raise AudioError("yields NaN or infinite features", path)
    return features.to(torch.float32)


def featurizer_failed(featurizer: Featurizer, error: Exception, path: str | Path) -> AudioError:
    """:func:`aetk_core.errors.featurizer_raised`, naming ``path``; with
    ``AETK_TRACE_PLUGINS=1`` the traceback is printed too, for the featurizer's author."""
    from aetk.plugin.host import get_host

    if get_host().trace:
        traceback.print_exception(error, file=sys.stderr)
    return featurizer_raised(featurizer.name, error).with_path(path)


def featurize_file(featurizer: Featurizer, path: str | Path) -> torch.Tensor:
    """Decode ``path`` (only as much as the featurizer uses) and featurize it."""
    return featurize_audio(featurizer, read_audio(path, featurizer.frames_to_read), path)


def iter_clips(
    featurizer: Featurizer,
    path: str | Path,
    segment_seconds: float = 0.0,
    band_rate: int | None = None,
) -> Iterator[Clip]:
    """The file as one clip (``segment_seconds`` 0) or as windows of ``segment_seconds``
    (:func:`aetk_core.audio.read_clips`: a last window under half the length is dropped)."""
    for start, audio in read_clips(path, segment_seconds, featurizer.frames_to_read):
        yield audio_clip(featurizer, audio, path, start, band_rate)


def audio_clip(
    featurizer: Featurizer,
    audio: Audio,
    path: str | Path,
    start: float = 0.0,
    band_rate: int | None = None,
) -> Clip:
    """The clip of decoded audio that starts ``start`` seconds into its recording (its profile
    is the recording's as it was made, whatever band it is heard through)."""
    return Clip(
        start,
        start + audio.seconds,
        featurize_audio(featurizer, audio, path, band_rate),
        RecordingProfile.of(audio),
    )


def check_vector_shape(features: torch.Tensor, expected: tuple[int, ...], path: str | Path) -> None:
    """Every clip must yield vectors of the shape the model was built for."""
    if tuple(features.shape[1:]) != tuple(expected):
        raise AudioError(
            f"yields feature vectors of shape {list(features.shape[1:])}, but the detector "
            f"expects {list(expected)} (clips of another length or channel count?)",
            path,
        )


def map_files(
    function: Callable[[Path], Any],
    paths: Sequence[Path],
    workers: int | None = None,
    ahead: int = 0,
) -> Iterator[tuple[Path, Any]]:
    """``(path, function(path))`` for every path, in order, computed on ``workers`` threads
    (:func:`aetk_core.audio.map_in_order`: at most ``2 × workers`` files, or ``ahead``, in
    flight).

    An :class:`AudioError` is returned as the path's result rather than raised, so one bad file
    does not stop the others. Decoding (libsndfile) and torch release the GIL, so threads use
    every core; meanwhile torch runs one thread in each worker and in the calling thread, rather
    than oversubscribing the cores.
    """

    def call(path: Path) -> tuple[Path, Any]:
        try:
            return path, function(path)
        except AudioError as exc:
            return path, exc

    workers = default_workers() if workers is None else workers
    parallel = workers > 1 and len(paths) > 1
    with _one_torch_thread() if parallel else nullcontext():
        # torch.set_num_threads holds for the thread that calls it: in a new thread, MKL's
        # products (the mel bank's) ran on every core, two workers' teams sharing two cores
        # (featurizing on two threads: 8 % faster with one thread each).
        yield from map_in_order(
            call, paths, workers, ahead, initializer=_worker_uses_one_torch_thread
        )


def _worker_uses_one_torch_thread() -> None:
    torch.set_num_threads(1)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
