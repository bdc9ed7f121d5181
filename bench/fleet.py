"""Fleets: one fleet detector against one detector per machine, and against one detector fitted on
the whole fleet pooled (what a user without fleets would do), on synthetic fleets of 4 and 60
machines (each its own hum, shaft rate and noise; 100 training clips each) and on
../shared/data/valve_mixed (four valves named by ID).

    ./dev python bench/fleet.py                        # 4 and 60 machines, valve_mixed
    ./dev python bench/fleet.py --machines 4 --cli     # also time N `aetk fit` runs vs one
    ./dev python bench/fleet.py --networks             # also the fleet's one-network presets

``--networks`` adds the presets that judge a fleet with one network bound to each machine
(``fleet-ae``: the conditioned autoencoder; ``fleet-classifier``: the machine classifier and its
surprise) beside ``autoencoder`` fitted machine by machine (the network ``fleet-ae`` conditions)
and the default fleet; for each, the mean AUC per machine, the largest loss on one machine
against the default fleet, and the fit time.

AUC per machine (mean over machines), the fit time of each way (cold: no feature cache), in one
run on one machine.
Writes bench/results/fleet.json and fleet.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import aetk
from aetk import metrics, synth
from aetk.errors import AetkWarning
from aetk.eval.evaluation import ANOMALY, label_from_path
from aetk.fleet.detector import fit_fleet

HERE = Path(__file__).resolve().parent
VALVES = HERE.parent.parent / "shared" / "data" / "valve_mixed"


def write_fleet(root: Path, machines: int, seed: int) -> list[str]:
    """``root/{train,test}/m000/...``: ``machines`` machines, each with its own sound."""
    rng = np.random.default_rng(seed)
    names = [f"m{index:03d}" for index in range(machines)]
    for index, name in enumerate(names):
        machine = synth.Machine(
            fundamental=float(rng.uniform(80, 240)),
            harmonics=int(rng.integers(6, 14)),
            shaft_rate=float(rng.uniform(15, 40)),
            noise_level=float(rng.uniform(0.03, 0.12)),
        )
        synth.write_dataset(
            root,
            train=100,
            test_normal=20,
            test_per_anomaly=5,
            seconds=1.0,
            severity=0.35,
            machine=machine,
            seed=seed * 1000 + index,
            fleet_machine=name,
        )
    return names


def machine_aucs(results, machine_of) -> dict[str, float]:
    by_machine: dict[str, tuple[list[int], list[float]]] = {}
    for result in results:
        labels, scores = by_machine.setdefault(machine_of(result.path), ([], []))
        labels.append(int(label_from_path(Path(result.path)) == ANOMALY))
        scores.append(result.score)
    return {name: metrics.auc(*pair) for name, pair in sorted(by_machine.items())}


def compare(root: Path, names: list[str], source: str = "folders") -> dict:
    """AUC per machine and fit time: fleet, per-machine detectors, one pooled detector."""
    train, test = root / "train", root / "test"

    def folder_machine(path: str) -> str:
        return Path(path).parent.name

    started = time.perf_counter()
    fleet = fit_fleet([train], source)
    fleet_seconds = time.perf_counter() - started
    fleet_results = fleet.score([test])
    machine_of = {r.path: r.machine for r in fleet_results}.__getitem__

    started = time.perf_counter()
    alone = {name: aetk.fit(train / name) for name in names} if source == "folders" else {}
    alone_seconds = time.perf_counter() - started
    alone_results = [r for name, d in alone.items() for r in d.score(test / name)]

    started = time.perf_counter()
    pooled = aetk.fit(train)
    pooled_seconds = time.perf_counter() - started
    pooled_results = pooled.score(test)

    row = {
        "machines": len(names),
        "fleet": {"auc": machine_aucs(fleet_results, machine_of), "fit_seconds": fleet_seconds},
        "pooled": {"auc": machine_aucs(pooled_results, machine_of), "fit_seconds": pooled_seconds},
        "pooled_overall_auc": metrics.auc(
            [int(label_from_path(Path(r.path)) == ANOMALY) for r in pooled_results],
            [r.score for r in pooled_results],
        ),
        "fleet_overall_auc": metrics.auc(
            [int(label_from_path(Path(r.path)) == ANOMALY) for r in fleet_results],
            [r.score for r in fleet_results],
        ),
    }
    if alone:
        row["per_machine"] = {
            "auc": machine_aucs(alone_results, folder_machine),
            "fit_seconds": alone_seconds,
        }
    for way in ("fleet", "per_machine", "pooled"):
        if way in row:
            values = [v for v in row[way]["auc"].values() if v is not None]
            row[way]["mean_auc"] = statistics.fmean(values)
    return row


def cli_fit_times(root: Path, names: list[str], work: Path) -> dict[str, float]:
    """One `aetk fit --machines folders` against one `aetk fit` per machine, as processes."""
    aetk_command = [sys.executable, "-m", "aetk", "fit"]
    started = time.perf_counter()
    subprocess.run(
        [*aetk_command, str(root / "train"), "--machines", "folders", "-o", str(work / "f.aetk")],
        check=True,
        capture_output=True,
    )
    fleet = time.perf_counter() - started
    started = time.perf_counter()
    for name in names:
        subprocess.run(
            [*aetk_command, str(root / "train" / name), "-o", str(work / f"{name}.aetk")],
            check=True,
            capture_output=True,
        )
    return {"fleet_cli_seconds": fleet, "one_by_one_cli_seconds": time.perf_counter() - started}


#: The fleet presets compared by ``--networks``, the default's fleet first (the reference).
NETWORK_PRESETS = ("default", "autoencoder", "fleet-ae", "fleet-classifier")


def compare_networks(root: Path, source: str = "folders") -> dict[str, dict]:
    """Each of :data:`NETWORK_PRESETS` fitted as a fleet: AUC per machine, its mean, the
    largest loss on one machine against the default's fleet, and the fit time."""
    rows: dict[str, dict] = {}
    for preset in NETWORK_PRESETS:
        started = time.perf_counter()
        fleet = fit_fleet([root / "train"], source, preset=preset)
        seconds = time.perf_counter() - started
        results = fleet.score([root / "test"])
        aucs = machine_aucs(results, {r.path: r.machine for r in results}.__getitem__)
        reference = rows.get("default", {}).get("auc", aucs)
        rows[preset] = {
            "auc": aucs,
            "mean_auc": statistics.fmean(aucs.values()),
            "largest_loss": max(reference[name] - aucs[name] for name in aucs),
            "fit_seconds": seconds,
        }
        print(preset, {k: v for k, v in rows[preset].items() if k != "auc"}, flush=True)
    return rows


