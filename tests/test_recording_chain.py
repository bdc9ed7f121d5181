"""Recordings that do not match the detector: band limit, a lossy codec, gain, clipping, coarse
sample steps, a dropout, channels, DC offset, a short length and a machine the training
recordings' names did not name get named warnings at fit and at score time (rows, table, report,
watch events); --strict makes them errors; localization never names a band above a recording's
Nyquist frequency."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile
from aetk_core.recording import (
    NAMES,
    SIXTEEN_BIT_NOISE_DB,
    RecordingNorms,
    RecordingProfile,
    training_warnings,
)
from scipy.signal import resample_poly

import aetk
from aetk import synth
from aetk.detect.explanation import explain

RATE = 16000


def names(result) -> set[str]:
    return {warning["name"] for warning in result.warnings}


# Every check of the recording chain; the machine check reads names, not recordings (below).
FAULTS = [name for name in NAMES if name != "machine"]


def recording(tests, fault: str):
    """The chain fixture's recording for ``fault`` (``codec.ogg``, the others ``.wav``)."""
    (path,) = tests.glob(f"{fault}.*")
    return path


@pytest.mark.parametrize("fault", FAULTS)
def test_each_recording_fault_is_named_on_its_row(chain, fault):
    detector, _, tests = chain
    (result,) = detector.score(recording(tests, fault))
    assert fault in names(result)
    assert all(warning["message"] for warning in result.warnings)
    (clean,) = detector.score(tests / "clean.wav")
    assert clean.warnings == [] and clean.error is None


def test_a_recording_whose_spectrum_ends_at_the_training_rate_is_band_limited(chain, cli):
    detector, path, tests = chain
    (result,) = detector.score(tests / "low-passed.wav")
    assert names(result) == {"band-limit"}
    assert "its sound ends near 5" in result.warnings[0]["message"]
    ran = cli("score", tests / "low-passed.wav", "-d", path, "--strict")
    assert ran.code == 1 and "band-limit: its sound ends near" in ran.stdout + ran.stderr


def test_a_band_limited_recording_never_names_bands_above_its_nyquist(chain):
    detector, _, tests = chain
    (result,) = detector.score(tests / "band-limit.wav")
    assert result.anomalous and result.segments
    bands = [band for event in result.segments for band in event["bands"]]
    assert bands and max(band["high_hz"] for band in bands) <= RATE // 4
    explained = explain(detector, tests / "band-limit.wav")
    assert all(band.high_hz <= RATE // 4 for e in explained.errors.events for band in e.bands)


def test_strict_makes_a_mismatch_an_error_and_the_batch_goes_on(chain, cli):
    _, path, tests = chain
    ran = cli("score", tests, "-d", path, "--json", "--strict")
    rows = {
        json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line)
        for line in ran.stdout.splitlines()
    }
    assert ran.code == 1
    assert rows["clean.wav"]["score"] is not None and rows["clean.wav"]["error"] is None
    for fault in FAULTS:
        row = rows[recording(tests, fault).name]
        assert row["score"] is None and f"{fault}:" in row["error"] and "--strict" in row["error"]
    assert "Traceback" not in ran.stderr


def test_the_table_and_stderr_name_the_warnings(chain, cli):
    _, path, tests = chain
    ran = cli("score", tests / "band-limit.wav", tests / "clean.wav", "-d", path)
    assert ran.code == 0
    assert "band-limit.wav: band-limit: recorded at 8000 Hz" in ran.stderr
    header, *rows = ran.stdout.splitlines()[:3]
    assert header.endswith("recording")
    assert rows[0].endswith("band-limit") and not rows[1].endswith("band-limit")


def test_fit_warns_about_a_training_file_unlike_the_others(tmp_path, cli):
    rng = np.random.default_rng(1)
    for index in range(6):
        soundfile.write(tmp_path / f"n{index}.wav", synth.normal_clip(rng, 1.0), RATE)
    soundfile.write(tmp_path / "phone.wav", resample_poly(synth.normal_clip(rng, 1.0), 1, 2), 8000)
    ran = cli("fit", tmp_path, "-o", tmp_path / "d.aetk")
    assert ran.code == 0, ran.stderr
    assert "phone.wav: band-limit: recorded at 8000 Hz" in ran.stderr
    detector = aetk.Detector.load(tmp_path / "d.aetk")
    noted = detector.training["recording_warnings"]
    assert [(n["path"].rsplit("/", 1)[-1], n["name"]) for n in noted] == [
        ("phone.wav", "band-limit")
    ]


