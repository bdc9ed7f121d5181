"""A folder watch's ``--state`` on disk: the files scored (each with its modification time and
size when scored) and the alerts open, so that a restart neither scores an unchanged file again
nor raises an alert again; and the lock that keeps a second watch off it.

The state is a snapshot (``FILE``, JSON, written atomically, the one before kept as
``FILE.previous``) and a journal beside it (``FILE.journal``, JSON Lines) of what changed since.
A folder that keeps every recording has a state that grows without end (200,000 recordings: 24
MB), and rewriting it after each new recording wrote that much every few seconds to a recorder's
SD card; the journal takes one short line for each write instead. The snapshot is written anew
(with a new journal) when the journal has grown to half its size, and when the watch stops, so
that the state at rest is one file, as an earlier aetk reads it."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from aetk_core.errors import ConfigError
from aetk_core.fileio import atomic_write_text, ensure_folder

#: The journal is folded into a new snapshot once it holds this share of the snapshot's bytes
#: (and at least :data:`JOURNAL_BYTES`): replaying it at a start stays cheap, and the snapshot is
#: rewritten about once per this share of the folder's recordings scored anew.
JOURNAL_SHARE = 0.5
JOURNAL_BYTES = 1 << 16

Scored = dict[str, list[int] | None]
_ABSENT = object()


class StateFile:
    """The state kept at ``path`` (None: kept nowhere, every write a no-op)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._written: Scored = {}  # as the snapshot and the journal now hold it
        self._active: object = None
        self._generation = 0  # the snapshot's; a journal of another belongs to no snapshot here
        self._snapshot_bytes = 0
        self._journal_bytes: int | None = None  # None: no journal to append to (write a snapshot)

    @property
    def journal(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + ".journal")

    def read(self) -> tuple[Scored, Any]:
        """The files scored and the alerts open as last written: the snapshot (or the copy
        before it, where it is unreadable) with the journal's changes since. A journal line cut
        short by a crash ends the journal there."""
        state = _read_snapshot(self.path)
        stamps = state.get("stamps")
        stamps = stamps if isinstance(stamps, dict) else {}
        scored: Scored = {str(key): stamps.get(key) for key in state.get("scored", [])}
        active = state.get("active", False)
        generation = state.get("generation", 0)
        self._generation = generation if isinstance(generation, int) else 0
        if self.path is not None and state:
            self._snapshot_bytes = _size(self.path)
            records = _journal_records(self.journal, self._generation)
            if records is not None:
                self._journal_bytes = _size(self.journal)
                for record in records:
                    changed, forgot = record.get("scored", {}), record.get("forgot", [])
                    scored.update(changed if isinstance(changed, dict) else {})
                    for key in forgot if isinstance(forgot, list) else []:
                        scored.pop(key, None)
                    active = record.get("active", active)
        self._written, self._active = dict(scored), active
        return scored, active

    def write(self, scored: Scored, active: Any, fold: bool = False) -> None:
        """Keep ``scored`` and ``active``: one journal line of what changed since the last write,
        or a new snapshot where the journal is due to be folded into one. ``fold``: a snapshot
        wherever the journal holds anything (as the watch stops: the state at rest is one file).

        :raises OSError: it could not be written (a full disk); the next write writes a
            snapshot, so that a line cut short is never followed by another.
        """
        if self.path is None:
            return
        changed = {
            key: stamp for key, stamp in scored.items() if self._written.get(key, _ABSENT) != stamp
        }
        forgot = sorted(self._written.keys() - scored.keys())
        unchanged = not changed and not forgot and active == self._active
        if fold:
            if not unchanged or self._journal_bytes != self._header_bytes:
                self._write_snapshot(scored, active)
            return
        if unchanged:
            return
        due = max(JOURNAL_BYTES, JOURNAL_SHARE * self._snapshot_bytes)
        if self._journal_bytes is None or self._journal_bytes >= due:
            self._write_snapshot(scored, active)
            return
        self._append(json.dumps({"scored": changed, "forgot": forgot, "active": active}) + "\n")
        self._written, self._active = dict(scored), active

    @property
    def _header_bytes(self) -> int:
        return len(self._header(self._generation))

    @staticmethod
    def _header(generation: int) -> str:
        return json.dumps({"generation": generation}) + "\n"

    def _write_snapshot(self, scored: Scored, active: Any) -> None:
        """Write the whole state atomically, keeping the one before as ``*.previous``, and start
        its journal afresh: the files scored, each one's ``[mtime_ns, size]`` when scored
        (``stamps``, beside the list an earlier aetk reads), and the alerts open."""
        assert self.path is not None
        self._journal_bytes = None
        if self.path.exists():
            with suppress(OSError):
                os.replace(self.path, _previous(self.path))
        stamps = {key: stamp for key, stamp in sorted(scored.items()) if stamp is not None}
        generation = self._generation + 1
        snapshot = json.dumps(
            {"scored": sorted(scored), "stamps": stamps, "active": active, "generation": generation}
        )
        atomic_write_text(self.path, snapshot + "\n")
        self._generation, self._snapshot_bytes = generation, len(snapshot) + 1
        self._written, self._active = dict(scored), active
        atomic_write_text(self.journal, self._header(generation))
        self._journal_bytes = self._header_bytes

    def _append(self, line: str) -> None:
        journal_bytes, self._journal_bytes = self._journal_bytes, None  # until the line is whole
        with open(self.journal, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self._journal_bytes = (journal_bytes or 0) + len(line.encode("utf-8"))


def _journal_records(journal: Path, generation: int) -> Iterator[dict[str, Any]] | None:
    """The records of ``journal`` written after the snapshot of ``generation`` (None: no such
    journal: none, unreadable, or one of another snapshot, left by a crash between the two)."""
    try:
        lines = journal.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0]) if lines else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(header, dict) or header.get("generation") != generation:
        return None
    return _records(lines[1:])