def network_table(results: dict[str, dict[str, dict]]) -> str:
    lines = [
        "| set | " + " | ".join(NETWORK_PRESETS) + " |",
        "|---|" + "---|" * len(NETWORK_PRESETS),
    ]
    for name, rows in results.items():
        cells = [
            f"{rows[p]['mean_auc']:.3f} (−{max(rows[p]['largest_loss'], 0):.3f}; "
            f"{rows[p]['fit_seconds']:.1f} s)"
            for p in NETWORK_PRESETS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", default="4,60", help="fleet sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cli", action="store_true", help="also time the CLI fits")
    parser.add_argument(
        "--networks", action="store_true", help="only the fleet presets with one network"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    warnings.simplefilter("ignore", AetkWarning)
    # Every fit cold (no feature cache), the CLI runs too: no way is timed on another's features.
    os.environ["AETK_CACHE"] = "0"
    if args.networks:
        networks(args)
        return
    results: dict[str, dict] = {}
    for count in map(int, args.machines.split(",")):
        with tempfile.TemporaryDirectory(prefix="aetk-fleet-") as folder:
            root = Path(folder)
            names = write_fleet(root / "data", count, args.seed)
            row = compare(root / "data", names)
            if args.cli:
                row.update(cli_fit_times(root / "data", names, root))
            results[f"synthetic_{count}"] = row
            print(json.dumps({k: v for k, v in row.items() if k != "auc"}, default=str)[:400])
    if VALVES.is_dir():
        results["valve_mixed"] = compare(VALVES, ["id_00", "id_02", "id_04", "id_06"], "dcase")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "fleet.md").write_text(table(results))
    print(table(results))


def networks(args: argparse.Namespace) -> None:
    """``--networks``: the fleet presets on each fleet size, seeds ``seed``, ``seed + 1`` and
    ``seed + 2`` for fleets of up to 10 machines (one seed for larger ones), and valve_mixed."""
    results: dict[str, dict] = {}
    for count in map(int, args.machines.split(",")):
        for seed in range(args.seed, args.seed + (3 if count <= 10 else 1)):
            with tempfile.TemporaryDirectory(prefix="aetk-fleet-") as folder:
                write_fleet(Path(folder), count, seed)
                results[f"synthetic_{count}_seed{seed}"] = compare_networks(Path(folder))
    if VALVES.is_dir():
        results["valve_mixed"] = compare_networks(VALVES, "dcase")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet_networks.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "fleet_networks.md").write_text(network_table(results))
    print(network_table(results))


def table(results: dict[str, dict]) -> str:
    lines = [
        "| set | machines | fleet: mean AUC per machine | one detector per machine | "
        "one pooled detector | fit (s): fleet / per machine / pooled |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        alone = row.get("per_machine")
        alone_auc = f"{alone['mean_auc']:.3f}" if alone else "n/a"
        alone_fit = f"{alone['fit_seconds']:.1f}" if alone else "n/a"
        lines.append(
            f"| {name} | {row['machines']} | {row['fleet']['mean_auc']:.3f} | {alone_auc} | "
            f"{row['pooled']['mean_auc']:.3f} | {row['fleet']['fit_seconds']:.1f} / "
            f"{alone_fit} / {row['pooled']['fit_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