def test_a_recording_is_short_below_half_the_training_length_and_windows_follow_the_rule(
    chain, tmp_path
):
    """Fitted on 2-s clips: 0.9 s is short, 1.1 s is not; 5 s scored whole is long (a fault
    in a part of it fades in its average), 3.9 s is not, and a 5-s recording in windows of 2 s
    (the last of 1 s kept) is neither. Windows shorter than the training clips are measured
    against the windows asked for: their length against the training clips' is said once, by
    ``aetk score``'s window-length warning, not on every row (each row had named ``duration``,
    and ``--strict`` refused every file). Before the rule a detector of 10-s clips flagged 39
    of 40 normal 2-s recordings with no word of why."""
    detector, _, _ = chain
    assert detector.recording_norms().seconds == pytest.approx(2.0)
    # Watch windows and --segment's warning take the same measured length (the feature vector
    # counts alone say 1.952 s: frames without the last partial one).
    assert detector.clip_seconds == detector.recording_norms().seconds
    rng = np.random.default_rng(4)
    for seconds in (0.2, 0.9, 1.1, 3.9, 5.0):
        soundfile.write(tmp_path / f"{seconds}.wav", synth.normal_clip(rng, seconds), RATE)
    brief, long_enough, twice, overlong = (
        detector.score(tmp_path / f"{seconds}.wav")[0] for seconds in (0.9, 1.1, 3.9, 5.0)
    )
    assert names(brief) == {"duration"} and "0.9 s long" in brief.warnings[0]["message"]
    assert names(long_enough) == names(twice) == set()
    assert names(overlong) == {"duration"}
    assert overlong.warnings[0]["message"].startswith(
        "5 s long, more than twice the training recordings' length (2 s)"
    )
    assert overlong.warnings[0]["message"].endswith(
        "score it in windows (--segment 2, or --window 2 when watching)"
    )
    (windows,) = detector.score(tmp_path / "5.0.wav", segment=2.0)
    assert names(windows) == set()
    (short_windows,) = detector.score(tmp_path / "5.0.wav", segment=0.5, strict=True)
    assert names(short_windows) == set() and short_windows.error is None
    (shorter_than_its_windows,) = detector.score(tmp_path / "0.2.wav", segment=0.5)
    assert names(shorter_than_its_windows) == {"duration"}
    assert (
        "less than half the windows asked for (0.5 s)"
        in (shorter_than_its_windows.warnings[0]["message"])
    )


def test_a_detector_without_recording_norms_checks_the_band_limit_and_dropouts_only(chain):
    detector, _, tests = chain
    stored = detector.training.pop("recordings")
    try:
        assert names(detector.score(tests / "band-limit.wav")[0]) == {"band-limit"}
        assert names(detector.score(tests / "dropout.wav")[0]) == {"dropout"}
        assert detector.score(tests / "gain.wav")[0].warnings == []
        assert detector.score(tests / "duration.wav")[0].warnings == []
        assert detector.clip_seconds == pytest.approx(1.952)  # from the vector counts
    finally:
        detector.training["recordings"] = stored


def test_a_recording_named_for_a_machine_the_detector_did_not_learn_is_named(tmp_path):
    rng = np.random.default_rng(1)
    train = tmp_path / "train"
    train.mkdir()
    for index in range(6):
        soundfile.write(train / f"normal_id_00_{index:04d}.wav", synth.normal_clip(rng, 1.0), RATE)
    detector = aetk.fit(train)
    assert detector.training["machines"] == ["id_00"]
    clip = synth.normal_clip(rng, 1.0)
    named = ["normal_id_00_0100.wav", "normal_id_02_0000.wav", "recording.wav"]
    for name in named:
        soundfile.write(tmp_path / name, clip, RATE)
    rows = dict(zip(named, detector.score([tmp_path / name for name in named]), strict=True))
    assert names(rows["normal_id_02_0000.wav"]) == {"machine"}
    message = rows["normal_id_02_0000.wav"].warnings[0]["message"]
    assert "id_02" in message and "id_00" in message
    assert names(rows["normal_id_00_0100.wav"]) == set() == names(rows["recording.wav"])
    assert len({row.score for row in rows.values()}) == 1  # a warning, not another score
    # A detector from before the training recordings' machines were kept checks nothing by name.
    del detector.training["machines"]
    assert detector.score(tmp_path / "normal_id_02_0000.wav")[0].warnings == []