def _records(lines: list[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            return  # cut short by a crash: nothing after it was written whole
        if isinstance(record, dict):
            yield record


def _read_snapshot(path: Path | None) -> dict[str, Any]:
    """The last snapshot written, or the copy before it when it is unreadable (a crash or a
    full disk mid-write); an unreadable one is kept beside as ``*.corrupt``, never lost."""
    if path is None:
        return {}
    for candidate in (path, _previous(path)):
        if not candidate.exists():
            continue
        try:
            state = json.loads(candidate.read_text())
            if not isinstance(state, dict) or not isinstance(state.get("scored", []), list):
                raise ValueError("not a watch state")
        except (OSError, ValueError) as exc:
            kept = candidate.with_name(candidate.name + ".corrupt")
            with suppress(OSError):
                os.replace(candidate, kept)
            print(
                f"warning: {candidate}: unreadable watch state ({exc}); kept as {kept}",
                file=sys.stderr,
            )
            continue
        if candidate != path:
            print(
                f"warning: {path}: resuming from the copy before it, {candidate}", file=sys.stderr
            )
        return state
    return {}


def _previous(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@contextmanager
def state_lock(path: Path | None) -> Iterator[None]:
    """Hold ``*.lock`` beside the state file while watching: a second watcher on the same state
    is refused rather than letting two processes overwrite each other's state."""
    if path is None:
        yield
        return
    import fcntl

    lock = path.with_name(path.name + ".lock")
    ensure_folder(path.parent, f"--state {path}")
    try:
        handle = open(lock, "a+")  # noqa: SIM115 (closed below, also on a refusal)
    except OSError as exc:
        raise ConfigError(
            f"--state {path}: cannot keep the watch's state there ({exc.strerror or exc})"
        ) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise ConfigError(
                f"{path}: already used by another aetk watch (pid {owner}); give each watch its "
                "own --state"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
