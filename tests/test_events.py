"""Short events: the default hears a knock that a clip's average hides, says which view raised the
score and when, and the synthetic event suite behaves as the benchmark assumes."""

from __future__ import annotations

import dataclasses

import aetk_core.results
import numpy as np
import pytest
from conftest import write_wav

import aetk
from aetk import synth

RATE = 16000


@pytest.fixture(scope="module")
def clicking_machine(tmp_path_factory):
    """Twelve normal 2-s clips of the clicking machine, and test clips with and without a loud
    knock 1.0–1.1 s in."""
    folder = tmp_path_factory.mktemp("clicking")
    rng = np.random.default_rng(7)
    for index in range(12):
        write_wav(folder / "train" / f"normal_{index}.wav", synth.event_clip(rng, None, 2.0)[0])
    for index in range(4):
        write_wav(folder / "test" / f"normal_{index}.wav", synth.event_clip(rng, None, 2.0)[0])
        clip, _ = synth.event_clip(rng, None, 2.0)
        time = np.arange(int(0.1 * RATE)) / RATE
        knock = 0.5 * np.exp(-time / 0.03) * np.sin(2 * np.pi * 1500 * time)
        clip[RATE : RATE + len(knock)] = np.clip(clip[RATE : RATE + len(knock)] + knock, -1, 1)
        write_wav(folder / "test" / f"anomaly_knock_{index}.wav", clip)
    return folder


def test_default_hears_a_knock_and_says_when(clicking_machine, cli, tmp_path):
    detector = tmp_path / "d.aetk"
    fitted = cli("fit", clicking_machine / "train", "-o", detector, "--json")
    assert fitted.code == 0, fitted.stderr
    summary = fitted.json_lines()[-1]
    assert [view["view"] for view in summary["views"]] == ["clip", "frames", "event"]
    assert all(view["scale"] > 0 for view in summary["views"])
    scored = cli("score", clicking_machine / "test", "-d", detector, "--json")
    rows = {row["path"].rsplit("/", 1)[-1]: row for row in scored.json_lines()}
    knocks = [row for name, row in rows.items() if name.startswith("anomaly")]
    normals = [row for name, row in rows.items() if name.startswith("normal")]
    assert min(row["score"] for row in knocks) > max(row["score"] for row in normals)
    for row in knocks:
        assert row["view"]["view"] == "event"
        assert 0.85 <= row["view"]["start"] <= 1.1, row["view"]
        assert any(s["start"] <= 1.1 and s["end"] >= 1.0 for s in row["segments"]), row
    assert all(row["view"]["view"] in ("clip", "frames", "event") for row in normals)
    assert all(set(row["view"]) == {"view"} for row in normals if row["view"]["view"] != "event")

    # The table says what raised each anomaly, and when, as --json does; normal rows say nothing.
    between = (min(row["score"] for row in knocks) + max(row["score"] for row in normals)) / 2
    table = cli("score", clicking_machine / "test", "-d", detector, "--threshold", str(between))
    header, *lines = [line.split("\t") for line in table.stdout.splitlines()]
    assert header[:5] == ["file", "score", "threshold", "verdict", "raised by"]
    for cells in lines:
        row = rows[cells[0].rsplit("/", 1)[-1]]
        anomalous = row["score"] > between
        raised = aetk_core.results.describe_view(row["view"]) if anomalous else ""
        assert cells[4] == raised and cells[3] == ("ANOMALY" if anomalous else "normal")
    assert sum(cells[4].startswith("event at ") for cells in lines) == len(knocks)


