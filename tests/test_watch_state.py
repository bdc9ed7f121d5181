"""A folder watch's ``--state`` (``aetk_core.watch.state.StateFile``): a snapshot and a journal of
what changed since, so that a folder keeping every recording is not rewritten whole after each
new one; read back whole after a restart, a crash mid-line, a crash between the two files, or a
full disk."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from aetk_core.watch import state as state_module
from aetk_core.watch.state import JOURNAL_SHARE, StateFile


def recordings(count: int, first: int = 0) -> dict[str, list[int] | None]:
    return {
        f"/data/day{i // 1000:03d}/rec{i % 1000:04d}.wav": [i, 320044]
        for i in range(first, first + count)
    }


def journaled(tmp_path: Path, count: int) -> tuple[Path, StateFile, dict[str, list[int] | None]]:
    """A state of ``count`` recordings in its snapshot and one more in its journal."""
    path = tmp_path / "state.json"
    kept = StateFile(path)
    scored = recordings(count)
    kept.write(scored, False)
    scored.update(recordings(1, count))
    kept.write(scored, False)
    return path, kept, scored


def test_a_new_recording_adds_a_line_and_leaves_the_snapshot_as_it_was(tmp_path):
    """A folder of 5,000 recordings: each new one had rewritten the whole state (24 MB at
    200,000); now one line of the journal, and a restart reads every recording back."""
    path = tmp_path / "state.json"
    kept = StateFile(path)
    scored = recordings(5000)
    kept.write(scored, False)
    snapshot = path.read_bytes()
    for index in range(5000, 5010):
        scored.update(recordings(1, index))
        before = kept.journal.stat().st_size
        kept.write(scored, False)
        assert kept.journal.stat().st_size - before < 200  # one line, not the folder's list
    del scored["/data/day000/rec0000.wav"]  # rotated away, and forgotten by a walk
    kept.write(scored, {"pump": True})
    assert path.read_bytes() == snapshot
    assert StateFile(path).read() == (scored, {"pump": True})


def test_the_journal_is_folded_into_the_snapshot_once_it_holds_half_as_much(tmp_path, monkeypatch):
    monkeypatch.setattr(state_module, "JOURNAL_BYTES", 0)  # the share alone decides
    path = tmp_path / "state.json"
    kept = StateFile(path)
    scored = recordings(200)
    kept.write(scored, False)
    snapshot_bytes = path.stat().st_size
    index = 200
    while kept.journal.stat().st_size < JOURNAL_SHARE * snapshot_bytes:
        scored.update(recordings(1, index))
        index += 1
        kept.write(scored, False)
    scored.update(recordings(1, index))
    kept.write(scored, False)  # the journal is due: a snapshot
    assert len(kept.journal.read_text().splitlines()) == 1  # its header alone
    assert len(json.loads(path.read_text())["scored"]) == len(scored)
    assert json.loads((tmp_path / "state.json.previous").read_text())["scored"][-1].endswith(
        "rec0199.wav"
    )
    assert StateFile(path).read() == (scored, False)


def test_a_watch_that_stops_leaves_one_file_as_an_earlier_aetk_reads_it(tmp_path):
    path, kept, scored = journaled(tmp_path, 100)
    scored.update(recordings(2, 101))
    kept.write(scored, True)
    kept.write(scored, True, fold=True)
    state = json.loads(path.read_text())
    assert sorted(state["scored"]) == sorted(scored) and state["active"] is True
    assert state["stamps"] == scored
    assert len(kept.journal.read_text().splitlines()) == 1
    modified = path.stat().st_mtime_ns
    kept.write(scored, True, fold=True)  # nothing new since: not written again
    assert path.stat().st_mtime_ns == modified


def test_a_journal_line_cut_short_by_a_crash_ends_the_journal(tmp_path):
    path, kept, scored = journaled(tmp_path, 10)
    with open(kept.journal, "a") as journal:
        journal.write('{"scored": {"/data/day000/rec0011.wav": [11, 3')  # power lost mid-line
    assert StateFile(path).read() == (scored, False)


def test_a_journal_left_from_before_the_last_snapshot_is_not_replayed(tmp_path):
    """A crash between writing a snapshot and starting its journal leaves the old journal: its
    changes are already in the snapshot, and replayed over it they would bring back recordings
    forgotten since."""
    path, kept, scored = journaled(tmp_path, 10)
    old_journal = kept.journal.read_text()
    del scored["/data/day000/rec0010.wav"]
    kept.write(scored, False, fold=True)
    kept.journal.write_text(old_journal)  # as if the crash came before the new journal
    assert StateFile(path).read() == (scored, False)


def test_a_state_from_an_earlier_aetk_is_read_and_its_first_write_is_a_snapshot(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"scored": ["/data/a.wav"], "active": True}))
    kept = StateFile(path)
    assert kept.read() == ({"/data/a.wav": None}, True)
    kept.write({"/data/a.wav": [1, 2], "/data/b.wav": [3, 4]}, False)
    assert json.loads(path.read_text())["stamps"] == {"/data/a.wav": [1, 2], "/data/b.wav": [3, 4]}


def test_after_a_full_disk_cut_a_line_short_the_next_write_is_a_snapshot(tmp_path, monkeypatch):
    """A line cut short mid-journal would end the journal there, and every line after it
    would be lost at a restart."""
    path, kept, scored = journaled(tmp_path, 10)

    class FullDisk:
        """A journal opened on a disk that fills up halfway through the next line."""

        def __init__(self, *arguments, **keywords) -> None:
            self.handle = open(*arguments, **keywords)  # noqa: SIM115 (closed in __exit__)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exception) -> None:
            self.handle.close()

        def write(self, text: str) -> None:
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state_module, "open", FullDisk, raising=False)
    scored.update(recordings(1, 11))
    with pytest.raises(OSError):
        kept.write(scored, False)
    monkeypatch.undo()
    scored.update(recordings(1, 12))
    kept.write(scored, False)
    scored.update(recordings(1, 13))
    kept.write(scored, False)
    assert StateFile(path).read() == (scored, False)


def test_a_state_kept_nowhere_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kept = StateFile(None)
    assert kept.read() == ({}, False)
    kept.write(recordings(3), True, fold=True)
    assert list(Path(tmp_path).iterdir()) == []
