"""Interruptions never leave a half-written detector; the same inputs give the same detector."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from conftest import TINY, TINY_ARGS, ctrl_c_as_in_a_terminal

import aetk
from aetk.detect.detector_file import read_detector, write_detector


def test_ctrl_c_during_fit_stops_cleanly_and_writes_nothing(machine_sounds, tmp_path):
    existing = tmp_path / "detector.aetk"
    existing.write_bytes(b"the user's previous detector")
    args = [*TINY_ARGS, "--epochs", "100000", "--force"]  # --force: not a detector, replace it
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aetk",
            "fit",
            str(machine_sounds["train"][0].parent),
            *args,
            "-o",
            str(existing),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    for line in process.stderr:  # wait until it is training
        if line.startswith("epoch"):
            break
    process.send_signal(signal.SIGINT)
    _, remaining = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"interrupted: fitting stopped, nothing written to {existing}" in remaining
    assert "Traceback" not in remaining
    assert existing.read_bytes() == b"the user's previous detector"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.aetk"]


def test_killed_while_writing_leaves_the_existing_detector_intact(fitted, tmp_path):
    _, path = fitted
    target = tmp_path / "detector.aetk"
    target.write_bytes(path.read_bytes())
    before = target.read_bytes()
    writer = textwrap.dedent(f"""
        import torch
        from aetk.detect.detector_file import write_detector
        print("writing", flush=True)
        write_detector({str(target)!r}, {{"components": {{}}}}, {{"big": torch.ones(150_000_000)}})
        print("done", flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".detector.aetk.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert target.read_bytes() == before
    assert aetk.Detector.load(target).threshold > 0


def test_ctrl_c_while_saving_removes_the_temporary_file(fitted, tmp_path, failing_detector_writes):
    _, path = fitted
    target = tmp_path / "detector.aetk"
    target.write_bytes(path.read_bytes())
    failing_detector_writes(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        write_detector(target, {"components": {}}, {"x": torch.zeros(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector.aetk"]
    assert target.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("options", [TINY, {"preset": "default"}], ids=["autoencoder", "default"])
def test_same_files_and_seed_give_identical_weights_and_scores(machine_sounds, tmp_path, options):
    paths = []
    for run in range(2):
        detector = aetk.fit(machine_sounds["train"], seed=7, **options)
        paths.append(detector.save(tmp_path / f"run{run}.aetk"))
    (first_manifest, first), (second_manifest, second) = map(read_detector, paths)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert (
        first_manifest["checksums"]["tensors_sha256"]
        == (second_manifest["checksums"]["tensors_sha256"])
    )
    scores = [[r.score for r in aetk.Detector.load(p).score(machine_sounds["test"])] for p in paths]
    assert scores[0] == scores[1]


def test_different_seeds_give_different_autoencoders(machine_sounds):
    first = aetk.fit(machine_sounds["train"], seed=1, **TINY).model.module_.state_dict()
    second = aetk.fit(machine_sounds["train"], seed=2, **TINY).model.module_.state_dict()
    assert not all(torch.equal(first[name], second[name]) for name in first)
