"""Where a detector says a short event is: for every faulty clip of the synthetic event suite
(aetk.synth's clicking machine, one knock, valve chatter or brief rub per 10-s clip at −10…0 dB
under the hum, written afresh for each seed with where each event lies: ``events.csv``), whether
what ``aetk score --json`` shows points at the event, whether or not the clip was flagged (the
localization's own quality; ``detected`` says how many faults the threshold flagged).

- **moment**: the clip was raised by a view of a moment (``raised by: event at …``) and that
  moment overlaps the event;
- **first event**: the first of the ``events`` column overlaps the event (runs of frames above
  the event threshold, in the order of :func:`aetk_core.results.events_to_hear`); also among
  the flagged clips alone (**flagged: first event on it**), the ones whose events the table shows;
- **band**: an event listed that overlaps the event names a band holding the knock's resonance
  or overlapping the rub's band (the chatter's clicks are broadband: not counted).

Overlap allows ``TOLERANCE_SECONDS`` either side (a 64-ms analysis frame that holds the event's
start or end). Shares are of the faulty clips, pooled over seeds.

    ./dev python bench/localization.py                   # the candidates below, 3 seeds
    ./dev python bench/localization.py --candidates "default" --seeds 1,2,3,4,5

Writes bench/results/localization.json and localization.md (docs/quality.md, section "Where the
default says a short event is").
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

from aetk_core.results import events_to_hear
from quality import CANDIDATES

import aetk

HERE = Path(__file__).resolve().parent
#: Candidates measured unless --candidates says otherwise: the presets that localize, and the
#: autoencoder with a view of moments.
MEASURED = ("default", "transient", "autoencoder", "autoencoder, clip+event")
#: Slack either side of an event: one analysis frame (64 ms) can hold its start or its end.
TOLERANCE_SECONDS = 0.064
MOMENT_VIEWS = ("event", "contrast")


def placed(row: dict[str, str]) -> dict:
    """A row of events.csv with its numbers read (an empty band: None)."""
    numbers = {
        key: float(row[key]) if row[key] else None for key in ("start", "end", "low_hz", "high_hz")
    }
    return {"kind": row["kind"], **numbers}


def overlaps(start: float, end: float, event: dict) -> bool:
    return start < event["end"] + TOLERANCE_SECONDS and end > event["start"] - TOLERANCE_SECONDS


def names_the_band(segment: dict, event: dict) -> bool:
    low, high = event["low_hz"], event["high_hz"]
    return any(band["low_hz"] <= high and band["high_hz"] >= low for band in segment["bands"])


def judge(result: aetk.ScoreResult, event: dict) -> dict:
    """What the faulty clip ``result`` shows about its ``event`` (:func:`placed`)."""
    view = result.view or {}
    segments = events_to_hear(result.segments or [], result.view)
    on_event = [
        segment for segment in segments if overlaps(segment["start"], segment["end"], event)
    ]
    return {
        "kind": event["kind"],
        "by_moment": view.get("view") in MOMENT_VIEWS,
        "moment": view.get("view") in MOMENT_VIEWS and overlaps(view["start"], view["end"], event),
        "first": bool(segments) and overlaps(segments[0]["start"], segments[0]["end"], event),
        "band": (
            None
            if event["low_hz"] is None
            else any(names_the_band(segment, event) for segment in on_event)
        ),
    }


def run_once(options: dict, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        aetk.synth.write_event_dataset(folder, seed=seed)
        with open(Path(folder) / "events.csv", newline="") as stream:
            events = {row["file"]: placed(row) for row in csv.DictReader(stream)}
        detector = aetk.fit(Path(folder) / "train", seed=seed, **options)
        results = detector.score(Path(folder) / "test", localize=True)
    judged = []
    for result in results:
        event = events.get(Path(result.path).relative_to(folder).as_posix())
        if event is not None:  # a faulty clip
            judged.append({**judge(result, event), "flagged": result.anomalous})
    return {"seed": seed, "faults": judged}


def summarise(runs: list[dict]) -> dict:
    """Per kind of event and over all: how many faulty clips, the share flagged, and the share
    whose moment, first event and band fall on the event."""
    summary: dict[str, dict] = {}
    for kind in (*aetk.synth.EVENTS, "all"):
        judged = [j for run in runs for j in run["faults"] if kind in ("all", j["kind"])]
        summary[kind] = {
            "faults": len(judged),
            **{
                key: _share([j[key] for j in judged if j[key] is not None])
                for key in ("flagged", "by_moment", "moment", "first", "band")
            },
            "flagged_first": _share([j["first"] for j in judged if j["flagged"]]),
            "flagged_faults": sum(bool(j["flagged"]) for j in judged),
        }
    return summary


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def markdown(results: dict) -> str:
    lines = [
        "| candidate | event (faulty clips) | flagged | raised by a moment | moment on the event "
        "| first event on it | its band named | flagged: first event on it |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for kind, s in result["summary"].items():
            keys = ("flagged", "by_moment", "moment", "first", "band", "flagged_first")
            shown = " | ".join("n/a" if s[key] is None else f"{s[key]:.0%}" for key in keys)
            lines.append(f"| {name} | {kind} ({s['faults']}) | {shown} ({s['flagged_faults']}) |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=";".join(MEASURED), help="names separated by ;")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.candidates.split(";")]
    unknown = [name for name in names if name not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; known: {list(CANDIDATES)}")
    warnings.simplefilter("ignore", aetk.AetkWarning)
    os.environ["AETK_CACHE"] = "0"
    results = {}
    for name in names:
        runs = []
        for seed in (int(seed) for seed in args.seeds.split(",")):
            runs.append(run_once(CANDIDATES[name], seed))
            flagged = sum(j["flagged"] for j in runs[-1]["faults"])
            print(f"{name:32s} seed {seed}: {flagged} faults flagged", flush=True)
        results[name] = {"seeds": [run["seed"] for run in runs], "summary": summarise(runs)}
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "localization.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "localization.md").write_text(markdown(results))
    print()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
