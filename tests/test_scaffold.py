"""aetk plugins new: the generated package installs and passes its own tests as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_generated_plugin_installs_and_passes_its_own_tests(cli, tmp_path):
    result = cli("plugins", "new", "demo-plugin", "--dir", tmp_path)
    assert result.code == 0, result.stderr
    root = tmp_path / "aetk-demo-plugin"
    assert f"Wrote {root}. Next: pip install -e '{root}[test]'" in result.stderr
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == {
        "pyproject.toml",
        "README.md",
        "src/aetk_demo_plugin/__init__.py",
        "src/aetk_demo_plugin/components.py",
        "src/aetk_demo_plugin/twins.py",
        "tests/test_contract.py",
    }
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "aetk", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(site)},
    )
    assert "demo-plugin-worst" in listed.stdout


@pytest.mark.parametrize("name", ["Bad_Name", "x-", "two  words", "ünï"])
def test_invalid_names_are_refused(cli, tmp_path, name):
    result = cli("plugins", "new", name, "--dir", tmp_path)
    assert result.code == 2
    assert "must be lowercase letters and digits joined by hyphens" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_never_overwritten(cli, tmp_path):
    (tmp_path / "aetk-mine").mkdir()
    (tmp_path / "aetk-mine" / "keep.txt").write_text("mine")
    result = cli("plugins", "new", "mine", "--dir", tmp_path)
    assert result.code == 2 and "already exists" in result.stderr
    assert (tmp_path / "aetk-mine" / "keep.txt").read_text() == "mine"


def test_a_dir_that_is_a_file_or_a_full_disk_is_one_line_and_leaves_nothing(
    cli, tmp_path, monkeypatch
):
    (tmp_path / "notes.txt").write_text("mine")
    result = cli("plugins", "new", "mine", "--dir", tmp_path / "notes.txt")
    assert result.code == 2 and "a file stands where a folder would be" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    written = []

    def full_disk(self, text, *args, **kwargs):
        if written:
            raise OSError(28, "No space left on device")
        written.append(self)
        return original(self, text, *args, **kwargs)

    original = Path.write_text
    monkeypatch.setattr(Path, "write_text", full_disk)
    result = cli("plugins", "new", "mine", "--dir", tmp_path / "plugins")
    assert result.code == 2 and written  # one file was written before the disk filled up
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'plugins' / 'aetk-mine'}: cannot write the package (No space left "
        "on device)"
    ]
    assert list((tmp_path / "plugins").iterdir()) == []
