"""Scoring many files on every core, in aetk and in aetk-runtime: forked worker processes, each
of which scores runs of files through the whole scoring path (decode, featurize, score) on one
thread, and hand their results back in order.

Why processes: in one process, decoding (libsndfile through cffi), the recording checks and the
scoring's own Python hold the GIL for much of each clip, so two threads scored the benchmark's
folder about 1.3 times as fast as one; two forked processes share nothing and score it 1.6–1.8
times as fast (docs/performance.md). Forking is only safe where nothing else runs: it is used on
Linux, from a process with no other Python thread (another thread's locks would stay held in the
children forever; the threads that featurized files here have ended even in the operating
system, :func:`aetk_core.audio.map_in_order`) and never from a worker itself. Elsewhere, and
for a few files, the files are decoded and featurized on threads of this process as before.
"""

from __future__ import annotations

import gc
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aetk_core.audio import submitted_in_order
from aetk_core.errors import AetkError

if TYPE_CHECKING:
    from concurrent.futures import Future

# multiprocessing, concurrent.futures.process and ctypes are imported where a run forks: together
# they cost a cold start (aetk-runtime scoring one file) about 25 ms.

#: Files a worker scores at a time, at most: enough to pay for the hand-over, few enough that
#: the workers finish together and the first results come soon.
MAX_PART_FILES = 16
#: Fewer files than this are scored in this process: starting workers would cost more.
MIN_FILES = 8
#: Linux's ``prctl`` option that signals a process when the one that forked it dies.
_PR_SET_PDEATHSIG = 1
#: glibc's ``mallopt`` parameters (malloc.h), and what a worker sets them to: memory blocks up to
#: this size come from the worker's heap and stay there when freed.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEPT_BYTES = 64 << 20

ScorePart = Callable[[list[Path]], list[Any]]
#: What this worker process does with each part (set once, when it starts).
_score_part: ScorePart | None = None


def scored_files(
    files: Sequence[Path],
    workers: int,
    score_here: Callable[[Sequence[Path], int], Iterable[Any]],
    initializer: Callable[[], object] | None = None,
) -> Iterator[Any]:
    """The results of ``files``, in order: ``score_here(files, workers)`` (this process, on
    ``workers`` threads), or where forking pays, ``score_here(part, 1)`` for parts of them in
    ``workers`` forked processes (:func:`scored_in_processes`, with ``initializer``)."""
    if not forking_pays(len(files), workers):
        return iter(score_here(files, workers))

    def score_part(part: list[Path]) -> list[Any]:
        return list(score_here(part, 1))

    return scored_in_processes(score_part, files, workers, initializer)


def forking_pays(files: int, workers: int) -> bool:
    """Whether ``files`` are scored in ``workers`` forked processes rather than in this one."""
    if workers <= 1 or files < MIN_FILES or sys.platform != "linux":
        return False
    import multiprocessing

    return threading.active_count() == 1 and multiprocessing.parent_process() is None


def scored_in_processes(
    score_part: ScorePart,
    files: Sequence[Path],
    workers: int,
    initializer: Callable[[], object] | None = None,
) -> Iterator[Any]:
    """``score_part(part)``'s results for consecutive parts of ``files``, in order, computed in
    ``workers`` forked processes (at most two parts each in flight, so memory stays flat);
    ``initializer`` runs once in each (one thread for a library's own pool, say).

    A worker that dies (killed for memory, say) ends the run with an :class:`AetkError`; an
    interrupted or abandoned run lets each worker finish its part and waits for it, so that no
    process outlives the run."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    parts = _parts(files, workers)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_worker,
        initargs=(score_part, os.getpid(), initializer),
    )
    thawed = _freeze_objects()
    try:
        for done in submitted_in_order(pool, _score, parts, 2 * workers):
            yield from _results(done)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if thawed:
            gc.unfreeze()


def _freeze_objects() -> bool:
    """Move every object of this process out of the garbage collector's sight for the run
    (``gc.freeze``, as Python's documentation advises before forking): a worker's collections
    would otherwise walk the parent's objects (torch's among them, about 190,000) and write to
    each, copying every page that holds one. True when they are to be thawed after the run:
    not when the caller had frozen objects of its own, which stay as it left them."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


def _parts(files: Sequence[Path], workers: int) -> list[list[Path]]:
    """Consecutive parts of ``files``, each a quarter of a worker's share of the files still
    left (at most :data:`MAX_PART_FILES`): they shrink towards the end, so that no worker sits
    idle while another finishes a large last part."""
    parts: list[list[Path]] = []
    first = 0
    while first < len(files):
        size = max(1, min(MAX_PART_FILES, math.ceil((len(files) - first) / (4 * workers))))
        parts.append(list(files[first : first + size]))
        first += size
    return parts


def _results(part: Future[list[Any]]) -> list[Any]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        return part.result()
    except BrokenProcessPool:
        raise AetkError(
            "a scoring process died before it finished (out of memory?); "
            "AETK_WORKERS=1 scores in one process"
        ) from None


def _start_worker(
    score_part: ScorePart, parent: int, initializer: Callable[[], object] | None
) -> None:
    global _score_part
    _score_part = score_part
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if initializer is not None:
        initializer()
    _keep_freed_memory(libc)
    # Ctrl-C reaches the whole process group: the parent stops the run, the workers finish
    # their part instead of printing tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed outright cannot stop its workers, and they would wait for parts forever.
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _keep_freed_memory(libc: Any) -> None:
    """By glibc's default, each clip's buffers of a few megabytes are mapped afresh and handed
    back to the system when freed, so every page is faulted in again at the next clip: a tenth
    of a worker's time (docs/performance.md). A worker is this run's own and ends with it, so it
    keeps such blocks for the next clip; its memory stays within its largest clip's."""
    mallopt = getattr(libc, "mallopt", None)  # glibc; a no-op elsewhere
    if mallopt is not None:
        mallopt(_M_TRIM_THRESHOLD, _KEPT_BYTES)
        mallopt(_M_MMAP_THRESHOLD, _KEPT_BYTES)


def _score(part: list[Path]) -> list[Any]:
    assert _score_part is not None, "a worker scores only after it started"
    return _score_part(part)
