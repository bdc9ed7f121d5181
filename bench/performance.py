"""Speed and memory of featurizing, fitting and scoring, each next to its target and, for
featurization, next to the naive reference (the method text's pipeline: transforms built for every
file, one file at a time), measured in the same run on the same machine.

    ./dev python bench/performance.py                  # all (about 15 minutes, 3.5 GB of clips)
    ./dev python bench/performance.py --scale 100,1000 # a shorter scaling run

Synthetic 10-second clips (16 kHz, 16-bit) are generated once into bench/.data/. Heavy steps run
in fresh processes so that each peak resident memory (``/usr/bin/time``'s maximum RSS) belongs to
one command. Writes bench/results/performance.json, performance.md and scaling.png.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
SECONDS = 10.0


# -- data ----------------------------------------------------------------------------------------


def _write_clips(task: tuple[str, int, int]) -> None:
    import numpy as np
    import soundfile

    from aetk import synth

    folder, start, stop = task
    for index in range(start, stop):
        path = Path(folder) / f"normal_{index:05d}.wav"
        if not path.exists():
            clip = synth.normal_clip(np.random.default_rng(index), SECONDS)
            soundfile.write(path, clip, 16000, subtype="PCM_16")


def clips(count: int, first: int = 0) -> Path:
    """A folder holding ``count`` clips, numbered from ``first`` (links into one pool of
    generated clips; each number is always the same clip)."""
    pool = DATA / "pool"
    pool.mkdir(parents=True, exist_ok=True)
    last = first + count
    chunks = [(str(pool), start, min(start + 250, last)) for start in range(first, last, 250)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as executor:
        list(executor.map(_write_clips, chunks))
    folder = DATA / (f"clips_{count}" if first == 0 else f"clips_{first}_to_{last}")
    folder.mkdir(exist_ok=True)
    for index in range(first, last):
        link = folder / f"normal_{index:05d}.wav"
        if not link.exists():
            link.symlink_to(pool / link.name)
    return folder


# -- measuring -----------------------------------------------------------------------------------


def timed(
    command: list[str], env: dict | None = None, stdin: Path | None = None
) -> tuple[float, float, str]:
    """Run a command (``stdin``: a file on its standard input); returns its wall time (s), peak
    resident memory (MB) and stdout."""
    with tempfile.NamedTemporaryFile("r") as report, open(stdin or os.devnull, "rb") as given:
        completed = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%e %M", *command],
            stdin=given,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        if completed.returncode not in (0, 3):
            raise RuntimeError(f"{' '.join(command)} failed:\n{completed.stderr[-2000:]}")
        wall, peak_kb = report.read().split()[-2:]
    return float(wall), float(peak_kb) / 1024, completed.stdout


def aetk(*args: str) -> list[str]:
    return [sys.executable, "-m", "aetk", *map(str, args)]


def median_wall(command: list[str], runs: int, env: dict | None = None) -> float:
    return statistics.median(timed(command, env)[0] for _ in range(runs))


@functools.cache
def default_featurizer_params() -> dict:
    """The default preset's featurizer settings (read once: the reference pays no TOML parsing
    per file)."""
    from aetk.fitting.config import BASE_RATE, at_recordings_rate, resolve_config

    # The benchmark's clips are at 16 kHz: the default analyses them at their own rate.
    return dict(at_recordings_rate(resolve_config(), {BASE_RATE: 1}).featurizer.params)


def naive_features(path: Path):
    """The method text's pipeline for one file: decode, then a ``MelSpectrogram`` and an
    ``AmplitudeToDB`` built for this file (the default preset's settings)."""
    import soundfile
    import torch
    import torchaudio

    params = default_featurizer_params()
    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    waveform = torch.from_numpy(data.T.copy())
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=rate,
        n_fft=params["n_fft"],
        hop_length=params["hop_length"],
        n_mels=params["n_mels"],
        center=params["center"],
    )
    return torchaudio.transforms.AmplitudeToDB()(mel(waveform))


def _naive_shape(path: Path) -> tuple[int, ...]:
    # Only the shape travels back: the reference is not charged for moving features around.
    return tuple(naive_features(path).shape)


def _naive_worker_init(keep_freed_memory: bool) -> None:
    import torch

    torch.set_num_threads(1)
    if keep_freed_memory:
        import ctypes

        from aetk_core.processes import _keep_freed_memory

        _keep_freed_memory(ctypes.CDLL(None))