def profile(**changes) -> RecordingProfile:
    values = {"sample_rate": RATE, "channels": 1, "level_db": -20.0, "clipped_share": 0.0}
    return RecordingProfile(**{**values, "dc_offset": 0.0, **changes})


def test_norms_are_relative_to_the_training_recordings():
    norms = RecordingNorms.learn([profile(level_db=-25.0), profile(level_db=-15.0)], 8000.0)
    assert norms.check(profile(level_db=-34.0)) == []  # within 10 dB of the quietest
    assert [w.name for w in norms.check(profile(level_db=-36.0))] == ["gain"]
    assert [w.name for w in norms.check(profile(level_db=-4.0))] == ["gain"]
    # A machine always recorded with some clipping is not warned about for the same amount;
    # one training recording clipped (or offset) is a fluke and excuses none.
    clipping = RecordingNorms.learn([profile(clipped_share=0.01)] * 2, 8000.0)
    assert clipping.check(profile(clipped_share=0.015)) == []
    assert [w.name for w in clipping.check(profile(clipped_share=0.05))] == ["clipping"]
    one_clipped = RecordingNorms.learn([profile(clipped_share=0.01), profile()], 8000.0)
    assert [w.name for w in one_clipped.check(profile(clipped_share=0.015))] == ["clipping"]
    offset = RecordingNorms.learn([profile(dc_offset=0.05)] * 2 + [profile()], 8000.0)
    assert offset.check(profile(dc_offset=0.08)) == []
    one_offset = RecordingNorms.learn([profile(dc_offset=0.05), profile()], 8000.0)
    assert [w.name for w in one_offset.check(profile(dc_offset=0.08))] == ["dc-offset"]
    restored = RecordingNorms.from_dict(json.loads(json.dumps(norms.as_dict())), None)
    assert restored == norms
    # Lengths: the median training length; a detector file from before it was kept (or a
    # profile not measured) checks none.
    lengths = RecordingNorms.learn([profile(seconds=s) for s in (10.0, 10.0, 1.0)], 8000.0)
    assert lengths.seconds == 10.0
    assert [w.name for w in lengths.check(profile(seconds=4.0))] == ["duration"]
    assert [w.name for w in lengths.check(profile(seconds=20.5))] == ["duration"]
    assert lengths.check(profile(seconds=5.0)) == lengths.check(profile()) == []
    assert lengths.check(profile(seconds=20.0)) == []
    # A window of a file scored in windows: against the windows where they are shorter, and
    # never long (windows longer than the training recordings are named once, not per row).
    assert lengths.check(profile(seconds=2.0), window_seconds=2.0) == []
    assert lengths.check(profile(seconds=30.0), window_seconds=30.0) == []
    assert [w.name for w in lengths.check(profile(seconds=0.9), window_seconds=2.0)] == ["duration"]
    assert [w.name for w in lengths.check(profile(seconds=4.0), window_seconds=20.0)] == [
        "duration"
    ]
    older = {key: value for key, value in lengths.as_dict().items() if key != "seconds"}
    assert RecordingNorms.from_dict(older, None).check(profile(seconds=1.0)) == []
    # Dropouts: a machine whose recordings held some digital silence is warned only about more
    # than twice as much; one recording's dropout sets no bar (a fluke, named at fit).
    habit = [profile(dropout_seconds=0.12), profile(dropout_seconds=0.1), profile()]
    gated = RecordingNorms.learn(habit, 8000.0)
    assert gated.dropout_seconds == 0.1
    assert gated.check(profile(dropout_seconds=0.15)) == []
    assert [w.name for w in gated.check(profile(dropout_seconds=0.25))] == ["dropout"]
    fluke = RecordingNorms.learn([profile(dropout_seconds=0.12), profile(), profile()], 8000.0)
    assert fluke.dropout_seconds == 0.0
    assert [w.name for w in fluke.check(profile(dropout_seconds=0.08))] == ["dropout"]
    assert [w.name for w in norms.check(profile(dropout_seconds=0.05))] == ["dropout"]


