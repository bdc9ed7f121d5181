"""Detection quality on the real recordings in ../shared/data and on synthetic short events,
candidate by candidate.

For every set (machine and ID) in the data folder, each candidate is fitted on the set's normal
training clips only and scored once on its test clips (the lockbox): AUC, pAUC (FPR ≤ 0.1), fit
time (cold: no feature cache), score time per clip, parameters and detector size, as mean ±
standard deviation over seeds. The synthetic set ``synthetic_events`` (aetk.synth's clicking
machine with one knock, valve chatter or brief rub per faulty 10-s clip, at −10…0 dB under the
hum) is written afresh for each seed, so its figures average three different machines' worth of
clips; its AUC per kind of event is reported too. ``mimii_fan_00@6`` fits on 6 of the fan's
training clips (one minute of sound), drawn afresh with each seed, and tests on all its test clips;
``lathe@66`` likewise fits on 66 of the lathe's (a machine whose faults are short events, recorded
for about a minute).

    ./dev python bench/quality.py                       # every candidate, 3 seeds
    ./dev python bench/quality.py --candidates "default;dcase" --seeds 1,2,3,4,5
    ./dev python bench/quality.py --resume              # go on after an interrupted run

Writes bench/results/quality.json and quality.md (the table in docs/quality.md comes from there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import aetk
from aetk.eval.evaluation import ANOMALY, group_metrics, label_from_path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"

#: The field's reference on exactly these splits: the official DCASE Task 2 autoencoder baseline
#: (2023–2025 PyTorch release, default settings), MSE and Mahalanobis modes, and its fit time on 2
#: CPU cores. The fan and the lathe: ../shared/data/README.md (one run). The other sets: that
#: baseline run here on the same clips and draws as the candidates (seeds 1–3: the same
#: few-clip draws and synthetic machines), one model for all four valves, the lathe's clips
#: resampled to 16 kHz as for the README's figure; mean of the 3 seeds (docs/quality.md, "The
#: field's reference on every set").
REFERENCE = {
    "mimii_fan_00": {
        "auc_mse": 0.583,
        "pauc_mse": 0.565,
        "auc_maha": 0.645,
        "pauc_maha": 0.634,
        "fit_seconds": 69,
    },
    "lathe": {
        "auc_mse": 0.951,
        "pauc_mse": 0.749,
        "auc_maha": 0.976,
        "pauc_maha": 0.886,
        "fit_seconds": 137,
    },
    "valve_mixed": {
        "auc_mse": 0.489,
        "pauc_mse": 0.567,
        "auc_maha": 0.486,
        "pauc_maha": 0.509,
        "fit_seconds": 43,
    },
    "mimii_fan_00@6": {
        "auc_mse": 0.536,
        "pauc_mse": 0.551,
        "auc_maha": 0.608,
        "pauc_maha": 0.596,
        "fit_seconds": 45,
    },
    "lathe@66": {
        "auc_mse": 0.848,
        "pauc_mse": 0.579,
        "auc_maha": 0.881,
        "pauc_maha": 0.689,
        "fit_seconds": 48,
    },
    "synthetic_events": {
        "auc_mse": 0.871,
        "pauc_mse": 0.705,
        "auc_maha": 0.537,
        "pauc_maha": 0.526,
        "fit_seconds": 94,
        # AUC per kind of event: knock, chatter, rub.
        "events_mse": (0.768, 0.883, 0.960),
        "events_maha": (0.535, 0.550, 0.527),
    },
}

#: name → keyword arguments of aetk.fit. The recordings are mono, so the text's 2-channel seed
#: preset runs on their one channel.
CANDIDATES: dict[str, dict] = {
    "default": {"preset": "default"},
    "default's clip view alone (last round's default)": {
        "preset": "default",
        "set": ["scorer.pooling=clip"],
    },
    "transient": {"preset": "transient"},
    "default, 20,000 frames as event references (no codebook)": {
        "preset": "default",
        "set": ["scorer.codebook_size=0"],
    },
    "default + contrast view": {
        "preset": "default",
        "set": ["scorer.pooling=clip+event+contrast"],
    },
    "default + contrast view, for clicking machines": {
        "preset": "default",
        "set": ["scorer.pooling=clip+frames+event+contrast"],
    },
    "default, 512 prototypes": {"preset": "default", "set": ["scorer.codebook_size=512"]},
    "default, views halfway to their rare normal score (tail_weight 0.5)": {
        "preset": "default",
        "set": ["scorer.tail_weight=0.5"],
    },
    "default + contrast view, halfway (tail_weight 0.5)": {
        "preset": "default",
        "set": ["scorer.pooling=clip+frames+event+contrast", "scorer.tail_weight=0.5"],
    },
    "default, 2 frames of context": {"preset": "default", "set": ["featurizer.frames=2"]},
    "default, 3 frames of context": {"preset": "default", "set": ["featurizer.frames=3"]},
    "default, 256 prototypes": {"preset": "default", "set": ["scorer.codebook_size=256"]},
    "default, moments of 2 frames (64 ms)": {"preset": "default", "set": ["scorer.event_window=2"]},
    "default, moments of 1 frame (32 ms)": {"preset": "default", "set": ["scorer.event_window=1"]},
    "default, 5,000 frame references": {
        "preset": "default",
        "set": ["scorer.codebook_size=0", "scorer.max_reference=5000"],
    },
    "default, 2,500 frame references": {
        "preset": "default",
        "set": ["scorer.codebook_size=0", "scorer.max_reference=2500"],
    },
    "autoencoder": {"preset": "autoencoder"},
    "autoencoder, clip view alone (last round's autoencoder)": {
        "preset": "autoencoder",
        "set": ["scorer.pooling=clip"],
    },
    "autoencoder, clip+event": {"preset": "autoencoder", "set": ["scorer.pooling=clip+event"]},
    "autoencoder, clip+frames": {"preset": "autoencoder", "set": ["scorer.pooling=clip+frames"]},
    "autoencoder, clip+frames+event": {
        "preset": "autoencoder",
        "set": ["scorer.pooling=clip+frames+event"],
    },
    "autoencoder + baseline-ae": {"preset": "autoencoder", "model": "baseline-ae"},
    "dcase": {"preset": "dcase"},
    "dcase + baseline-ae": {"preset": "dcase", "model": "baseline-ae"},
    "seed (1 channel)": {"preset": "seed", "set": ["featurizer.channels=1"]},
    "seed (1 channel) + baseline-ae": {
        "preset": "seed",
        "model": "baseline-ae",
        "set": ["featurizer.channels=1"],
    },
}

_16K = ["featurizer.sample_rate=16000", "featurizer.n_fft=1024", "featurizer.hop_length=512"]
_32K = ["featurizer.sample_rate=32000", "featurizer.n_fft=2048", "featurizer.hop_length=1024"]
_44K = ["featurizer.sample_rate=44100", "featurizer.n_fft=2048", "featurizer.hop_length=1024"]

#: Candidates measured on the way to the default preset.
CANDIDATES.update(
    {
        "default, 2 neighbours": {"preset": "default", "set": ["scorer.k=2"]},
        "default, centred frames": {"preset": "default", "set": ["featurizer.center=true"]},
        "default, 60 dB floor below each clip's peak": {
            "preset": "default",
            "set": ["featurizer.top_db=60.0"],
        },
        "default at 16 kHz (before: one rate for all recordings)": {
            "preset": "default",
            "set": _16K,
        },
        "transient at 44.1 kHz (before: one rate for all recordings)": {
            "preset": "transient",
            "set": _44K,
        },
        "autoencoder at 16 kHz (before: one rate for all recordings)": {
            "preset": "autoencoder",
            "set": _16K,
        },
        "default at 32 kHz": {"preset": "default", "set": _32K},
        "default at 44.1 kHz": {"preset": "default", "set": _44K},
        "transient at 16 kHz": {"preset": "transient", "set": _16K},
        "dcase + mse on the worst 10 % of frames": {
            "preset": "dcase",
            "set": ["scorer.top_fraction=0.1"],
        },
        "autoencoder + mse": {"preset": "autoencoder", "scorer": "mse"},
        "dcase + clip-mahalanobis": {"preset": "dcase", "scorer": "clip-mahalanobis"},
        "dcase + knn on latent codes (clip)": {"preset": "dcase", "scorer": "knn"},
        "dcase + knn on latent codes (vector)": {
            "preset": "dcase",
            "scorer": "knn",
            "set": ["scorer.pooling=vector"],
        },
    }
)
#: Candidates from the example plugin (pip install ./examples/aetk-mahalanobis).
CANDIDATES.update(
    {
        "dcase + mahalanobis (plugin)": {"preset": "dcase", "scorer": "mahalanobis"},
        "dcase + conv-ae + mahalanobis (plugin)": {
            "preset": "dcase",
            "model": "conv-ae",
            "scorer": "mahalanobis",
        },
        "dcase + conv-ae + mse (plugin)": {"preset": "dcase", "model": "conv-ae"},
    }
)
#: Candidates too slow on a CPU for several seeds run once.
SINGLE_SEED = {"seed (1 channel)", "seed (1 channel) + baseline-ae"}


SYNTHETIC = "synthetic_events"
#: Real sets fitted on a few of their training clips, drawn afresh with each seed (set name →
#: the set and how many clips): a machine recorded for about a minute, where every view has
#: little normal sound to learn from. Tested on all of the set's test clips.
FEW_CLIPS = {"mimii_fan_00@6": ("mimii_fan_00", 6), "lathe@66": ("lathe", 66)}


def data_sets(root: Path) -> list[Path]:
    real = sorted(
        path for path in root.iterdir() if (path / "train").is_dir() and (path / "test").is_dir()
    )
    names = {path.name for path in real}
    few = [root / name for name, (source, _) in FEW_CLIPS.items() if source in names]
    return [*real, *few, Path(SYNTHETIC)]


def run_once(data_set: Path, options: dict, seed: int) -> dict:
    if data_set.name in FEW_CLIPS:
        source, count = FEW_CLIPS[data_set.name]
        train = aetk.find_audio_files([data_set.parent / source / "train"])
        drawn = np.random.default_rng(seed).permutation(len(train))[:count]
        test = data_set.parent / source / "test"
        return _run(data_set.name, [train[i] for i in sorted(drawn)], test, options, seed)
    if data_set.name != SYNTHETIC:
        return _run(data_set.name, data_set / "train", data_set / "test", options, seed)
    with tempfile.TemporaryDirectory() as folder:
        aetk.synth.write_event_dataset(folder, seed=seed)
        return _run(data_set.name, Path(folder) / "train", Path(folder) / "test", options, seed)


def _run(name: str, train: Path | list[Path], test: Path, options: dict, seed: int) -> dict:
    started = time.perf_counter()
    detector = aetk.fit(train, seed=seed, **options)
    fit_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        size = detector.save(Path(folder) / "d.aetk").stat().st_size
    started = time.perf_counter()
    results = detector.score(test, localize=False)
    score_seconds = time.perf_counter() - started
    labels = [label_from_path(r.path) for r in results]
    scores = np.array([r.score for r in results])
    metrics = group_metrics(name, labels, list(scores), detector.threshold)
    anomalous = np.array([label == ANOMALY for label in labels])
    normal = ~anomalous
    per_event = {
        kind: aetk.metrics.auc(
            [0] * int(normal.sum()) + [1] * int(chosen.sum()),
            [*scores[normal], *scores[chosen]],
        )
        for kind in aetk.synth.EVENTS
        if (chosen := np.array([f"anomaly_{kind}_" in r.path for r in results])).any()
    }

    def rates(threshold: float) -> tuple[float, float]:
        flagged = scores > threshold
        return float(flagged[~anomalous].mean()), float(flagged[anomalous].mean())

    false_alarms, detected = rates(detector.threshold)
    at_5, detected_5 = rates(detector.threshold_for(false_alarm_rate=0.05))
    at_10, detected_10 = rates(detector.threshold_for(false_alarm_rate=0.1))
    return {
        "seed": seed,
        "auc": metrics.auc,
        "pauc": metrics.pauc,
        "f1": metrics.f1,
        "false_alarm_rate": false_alarms,
        "detection_rate": detected,
        "false_alarm_rate_at_0.05": at_5,
        "detection_rate_at_0.05": detected_5,
        "false_alarm_rate_at_0.1": at_10,
        "detection_rate_at_0.1": detected_10,
        "calibration_warning": detector.calibration.warning,
        "fit_seconds": fit_seconds,
        "score_ms_per_clip": 1000 * score_seconds / len(results),
        "parameters": sum(p.numel() for p in detector.model.module_.parameters()),
        "detector_mb": size / 1e6,
        "best_epoch": detector.training["best_epoch"],
        **{f"auc_{kind}": value for kind, value in per_event.items()},
    }


def summarise(runs: list[dict]) -> dict:
    summary = {"seeds": [run["seed"] for run in runs], "runs": runs}
    for key in (
        "auc",
        "pauc",
        "f1",
        "false_alarm_rate",
        "detection_rate",
        "false_alarm_rate_at_0.05",
        "detection_rate_at_0.05",
        "false_alarm_rate_at_0.1",
        "detection_rate_at_0.1",
        "fit_seconds",
        "score_ms_per_clip",
        "detector_mb",
        "parameters",
        *(f"auc_{kind}" for kind in aetk.synth.EVENTS),
    ):
        values = [run[key] for run in runs if run.get(key) is not None]
        summary[key] = (
            {"mean": float(np.mean(values)), "std": float(np.std(values))} if values else None
        )
    return summary


def markdown(results: dict) -> str:
    lines = []
    for set_name, candidates in results.items():
        reference = REFERENCE.get(set_name)
        events = set_name == SYNTHETIC
        lines += [
            f"### `{set_name}`",
            "",
            "| candidate | seeds | AUC | pAUC | "
            + ("AUC knock / chatter / rub | " if events else "")
            + "false alarms / detected at the threshold "
            "| at F = 0.05 | at F = 0.1 | F1 | fit (s) | score (ms/clip) | parameters "
            "| detector (MB) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if events else ""),
        ]
        for name, s in candidates.items():
            auc, pauc, f1 = (_mean_std(s[key], len(s["seeds"])) for key in ("auc", "pauc", "f1"))
            at = [
                f"{_rate(s.get('false_alarm_rate' + suffix))} / "
                f"{_rate(s.get('detection_rate' + suffix))}"
                for suffix in ("", "_at_0.05", "_at_0.1")
            ]
            by_event = (
                " / ".join(_mean(s.get(f"auc_{kind}")) for kind in aetk.synth.EVENTS) + " | "
                if events
                else ""
            )
            lines.append(
                f"| {name} | {len(s['seeds'])} | {auc} | {pauc} | {by_event}"
                f"{' | '.join(at)} | {f1} | "
                f"{s['fit_seconds']['mean']:.1f} | {s['score_ms_per_clip']['mean']:.1f} | "
                f"{int(s['parameters']['mean']):,} | {s['detector_mb']['mean']:.2f} |"
            )
        if reference:
            for mode, suffix in (("MSE", "mse"), ("Mahalanobis", "maha")):
                by_event = (
                    " / ".join(f"{auc:.3f}" for auc in reference[f"events_{suffix}"]) + " | "
                    if events
                    else ""
                )
                lines.append(
                    f"| DCASE baseline, {mode} (reference) | | {reference['auc_' + suffix]:.3f} | "
                    f"{reference['pauc_' + suffix]:.3f} | {by_event}| | | | "
                    f"{reference['fit_seconds']} | | | |"
                )
        lines.append("")
    return "\n".join(lines)


def _mean(value: dict | None) -> str:
    return "n/a" if value is None else f"{value['mean']:.3f}"


def _rate(value: dict | None) -> str:
    return "n/a" if value is None else f"{value['mean']:.0%}"


def _mean_std(value: dict | None, seeds: int) -> str:
    if value is None:
        return "n/a"
    return f"{value['mean']:.3f}" if seeds == 1 else f"{value['mean']:.3f} ± {value['std']:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--candidates", default=";".join(CANDIDATES), help="names separated by ; (default: all)"
    )
    parser.add_argument("--sets", default=None, help="comma-separated set names (default: all)")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the candidates already in OUT/quality.json and run only the others",
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(
            f"quality benchmark skipped: no real recordings at {args.data} "
            "(the shared data folder sits beside the repository)"
        )
        return 0
    warnings.simplefilter("ignore", aetk.AetkWarning)
    # Every fit decodes and featurizes afresh, as the reference's does: fit times are cold times.
    os.environ["AETK_CACHE"] = "0"
    seeds = [int(seed) for seed in args.seeds.split(",")]
    names = [name.strip() for name in args.candidates.split(";")]
    unknown = [name for name in names if name not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; known: {list(CANDIDATES)}")
    sets = data_sets(args.data)
    if args.sets:
        sets = [s for s in sets if s.name in args.sets.split(",")]
    host = aetk.plugins.get_host()
    missing = [
        name
        for name in names
        for kind in ("model", "scorer")
        if CANDIDATES[name].get(kind) and CANDIDATES[name][kind] not in host.registry[kind]
    ]
    for name in missing:
        print(f"skipped {name!r}: its plugin is not installed")
    names = [name for name in names if name not in missing]
    saved = args.out / "quality.json"
    resuming = args.resume and saved.exists()
    results: dict[str, dict] = json.loads(saved.read_text()) if resuming else {}
    for data_set in sets:
        results.setdefault(data_set.name, {})
        for name in names:
            if name in results[data_set.name]:
                continue
            runs = []
            for seed in seeds[:1] if name in SINGLE_SEED else seeds:
                run = run_once(data_set, CANDIDATES[name], seed)
                runs.append(run)
                print(
                    f"{data_set.name:14s} {name:32s} seed {seed}: AUC {run['auc']:.3f} "
                    f"pAUC {run['pauc']:.3f} fit {run['fit_seconds']:.1f} s",
                    flush=True,
                )
            results[data_set.name][name] = summarise(runs)
            # Saved after every candidate: a long run that stops keeps what it measured.
            write(results, args.out)
    print()
    print(write(results, args.out))
    return 0


def write(results: dict, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (out / "quality.md").write_text(table)
    return table


if __name__ == "__main__":
    sys.exit(main())
