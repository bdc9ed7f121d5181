"""Decoding recordings with soundfile, and finding them in folders."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import write_wav

import aetk
from aetk.data.audio import find_audio_files, read_audio


def tone(seconds=0.25, rate=16000, channels=1, frequency=440.0):
    time = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * frequency * time)
    return np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    ("suffix", "subtype"),
    [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "FLOAT"), ("flac", "PCM_16"), ("ogg", "VORBIS")],
)
def test_reads_common_formats_as_float32_channels_first(tmp_path, suffix, subtype):
    path = write_wav(tmp_path / f"x.{suffix}", tone(channels=2), subtype=subtype)
    audio = read_audio(path)
    assert audio.samples.dtype == np.float32
    assert audio.samples.shape[0] == 2
    assert audio.sample_rate == 16000
    assert abs(audio.samples.shape[1] - 4000) <= 1024  # Vorbis may pad a block
    assert abs(np.abs(audio.samples[1]).max() - 0.3) < 0.02


def test_16_bit_samples_decode_exactly_as_libsndfile_converts_them(tmp_path, monkeypatch):
    import aetk_core.audio

    # Blocks of 1,000 samples: a two-channel file of 2,500 frames takes five reads.
    monkeypatch.setattr(aetk_core.audio, "_BLOCK_SAMPLES", 1000)
    rng = np.random.default_rng(3)
    samples = rng.integers(-32768, 32768, size=(2500, 2), dtype=np.int16)
    path = tmp_path / "x.wav"
    soundfile.write(path, samples, 16000, subtype="PCM_16")
    expected, _ = soundfile.read(path, dtype="float32", always_2d=True)
    decoded = read_audio(path).samples
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, expected.T)


def test_reads_8_channel_wave_format_extensible(tmp_path):
    path = tmp_path / "mimii.wav"
    soundfile.write(path, tone(channels=8), 16000, subtype="PCM_16", format="WAVEX")
    assert soundfile.info(path).format == "WAVEX"
    assert read_audio(path).samples.shape == (8, 4000)


def test_reads_only_the_frames_asked_for(tmp_path):
    path = write_wav(tmp_path / "x.wav", tone(seconds=1.0))
    assert read_audio(path, frames=100).samples.shape == (1, 100)
    assert read_audio(path, frames=lambda rate: rate // 10).samples.shape == (1, 1600)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (
            lambda p: p.write_bytes(np.random.default_rng(0).bytes(3000)),
            "not a readable audio file",
        ),
        (lambda p: p.write_text("hello, I am text\n" * 20), "not a readable audio file"),
        (lambda p: p.mkdir(), "is a folder"),
    ],
    ids=["empty", "random-bytes", "text", "folder"],
)
def test_bad_files_raise_audio_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(aetk.AudioError, match=reason) as caught:
        read_audio(path)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(str(path))


def test_missing_file_names_it(tmp_path):
    with pytest.raises(aetk.AudioError, match="No such file"):
        read_audio(tmp_path / "missing.wav")


def test_truncated_wav_is_read_up_to_where_it_ends(tmp_path):
    path = write_wav(tmp_path / "x.wav", tone(seconds=1.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    audio = read_audio(path)
    assert 0 < audio.samples.shape[1] < 16000


def test_header_only_wav_has_no_samples(tmp_path):
    path = write_wav(tmp_path / "x.wav", tone(seconds=1.0))
    path.write_bytes(path.read_bytes()[:44])
    with pytest.raises(aetk.AudioError, match="no audio samples"):
        read_audio(path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_samples_are_refused(tmp_path, value):
    samples = tone()
    samples[100] = value
    path = write_wav(tmp_path / "x.wav", samples, subtype="FLOAT")
    with pytest.raises(aetk.AudioError, match="NaN or infinite"):
        read_audio(path)


def test_find_audio_files_sorted_recursive_and_keeps_explicit_files(tmp_path):
    for name in ["b/2.wav", "a/1.flac", "a/0.WAV", "a/notes.md", "c.ogg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "d.wav").mkdir()  # a folder with an audio suffix is searched, not read
    found = find_audio_files([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/0.WAV",
        "a/1.flac",
        "b/2.wav",
        "c.ogg",
    ]
    explicit = tmp_path / "a" / "notes.md"  # not audio, not a manifest: kept as given
    assert find_audio_files([explicit, tmp_path / "missing.wav"]) == [
        explicit,
        tmp_path / "missing.wav",
    ]


def test_hidden_files_and_folders_under_a_folder_are_left_out(tmp_path):
    """macOS writes ``._name.wav`` beside each file it copies to a foreign disk (not audio: an
    error row each, and exit status 1); a NAS's ``.snapshot`` holds copies of everything. Named
    explicitly, or as the folder given, a hidden path is read."""
    for name in ["a/1.wav", "a/._1.wav", ".snapshot/a/1.wav", "b/.partial.wav"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert find_audio_files([tmp_path]) == [tmp_path / "a" / "1.wav"]
    assert find_audio_files([tmp_path / "a" / "._1.wav"]) == [tmp_path / "a" / "._1.wav"]
    assert find_audio_files([tmp_path / ".snapshot"]) == [tmp_path / ".snapshot" / "a" / "1.wav"]


def test_standard_input_is_read_as_one_recording_never_a_terminal_or_a_stream():
    import io

    from aetk_core.audio import read_input

    class Terminal(io.BytesIO):
        def isatty(self):
            return True

    with pytest.raises(aetk.ConfigError, match="a terminal here: pipe one in"):
        read_input(Terminal(b"RIFF"))
    with pytest.raises(aetk.ConfigError, match="more than 0 MB: '-' reads one recording"):
        read_input(io.BytesIO(b"x" * 11), limit=10)
    assert read_input(io.BytesIO(b"x" * 10), limit=10) == b"x" * 10
