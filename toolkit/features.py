"""From files to feature vectors, one file at a time, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import torch

from aetk.audio import read_audio
from aetk.components import Featurizer
from aetk.errors import AudioError


def featurize_file(featurizer: Featurizer, path: str | Path) -> torch.Tensor:
    """Decode ``path`` (only as much as the featurizer uses) and featurize it.

    :raises AudioError: naming the file, when it cannot be decoded or featurized.
    """
    audio = read_audio(path, featurizer.frames_to_read)
    try:
        features = featurizer.featurize(torch.from_numpy(audio.samples), audio.sample_rate)
    except AudioError as exc:
        raise exc.with_path(path) from None
    if features.dim() < 2 or len(features) == 0:
        raise AudioError("yields no feature vectors", path)
    if not torch.isfinite(features).all():
        raise AudioError("yields NaN or infinite features", path)
    return features.to(torch.float32)


def check_vector_shape(features: torch.Tensor, expected: tuple[int, ...], path: str | Path) -> None:
    """Every clip must yield vectors of the shape the model was built for."""
    if tuple(features.shape[1:]) != tuple(expected):
        raise AudioError(
            f"yields feature vectors of shape {list(features.shape[1:])}, but the detector "
            f"expects {list(expected)} (clips of another length or channel count?)",
            path,
        )