def naive_per_core(files: list[Path], keep_freed_memory: bool = False) -> float:
    """Clips per second of the naive pipeline run one process per core (one torch thread each),
    after each process has featurized one file (imports and first-call costs not counted).
    ``keep_freed_memory``: each process keeps freed memory for reuse, as aetk's scoring workers
    do (glibc's ``mallopt``), rather than faulting it in afresh for every file."""
    cores = os.cpu_count() or 1
    initializer = functools.partial(_naive_worker_init, keep_freed_memory)
    with ProcessPoolExecutor(cores, initializer=initializer) as pool:
        list(pool.map(_naive_shape, files[:cores]))
        started = time.perf_counter()
        for _ in pool.map(_naive_shape, files, chunksize=16):
            pass
        return len(files) / (time.perf_counter() - started)


def featurization(folder: Path, count: int) -> dict:
    """Clips per second: the naive reference, aetk on 1 and all workers, and from the cache."""
    from aetk.data.audio import find_audio_files
    from aetk.data.cache import FeatureCache
    from aetk.data.features import default_workers, map_files
    from aetk.plugin.host import get_host

    files = find_audio_files([folder])[:count]
    params = default_featurizer_params()
    featurizer = get_host().create("featurizer", "mel-db", params)

    def rate(function) -> float:
        started = time.perf_counter()
        function()
        return len(files) / (time.perf_counter() - started)

    naive_features(files[0])
    result = {"clips": len(files), "workers": default_workers()}
    result["naive"] = rate(lambda: [naive_features(path) for path in files])
    for workers in (1, default_workers()):
        with FeatureCache(None) as cache:

            def featurize_all(cache=cache, workers=workers) -> None:
                list(map_files(lambda path: cache.store(featurizer, path), files, workers))

            result[f"aetk_{workers}_workers"] = rate(featurize_all)
            result["aetk_cached"] = rate(featurize_all)
    result["steps_ms"] = featurization_steps(featurizer, files[:200])
    return result


def featurization_steps(featurizer, files: list[Path]) -> dict:
    """Where one worker's time per clip goes (one torch thread, milliseconds per clip)."""
    import torch

    from aetk.data.audio import read_audio
    from aetk.data.cache import FeatureCache, file_digest
    from aetk.data.features import featurize_audio

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        audios = [read_audio(path) for path in files]  # warm the page cache

        def per_clip(function, items) -> float:
            started = time.perf_counter()
            for item in items:
                function(item)
            return 1000 * (time.perf_counter() - started) / len(items)

        steps = {
            "hash": per_clip(file_digest, files),
            "decode": per_clip(read_audio, files),
            "featurize": per_clip(lambda a: featurize_audio(featurizer, a, "x"), audios),
        }
        with FeatureCache(None) as cache:
            steps["all, cache write included"] = per_clip(
                lambda path: cache.store(featurizer, path), files
            )
    finally:
        torch.set_num_threads(previous)
    return steps