@pytest.mark.parametrize("while_scoring", [True, False], ids=["one pass", "anomalies again"])
def test_localizing_the_anomalies_alone_changes_no_score(
    clicking_machine, monkeypatch, while_scoring
):
    """``localize="anomalous"`` scores as the others do and says where only for anomalies,
    whether the anomalies are localized from the scoring pass or scored again to be."""
    detector = aetk.fit(clicking_machine / "train")
    assert detector.scorer.localizes_while_scoring()
    monkeypatch.setattr(detector.scorer, "localizes_while_scoring", lambda: while_scoring)
    files = sorted((clicking_machine / "test").iterdir())
    scores = sorted(result.score for result in detector.score(files, localize=False))
    between = (scores[3] + scores[4]) / 2  # half the clips above it
    results = {
        localize: detector.score(files, localize=localize, threshold=between)
        for localize in (False, True, "anomalous")
    }
    assert any(result.anomalous for result in results[True])
    assert any(not result.anomalous for result in results[True])
    for alone, everywhere, plain in zip(
        results["anomalous"], results[True], results[False], strict=True
    ):
        assert alone.score == plain.score == pytest.approx(everywhere.score, rel=1e-6)
        assert plain.view is None and plain.segments is None
        if alone.anomalous:
            assert (alone.view, alone.segments) == (everywhere.view, everywhere.segments)
        else:
            assert alone.view is None and alone.segments is None
    with pytest.raises(ValueError, match="localize"):
        detector.score(files, localize="all")  # type: ignore[arg-type]


@pytest.mark.parametrize("while_scoring", [True, False], ids=["one pass", "anomalies again"])
def test_anomalies_are_localized_from_the_scoring_pass_where_that_costs_nothing_more(
    clicking_machine, monkeypatch, while_scoring
):
    """A scorer whose localization falls out of its scoring pass scores each clip once, the
    anomalies localized from that pass; another scores every clip and then the anomalies
    again."""
    monkeypatch.setenv("AETK_WORKERS", "1")  # the calls are counted in this process
    detector = aetk.fit(clicking_machine / "train")
    files = sorted((clicking_machine / "test").iterdir())
    scores = sorted(result.score for result in detector.score(files, localize=False))
    between = (scores[2] + scores[3]) / 2  # five of the eight clips above it
    scorer, passes = detector.scorer, []
    score_and_localize = scorer.score_and_localize

    # knn's views score through score_and_localize, with localize=False for a score alone.
    def counted_score_and_localize(model, clips, localize=True):
        passes.append(("score and localize", len(clips)) if localize else ("score", len(clips)))
        return score_and_localize(model, clips, localize)

    monkeypatch.setattr(scorer, "localizes_while_scoring", lambda: while_scoring)
    monkeypatch.setattr(scorer, "score_and_localize", counted_score_and_localize)
    results = detector.score(files, localize="anomalous", threshold=between)
    assert sum(result.anomalous for result in results) == 5
    assert all((result.segments is not None) == result.anomalous for result in results)
    if while_scoring:
        assert passes == [("score and localize", 8)]
    else:
        assert passes == [("score", 8), ("score and localize", 5)]


def margin(results) -> float:
    """How far the quietest knock scores above the loudest normal clip, as a ratio."""
    knocks = [r.score for r in results if "anomaly" in r.path]
    return min(knocks) / max(r.score for r in results if "anomaly" not in r.path)


def test_the_event_view_separates_a_knock_by_more_than_the_clip_average(clicking_machine):
    averaged = aetk.fit(clicking_machine / "train", set=["scorer.pooling=clip"])
    averaged_results = averaged.score(clicking_machine / "test")
    assert all(result.view is None for result in averaged_results)
    both = aetk.fit(clicking_machine / "train").score(clicking_machine / "test")
    assert margin(both) > margin(averaged_results) + 0.05


