"""aetk watch on a long stream: one hour of simulated machine sound fed through the monitor's
stream loop in 0.1-s blocks, as a microphone would deliver it. Prints windows scored per second
against real time, the peak resident memory at the start and at the end (flat memory), and the
alert latency a window, hop and compute time give. Then a backlog of ``--folder-files`` files
scored with ``--state``, and a folder that keeps ``--kept-files`` recordings, all scored: how long
a walk of it takes, and how soon a new recording written into it is found.

    ./dev python bench/watch.py [--minutes 60] [--folder-files 10000] [--kept-files 200000]

Writes bench/results/watch.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from aetk_core.watch.monitor import WatchOptions
from aetk_core.watch.sources import REST_FACTOR, SETTLE_FLOOR, FolderWatch, StreamFormat
from aetk_core.watch.state import StateFile

import aetk
from aetk import synth
from aetk.watch.monitor import Monitor

HERE = Path(__file__).resolve().parent
RATE = 16000


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--folder-files", type=int, default=10_000)
    parser.add_argument("--kept-files", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        train = synth.write_dataset(
            Path(folder), train=16, test_normal=0, test_per_anomaly=0, seconds=2.0, seed=3
        )["train"]
        detector = aetk.fit(train)
    rng = np.random.default_rng(0)
    pool = [synth.normal_clip(rng, 2.0) for _ in range(30)]  # 60 s of sound, played in a loop
    seconds = args.minutes * 60
    marks: dict[str, float] = {}

    def blocks():
        block = RATE // 10
        for index in range(int(seconds * 10)):
            clip = pool[(index // 20) % len(pool)]
            offset = (index % 20) * block
            if index == int(seconds * 10 * 0.1):
                marks["peak_mb_after_10_percent"] = peak_mb()
            yield clip[None, offset : offset + block]

    events: list[dict] = []
    monitor = Monitor(detector, "simulated", WatchOptions(), events.append)
    started = time.perf_counter()
    monitor.run_stream(StreamFormat(RATE, 1, "<f4", 1.0), blocks())
    elapsed = time.perf_counter() - started
    windows = sum(event["event"] == "scored" for event in events)
    window = detector.clip_seconds
    figures = {
        "stream_seconds": seconds,
        "windows_scored": windows,
        "wall_seconds": elapsed,
        "windows_per_second": windows / elapsed,
        "real_time_factor": seconds / elapsed,
        "compute_ms_per_window": 1000 * elapsed / windows,
        "window_seconds": window,
        "hop_seconds": window / 2,
        "alert_latency_seconds_confirm_2": window + window / 2 + elapsed / windows,
        "peak_mb_after_10_percent": marks.get("peak_mb_after_10_percent"),
        "peak_mb_at_end": peak_mb(),
        "alerts_on_normal_sound": sum(event["event"] == "anomaly_start" for event in events),
    }
    if args.folder_files:
        figures.update(folder_figures(detector, pool[0], args.folder_files))
    if args.kept_files:
        figures.update(kept_folder_figures(pool[0], args.kept_files))
    out = HERE / "results" / "watch.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


def folder_figures(detector, clip: np.ndarray, count: int) -> dict:
    """A folder of ``count`` recordings (links to one 2-s clip, 1,000 a subfolder) scored as a
    backlog by a folder watch with ``--state``."""
    with tempfile.TemporaryDirectory() as work:
        folder, state = kept_folder(Path(work), clip, count), Path(work, "state.json")
        options = WatchOptions(settle=0.0, interval=0.05, state=state)
        monitor = Monitor(detector, str(folder), options, lambda event: None)
        started = time.perf_counter()
        runner = threading.Thread(target=monitor.run_folder, args=(folder,))
        runner.start()
        while monitor.scored < count:
            time.sleep(0.05)
        backlog = time.perf_counter() - started
        monitor.stopping = True
        runner.join()
    return {"folder_files": count, "folder_backlog_seconds": backlog}


def kept_folder_figures(clip: np.ndarray, count: int) -> dict:
    """A folder that keeps ``count`` recordings, all scored (links to one 2-s clip, 1,000 a
    subfolder): the median of 5 walks of it, how often it is walked, how long after a new
    recording is written the watch finds it (``aetk watch``'s defaults: 1-s settle and
    interval; watchdog, where installed, reports the file between walks), and what keeping it
    in ``--state`` writes."""
    with tempfile.TemporaryDirectory() as work:
        folder = kept_folder(Path(work), clip, count)
        scored: dict[str, list[int] | None] = {}
        marking = FolderWatch(folder, scored, settle=0.0)
        marking.ready()
        time.sleep(SETTLE_FLOOR)
        for path in marking.ready():
            marking.mark_scored(path)
        marking.close()
        walks = []
        for _ in range(5):
            walking = FolderWatch(folder, dict(scored))
            walked = time.perf_counter()
            assert walking.ready() == []  # a watch's first poll walks the folder
            walks.append(time.perf_counter() - walked)
            walking.close()
        state_path = Path(work, "state.json")
        state = StateFile(state_path)
        snapshotting = time.perf_counter()
        state.write(scored, False)  # a first write is a snapshot, as every write once was
        snapshot_seconds = time.perf_counter() - snapshotting
        snapshot_bytes, journal_bytes = state_path.stat().st_size, state.journal.stat().st_size
        found_after = new_recording_found_after(folder, "day000/new.wav", clip, scored)
        keeping = time.perf_counter()
        state.write(scored, False)
        state_seconds = time.perf_counter() - keeping
        journal_bytes = state.journal.stat().st_size - journal_bytes
    walk = statistics.median(walks)
    return {
        "kept_files": count,
        "kept_walk_seconds": walk,
        "kept_walked_every_seconds": max(1.0, REST_FACTOR * walk),
        "kept_new_file_found_after_seconds": found_after,
        "kept_watchdog": importlib.util.find_spec("watchdog") is not None,
        "kept_state_snapshot_bytes": snapshot_bytes,
        "kept_state_snapshot_write_seconds": snapshot_seconds,
        "kept_state_bytes_written_for_a_new_recording": journal_bytes,
        "kept_state_write_seconds_for_a_new_recording": state_seconds,
    }


def kept_folder(work: Path, clip: np.ndarray, count: int) -> Path:
    """``work/kept``, holding ``count`` links to ``clip`` in folders of 1,000."""
    import soundfile

    folder = work / "kept"
    for index in range(count):
        original = work / f"clip{index // 50_000}.wav"  # a file takes 65,000 links
        if index % 50_000 == 0:
            soundfile.write(original, clip, RATE, subtype="PCM_16")
        day = folder / f"day{index // 1000:03d}"
        day.mkdir(parents=True, exist_ok=True)
        os.link(original, day / f"rec{index % 1000:04d}.wav")
    return folder


def new_recording_found_after(folder: Path, name: str, clip: np.ndarray, scored: dict) -> float:
    """Seconds from writing ``clip`` as ``folder/name`` to a watch of ``folder`` (``scored``:
    the files it had scored) finding it ready, polled as a watch polls; marked scored after."""
    import soundfile

    path = folder / name
    watcher = FolderWatch(folder, scored)
    watcher.ready()
    found: list[float] = []

    def poll() -> None:
        while not found:
            watcher.wait()
            if watcher.ready():
                found.append(time.perf_counter())

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(3.0)  # well inside the walks' rest
    written = time.perf_counter()
    soundfile.write(path, clip, RATE, subtype="PCM_16")
    poller.join()
    watcher.mark_scored(path)
    watcher.close()
    return found[0] - written


if __name__ == "__main__":
    raise SystemExit(main())