def test_measured_profile_of_known_signals():
    samples = np.full((2, 1000), 0.5, dtype=np.float32)
    samples[1, :10] = 1.0
    measured = RecordingProfile.measure(samples, 8000)
    assert measured.channels == 2 and measured.sample_rate == 8000
    assert measured.seconds == 1000 / 8000
    assert RecordingProfile.from_dict(measured.as_dict()).seconds == measured.seconds
    assert measured.clipped_share == pytest.approx(10 / 2000)
    assert measured.dc_offset == pytest.approx(0.5, abs=0.01)
    assert measured.level_db == pytest.approx(10 * np.log10(0.25), abs=0.1)
    assert RecordingProfile.measure(np.zeros((1, 100), np.float32), 8000).level_db == -150.0
    # Digital silence in every channel at once, from 0.5 s for 0.1 s; shorter runs, or zeros in
    # one channel only, are no dropout.
    live = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 8000)).astype(np.float32)
    live[:, 4000:4800] = 0.0
    live[:, 1000:1300] = 0.0
    live[0, 6000:7000] = 0.0
    measured = RecordingProfile.measure(live, 8000)
    assert (measured.dropout_seconds, measured.dropout_start) == (0.1, 0.5)
    live[:, 4000:4800] = 0.1
    assert RecordingProfile.measure(live, 8000).dropout_seconds == 0.0
    # The spectrum's bands add up to the level (the DC bin aside), and survive a round trip.
    noise = RecordingProfile.measure(live, 8000)
    assert len(noise.band_levels_db) == 32
    total = 10 * np.log10(np.sum(np.power(10.0, np.array(noise.band_levels_db) / 10)))
    assert total == pytest.approx(noise.level_db, abs=0.5)
    assert RecordingProfile.from_dict(noise.as_dict()).band_levels_db == pytest.approx(
        noise.band_levels_db, abs=0.01
    )
    assert RecordingProfile.measure(live[:, :100], 8000).band_levels_db is None


def test_training_warnings_compare_each_file_with_the_others():
    found = training_warnings(
        [profile(), profile(), profile(level_db=-45.0), profile(channels=2)], 8000.0
    )
    assert [[w.name for w in file] for file in found] == [[], [], ["gain"], ["channels"]]
    lengths = [profile(seconds=10.0), profile(seconds=9.0), profile(seconds=4.0)]
    assert [[w.name for w in f] for f in training_warnings(lengths, 8000.0)] == [
        [],
        [],
        ["duration"],
    ]
    dropped = training_warnings([profile(), profile(dropout_seconds=0.2)], 8000.0)
    assert [[w.name for w in f] for f in dropped] == [[], ["dropout"]]


def pcm(samples: np.ndarray, bits: int) -> np.ndarray:
    """``samples`` rounded to the steps of ``bits``-bit PCM, as a recorder stores them."""
    full = 2 ** (bits - 1)
    return (np.round(np.clip(samples, -1, 1 - 1 / full) * full) / full).astype(np.float32)


