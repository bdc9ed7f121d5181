"""Every kind of bad or odd recording gets its documented outcome, and the batch goes on.

The cases and outcomes are listed in docs/reliability.md; this file generates each one.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
from conftest import TINY, write_wav

import aetk
from aetk import synth

RATE = 16000


def clip(seconds=0.5, rate=RATE, seed=0):
    return synth.normal_clip(np.random.default_rng(seed), seconds, synth.Machine(sample_rate=rate))


def wav_bytes(tmp_path, samples=None, rate=RATE, subtype="PCM_16"):
    path = write_wav(tmp_path / "source.wav", clip() if samples is None else samples, rate, subtype)
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture(scope="module")
def default_detector(machine_sounds, tmp_path_factory):
    """The default preset, as users get it, fitted on the synthetic normal clips."""
    detector = aetk.fit(machine_sounds["train"])
    return detector.save(tmp_path_factory.mktemp("default") / "detector.aetk")


def make_cases(folder):
    """Write every case; returns {file name: expected error fragment, or None for scored}."""
    folder.mkdir()
    valid = wav_bytes(folder)
    expected = {}

    def raw(name, data, outcome):
        (folder / name).write_bytes(data)
        expected[name] = outcome

    def audio(name, samples, outcome=None, rate=RATE, subtype="PCM_16", format=None):
        soundfile.write(folder / name, samples, rate, subtype=subtype, format=format)
        expected[name] = outcome

    raw("zero_bytes.wav", b"", "is empty (0 bytes)")
    raw("header_only.wav", valid[:44], "holds no audio samples")
    raw("truncated_data.wav", valid[: 44 + (len(valid) - 44) // 2], None)
    raw("riff_size_lies.wav", valid[:4] + struct.pack("<I", 123_456_789) + valid[8:], None)
    raw("random_bytes.wav", np.random.default_rng(1).bytes(4096), "not a readable audio file")
    raw("text.wav", b"this is a text file, not audio\n" * 40, "not a readable audio file")
    (folder / "folder.wav").mkdir()  # a folder named like audio is searched, not read
    audio("folder.wav/inside.wav", clip(seed=2))
    for subtype in ("PCM_U8", "PCM_16", "PCM_24", "FLOAT"):
        # seed 13: seed 3 is the synthetic set's first training clip, which a copy would repeat
        audio(f"{subtype.lower()}.wav", clip(seed=13), subtype=subtype)
    with_nan, with_inf = clip(seed=4), clip(seed=4)
    with_nan[100] = np.nan
    with_inf[100] = np.inf
    audio("float_nan.wav", with_nan, "holds NaN or infinite samples", subtype="FLOAT")
    audio("float_inf.wav", with_inf, "holds NaN or infinite samples", subtype="FLOAT")
    audio("one_sample.wav", np.array([0.1], np.float32), "is too short")
    audio("digital_silence.wav", np.zeros(RATE // 2, np.float32))
    audio("full_scale_clipping.wav", np.clip(clip(seed=5) * 50, -1, 1))
    audio("eight_channels.wav", np.stack([clip(seed=s) for s in range(8)], 1), format="WAVEX")
    for rate in (8000, 44100, 48000):
        audio(f"rate_{rate}.wav", clip(rate=rate, seed=6), rate=rate)
    audio("läufer_ß_日本語.wav", clip(seed=7))
    os.symlink("loop_b.wav", folder / "loop_a.wav")
    os.symlink("loop_a.wav", folder / "loop_b.wav")
    expected["loop_a.wav"] = expected["loop_b.wav"] = "Too many levels of symbolic links"
    return expected


def test_every_bad_input_case_gets_its_documented_outcome(cli, default_detector, tmp_path):
    expected = make_cases(tmp_path / "cases")
    result = cli("score", tmp_path / "cases", "-d", default_detector, "--json")
    assert result.code == 1  # some files could not be scored
    lines = {json.loads(line)["path"]: json.loads(line) for line in result.stdout.splitlines()}
    assert len(lines) == len(expected)
    for name, outcome in expected.items():
        line = lines[str(tmp_path / "cases" / name)]
        if outcome is None:
            assert line["error"] is None, (name, line)
            assert np.isfinite(line["score"]), name
        else:
            assert outcome in line["error"], (name, line)
            assert line["score"] is None and line["anomalous"] is None
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == sum(outcome is not None for outcome in expected.values())
    assert "Traceback" not in result.stderr
    silence = lines[str(tmp_path / "cases" / "digital_silence.wav")]
    assert silence["anomalous"] is True  # a machine that went silent is not "normal"


def test_fit_skips_bad_files_with_one_warning_each(tmp_path, machine_sounds):
    expected = make_cases(tmp_path / "cases")
    for path in machine_sounds["train"][:6]:
        (tmp_path / "cases" / f"good_{path.name}").write_bytes(path.read_bytes())
    with pytest.warns(aetk.AetkWarning) as caught:
        detector = aetk.fit(tmp_path / "cases", **TINY)
    skipped = {entry["path"].rsplit("/", 1)[-1] for entry in detector.training["skipped_files"]}
    assert skipped == {name for name, outcome in expected.items() if outcome is not None}
    assert sum("skipped" in str(w.message) for w in caught) == len(skipped)


def test_the_command_line_fits_past_every_bad_case_without_a_traceback(
    cli, tmp_path, machine_sounds
):
    """A folder holding a symbolic link in a loop had ended `aetk fit -o` in a traceback (the
    output path is compared with every input's resolved path)."""
    expected = make_cases(tmp_path / "cases")
    for path in machine_sounds["train"][:6]:
        (tmp_path / "cases" / f"good_{path.name}").write_bytes(path.read_bytes())
    result = cli("fit", tmp_path / "cases", "-o", tmp_path / "out.aetk")
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    skipped = aetk.Detector.load(tmp_path / "out.aetk").training["skipped_files"]
    assert {entry["path"].rsplit("/", 1)[-1] for entry in skipped} == {
        name for name, outcome in expected.items() if outcome is not None
    }


def test_unreadable_file_is_reported_and_the_batch_goes_on(default_detector, tmp_path):
    folder = tmp_path / "perm"
    write_wav(folder / "readable.wav", clip())
    write_wav(folder / "secret.wav", clip()).chmod(0o000)
    command = [
        sys.executable,
        "-m",
        "aetk",
        "score",
        str(folder),
        "-d",
        str(default_detector),
        "--json",
    ]
    if os.geteuid() == 0:
        # Root reads any file whatever its mode; without these two capabilities it cannot.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and util-linux setpriv is missing to drop privileges")
        caps = "-dac_override,-dac_read_search"
        command = [setpriv, "--bounding-set", caps, "--inh-caps", caps, "--", *command]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr
    lines = {json.loads(line)["path"]: json.loads(line) for line in completed.stdout.splitlines()}
    assert lines[str(folder / "secret.wav")]["error"] == "Permission denied"
    assert lines[str(folder / "readable.wav")]["error"] is None


def write_long_recording(path, seconds, rate=RATE):
    """Write a long recording block by block, without holding it in memory."""
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, "w", rate, 1, subtype="PCM_16") as sound:
        for _ in range(int(seconds // 10)):
            sound.write(0.1 * rng.standard_normal(10 * rate).astype(np.float32))
    return path


def peak_memory_mb(*args: str) -> tuple[int, float, str]:
    """Run aetk in a fresh interpreter; returns its exit status, peak RSS (MB) and stdout."""
    code = textwrap.dedent(f"""
        import resource, sys
        from aetk.cli import run
        status = run({list(args)!r})
        print("PEAK", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)
        sys.exit(status)
    """)
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600
    )
    peak = float(completed.stderr.rsplit("PEAK", 1)[1].split()[0])
    return completed.returncode, peak, completed.stdout


def test_hour_long_recording_is_refused_whole_and_scored_in_bounded_memory(
    default_detector, tmp_path
):
    hour = write_long_recording(tmp_path / "hour.wav", 3600)
    short = write_wav(tmp_path / "short.wav", clip(seconds=10.0))
    whole, _, out = peak_memory_mb("score", str(hour), "-d", str(default_detector), "--json")
    assert whole == 1
    assert "longer than the 600 s aetk decodes at once" in json.loads(out)["error"]
    _, baseline, _ = peak_memory_mb(
        "score", str(short), "-d", str(default_detector), "--segment", "10"
    )
    status, peak, out = peak_memory_mb(
        "score", str(hour), "-d", str(default_detector), "--json", "--segment", "10"
    )
    assert status == 0
    result = json.loads(out)
    assert result["error"] is None and np.isfinite(result["score"])
    assert isinstance(result["segments"], list)
    # An hour of 16-bit audio is 115 MB on disk and 230 MB as float32: scoring it in windows
    # must cost about what scoring 10 seconds does.
    assert peak < baseline + 150, (peak, baseline)


def test_decode_limit_is_configurable(default_detector, tmp_path, monkeypatch):
    path = write_wav(tmp_path / "two_seconds.wav", clip(seconds=2.0))
    detector = aetk.Detector.load(default_detector)
    monkeypatch.setenv("AETK_MAX_SECONDS", "1")
    (result,) = detector.score(path)
    assert "longer than the 1 s aetk decodes at once" in result.error
    (windowed,) = detector.score(path, segment=0.5)
    assert windowed.error is None and len(windowed.segments) <= 4
    monkeypatch.setenv("AETK_MAX_SECONDS", "soon")
    with pytest.raises(aetk.ConfigError, match="AETK_MAX_SECONDS"):
        detector.score(path)


def test_implausible_headers_are_refused_before_decoding(tmp_path):
    data = bytearray(wav_bytes(tmp_path))
    data[24:28] = struct.pack("<I", 4_000_000_000)  # sample rate field
    (tmp_path / "rate.wav").write_bytes(bytes(data))
    with pytest.raises(aetk.AudioError):
        aetk.read_audio(tmp_path / "rate.wav")


def test_a_folder_or_a_missing_file_read_as_audio_gets_one_reason_naming_it(tmp_path):
    """What decoding's one ``stat`` tells apart: a folder named like a recording (listed in a
    manifest, say) and a file that is not there."""
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(aetk.AudioError, match=r"folder\.wav: is a folder, not an audio file$"):
        aetk.read_audio(tmp_path / "folder.wav")
    with pytest.raises(aetk.AudioError, match=r"missing\.wav: No such file or directory$"):
        aetk.read_audio(tmp_path / "missing.wav")
