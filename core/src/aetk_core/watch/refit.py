"""The detector file a watch judges with, looked at while it watches: when a refit replaces it
(``aetk fit -o detector.aetk`` on this season's normal sound), the watch reads it again rather
than judging with the detector of its start until someone restarts it."""

from __future__ import annotations

import time
from pathlib import Path

#: What tells one version of a file from another: its inode, modification time and size; of a
#: folder of files (a fleet's exported detectors), those of each file in it, by name.
Stamp = tuple[object, ...]


def stamp_of(path: Path) -> Stamp | None:
    """The file's or folder's stamp; None while there is nothing to read (removed, or between
    the two steps of a copy). A folder's hidden files (a writer's temporary files, whose names
    start with a dot) do not count: only what a reader of the folder would load."""
    try:
        if not path.is_dir():
            found = path.stat()
            return found.st_ino, found.st_mtime_ns, found.st_size
        files = []
        for entry in sorted(path.iterdir()):
            if not entry.name.startswith(".") and entry.is_file():
                found = entry.stat()
                files.append((entry.name, found.st_ino, found.st_mtime_ns, found.st_size))
        return tuple(files)
    except OSError:
        return None


class DetectorFileWatch:
    """Says when the file at ``path`` (or the files of the folder at ``path``) has been replaced
    since it was last read, looking at most once every ``every`` seconds.

    A new version counts once it has kept its stamp from one look to the next: a file copied in
    place (scp, a network share) is not read half-written. Once said, it counts as read: a
    version that cannot be loaded is not tried again until the file changes again."""

    def __init__(self, path: Path, every: float):
        self.path, self.every = path, every
        self.read = self.seen = stamp_of(path)
        self._next_look = time.monotonic() + every

    def replaced(self) -> bool:
        now = time.monotonic()
        if now < self._next_look:
            return False
        self._next_look = now + self.every
        stamp = stamp_of(self.path)
        settled = stamp is not None and stamp == self.seen
        self.seen = stamp
        if not settled or stamp == self.read:
            return False
        self.read = stamp
        return True
