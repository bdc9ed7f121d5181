"""From files to feature vectors, with errors that name the file.

A file is featurized whole, or, with a segment length, as consecutive windows decoded one at a
time (bounded memory for recordings of any length). Each whole file or window is a *clip*.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from aetk.audio import Audio, read_audio, read_windows
from aetk.components import Featurizer
from aetk.errors import AudioError


@dataclass
class Clip:
    """The feature vectors of a whole file or of one window of it."""

    start: float
    end: float
    vectors: torch.Tensor


def featurize_audio(featurizer: Featurizer, audio: Audio, path: str | Path) -> torch.Tensor:
    """Featurize decoded audio; problems become an :class:`AudioError` naming ``path``."""
    try:
        features = featurizer.featurize(torch.from_numpy(audio.samples), audio.sample_rate)
    except AudioError as exc:
        raise exc.with_path(path) from None
    if features.dim() < 2 or len(features) == 0:
        raise AudioError("yields no feature vectors", path)
    if not torch.isfinite(features).all():
        raise AudioError("yields NaN or infinite features", path)
    return features.to(torch.float32)


def featurize_file(featurizer: Featurizer, path: str | Path) -> torch.Tensor:
    """Decode ``path`` (only as much as the featurizer uses) and featurize it."""
    return featurize_audio(featurizer, read_audio(path, featurizer.frames_to_read), path)


def iter_clips(
    featurizer: Featurizer, path: str | Path, segment_seconds: float = 0.0
) -> Iterator[Clip]:
    """The file as one clip (``segment_seconds`` 0) or as windows of ``segment_seconds``.

    A last window shorter than half the segment length is dropped: it would be scored on less
    sound than the others.
    """
    if not segment_seconds:
        audio = read_audio(path, featurizer.frames_to_read)
        yield Clip(0.0, audio.seconds, featurize_audio(featurizer, audio, path))
        return
    for start, audio in read_windows(path, segment_seconds):
        if start > 0 and audio.seconds < segment_seconds / 2:
            return
        yield Clip(start, start + audio.seconds, featurize_audio(featurizer, audio, path))


def check_vector_shape(features: torch.Tensor, expected: tuple[int, ...], path: str | Path) -> None:
    """Every clip must yield vectors of the shape the model was built for."""
    if tuple(features.shape[1:]) != tuple(expected):
        raise AudioError(
            f"yields feature vectors of shape {list(features.shape[1:])}, but the detector "
            f"expects {list(expected)} (clips of another length or channel count?)",
            path,
        )