def test_coarse_sample_steps_are_named_and_a_gain_change_is_not():
    """An 8-bit or µ-law recording's steps add noise that a detector of 16-bit recordings hears
    (8-bit copies of the shared lathe's normal test clips scored 2.7–3.3 against a threshold of
    1.8, and had no warning): ``quantization``. A 16-bit recording made quieter, or amplified,
    keeps its steps against its sound or in dBFS: a gain change alone."""
    rng = np.random.default_rng(3)
    hum = [rng.normal(0, 0.01, (1, 16000)) for _ in range(4)]  # dense enough to recur
    norms = RecordingNorms.learn([measured(pcm(clip[0], 16)) for clip in hum], 8000.0)
    sixteen, eight = measured(pcm(hum[0][0], 16)), measured(pcm(hum[0][0], 8))
    # One least significant bit: its square over 12, spread over the 32 bands.
    one_bit = 10 * np.log10(2.0**-30 / 12 / 32)
    assert sixteen.step_noise_db == pytest.approx(one_bit, abs=0.01)
    assert eight.step_noise_db == pytest.approx(one_bit + 20 * np.log10(256), abs=0.01)
    assert measured(hum[0][0]).step_noise_db == SIXTEEN_BIT_NOISE_DB  # float: as fine
    assert [w.name for w in norms.check(eight)] == ["quantization"]
    assert "coarser steps than the training recordings'" in norms.check(eight)[0].message
    assert [w.name for w in norms.check(measured(pcm(hum[1][0] * 0.05, 16)))] == ["gain"]
    assert [w.name for w in norms.check(measured(pcm(pcm(hum[1][0], 16) * 8, 16)))] == ["gain"]
    # Made quiet, then amplified back: the level of the others, the steps of 11 bits.
    amplified = measured(pcm(hum[1][0] * 0.05, 16) * 20)
    assert [w.name for w in norms.check(amplified)] == ["quantization"]
    restored = RecordingNorms.from_dict(json.loads(json.dumps(norms.as_dict())), None)
    assert (restored.step_noise_db, restored.step_floor_db) == pytest.approx(
        (norms.step_noise_db, norms.step_floor_db), abs=0.01
    )
    assert [w.name for w in restored.check(eight)] == ["quantization"]
    again = RecordingProfile.from_dict(json.loads(json.dumps(eight.as_dict())))
    assert again.step_noise_db == pytest.approx(eight.step_noise_db, abs=0.01)
    older = {k: v for k, v in norms.as_dict().items() if not k.startswith("step_")}
    assert RecordingNorms.from_dict(older, None).check(eight) == []  # a file from before
    # Against float training recordings (no steps to see), 16-bit steps are fine, 8-bit not.
    floats = RecordingNorms.learn([measured(clip[0]) for clip in hum], 8000.0)
    assert floats.check(sixteen) == [] and [w.name for w in floats.check(eight)] == ["quantization"]
    found = training_warnings([measured(pcm(clip[0], 16)) for clip in hum] + [eight], 8000.0)
    assert [[w.name for w in file] for file in found] == [[], [], [], [], ["quantization"]]
    # That one 8-bit training recording, named at fit, excuses no 8-bit recording scored.
    fluke = RecordingNorms.learn([measured(pcm(clip[0], 16)) for clip in hum] + [eight], 8000.0)
    assert [w.name for w in fluke.check(measured(pcm(hum[2][0], 8)))] == ["quantization"]


def test_a_lossy_codec_the_training_recordings_did_not_use_is_named():
    """Vorbis copies of the shared lathe's normal test clips scored 2.5–3.4 against a threshold
    of 1.8, MP3 ones 3.2–3.7, and neither ended its spectrum early enough to be band-limited:
    no warning said why. The codec is read from the file (soundfile's subtype)."""
    assert RecordingProfile.measure(np.zeros((1, 100), np.float32), RATE, "VORBIS").codec == (
        "Vorbis"
    )
    assert RecordingProfile.measure(np.zeros((1, 100), np.float32), RATE, "FLAC").codec is None
    lossless = RecordingNorms.learn([profile(), profile()], 8000.0)
    assert lossless.codecs == ()
    (named,) = lossless.check(profile(codec="MP3"))
    assert named.name == "codec" and "coded as MP3, a lossy codec" in named.message
    assert lossless.check(profile()) == []
    mp3 = RecordingNorms.learn([profile(codec="MP3")], 8000.0)
    assert mp3.check(profile(codec="MP3")) == mp3.check(profile()) == []
    assert (
        "the training recordings were coded as MP3" in mp3.check(profile(codec="Opus"))[0].message
    )
    restored = RecordingNorms.from_dict(json.loads(json.dumps(mp3.as_dict())), None)
    assert restored.codecs == ("MP3",)
    older = {key: value for key, value in lossless.as_dict().items() if key != "codecs"}
    assert RecordingNorms.from_dict(older, None).check(profile(codec="MP3")) == []
    again = RecordingProfile.from_dict(json.loads(json.dumps(profile(codec="MP3").as_dict())))
    assert again.codec == "MP3"
    found = training_warnings([profile(), profile(), profile(codec="MP3")], 8000.0)
    assert [[w.name for w in file] for file in found] == [[], [], ["codec"]]


