"""Handing freed memory back to the operating system during long passes over many clips.

Walking thousands of clips allocates a large temporary per clip (its standardised features)
beside small results kept to the end (a clip's mean spectrum, its vector scores). glibc raises its
mmap threshold after the first large blocks are freed, so the temporaries then come from the heap,
where the small survivors pin the freed space: resident memory grew by about the size of every
clip walked (measured: +450 MB over 3,000 ten-second clips). ``malloc_trim`` returns those free
pages; called every few dozen clips it keeps memory flat for about 0.04 ms per clip. Fixing the
threshold instead kept memory flat but made featurizing 2.5 times slower.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
#: Clips walked between two trims.
TRIM_EVERY = 64


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


def release_freed_memory() -> None:
    """Return free heap pages to the operating system (glibc only; elsewhere a no-op)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def trimmed(items: Iterable[Item], every: int = TRIM_EVERY) -> Iterator[Item]:
    """Yield ``items``, releasing freed memory after every ``every`` of them."""
    for count, item in enumerate(items, start=1):
        yield item
        if count % every == 0:
            release_freed_memory()
