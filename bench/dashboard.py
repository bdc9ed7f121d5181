"""aetk watch --dashboard on the shared lathe clips: does an open page slow the scoring, and what
does the page show.

A detector is fitted on ../shared/data/lathe/train; `aetk watch FOLDER --dashboard` runs in its
own process while the 300 test clips are dropped into the folder at once, and the time from the
drop to the last `scored` event is measured with no page open and with two pages open (each
asking for /api/status and /api/alerts every 0.25 s, eight times as often as the page does, and
for every new alert's spectrogram), alternating, three runs each. With --screenshot, 45 of the
clips arrive one every 0.2 s, as a shift brings them, and a headless Chromium then opens the page
and saves what it shows.

    ./dev python bench/dashboard.py [--screenshot docs/dashboard.png] [--runs 0]

Writes bench/results/dashboard.json (not with --runs 0: the screenshot alone).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import aetk

HERE = Path(__file__).resolve().parent
LATHE = HERE.parent.parent / "shared" / "data" / "lathe"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def poll(base: str, stop: threading.Event, counts: list[int]) -> None:
    """A page left open, eight times as eager: status and alerts every 0.25 s, and each new
    alert's spectrogram once."""
    drawn: set[int] = set()
    while not stop.is_set():
        try:
            fetch(base + "/api/status")
            for alert in json.loads(fetch(base + "/api/alerts"))["alerts"]:
                if alert["spectrogram"] and alert["id"] not in drawn:
                    fetch(base + alert["spectrogram"])
                    drawn.add(alert["id"])
            counts[0] += 1
        except OSError:
            pass
        stop.wait(0.25)


def run(
    detector: Path,
    clips: list[Path],
    work: Path,
    pages: int,
    shot: Path | None,
    pace: float = 0.0,
) -> dict:
    folder = work / f"incoming-{time.monotonic_ns()}"
    folder.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "aetk", "watch", str(folder), "-d", str(detector)]
    command += ["--json", "--dashboard", str(port), "--settle", "0.2", "--interval", "0.1"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    while True:
        try:
            fetch(base + "/api/status")
            break
        except OSError:
            time.sleep(0.2)
    time.sleep(5)  # a watch that has been running
    stop, counts = threading.Event(), [0]
    pollers = [threading.Thread(target=poll, args=(base, stop, counts)) for _ in range(pages)]
    for poller in pollers:
        poller.start()
    staging = work / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for clip in clips:
        shutil.copy(clip, staging / clip.name)
    dropped = time.monotonic()
    for clip in clips:
        (staging / clip.name).rename(folder / clip.name)
        time.sleep(pace)
    scored = 0
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line)["event"] in ("scored", "error"):
            scored += 1
            if scored == len(clips):
                break
    seconds = time.monotonic() - dropped
    stop.set()
    for poller in pollers:
        poller.join()
    if shot is not None:
        screenshot(base, shot)
    process.terminate()
    process.communicate(timeout=30)
    return {"pages": pages, "seconds": seconds, "page_requests": counts[0]}


def screenshot(base: str, path: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from conftest import browser

    driver, reason = browser()
    if driver is None:
        raise SystemExit(f"no screenshot: {reason}")
    try:
        driver.set_window_size(1100, 1500)
        driver.get(base + "/")
        time.sleep(4)  # two polls, and the spectrograms drawn
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()


def interleaved(work: Path) -> list[Path]:
    """Lathe test clips in the order a shift might bring them: normal stretches with a few
    anomalous clips between them (numbered, since a watched folder is read in name order)."""
    normal = sorted((LATHE / "test").glob("normal_*.wav"))
    anomalous = sorted((LATHE / "test").glob("anomaly_*.wav"))
    order = [*normal[:12], *anomalous[:3], *normal[12:24], *anomalous[3:6], *normal[24:30]]
    folder = work / "ordered"
    folder.mkdir(exist_ok=True)
    numbered = []
    for index, clip in enumerate(order):
        numbered.append(folder / f"{index:03d}_{clip.name}")
        shutil.copy(clip, numbered[-1])
    return numbered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--screenshot", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if not LATHE.is_dir():
        raise SystemExit(f"{LATHE}: the shared lathe clips are not there")
    clips = sorted((LATHE / "test").glob("*.wav"))
    with tempfile.TemporaryDirectory(prefix="aetk-dashboard-") as folder:
        work = Path(folder)
        detector = aetk.fit(LATHE / "train").save(work / "lathe.aetk")
        runs = []
        for _ in range(args.runs):
            for pages in (0, 2):
                runs.append(run(detector, clips, work, pages, None))
                print(json.dumps(runs[-1]))
        if args.screenshot is not None:
            run(detector, interleaved(work), work, 0, args.screenshot, pace=0.2)
    if not runs:
        return
    medians = {
        pages: statistics.median(r["seconds"] for r in runs if r["pages"] == pages)
        for pages in (0, 2)
    }
    result = {
        "clips": len(clips),
        "runs": runs,
        "median_seconds_no_page": medians[0],
        "median_seconds_two_pages": medians[2],
        "ratio": medians[2] / medians[0],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dashboard.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{len(clips)} lathe clips dropped at once, scored in {medians[0]:.2f} s with no page "
        f"open and {medians[2]:.2f} s with two pages open (median of {args.runs}; ratio "
        f"{result['ratio']:.2f})"
    )


if __name__ == "__main__":
    main()