def low_passed(samples: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Everything above ``cutoff_hz`` removed, as a codec or a steep filter would."""
    spectrum = np.fft.rfft(samples)
    spectrum[np.fft.rfftfreq(len(samples), 1 / RATE) > cutoff_hz] = 0
    return np.fft.irfft(spectrum, len(samples)).astype(np.float32)


def measured(samples: np.ndarray) -> RecordingProfile:
    return RecordingProfile.measure(samples[None].astype(np.float32), RATE)


def test_a_spectrum_that_ends_below_the_recording_s_nyquist_is_a_band_limit():
    """A codec, a low-pass filter or a pass through a lower rate leaves a recording at the
    training rate with nothing above some frequency; a gain change, a loud tone (a fault adds
    sound) and another normal clip do not."""
    rng = np.random.default_rng(2)
    norms = RecordingNorms.learn([measured(synth.normal_clip(rng, 1.0)) for _ in range(6)], 8000.0)
    assert norms.band_shape_hz == RATE / 2 and len(norms.band_shape_db) == 32
    clip = synth.normal_clip(rng, 1.0)
    (cut,) = norms.check(measured(low_passed(clip, 5000.0)))
    assert cut.name == "band-limit"
    ends = re.search(r"ends near (\d+) Hz", cut.message)
    assert ends and 5000 <= int(ends.group(1)) <= 5500  # a band of 250 Hz: the window's leakage
    halved = resample_poly(resample_poly(clip, 1, 2), 2, 1)
    assert [w.name for w in norms.check(measured(halved))] == ["band-limit"]
    assert norms.check(measured(clip)) == []
    assert [w.name for w in norms.check(measured(clip * 0.01))] == ["gain"]
    tone = clip + 0.5 * np.sin(2 * np.pi * 500 * np.arange(len(clip)) / RATE)
    assert "band-limit" not in {w.name for w in norms.check(measured(tone))}
    # Only what the detector hears counts: a detector of 0–4 kHz hears no end at 5 kHz.
    narrow = RecordingNorms.learn([measured(synth.normal_clip(rng, 1.0))], 4000.0)
    assert narrow.check(measured(low_passed(clip, 5000.0))) == []
    # Kept in the detector file; a file from before the shapes were kept checks none.
    restored = RecordingNorms.from_dict(json.loads(json.dumps(norms.as_dict())), None)
    assert restored.check(measured(low_passed(clip, 5000.0)))[0].name == "band-limit"
    older = {k: v for k, v in norms.as_dict().items() if not k.startswith("band_shape")}
    assert RecordingNorms.from_dict(older, None).check(measured(low_passed(clip, 5000.0))) == []
    # Training recordings at several rates are compared up to the slowest one's Nyquist
    # frequency: a 16-kHz recording that ends at 2 kHz is named against 8-kHz ones.
    slower = [
        RecordingProfile.measure(resample_poly(synth.normal_clip(rng, 1.0), 1, 2)[None], RATE // 2)
        for _ in range(3)
    ]
    mixed = RecordingNorms.learn([*slower, measured(clip)], 8000.0)
    assert mixed.band_shape_hz == RATE / 4
    assert mixed.check(measured(clip)) == []
    assert "ends near" in mixed.check(measured(low_passed(clip, 2000.0)))[0].message


def test_fit_names_a_training_file_whose_spectrum_ends_early_and_only_that_one():
    rng = np.random.default_rng(3)
    profiles = [measured(synth.normal_clip(rng, 1.0)) for _ in range(5)]
    profiles.append(measured(low_passed(synth.normal_clip(rng, 1.0), 3000.0)))
    found = training_warnings(profiles, 8000.0)
    assert [[w.name for w in file] for file in found] == [[]] * 5 + [["band-limit"]]
    assert "other training recordings'" in found[-1][0].message
    # That one training file, named at fit, excuses no recording scored that ends as early.
    cut = measured(low_passed(synth.normal_clip(rng, 1.0), 3000.0))
    assert [w.name for w in RecordingNorms.learn(profiles, 8000.0).check(cut)] == ["band-limit"]


def test_an_mp3_of_a_normal_clip_is_named_band_limited_and_lossy(chain, tmp_path):
    if "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile cannot write MP3")
    detector, _, _ = chain
    soundfile.write(tmp_path / "clip.mp3", synth.normal_clip(np.random.default_rng(5), 2.0), RATE)
    (result,) = detector.score(tmp_path / "clip.mp3")
    assert names(result) == {"band-limit", "codec"}
    assert "its sound ends near" in result.warnings[0]["message"]
    assert "coded as MP3" in result.warnings[1]["message"]


def test_the_report_names_a_recording_s_warnings(chain, cli, tmp_path):
    _, path, tests = chain
    page = tmp_path / "report.html"
    ran = cli("report", tests / "band-limit.wav", tests / "clean.wav", "-d", path, "-o", page)
    assert ran.code == 0, ran.stderr
    assert "recording band-limit: recorded at 8000 Hz" in page.read_text()
    # Beside them, what the training recordings were like (the chain's clips: mono, 2 s).
    assert "its training recordings: mono, 2 s long (median)" in page.read_text()


def test_the_band_a_detector_hears_is_its_training_recordings_when_all_were_narrower():
    phones = [profile(sample_rate=8000), profile(sample_rate=11025)]
    norms = RecordingNorms.learn(phones, 8000.0)  # analysed up to 8 kHz: a 16-kHz analysis
    assert norms.band_rate == 11025 and norms.heard_hz == 11025 / 2
    # Narrower than the fastest training recording: warned; as wide or wider: heard as trained.
    assert [w.name for w in norms.check(profile(sample_rate=8000))] == ["band-limit"]
    assert norms.check(profile(sample_rate=11025)) == []
    assert norms.check(profile(sample_rate=48000)) == []
    assert RecordingNorms.from_dict(json.loads(json.dumps(norms.as_dict())), None) == norms
    # One training recording as wide as the analysis: the detector heard the whole band.
    assert RecordingNorms.learn([*phones, profile()], 8000.0).band_rate is None
    # At fit, only files narrower than the fastest are warned about (they all missed nothing
    # the others held, when all were 8 kHz).
    only_phones = [profile(sample_rate=8000)] * 2
    heard_hz = RecordingNorms.learn(only_phones, 8000.0).heard_hz
    assert training_warnings(only_phones, heard_hz) == [[], []]
    warned = training_warnings(phones, norms.heard_hz)
    assert [[w.name for w in f] for f in warned] == [["band-limit"], []]


def test_a_machine_recorded_at_8_khz_is_heard_through_that_band_when_recorded_faster(tmp_path, cli):
    """Fitted on 8-kHz recordings (analysed at 16 kHz, the upper bands silent in training), a
    16-kHz or 48-kHz recording of the same sound scores as its 8-kHz recording does, and a fault
    inside the band still stands out; without hearing it through the training band, the sound
    above 4 kHz, which no training recording could hold, made every such recording anomalous."""
    rng = np.random.default_rng(3)
    train = tmp_path / "train"
    train.mkdir()
    for index in range(12):
        phone = resample_poly(synth.normal_clip(rng, 2.0), 1, 2)
        soundfile.write(train / f"n{index}.wav", phone, 8000)
    ran = cli("fit", train, "-o", tmp_path / "d.aetk")
    assert ran.code == 0 and "warning" not in ran.stderr, ran.stderr
    assert "hears up to 4000 Hz of the 8000 Hz analysed" in ran.stderr
    detector = aetk.Detector.load(tmp_path / "d.aetk")
    assert detector.recording_norms().band_rate == 8000
    assert (detector.summary()["analysed_hz"], detector.summary()["heard_hz"]) == (8000, 4000)
    clip = synth.normal_clip(rng, 2.0)
    whine = 0.2 * np.sin(2 * np.pi * 1500 * np.arange(len(clip)) / RATE)  # well inside 4 kHz
    faulty = (clip + whine).astype(np.float32)
    recordings = {
        "phone.wav": (resample_poly(clip, 1, 2), 8000),
        "wide.wav": (clip, RATE),
        "studio.wav": (resample_poly(clip, 3, 1), 48000),
        "faulty.wav": (faulty, RATE),
    }
    for name, (samples, rate) in recordings.items():
        soundfile.write(tmp_path / name, samples, rate)
    rows = {
        row.path.rsplit("/", 1)[-1]: row
        for row in detector.score([tmp_path / name for name in recordings])
    }
    assert all(row.warnings == [] for row in rows.values())
    phone = rows["phone.wav"].score
    assert rows["wide.wav"].score == pytest.approx(phone, rel=0.05)
    assert rows["studio.wav"].score == pytest.approx(phone, rel=0.05)
    assert rows["faulty.wav"].score > 2 * max(phone, detector.threshold)


def test_the_spectra_are_shaped_against_numpys_own_upper_quartile():
    """The band shapes' reference level, computed without ``np.percentile`` (a tenth of a
    millisecond for every recording scored), is numpy's to the bit, in either rounding."""
    from aetk_core.recording import _upper_quartiles

    rng = np.random.default_rng(0)
    for bands in (1, 2, 3, 5, 8, 31, 32, 33):
        rows = rng.standard_normal((3, bands)) * 40
        np.testing.assert_array_equal(
            _upper_quartiles(rows), np.percentile(rows, 75, axis=1, keepdims=True)
        )
