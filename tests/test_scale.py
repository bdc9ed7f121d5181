"""Scale-out: shards for job arrays, manifests, DDP fits with torchrun, scoring with Ray."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_ARGS, run_aetk, write_wav

import aetk
from aetk import synth
from aetk.data.audio import find_audio_files, select_shard


def test_shards_split_the_inputs_disjointly_and_stably(machine_sounds):
    files = machine_sounds["test"]
    shards = [select_shard(files, f"{i}/3") for i in range(3)]
    assert sorted(path for shard in shards for path in shard) == sorted(files)
    assert sum(len(shard) for shard in shards) == len(files)
    assert select_shard(files[:5], "1/3") == [f for f in shards[1] if f in files[:5]]
    # These 14 paths all fell into shard 1/2 under CRC-32 (a linear hash): never again.
    folder = Path("/tmp/pytest-of-root/pytest-78/sounds0/test")
    kinds = ("bearing", "knock", "rub", "imbalance")
    names = [f"normal_{i:04d}" for i in range(6)]
    names += [f"anomaly_{kind}_{i:04d}" for kind in kinds for i in (0, 1)]
    paths = [folder / f"{name}.wav" for name in names]
    assert min(len(select_shard(paths, f"{i}/2")) for i in range(2)) >= 3
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(aetk.ConfigError, match="--shard"):
            select_shard(files, bad)


def test_cli_shard_scores_only_its_share(cli, fitted, machine_sounds):
    _, detector = fitted
    folder = machine_sounds["test"][0].parent
    seen = []
    for index in range(2):
        result = cli("score", folder, "-d", detector, "--json", "--shard", f"{index}/2")
        assert result.code == 0
        seen += [line["path"] for line in result.json_lines()]
    assert sorted(seen) == sorted(str(path) for path in machine_sounds["test"])


def test_cli_empty_shard_is_not_a_failure(cli, fitted, machine_sounds):
    _, detector = fitted
    clip = machine_sounds["test"][0]
    empty = next(f"{i}/2" for i in range(2) if not select_shard([clip], f"{i}/2"))
    result = cli("score", clip, "-d", detector, "--json", "--shard", empty)
    assert result.code == 0
    assert result.stdout == ""
    assert "holds none of the 1 recordings" in result.stderr


def test_manifests_list_recordings_relative_to_themselves(tmp_path, machine_sounds):
    clips = machine_sounds["test"][:3]
    (tmp_path / "list.txt").write_text(f"# a comment\n{clips[0]}\n\n{clips[1]}\n")
    folder = tmp_path / "sub"
    write_wav(folder / "local.wav", synth.normal_clip(np.random.default_rng(0), seconds=0.5))
    (folder / "list.csv").write_text("label,path\nnormal,local.wav\nnormal," + str(clips[2]) + "\n")
    found = find_audio_files([tmp_path / "list.txt", folder / "list.csv"])
    assert found == [clips[0], clips[1], folder / "local.wav", clips[2]]


def test_torchrun_fit_writes_one_detector_agreeing_with_one_process(machine_sounds, tmp_path):
    """Two processes (gloo) against one, same files and seed: the same files are used, and the
    test scores agree within the stated tolerance (rank correlation ≥ 0.95, median relative
    difference ≤ 5 %; measured: 0.997 and 0.6 % on a similar set)."""
    from scipy.stats import spearmanr

    train = machine_sounds["train"][0].parent
    args = [*TINY_ARGS, "--epochs", "8"]
    single = run_aetk("fit", train, *args, "-o", tmp_path / "one.aetk")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    double = run_aetk(
        "fit",
        train,
        *args,
        "--nproc",
        "2",
        "-o",
        tmp_path / "two.aetk",
        env={"TMPDIR": str(scratch)},
    )
    assert single.code == 0, single.stderr
    assert double.code == 0, double.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.aetk", "scratch", "two.aetk"]
    assert not list(scratch.glob("torchelastic_*"))  # torchrun's log folders went with the fit
    one, two = aetk.Detector.load(tmp_path / "one.aetk"), aetk.Detector.load(tmp_path / "two.aetk")
    assert two.training["processes"] == 2 and one.training["processes"] == 1
    assert two.training["data_fingerprint"] == one.training["data_fingerprint"]
    assert two.training["train_vectors"] == one.training["train_vectors"]
    a = np.array([r.score for r in one.score(machine_sounds["test"])])
    b = np.array([r.score for r in two.score(machine_sounds["test"])])
    assert spearmanr(a, b).statistic >= 0.95
    assert np.median(np.abs(a - b) / a) <= 0.05


ray_missing = importlib.util.find_spec("ray") is None
needs_ray = pytest.mark.skipif(
    ray_missing, reason="Ray is not installed (pip install 'aetk[ray]'); the Ray engine is skipped"
)


@needs_ray
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_ray_engine_scores_like_the_local_engine_and_resumes(
    fitted, machine_sounds, tmp_path, suffix
):
    import pandas

    _, detector = fitted
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    inputs = [*map(str, machine_sounds["test"]), str(broken)]
    out = tmp_path / f"results{suffix}"
    env = {"RAY_DEDUP_LOGS": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    first = run_aetk(
        "score",
        *inputs,
        "-d",
        detector,
        "--engine",
        "ray",
        "--out",
        out,
        "--workers",
        "2",
        "--json",
        env=env,
    )
    assert first.code == 1, first.stderr  # one file could not be scored
    (summary_line,) = first.stdout.strip().splitlines()  # stdout holds our summary only
    summary = json.loads(summary_line)
    assert (summary["scored"], summary["failed"], summary["skipped"]) == (14, 1, 0)
    assert summary["threshold_note"] == (aetk.Detector.load(detector).threshold_note() or None)
    table = pandas.read_parquet(out) if suffix == ".parquet" else pandas.read_csv(out)
    local = {r.path: r for r in aetk.Detector.load(detector).score(machine_sounds["test"])}
    # The rows have the columns of aetk score --json, in its order.
    assert list(table.columns) == list(next(iter(local.values())).as_dict())
    rows = table.set_index("path")
    for path, result in local.items():
        assert rows.loc[path, "score"] == pytest.approx(result.score, rel=1e-6)
        view = rows.loc[path, "view"]
        assert (None if pandas.isna(view) else json.loads(view)) == result.view
    assert "not a readable audio file" in rows.loc[str(broken), "error"]
    events = json.loads(rows.loc[str(machine_sounds["test"][-1]), "segments"])
    assert isinstance(events, list)
    again = run_aetk(
        "score", *inputs, "-d", detector, "--engine", "ray", "--out", out, "--json", env=env
    )
    assert json.loads(again.stdout)["skipped"] == len(inputs)
    reread = pandas.read_parquet(out) if suffix == ".parquet" else pandas.read_csv(out)
    assert len(reread) == len(inputs)


def test_ray_engine_usage_errors(cli, fitted, machine_sounds, tmp_path):
    _, detector = fitted
    one = machine_sounds["test"][0]
    assert "needs --out" in cli("score", one, "-d", detector, "--engine", "ray").stderr
    wrong = cli("score", one, "-d", detector, "--engine", "ray", "--out", tmp_path / "r.json")
    expected = "needs Ray: pip install" if ray_missing else "must end in .parquet or .csv"
    assert wrong.code == 2 and expected in wrong.stderr
    local = cli("score", one, "-d", detector, "--out", tmp_path / "r.parquet")
    assert local.code == 2 and "use it with --engine ray" in local.stderr


def test_a_ray_run_at_a_threshold_that_holds_no_rate_warns_as_the_local_engine(capsys):
    from aetk.cli.score import _print_ray_run
    from aetk.engines.ray import RayRun

    note = "the largest of 5 held-out normal scores: too few for a 10% false-alarm rate"
    _print_ray_run(RayRun(3, 0, 1, 0, 1.0, note), Path("r.parquet"), json_output=True)
    printed = capsys.readouterr()
    assert json.loads(printed.out)["threshold_note"] == note
    assert printed.err.splitlines()[0] == (
        f"warning: the threshold is {note}; record more normal recordings and refit, or give "
        "--threshold"
    )
    _print_ray_run(RayRun(3, 0, 1, 0, 1.0), Path("r.parquet"), json_output=True)
    assert "warning" not in capsys.readouterr().err


def test_distributed_helpers_without_torchrun():
    from aetk.fitting import distributed

    assert "WORLD_SIZE" not in os.environ or os.environ["WORLD_SIZE"] == "1"
    single = distributed.current()
    assert single is distributed.SINGLE and single.world == 1 and single.is_main
    assert single.shard(list(range(4))) == [0, 1, 2, 3]
    group = distributed.Group(rank=1, world=3, local_world=3)
    assert group.shard(list(range(10))) == [1, 4, 7]
    assert not group.is_main


def test_nproc_relaunch_drops_only_its_own_option(monkeypatch):
    from aetk.cli import fit

    calls = []
    monkeypatch.setattr(
        fit.subprocess,
        "run",
        lambda command: calls.append(command) or subprocess.CompletedProcess(command, 0),
    )
    arguments = ["fit", "data", "--nproc", "2", "--epochs", "3", "--nproc=2"]
    assert fit._launch(2, arguments) == 0
    (command,) = calls
    assert command[:5] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
    ]
    assert command[5].startswith("--log-dir=") and command[6] == "-m"
    assert command[7:] == ["aetk", "fit", "data", "--epochs", "3"]
    assert Path(command[0]).exists()


@needs_ray
def test_ray_engine_gives_the_local_rows_with_segments(fitted, machine_sounds, tmp_path):
    import pandas

    _, detector = fitted
    inputs = [str(path) for path in machine_sounds["test"][-3:]]
    local = aetk.Detector.load(detector).score(inputs, segment=0.25)
    out = tmp_path / "segments.parquet"
    env = {"RAY_DEDUP_LOGS": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    args = ["score", *inputs, "-d", detector, "--engine", "ray", "--out", out, "--segment", "0.25"]
    ran = run_aetk(*args, "--workers", "2", "--json", env=env)
    assert ran.code == 0, ran.stderr
    rows = pandas.read_parquet(out).set_index("path")
    for result in local:
        row = rows.loc[result.path]
        assert row["score"] == pytest.approx(result.score, rel=1e-6)
        assert bool(row["anomalous"]) == result.anomalous
        events = json.loads(row["segments"])
        assert [(e["start"], e["end"]) for e in events] == [
            (e["start"], e["end"]) for e in result.segments
        ]
        assert [e["score"] for e in events] == pytest.approx([e["score"] for e in result.segments])
    # The same files by absolute path are the same rows; another threshold is refused.
    again = run_aetk(
        *args[:1], *map(lambda p: str(Path(p).resolve()), inputs), *args[4:], "--json", env=env
    )
    assert json.loads(again.stdout)["skipped"] == 3 and len(pandas.read_parquet(out)) == 3
    other = run_aetk(*args, "--threshold", "0.5", "--json", env=env)
    assert other.code == 2 and "made with another detector, threshold" in other.stderr


@needs_ray
def test_a_ray_run_killed_midway_keeps_its_finished_parts_and_stops_ray(
    fitted, machine_sounds, tmp_path, monkeypatch
):
    import pandas
    import ray

    from aetk.engines import ray as engine

    _, detector = fitted
    out = tmp_path / "parts.parquet"
    monkeypatch.setattr(engine, "PART_FILES", 5)
    real = engine._score_dataset
    calls = []

    def interrupted_after_one_part(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "_score_dataset", interrupted_after_one_part)
    files = list(machine_sounds["test"])
    with pytest.raises(KeyboardInterrupt):
        engine.score_with_ray(detector, files, out, cpus=2, actors=1)
    assert not ray.is_initialized()  # the Ray it started is stopped on the way out
    assert len(pandas.read_parquet(out)) == 5  # the first part was written
    monkeypatch.setattr(engine, "_score_dataset", real)
    run = engine.score_with_ray(detector, files, out, cpus=2, actors=1)
    assert (run.skipped, run.scored) == (5, len(files) - 5)
    assert len(pandas.read_parquet(out)) == len(files)
    assert not ray.is_initialized()
    # No Ray process outlives the run by more than a few seconds.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _ray_processes():
        time.sleep(0.5)
    assert _ray_processes() == []


def _ray_processes() -> list[str]:
    listed = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [
        line
        for line in listed.splitlines()
        if ("raylet" in line or "dashboard_agent" in line or "gcs_server" in line)
        and "ps -eo" not in line
    ]
