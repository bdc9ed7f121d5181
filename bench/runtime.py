"""The torch-free runtime against aetk, measured in one run on the same machine: size on disk of
an environment with only ./runtime installed, cold start-up of one-file scoring (median of 5
fresh processes each, and their ratio), folder throughput on 10-second clips, as a table and as
JSON Lines (``--json``: each file's events and bands localized too), and a watch of half an hour
of those clips as one WAV stream on standard input (``watch -``: windows scored per second, start-up
included, and each process's peak resident memory).

    ./dev python bench/runtime.py            # makes bench/.runtime-venv once (about a minute)

Writes bench/results/runtime.json.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

import numpy as np
import soundfile

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".runtime-venv"
sys.path.insert(0, str(HERE))

from performance import clips, timed  # noqa: E402


def runtime_env() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        venv.create(VENV, with_pip=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                str(REPO / "core"),
                str(REPO / "runtime"),
            ],
            check=True,
        )
    # The runtime as it is in this checkout, whatever an earlier run installed.
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--force-reinstall",
            "--no-deps",
            str(REPO / "core"),
            str(REPO / "runtime"),
        ],
        check=True,
    )
    return VENV / "bin"


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def median_seconds(command: list[str], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_stream(files: list[Path], stream: Path) -> None:
    """The clips one after another, as one 16-bit WAV recording."""
    parts = [soundfile.read(str(path), dtype="int16")[0] for path in files]
    soundfile.write(str(stream), np.concatenate(parts), 16000, subtype="PCM_16")


def watched(command: list[str], stream: Path) -> tuple[int, float, float]:
    """``command`` watching ``stream`` on its standard input to the end: the windows it scored,
    its wall time (start-up included) and its peak resident memory in MB (``/usr/bin/time``'s,
    so that it is the process's own and not the benchmark's, which it was forked from)."""
    seconds, peak_mb, out = timed(command, stdin=stream)
    windows = sum(json.loads(line)["event"] == "scored" for line in out.splitlines())
    return windows, seconds, peak_mb


def main() -> int:
    bin_folder = runtime_env()
    work = HERE / ".data" / "runtime"
    work.mkdir(parents=True, exist_ok=True)
    folder = clips(1000)
    # Scored: normal clips the detector was not fitted on, a tenth of them found anomalous (and
    # localized in the table) as in use; its own training clips would almost never be.
    new = clips(1000, first=1000)
    one = sorted(new.iterdir())[0]
    detector, exported = work / "default.aetk", work / "default.onnx"
    aetk = [sys.executable, "-m", "aetk"]
    subprocess.run(
        [*aetk, "fit", str(folder), "-o", str(detector), "--force"], check=True, capture_output=True
    )
    subprocess.run(
        [*aetk, "export", str(detector), "-o", str(exported), "--force"],
        check=True,
        capture_output=True,
    )
    runtime = [str(bin_folder / "aetk-runtime"), "score"]
    figures = {
        "runtime_env_mb": folder_size(VENV) / 1e6,
        "one_file_aetk_s": median_seconds([*aetk, "score", str(one), "-d", str(detector)]),
        "one_file_runtime_s": median_seconds([*runtime, str(one), "-d", str(exported)]),
    }
    figures["one_file_ratio"] = figures["one_file_runtime_s"] / figures["one_file_aetk_s"]
    for name, command in (
        ("aetk", [*aetk, "score", str(new), "-d", str(detector)]),
        ("runtime", [*runtime, str(new), "-d", str(exported)]),
        ("aetk_json", [*aetk, "score", str(new), "-d", str(detector), "--json"]),
        ("runtime_json", [*runtime, str(new), "-d", str(exported), "--json"]),
    ):
        figures[f"folder_{name}_clips_per_s"] = 1000 / median_seconds(command, runs=3)
    stream = work / "stream.wav"
    write_stream(sorted(new.iterdir())[:180], stream)
    for name, command in (
        ("aetk", [*aetk, "watch", "-", "-d", str(detector), "--json"]),
        (
            "runtime",
            [str(bin_folder / "aetk-runtime"), "watch", "-", "-d", str(exported), "--json"],
        ),
    ):
        windows, seconds, peak_mb = watched(command, stream)
        figures[f"watch_{name}_windows_per_s"] = windows / seconds
        figures[f"watch_{name}_peak_mb"] = peak_mb
    figures["watch_stream_seconds"] = soundfile.info(str(stream)).duration
    figures["watch_windows"] = windows
    out = HERE / "results" / "runtime.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
