"""The torch-free runtime against aetk, measured in one run on the same machine: size on disk of
an environment with only ./runtime installed, cold start-up of one-file scoring (median of 5
fresh processes each, and their ratio), and folder throughput on 10-second clips, as a table
and as JSON Lines (``--json``: each file's events and bands localized too).

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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".runtime-venv"
sys.path.insert(0, str(HERE))

from performance import clips  # noqa: E402


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


def main() -> int:
    bin_folder = runtime_env()
    work = HERE / ".data" / "runtime"
    work.mkdir(parents=True, exist_ok=True)
    folder = clips(1000)
    one = sorted(folder.iterdir())[0]
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
        ("aetk", [*aetk, "score", str(folder), "-d", str(detector)]),
        ("runtime", [*runtime, str(folder), "-d", str(exported)]),
        ("aetk_json", [*aetk, "score", str(folder), "-d", str(detector), "--json"]),
        ("runtime_json", [*runtime, str(folder), "-d", str(exported), "--json"]),
    ):
        figures[f"folder_{name}_clips_per_s"] = 1000 / median_seconds(command, runs=3)
    out = HERE / "results" / "runtime.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
