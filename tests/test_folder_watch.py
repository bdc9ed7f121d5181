"""A watched folder's new files (``aetk_core.watch.sources.FolderWatch``): each recording once,
when complete, links and loops and files that come and go, and a folder that keeps every
recording it was ever given. Each test runs where the whole folder is walked at every poll (no
watchdog, or a network filesystem) and, where watchdog is installed, where the files it reports
are looked at between walks."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from aetk_core.watch.sources import REST_FACTOR, SETTLE_FLOOR, FolderWatch

from aetk import synth

RATE = 16000


@pytest.fixture(params=["walks", "watchdog"])
def mode(request, monkeypatch) -> str:
    """``walks``: watchdog hidden, every poll walks the whole folder; ``watchdog``: the files it
    reports are looked at on their own between walks."""
    if request.param == "walks":
        monkeypatch.setitem(sys.modules, "watchdog.observers", None)  # its import fails
    else:
        pytest.importorskip("watchdog", reason="aetk watch's extra: pip install 'aetk[watch]'")
    return request.param


def folder_of_clips(folder: Path, count: int, seed: int) -> Path:
    """``folder`` holding ``count`` copies of one half-second normal clip."""
    folder.mkdir()
    clip = synth.normal_clip(np.random.default_rng(seed), 0.5)
    for index in range(count):
        soundfile.write(folder / f"f{index:04d}.wav", clip, RATE)
    return folder


def until(condition, seconds: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def ready_after_wait(watcher: FolderWatch, rounds: int = 50) -> list[Path]:
    """What the watcher finds ready at its first poll that finds any, as the watch polls it."""
    for _ in range(rounds):
        watcher.wait()
        found = watcher.ready()
        if found:
            return found
    return []


def test_a_link_to_a_recording_beside_it_is_not_a_second_recording(tmp_path, mode):
    """A recorder's latest.wav, a link to its newest file: both were ready, the recording was
    scored twice, and marking it scored the second time ended the watch in a KeyError."""
    folder = folder_of_clips(tmp_path / "linked", 2, seed=9)
    os.symlink("f0001.wav", folder / "latest.wav")
    scored: dict[str, list[int] | None] = {}
    watcher = FolderWatch(folder, scored, settle=0.05)
    watcher.ready()  # first seen
    time.sleep(0.1)
    ready = watcher.ready()
    assert ready == [folder / "f0000.wav", folder / "f0001.wav"]  # the file, not its link
    for path in ready:
        watcher.mark_scored(path)
    assert sorted(scored) == [str((folder / name).resolve()) for name in ("f0000.wav", "f0001.wav")]
    os.replace(folder / "latest.wav", folder / "old-link.wav")  # the link moves on: nothing new
    os.symlink("f0000.wav", folder / "latest.wav")
    time.sleep(0.1)
    assert watcher.ready() == []
    watcher.close()


def test_walks_of_a_large_folder_take_a_tenth_of_the_time_however_often_files_arrive(
    tmp_path, mode, monkeypatch
):
    """A walk reads the status of every recording the folder keeps (0.45 s at 50,000 files
    here): the next one comes no sooner than nine times as long as the last took, even while
    new files keep arriving (and watchdog keeps waking the watch), so that walking never takes
    more than a tenth of a core."""
    from aetk_core.watch import sources

    walks = []
    walk = sources.audio_entries

    def slow_walk(folder, onerror=None):
        walks.append(time.monotonic())
        time.sleep(0.05)  # as a walk of some 5,000 files takes
        return walk(folder, onerror)

    monkeypatch.setattr(sources, "audio_entries", slow_walk)
    watcher = FolderWatch(tmp_path, {}, settle=0.0, interval=0.01)
    clip = synth.normal_clip(np.random.default_rng(5), 0.1)
    started = time.monotonic()
    arrived = 0
    while time.monotonic() - started < 1.2:
        watcher.ready()
        soundfile.write(tmp_path / f"f{arrived:03d}.wav", clip, RATE)
        arrived += 1
        watcher.wait()
    assert arrived >= 3
    gaps = np.diff(walks)
    assert len(walks) >= 2 and gaps.min() >= (1 + REST_FACTOR) * 0.05 * 0.95, gaps
    watcher.close()


def test_a_file_first_read_at_the_end_of_a_long_walk_has_not_settled_when_read_again(
    tmp_path, monkeypatch
):
    """A walk of a large folder takes seconds: a file first read at its end, and read again at
    once by a look at what watchdog reported, counted as unchanged since the walk began, and
    could be scored half-written."""
    pytest.importorskip("watchdog", reason="aetk watch's extra: pip install 'aetk[watch]'")
    from aetk_core.watch import sources

    folder = folder_of_clips(tmp_path / "large", 1, seed=12)
    walk = sources.audio_entries

    def long_walk(folder, onerror=None):
        time.sleep(0.6)  # the other files of a large folder, read before this one
        return walk(folder, onerror)

    monkeypatch.setattr(sources, "audio_entries", long_walk)
    watcher = FolderWatch(folder, {}, settle=0.5)
    assert watcher.ready() == []  # first read, at the walk's end
    watcher._walk_due = time.monotonic() + 30
    assert watcher.ready() == []  # read again at once: not yet unchanged for 0.5 s
    time.sleep(0.55)
    assert watcher.ready() == [folder / "f0000.wav"]
    watcher.close()


def test_a_file_watchdog_reports_touched_waits_its_settle_time_again(tmp_path):
    """A writer's last steps can leave a file's size as it was, and its modification time too
    within a clock tick (libsndfile rewrites a WAV file's header as it closes it): a file
    watchdog reports touched has not settled, whatever its stamp says."""
    pytest.importorskip("watchdog", reason="aetk watch's extra: pip install 'aetk[watch]'")
    from watchdog.events import FileModifiedEvent

    folder = folder_of_clips(tmp_path / "written", 1, seed=13)
    watcher = FolderWatch(folder, {}, settle=0.3)
    watcher.ready()  # first seen
    watcher._walk_due = time.monotonic() + 30
    time.sleep(0.35)
    watcher._heard(FileModifiedEvent(str(folder / "f0000.wav")))
    assert watcher.ready() == []  # touched just now
    time.sleep(0.35)
    assert watcher.ready() == [folder / "f0000.wav"]
    watcher.close()


def test_two_readings_closer_than_a_few_clock_ticks_never_show_a_file_settled(tmp_path, mode):
    """``--settle 0``: a file read twice in a row had counted as settled, though a writer's
    last step within the same clock tick leaves its stamp as it was."""
    folder = folder_of_clips(tmp_path / "quick", 1, seed=14)
    watcher = FolderWatch(folder, {}, settle=0.0, interval=0.0)
    assert watcher.ready() == []  # first seen
    assert watcher.ready() == []  # again at once
    time.sleep(SETTLE_FLOOR)
    assert watcher.ready() == [folder / "f0000.wav"]
    watcher.close()


def test_a_file_rewritten_again_and_again_is_scored_at_most_once_a_rewrite(tmp_path, mode):
    """``--settle 0`` and a recorder that rewrites latest.wav: 100 rewrites had been scored 107
    times, and 154 times once watchdog's reports were looked at between walks: a reading in the
    middle of a write counted as settled."""
    import threading

    folder = tmp_path / "ring"
    folder.mkdir()
    rng = np.random.default_rng(15)
    soundfile.write(folder / "latest.wav", synth.normal_clip(rng, 1.0), RATE)
    watcher = FolderWatch(folder, {}, settle=0.0, interval=0.05)
    scored, stopping = [], threading.Event()

    def watch() -> None:
        while not stopping.is_set():
            for path in watcher.ready():
                watcher.mark_scored(path)
                scored.append(path)
            watcher.wait()

    watching = threading.Thread(target=watch)
    watching.start()
    assert until(lambda: len(scored) == 1)
    rewrites = 25
    for _ in range(rewrites):
        soundfile.write(folder / "latest.wav", synth.normal_clip(rng, 1.0), RATE)
        time.sleep(0.12)
    time.sleep(0.3)
    stopping.set()
    watching.join(10)
    watcher.close()
    assert rewrites // 2 <= len(scored) - 1 <= rewrites


def test_a_new_file_in_a_large_folder_is_found_without_walking_it(tmp_path):
    """With watchdog, a file it reports is looked at on its own: found once it has settled, not
    at the next walk of a folder whose walks come half a minute apart."""
    pytest.importorskip("watchdog", reason="aetk watch's extra: pip install 'aetk[watch]'")
    folder = folder_of_clips(tmp_path / "kept", 3, seed=4)
    scored: dict[str, list[int] | None] = {}
    watcher = FolderWatch(folder, scored, settle=0.2)
    watcher.ready()  # first seen
    time.sleep(0.25)
    for path in watcher.ready():
        watcher.mark_scored(path)
    assert len(scored) == 3
    # As after a walk of some 300,000 files: the next one is half a minute away.
    watcher._walk_seconds, watcher._walk_due = 3.0, time.monotonic() + 30
    started = time.monotonic()
    soundfile.write(folder / "new.wav", synth.normal_clip(np.random.default_rng(1), 0.5), RATE)
    assert ready_after_wait(watcher) == [folder / "new.wav"]
    assert time.monotonic() - started < 10  # a second or less here; a walk was 30 s away
    assert watcher._walk_seconds == 3.0  # found without a walk
    watcher.mark_scored(folder / "new.wav")
    # Written into a hidden folder, then moved into place: a folder's move brings files that
    # send no events of their own, so the next poll walks the whole folder.
    hidden = folder / ".incoming"
    hidden.mkdir()
    (hidden / "batch").mkdir()
    soundfile.write(
        hidden / "batch" / "a.wav", synth.normal_clip(np.random.default_rng(2), 0.5), RATE
    )
    moved = time.monotonic()
    os.rename(hidden / "batch", folder / "batch")
    assert ready_after_wait(watcher) == [folder / "batch" / "a.wav"]
    assert time.monotonic() - moved < 10 and watcher._walk_seconds != 3.0  # a walk, at once
    watcher.close()


def test_events_the_kernel_dropped_make_the_next_poll_walk_the_folder(tmp_path):
    """A burst of files can overflow the kernel's queue of events; watchdog then says events
    were lost, and only a walk of the whole folder can tell which files came."""
    pytest.importorskip("watchdog", reason="aetk watch's extra: pip install 'aetk[watch]'")
    from watchdog.events import FileSystemEvent

    folder = folder_of_clips(tmp_path / "burst", 2, seed=11)
    watcher = FolderWatch(folder, {}, settle=0.0)
    watcher.ready()
    watcher._walk_seconds, watcher._walk_due = 3.0, time.monotonic() + 30
    time.sleep(SETTLE_FLOOR)
    for path in watcher.ready():
        watcher.mark_scored(path)
    clip = synth.normal_clip(np.random.default_rng(1), 0.5)
    soundfile.write(folder / "unreported.wav", clip, RATE)
    time.sleep(0.1)
    with watcher._lock:
        watcher._changed.clear()  # as if its events had been dropped
    lost = FileSystemEvent("")
    lost.event_type = "events_lost"
    watcher._heard(lost)
    started = time.monotonic()
    assert ready_after_wait(watcher) == [folder / "unreported.wav"]
    assert time.monotonic() - started < 10  # at once, not at the walk due in 30 s
    assert watcher._walk_seconds != 3.0  # found by a walk
    watcher.close()


def test_a_hidden_or_not_audio_file_reported_changed_is_never_ready(tmp_path):
    """A file watchdog reports goes through the walk's rules: hidden files and folders, other
    suffixes and files in a folder reached through a link (the walk does not follow those) are
    no recordings to score."""
    pytest.importorskip("watchdog", reason="aetk watch's extra: pip install 'aetk[watch]'")
    folder = tmp_path / "watched"
    (folder / ".hidden").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, folder / "linked")
    watcher = FolderWatch(folder, {}, settle=0.0)
    watcher.ready()
    watcher._walk_seconds, watcher._walk_due = 3.0, time.monotonic() + 30
    clip = synth.normal_clip(np.random.default_rng(3), 0.5)
    for path in (folder / ".a.wav", folder / ".hidden" / "b.wav", elsewhere / "c.wav"):
        soundfile.write(path, clip, RATE)
    (folder / "notes.txt").write_text("not a recording")
    soundfile.write(folder / "d.wav", clip, RATE)
    assert ready_after_wait(watcher) == [folder / "d.wav"]
    watcher.mark_scored(folder / "d.wav")
    time.sleep(0.1)
    assert watcher.ready() == [] and watcher._walk_seconds == 3.0  # looked at, not walked
    watcher.close()


def test_a_link_pointed_elsewhere_before_it_settled_leaves_nothing_waiting(tmp_path):
    """A recorder's latest.wav pointed at one recording, then at the next before the first
    settled: the first was left waiting for ever (until the next walk of the folder, half a
    minute in a large one), and the watch, finding it past its settle time, polled without
    rest."""
    pytest.importorskip("watchdog", reason="aetk watch's extra: pip install 'aetk[watch]'")
    folder, elsewhere = tmp_path / "watched", tmp_path / "recorder"
    folder.mkdir()
    elsewhere.mkdir()
    clip = synth.normal_clip(np.random.default_rng(10), 0.5)
    for name in ("a.wav", "b.wav"):
        soundfile.write(elsewhere / name, clip, RATE)
    watcher = FolderWatch(folder, {}, settle=0.3)
    watcher.ready()
    watcher._walk_seconds, watcher._walk_due = 3.0, time.monotonic() + 30
    os.symlink(elsewhere / "a.wav", folder / "latest.wav")
    assert until(lambda: watcher.ready() == [] and len(watcher._unsettled) == 1)
    os.symlink(elsewhere / "b.wav", folder / "next.wav")
    os.replace(folder / "next.wav", folder / "latest.wav")
    time.sleep(0.1)
    assert watcher.ready() == []
    assert list(watcher._unsettled) == [str((elsewhere / "b.wav").resolve())]
    assert ready_after_wait(watcher) == [folder / "latest.wav"]
    assert watcher._walk_seconds == 3.0
    watcher.close()


def test_files_scored_and_since_removed_are_forgotten_unless_the_folder_went_away(tmp_path, mode):
    """A recorder that rotates its files would grow the state without end; a folder unmounted
    for a while must not make its files new again (every one would be scored and alerted
    twice). Forgotten by a walk of the whole folder, the only thing that can tell the two
    apart."""
    folder = tmp_path / "rotating"
    folder.mkdir()
    clip = synth.normal_clip(np.random.default_rng(6), 0.5)
    for name in ("a.wav", "b.wav", "c.wav"):
        soundfile.write(folder / name, clip, RATE)
    (folder / "._a.wav").write_bytes(b"resource fork")  # hidden: never a recording to score
    scored: dict[str, list[int] | None] = {}
    watcher = FolderWatch(folder, scored, settle=0.0, interval=0.05)
    watcher.ready()  # first seen
    time.sleep(SETTLE_FLOOR)
    for path in watcher.ready():
        watcher.mark_scored(path)
    assert len(scored) == 3
    (folder / "a.wav").unlink()
    # A link left pointing to a file rotated away stops nothing from being forgotten.
    os.symlink("rotated-away.wav", folder / "latest.wav")
    assert until(lambda: watcher.ready() == [] and len(scored) == 2)
    assert sorted(Path(key).name for key in scored) == ["b.wav", "c.wav"]
    for path in folder.iterdir():  # unmounted: an empty mount point
        path.unlink()
    time.sleep(0.2)  # walked again meanwhile
    assert watcher.ready() == [] and len(scored) == 2
    watcher.close()


def test_a_file_gone_before_it_settled_is_forgotten_and_settles_afresh_when_back(tmp_path, mode):
    """A file moved away before it settled was remembered for ever (a recorder that hands its
    files on at once grew the watch's memory by one entry each), and one put back with its old
    size and time counted as settled since it was first seen, though it had just been copied."""
    folder = tmp_path / "handed-on"
    folder.mkdir()
    soundfile.write(folder / "a.wav", synth.normal_clip(np.random.default_rng(8), 0.5), RATE)
    kept = (folder / "a.wav").read_bytes(), (folder / "a.wav").stat().st_mtime_ns
    watcher = FolderWatch(folder, {}, settle=0.3)
    assert watcher.ready() == []  # first seen
    (folder / "a.wav").unlink()
    time.sleep(0.35)
    assert watcher.ready() == [] and watcher._unsettled == {}
    (folder / "a.wav").write_bytes(kept[0])  # copied back as `cp -p` would
    os.utime(folder / "a.wav", ns=(kept[1], kept[1]))
    time.sleep(0.05)
    assert watcher.ready() == []  # not settled: it was just written
    time.sleep(0.35)
    assert watcher.ready() == [folder / "a.wav"]
    watcher.close()


def test_a_symbolic_link_in_a_loop_does_not_end_a_folder_watch(tmp_path, mode):
    """Resolving such a link raised RuntimeError, and the watch's thread ended in a traceback."""
    folder = tmp_path / "looped"
    folder.mkdir()
    soundfile.write(folder / "good.wav", synth.normal_clip(np.random.default_rng(7), 0.5), RATE)
    scored: dict[str, list[int] | None] = {}
    watcher = FolderWatch(folder, scored, settle=0.0)
    os.symlink("loop_b.wav", folder / "loop_a.wav")
    os.symlink("loop_a.wav", folder / "loop_b.wav")
    time.sleep(0.05)
    watcher.ready()  # first seen
    time.sleep(SETTLE_FLOOR)
    ready = watcher.ready()
    assert ready == [folder / "good.wav"]
    watcher.mark_scored(ready[0])
    assert list(scored) == [str((folder / "good.wav").resolve())]
    watcher.close()