def test_the_table_lists_the_event_that_raised_the_score_then_the_strongest():
    scores = [1.2, 4.0, 0.9, 3.1, 2.5]
    segments = [
        {"start": float(second), "end": second + 0.25, "score": score}
        for second, score in enumerate(scores)
    ]
    flagged = aetk_core.results.ScoreResult("a.wav", 4.0, 1.0, True, segments=segments)
    _, row = aetk_core.results.table([flagged])
    assert row[-1] == "1.00–1.25 s, 3.00–3.25 s, 4.00–4.25 s (+2 more)"
    few = aetk_core.results.ScoreResult("b.wav", 4.0, 1.0, True, segments=segments[:2])
    assert aetk_core.results.table([few])[1][-1] == "1.00–1.25 s, 0.00–0.25 s"
    # Raised by a moment: the event holding it comes first, as the "raised by" column says.
    moment = {"view": "event", "start": 4.1, "end": 4.2}
    raised = aetk_core.results.ScoreResult("c.wav", 4.0, 1.0, True, segments=segments, view=moment)
    assert aetk_core.results.table([raised])[1][-1] == (
        "4.00–4.25 s, 1.00–1.25 s, 3.00–3.25 s (+2 more)"
    )
    whole = dataclasses.replace(raised, view={"view": "clip"})
    assert aetk_core.results.table([whole])[1][-1] == row[-1]


def test_event_clips_hold_one_event_at_the_asked_level():
    machine = synth.Machine()
    normal, _ = synth.event_clip(np.random.default_rng(1), None, 4.0, machine)
    loud, _ = synth.event_clip(np.random.default_rng(1), "rub", 4.0, machine, level_db=6.0)
    assert normal.shape == loud.shape == (4 * machine.sample_rate,)
    # Same seed: the same machine sound (scaled to its own peak); what differs is the event,
    # short against the clip.
    audible = np.abs(normal) > 0.05
    gain = np.median(loud[audible] / normal[audible])
    frames = np.abs(loud - gain * normal).reshape(-1, 1600)  # 0.1-s frames
    active = frames.max(1) > 0.02
    assert 2 <= active.sum() <= 6
    with pytest.raises(ValueError, match="unknown event"):
        synth.event_clip(np.random.default_rng(1), "squeal")


def test_write_event_dataset_names_each_event_and_says_where_it_lies(tmp_path):
    import csv

    written = synth.write_event_dataset(
        tmp_path, train=2, test_normal=1, test_per_event=2, seconds=1.0
    )
    names = sorted({path.stem.rsplit("_", 1)[0] for path in written["test"]})
    assert names == ["anomaly_chatter", "anomaly_knock", "anomaly_rub", "normal"]
    assert len(written["train"]) == 2
    with open(tmp_path / "events.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    faults = [path for path in written["test"] if path.name.startswith("anomaly")]
    assert [tmp_path / row["file"] for row in rows] == faults
    for row in rows:
        assert row["file"].startswith(f"test/anomaly_{row['kind']}_")
        assert 0 <= float(row["start"]) < float(row["end"]) <= 1.0
        if row["kind"] == "chatter":  # broadband clicks
            assert row["low_hz"] == row["high_hz"] == ""
        elif row["kind"] == "knock":  # one resonance
            assert 800 <= float(row["low_hz"]) == float(row["high_hz"]) <= 3000
        else:
            assert float(row["high_hz"]) == pytest.approx(2 * float(row["low_hz"]), abs=0.2)


@pytest.mark.parametrize("kind", synth.EVENTS)
def test_a_placed_event_is_where_the_clip_changes(kind):
    machine = synth.Machine()
    normal, none = synth.event_clip(np.random.default_rng(4), None, 3.0, machine)
    faulty, placed = synth.event_clip(np.random.default_rng(4), kind, 3.0, machine, level_db=6.0)
    assert none is None and placed is not None and placed.kind == kind
    # Same seed: the same machine sound, scaled to its own peak; the rest is the event.
    audible = np.abs(normal) > 0.05
    added = np.abs(faulty - np.median(faulty[audible] / normal[audible]) * normal)
    changed = np.flatnonzero(added > 0.2 * added.max()) / machine.sample_rate
    assert placed.start - 0.01 <= changed.min() and changed.max() <= placed.end + 0.01
