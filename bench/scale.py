"""Scale-out figures: Ray scoring with 1 and 2 local workers against plain ``aetk score``, and a
data-parallel fit on 1 and 2 processes, on the synthetic 10-second clips of bench/performance.py.

    ./dev python bench/scale.py            # about 5 minutes

Writes bench/results/scale.json and scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from performance import HERE, aetk, clips, timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--fit-clips", type=int, default=200)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="aetk-scale-"))
    env = {"AETK_CACHE_DIR": str(work / "cache"), "RAY_DEDUP_LOGS": "0"}
    figures: dict = {"cores": os.cpu_count(), "clips": args.clips}
    try:
        folder = clips(args.clips)
        detector = work / "default.aetk"
        timed(aetk("fit", folder, "-o", detector), env)
        local, _, _ = timed(aetk("score", folder, "-d", detector, "--json"), env)
        figures["score"] = {"local": {"seconds": local, "clips_per_second": args.clips / local}}
        for workers in (1, 2):
            out = work / f"ray{workers}.parquet"
            seconds, peak, stdout = timed(
                aetk(
                    "score",
                    folder,
                    "-d",
                    detector,
                    "--engine",
                    "ray",
                    "--out",
                    out,
                    "--workers",
                    str(workers),
                    "--json",
                ),
                env,
            )
            run = json.loads(stdout.strip().splitlines()[-1])
            figures["score"][f"ray_{workers}"] = {
                "seconds": seconds,
                "clips_per_second": args.clips / seconds,
                "pipeline_seconds": run["seconds"],
                "peak_mb": peak,
            }
            print("score", workers, figures["score"][f"ray_{workers}"], flush=True)

        training = clips(args.fit_clips)
        figures["fit"] = {}
        for processes in (1, 2):
            fit_env = {**env, "AETK_CACHE_DIR": str(work / f"cache-fit-{processes}")}
            seconds, peak, stdout = timed(
                aetk(
                    "fit",
                    training,
                    "--preset",
                    "autoencoder",
                    "--epochs",
                    "5",
                    "--nproc",
                    str(processes),
                    "-o",
                    work / f"ddp{processes}.aetk",
                    "--json",
                ),
                fit_env,
            )
            figures["fit"][f"processes_{processes}"] = {"seconds": seconds, "peak_mb": peak}
            print("fit", processes, figures["fit"][f"processes_{processes}"], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(figures, indent=2) + "\n")
    score, fit = figures["score"], figures["fit"]
    lines = [
        f"{args.clips:,} ten-second clips, {figures['cores']} cores, default preset detector.",
        "",
        "| scoring | wall time (s) | clips/s |",
        "|---|---|---|",
        f"| `aetk score --json` (local engine) | {score['local']['seconds']:.1f} | "
        f"{score['local']['clips_per_second']:.0f} |",
        *(
            f"| `aetk score --engine ray --workers {w}` | {score[f'ray_{w}']['seconds']:.1f} | "
            f"{score[f'ray_{w}']['clips_per_second']:.0f} |"
            for w in (1, 2)
        ),
        "",
        f"Data-parallel fit, autoencoder preset, {args.fit_clips} clips, 5 epochs (gloo):",
        "",
        "| processes | wall time (s) | peak memory of the largest process (MB) |",
        "|---|---|---|",
        *(
            f"| {p} | {fit[f'processes_{p}']['seconds']:.1f} | "
            f"{fit[f'processes_{p}']['peak_mb']:.0f} |"
            for p in (1, 2)
        ),
    ]
    (args.out / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
