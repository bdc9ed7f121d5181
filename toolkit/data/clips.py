"""The feature vectors of many clips, standardised on access, in bounded memory.

A fit sees its training clips twice: the model samples random batches of vectors
(:class:`VectorSet`, one memory-mapped array on disk), and the scorer walks them clip by clip
(:class:`StandardizedClips`). Neither holds the standardised vectors of all clips in memory.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from aetk.components.base import Normalizer
from aetk.data.memory import trimmed
from aetk.errors import AetkWarning


class ClipFiles(Sequence):
    """Clips stored as feature-cache entries, memory-mapped only while read, so that pages of
    clips already used do not stay in the process's memory (or, where the cache could not be
    written, held in memory)."""

    def __init__(self, files: Sequence[Path | torch.Tensor], lengths: Sequence[int]):
        self.files = list(files)
        self.lengths = list(lengths)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index):
        from aetk.data.cache import held_vectors

        if isinstance(index, slice):
            return ClipFiles(self.files[index], self.lengths[index])
        return held_vectors(self.files[index])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return trimmed(self[index] for index in range(len(self)))


def select(clips: Sequence[torch.Tensor], indices: Sequence[int]) -> Sequence[torch.Tensor]:
    """The clips at ``indices``, kept on disk when they were (:class:`ClipFiles`)."""
    if isinstance(clips, ClipFiles):
        return ClipFiles([clips.files[i] for i in indices], [clips.lengths[i] for i in indices])
    return [clips[i] for i in indices]


def clip_lengths(clips: Sequence[torch.Tensor]) -> list[int]:
    """The number of vectors of each clip, without loading clips stored on disk."""
    lengths = getattr(clips, "lengths", None)
    return list(lengths) if lengths is not None else [len(clip) for clip in clips]


class StandardizedClips(Sequence):
    """Clips (``[vectors, *shape]`` tensors, possibly memory-mapped), standardised when read."""

    def __init__(self, clips: Sequence[torch.Tensor], normalizer: Normalizer):
        self._clips = clips
        self._normalizer = normalizer

    def __len__(self) -> int:
        return len(self._clips)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return StandardizedClips(self._clips[index], self._normalizer)
        return self._normalizer.transform(self._clips[index])

    def __iter__(self) -> Iterator[torch.Tensor]:
        return trimmed(self._normalizer.transform(clip) for clip in self._clips)


#: Folders found to have no room for a set's vectors (a full disk).
_NO_ROOM: set[Path] = set()


class VectorSet:
    """Every vector of many clips as one array, standardised when read.

    Indexing (``vectors[batch_indices]``, ``vectors[start:stop]``) is what training needs; the
    array is written to a memory-mapped file in ``folder`` the first time it is indexed, so a
    model without parameters (nothing to train) never pays for it.
    """

    def __init__(self, clips: Sequence[torch.Tensor], normalizer: Normalizer, folder: Path):
        self._clips = clips
        self._normalizer = normalizer
        self._folder = folder
        self._array: np.ndarray | None = None
        self._file: Path | None = None
        self.shape = (sum(clip_lengths(clips)), *clips[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> torch.Tensor:
        array = self._materialize()
        if isinstance(index, torch.Tensor):
            # Sorted rows read the file in order; a batch's order does not change its gradient.
            index = np.sort(index.numpy())
        rows = array[index]
        return self._normalizer.transform(torch.from_numpy(np.ascontiguousarray(rows)))

    def close(self) -> None:
        """Remove the memory-mapped file (if one was written)."""
        self._array = None
        if self._file is not None:
            self._file.unlink(missing_ok=True)
            self._file = None

    def _materialize(self) -> np.ndarray:
        if self._array is None:
            array = self._mapped()
            if array is None:
                array = np.empty(self.shape, np.float32)
            start = 0
            for clip in self._clips:
                array[start : start + len(clip)] = clip.numpy()
                start += len(clip)
            if isinstance(array, np.memmap):
                array.flush()
            self._array = array
        return self._array

    def _mapped(self) -> np.ndarray | None:
        """An array mapped from a file in ``folder``, its room on disk claimed first (a write
        into a mapped file that finds the disk full kills the process); None, after a
        warning, where there is no room: the vectors are then held in memory."""
        if self._folder in _NO_ROOM:
            return None
        handle = None
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            handle, name = tempfile.mkstemp(dir=self._folder, prefix="vectors-", suffix=".f32")
            self._file = Path(name)
            size = 4 * math.prod(self.shape)
            if not size:
                return None
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(handle, 0, size)
            else:  # no way to claim the room: a sparse file, as before
                os.ftruncate(handle, size)
            return np.memmap(self._file, dtype=np.float32, mode="r+", shape=self.shape)
        except OSError as exc:
            self.close()
            _NO_ROOM.add(self._folder)  # said once: a fit makes several such sets
            warnings.warn(
                f"{self._folder} cannot hold the training vectors ({exc.strerror or exc}): they "
                "are held in memory",
                AetkWarning,
                stacklevel=4,
            )
            return None
        finally:
            if handle is not None:
                os.close(handle)