def scoring_against_bound(detector_path: Path, folder: Path, runs: int = 5) -> dict:
    """``aetk score``'s throughput beside the naive per-clip pipeline run one process per core
    and beside the decode+featurize bound, measured in the same run: the same files decoded and
    featurized on all workers as the local engine runs them (in forked processes where it
    forks), with no model and no scoring (what scoring cannot beat), then scored as ``aetk
    score`` does (its table: the files found anomalous localized, for its "raised by" and
    "events" columns) and as ``aetk score --json`` does (every file localized). ``folder``
    should hold normal clips the detector was not fitted on: its training clips score low and
    are almost never found anomalous, where new normal clips are at the threshold's false-alarm
    rate. The naive pipeline runs twice: as the method text writes it, and keeping freed memory
    as aetk's scoring workers do (glibc's allocator otherwise hands a file's buffers back and
    faults them in afresh for the next: a large share of the pipeline's time on some machines,
    docs/performance.md). Medians of ``runs`` rounds over page-cached files, each round every
    pass in turn, and each round's own ``aetk score`` to naive ratio."""
    import torch
    from aetk_core.processes import scored_files

    import aetk
    from aetk.data.audio import default_workers
    from aetk.data.features import featurized_files

    detector = aetk.Detector.load(detector_path)
    files = aetk.find_audio_files([folder])
    for file in files:  # read once, so that the first round's first pass reads no disk either
        file.read_bytes()
    detector.score(files[:8])

    def rate(function) -> float:
        started = time.perf_counter()
        function()
        return len(files) / (time.perf_counter() - started)

    def errors(part: Sequence[Path], workers: int) -> list[str | None]:
        return [file.error for file in featurized_files(detector.featurizer, part, workers=workers)]

    anomalous_shares: list[float] = []

    def score_as_the_table() -> None:
        results = detector.score(files, localize="anomalous")
        anomalous_shares.append(sum(bool(result.anomalous) for result in results) / len(files))

    def featurize_only() -> None:
        one_thread = functools.partial(torch.set_num_threads, 1)  # as the engine's workers
        found = list(scored_files(files, default_workers(), errors, one_thread))
        assert found == [None] * len(files)

    passes = {
        "naive_per_core": lambda: naive_per_core(files),
        "naive_per_core_keeping_memory": lambda: naive_per_core(files, keep_freed_memory=True),
        "bound": lambda: rate(featurize_only),
        "score": lambda: rate(score_as_the_table),
        "score_localized": lambda: rate(lambda: detector.score(files, localize=True)),
    }
    rates: dict[str, list[float]] = {name: [] for name in passes}
    # Round after round of every pass, not each pass's runs in a row: the machine's speed
    # drifts, and a slow minute then slows every figure alike rather than one of them.
    for _ in range(runs):
        for name, measure in passes.items():
            rates[name].append(measure())
    result: dict[str, Any] = {"clips": len(files)}
    result.update({name: statistics.median(values) for name, values in rates.items()})
    result["anomalous_share"] = statistics.median(anomalous_shares)
    result["ratio"] = result["score"] / result["bound"]
    result["ratio_localized"] = result["score_localized"] / result["bound"]
    result["score_vs_naive"] = result["score"] / result["naive_per_core"]
    result["score_localized_vs_naive"] = result["score_localized"] / result["naive_per_core"]
    # The same pipeline with the allocator setting of aetk's workers: what is left of the lead
    # when neither pays for faulting in freed memory again.
    kept = result["naive_per_core_keeping_memory"]
    result["score_vs_naive_keeping_memory"] = result["score"] / kept
    result["bound_vs_naive_keeping_memory"] = result["bound"] / kept
    result["score_vs_naive_rounds"] = [
        round(score / naive, 3)
        for score, naive in zip(rates["score"], rates["naive_per_core"], strict=True)
    ]
    return result


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="100,1000,10000")
    parser.add_argument("--featurize-clips", type=int, default=500)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--scoring-only",
        action="store_true",
        help="only aetk score's throughput against the decode+featurize bound (1,000 clips)",
    )
    parser.add_argument(
        "--fit-only",
        action="store_true",
        help="only the default preset's fit of 1,000 ten-second clips (3 cold fits, median)",
    )
    args = parser.parse_args(argv)
    if args.scoring_only:
        return scoring_only(args.out)
    if args.fit_only:
        return fit_only(args.out)
    scale = [int(n) for n in args.scale.split(",")]
    work = Path(tempfile.mkdtemp(prefix="aetk-bench-"))
    figures: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    try:
        thousand = clips(1000)
        one = next(thousand.iterdir())
        cache_env = {"AETK_CACHE_DIR": str(work / "cache")}

        # Start-up and one-file scoring.
        detector = work / "default.aetk"
        timed(aetk("fit", thousand, "-o", detector), cache_env)
        figures["startup"] = {
            "help": median_wall(aetk("--help"), 5),
            "plugins": median_wall(aetk("plugins"), 5),
            "import_torch": median_wall([sys.executable, "-c", "import torch, torchaudio"], 5),
            "score_one": median_wall(aetk("score", one, "-d", detector), 5),
        }
        print("start-up", figures["startup"], flush=True)

        figures["featurization"] = featurization(thousand, args.featurize_clips)
        print("featurization", figures["featurization"], flush=True)

        # Fitting 1,000 ten-second clips: first time (empty cache) and again (cached).
        fresh = {"AETK_CACHE_DIR": str(work / "cache-fit")}
        first = timed(aetk("fit", thousand, "-o", work / "d.aetk"), fresh)
        again = timed(aetk("fit", thousand, "-o", work / "d.aetk"), fresh)
        autoencoder = timed(
            aetk(
                "fit",
                thousand,
                "-o",
                work / "ae.aetk",
                "--preset",
                "autoencoder",
                "--epochs",
                "5",
                "--json",
            ),
            fresh,
        )
        summary = json.loads(autoencoder[2])
        figures["fit_1000"] = {
            "default_first": {"seconds": first[0], "peak_mb": first[1]},
            "default_cached": {"seconds": again[0], "peak_mb": again[1]},
            "autoencoder_5_epochs": {
                "seconds": autoencoder[0],
                "peak_mb": autoencoder[1],
                "train_vectors": summary["train_vectors"],
                "vectors_per_second": summary["train_vectors"] * 5 / summary["seconds"],
            },
        }
        print("fit 1000", figures["fit_1000"], flush=True)

        figures["scoring"] = scoring_against_bound(detector, clips(1000, first=1000))
        figures["score_rate"] = figures["scoring"]["score_localized"]
        print("scoring against the decode+featurize bound", figures["scoring"], flush=True)

        figures["scaling"] = []
        for count in scale:
            folder = clips(count)
            env = {"AETK_CACHE_DIR": str(work / f"cache-{count}")}
            fit = timed(aetk("fit", folder, "-o", work / f"s{count}.aetk"), env)
            score = timed(aetk("score", folder, "-d", work / f"s{count}.aetk", "--json"), env)
            row = {
                "clips": count,
                "fit_seconds": fit[0],
                "fit_peak_mb": fit[1],
                "score_seconds": score[0],
                "score_peak_mb": score[1],
            }
            figures["scaling"].append(row)
            print("scaling", row, flush=True)
            shutil.rmtree(work / f"cache-{count}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    import torch

    figures["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "performance.json").write_text(json.dumps(figures, indent=2) + "\n")
    table = markdown(figures)
    (args.out / "performance.md").write_text(table)
    plot_scaling(figures["scaling"], args.out / "scaling.png")
    print()
    print(table)
    return 0


def scoring_only(out: Path) -> int:
    work = Path(tempfile.mkdtemp(prefix="aetk-bench-"))
    try:
        thousand = clips(1000)
        detector = work / "default.aetk"
        timed(aetk("fit", thousand, "-o", detector), {"AETK_CACHE_DIR": str(work / "cache")})
        figures = scoring_against_bound(detector, clips(1000, first=1000))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scoring_bound.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


def fit_only(out: Path, runs: int = 3) -> int:
    """The default preset's cold fit of 1,000 ten-second clips: each run with an empty feature
    cache, so that decoding and featurizing count as they do on a first fit."""
    work = Path(tempfile.mkdtemp(prefix="aetk-bench-"))
    try:
        thousand = clips(1000)
        seconds, peaks = [], []
        for run in range(runs):
            env = {"AETK_CACHE_DIR": str(work / f"cache-{run}")}
            elapsed, peak, _ = timed(aetk("fit", thousand, "-o", work / "d.aetk", "--force"), env)
            seconds.append(elapsed)
            peaks.append(peak)
        figures = {
            "runs": seconds,
            "median_seconds": statistics.median(seconds),
            "peak_mb": max(peaks),
            "cores": os.cpu_count(),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fit_1000.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


def markdown(figures: dict) -> str:
    startup, feats, scoring = figures["startup"], figures["featurization"], figures["scoring"]
    fit, workers = figures["fit_1000"], feats["workers"]
    best = feats[f"aetk_{workers}_workers"]
    rows = [
        ("`aetk --help`", f"{startup['help']:.2f} s", "≤ 0.5 s", ""),
        ("`aetk plugins`", f"{startup['plugins']:.2f} s", "≤ 0.5 s", ""),
        (
            "`aetk score one.wav`",
            f"{startup['score_one']:.2f} s",
            f"≤ import torch + 1 s = {startup['import_torch'] + 1:.2f} s",
            f"import torch, torchaudio: {startup['import_torch']:.2f} s",
        ),
        (
            f"featurize 10-s clips, {workers} workers",
            f"{best:.0f} clips/s",
            f"≥ 3 × naive = {3 * feats['naive']:.0f} clips/s",
            f"naive {feats['naive']:.0f} clips/s ({best / feats['naive']:.1f}×)",
        ),
        (
            "featurize 10-s clips, 1 worker",
            f"{feats['aetk_1_workers']:.0f} clips/s",
            "",
            f"{feats['aetk_1_workers'] / feats['naive']:.1f}× naive",
        ),
        (
            "one worker's time per clip",
            ", ".join(f"{step} {ms:.2f} ms" for step, ms in feats["steps_ms"].items()),
            "",
            "one torch thread",
        ),
        (
            "featurize again (feature cache)",
            f"{feats['aetk_cached']:.0f} clips/s",
            "",
            f"{feats['aetk_cached'] / feats['naive']:.1f}× naive",
        ),
        (
            "fit default preset, 1,000 × 10 s",
            f"{fit['default_first']['seconds']:.1f} s, "
            f"peak {fit['default_first']['peak_mb']:.0f} MB",
            "≤ 120 s",
            "empty feature cache",
        ),
        (
            "fit again (feature cache)",
            f"{fit['default_cached']['seconds']:.1f} s, "
            f"peak {fit['default_cached']['peak_mb']:.0f} MB",
            "",
            "",
        ),
        (
            "fit autoencoder preset, 5 epochs",
            f"{fit['autoencoder_5_epochs']['seconds']:.1f} s, "
            f"peak {fit['autoencoder_5_epochs']['peak_mb']:.0f} MB",
            "",
            f"{fit['autoencoder_5_epochs']['vectors_per_second']:.0f} training vectors/s",
        ),
        (
            "score a folder, detector loaded once",
            f"{figures['score_rate']:.0f} clips/s",
            "≥ 200 clips/s",
            "",
        ),
        (
            "score a folder (table), against the naive pipeline one process per core",
            f"{scoring['score']:.0f} clips/s, {scoring['score_vs_naive']:.2f} ×",
            "≥ 1.2 ×",
            f"naive {scoring['naive_per_core']:.0f} clips/s; localized "
            f"{scoring['score_localized_vs_naive']:.2f} ×; decode+featurize alone "
            f"{scoring['bound']:.0f} clips/s",
        ),
        (
            "the same, the naive pipeline keeping freed memory as aetk's workers do",
            f"{scoring['score_vs_naive_keeping_memory']:.2f} ×",
            "",
            f"naive {scoring['naive_per_core_keeping_memory']:.0f} clips/s; decode+featurize "
            f"alone {scoring['bound_vs_naive_keeping_memory']:.2f} ×",
        ),
    ]
    lines = [
        f"Machine: {figures['machine']['cores']} cores, {figures['machine']['cpu']}, Python "
        f"{figures['machine']['python']}; GPU: {figures['gpu'] or 'none'}.",
        "",
        "| figure | measured | target | reference |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows),
        "",
        "| clips | fit (s) | fit peak (MB) | fit clips/s | score (s) | score peak (MB) | "
        "score clips/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in figures["scaling"]:
        lines.append(
            f"| {row['clips']:,} | {row['fit_seconds']:.1f} | {row['fit_peak_mb']:.0f} | "
            f"{row['clips'] / row['fit_seconds']:.0f} | {row['score_seconds']:.1f} | "
            f"{row['score_peak_mb']:.0f} | {row['clips'] / row['score_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot_scaling(rows: list[dict], path: Path) -> None:
    from aetk.eval import plots

    plt = plots.pyplot()
    counts = [row["clips"] for row in rows]
    figure, (times, memory) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    for key, label in (("fit_seconds", "fit"), ("score_seconds", "score")):
        times.plot(counts, [row[key] for row in rows], marker="o", label=label)
    times.plot(
        counts,
        [rows[0]["fit_seconds"] * c / counts[0] for c in counts],
        ls=":",
        color="0.5",
        label="linear from the first point",
    )
    times.set(xscale="log", yscale="log", xlabel="10-s clips", ylabel="wall time (s)", title="time")
    times.legend(fontsize=8)
    for key, label in (("fit_peak_mb", "fit"), ("score_peak_mb", "score")):
        memory.plot(counts, [row[key] for row in rows], marker="o", label=label)
    memory.set(
        xscale="log",
        xlabel="10-s clips",
        ylabel="peak resident memory (MB)",
        title="memory",
        ylim=(0, None),
    )
    memory.legend(fontsize=8)
    plots.save(figure, path)


if __name__ == "__main__":
    sys.exit(main())
