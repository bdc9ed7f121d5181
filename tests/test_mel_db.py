"""The mel-db featurizer reproduces the method text's pipeline exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from aetk_core.features import MelDb as NumpyMelDb

import aetk
from aetk import synth
from aetk.fitting.config import at_recordings_rate, preset_names, resolve_config
from aetk_builtins.mel_db import MelDb


def noise(channels=2, samples=100_000, seed=0):
    return torch.from_numpy(
        np.random.default_rng(seed).normal(scale=0.1, size=(channels, samples)).astype(np.float32)
    )


def seed_featurizer(**overrides):
    params = dict(
        sample_rate=16000,
        channels=2,
        target_length=100_000,
        n_fft=1024,
        hop_length=256,
        n_mels=32,
        top_db=80.0,
        frames=0,
    )
    return MelDb(**{**params, **overrides})


def text_pipeline(waveform, sample_rate):
    """The tutorial's steps, written out with torchaudio directly."""
    target = 100_000
    waveform = waveform[:, :target]
    if waveform.shape[1] < target:
        waveform = torch.nn.functional.pad(waveform, (0, target - waveform.shape[1]))
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=1024, hop_length=256, n_mels=32
    )(waveform)
    return torchaudio.transforms.AmplitudeToDB(top_db=80)(mel)


@pytest.mark.parametrize("samples", [100_000, 120_000, 37_000], ids=["exact", "cut", "padded"])
def test_seed_settings_match_the_text_pipeline(samples):
    waveform = noise(samples=samples)
    features = seed_featurizer().featurize(waveform, 16000)
    assert features.shape == (1, 2, 32, 391)
    assert features[0].numel() == 25_024
    torch.testing.assert_close(features[0], text_pipeline(waveform, 16000))


def test_padding_is_silence_at_the_floor():
    features = seed_featurizer().featurize(noise(samples=50_000), 16000)[0]
    tail = features[..., -100:]
    assert torch.allclose(tail, torch.full_like(tail, features.max().item() - 80.0))


def test_frame_context_vectors_are_consecutive_frames():
    featurizer = MelDb(channels="mono", target_length=0, n_mels=128, hop_length=512, frames=5)
    waveform = noise(channels=1, samples=16000)
    vectors = featurizer.featurize(waveform, 16000)
    image = MelDb(channels="mono", target_length=0, n_mels=128, hop_length=512).featurize(
        waveform, 16000
    )[0]
    frames = image.shape[-1]
    assert vectors.shape == (frames - 4, 1, 128, 5)
    assert vectors[0, 0].numel() == 640
    torch.testing.assert_close(vectors[7], image[..., 7:12])


def test_other_rates_are_resampled_to_the_configured_rate():
    featurizer = seed_featurizer(channels=1)
    rate = 48000
    time = torch.arange(rate * 2) / rate
    waveform = torch.sin(2 * np.pi * 1000 * time).unsqueeze(0)
    at_48k = featurizer.featurize(waveform, rate)
    at_16k = featurizer.featurize(waveform[:, ::3].contiguous(), 16000)
    assert at_48k.shape == at_16k.shape == (1, 1, 32, 391)
    # Same tone, same loudest band, whatever the file's rate.
    assert at_48k[0, 0].mean(-1).argmax() == at_16k[0, 0].mean(-1).argmax()
    assert featurizer.frames_to_read(48000) >= 300_000


def test_mono_mixdown_and_first_channels():
    waveform = noise(channels=3)
    mono = MelDb(channels="mono").featurize(waveform, 16000)
    torch.testing.assert_close(
        mono, MelDb(channels=1).featurize(waveform.mean(0, keepdim=True), 16000)
    )
    assert MelDb(channels=2).featurize(waveform, 16000).shape[1] == 2


def test_too_few_channels_is_a_clear_error():
    with pytest.raises(aetk.AudioError, match=r"has 1 channel.* uses 2"):
        seed_featurizer().featurize(noise(channels=1), 16000)


def test_too_short_clip_in_whole_clip_mode_is_a_clear_error():
    with pytest.raises(aetk.AudioError, match="too short"):
        MelDb(target_length=0, frames=5, hop_length=512).featurize(
            noise(channels=1, samples=10), 16000
        )


def test_batch_equals_one_by_one():
    featurizer = MelDb(target_length=8000, frames=3)
    batch = torch.stack([noise(channels=1, samples=8000, seed=s) for s in range(3)])
    one_by_one = torch.stack([featurizer.featurize(w, 16000) for w in batch])
    torch.testing.assert_close(featurizer.featurize_batch(batch, 16000), one_by_one)


@pytest.mark.parametrize(
    "params",
    [{"n_mels": 0}, {"channels": "stereo"}, {"frames": -1}, {"target_length": 10, "frames": 5}],
)
def test_invalid_parameters_are_config_errors(params):
    with pytest.raises(aetk.ConfigError, match="mel-db"):
        MelDb(**params).featurize(noise(channels=1), 16000)


def test_get_params_round_trip():
    featurizer = MelDb(n_mels=64, frames=5, channels="mono")
    assert MelDb(**featurizer.get_params()).get_params() == featurizer.get_params()
    assert featurizer.learned_state() == {}


@pytest.mark.parametrize("rate", [48001, 999_983, 44_101])
def test_odd_sample_rates_resample_without_an_enormous_kernel(rate):
    featurizer = MelDb(target_length=0, frames=1)
    waveform = noise(channels=1, samples=rate // 4)
    features = featurizer.featurize(waveform, rate)
    assert features.shape[1:] == (1, 32, 1)
    kernel = featurizer._resampler(rate).kernel
    assert kernel.numel() < 10_000_000


def test_common_rates_resample_exactly():
    from aetk import tractable_rate

    for rate in (8000, 11025, 22050, 44100, 48000, 96000):
        assert tractable_rate(rate, 16000) == rate
    assert tractable_rate(48001, 16000) == 48000


def test_default_preset_vectors_match_torchaudio_over_a_batch():
    """The default preset's frame-context vectors (128 bands, 5 frames, no padding) equal
    torchaudio's MelSpectrogram and AmplitudeToDB, frame for frame, for every clip of a batch."""
    featurizer = MelDb(
        sample_rate=16000,
        n_fft=1024,
        hop_length=512,
        n_mels=128,
        top_db=0.0,
        frames=5,
        center=False,
        target_length=0,
    )
    waveforms = torch.stack([noise(samples=16_000, seed=seed) for seed in range(3)])
    vectors = featurizer.featurize_batch(waveforms, 16000)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=1024, hop_length=512, n_mels=128, center=False
    )(waveforms.mean(dim=1, keepdim=True))
    expected = torchaudio.transforms.AmplitudeToDB()(mel).unfold(-1, 5, 1).permute(0, 3, 1, 2, 4)
    assert vectors.shape == (3, 26, 1, 128, 5)
    torch.testing.assert_close(vectors, expected, rtol=0, atol=1e-4)


def test_top_db_floors_each_clip_of_a_batch_below_its_own_loudest_value():
    """A quiet clip beside a loud one keeps its own floor, as torchaudio's AmplitudeToDB
    floors each clip of a batch, and silence sits at it."""
    waveforms = torch.stack([noise(samples=100_000, seed=seed) for seed in range(2)])
    waveforms[1] *= 1e-2
    waveforms[:, :, 50_000:] = 0.0
    features = seed_featurizer().featurize_batch(waveforms, 16000)[:, 0]
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=1024, hop_length=256, n_mels=32
    )(waveforms)
    expected = torchaudio.transforms.AmplitudeToDB(top_db=80)(mel)
    torch.testing.assert_close(features, expected)
    floors = features.amin(dim=(1, 2, 3))
    assert torch.allclose(floors, features.amax(dim=(1, 2, 3)) - 80.0)
    assert floors[0] - floors[1] > 30.0


@pytest.mark.parametrize("preset", preset_names())
def test_numpy_mel_db_matches_aetk_within_a_thousandth_of_a_db(preset):
    params = at_recordings_rate(resolve_config(preset=preset), {16000: 1}).featurizer.params
    params["channels"] = 1 if preset == "seed" else params["channels"]
    ours = aetk.plugins.get_host().create("featurizer", "mel-db", params)
    theirs = NumpyMelDb(params)
    rng = np.random.default_rng(0)
    waveforms = {
        rate: (rng.standard_normal((2, int(rate * 1.1))) * 0.1).astype(np.float32)
        for rate in (8000, 16000, 44100, 48000)
    }
    synthetic = synth.normal_clip(rng, 1.0)[None]
    for rate, samples in [*waveforms.items(), (16000, synthetic)]:
        expected = ours.featurize(torch.from_numpy(samples), rate).numpy()
        got = theirs.featurize(samples, rate)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-3, (preset, rate)


@pytest.mark.filterwarnings("ignore:At least one mel filterbank has all zero values")
@pytest.mark.parametrize(
    ("n_mels", "sample_rate", "n_fft"),
    [(128, 16000, 1024), (128, 44100, 2048), (32, 16000, 1024), (17, 22050, 512), (64, 16000, 64)],
    ids=["default", "44k", "seed", "odd-block", "empty-bands"],
)
def test_banded_mel_product_equals_torchaudios_mel_scale(n_mels, sample_rate, n_fft):
    """The mel bank applied block by block over the bins each block spans, to a complex
    spectrum's squared parts, equals torchaudio's MelScale of its power, for a spectrum laid out
    frame by frame (as the STFT gives it) or bin by bin."""
    from aetk_builtins.mel_db import _MelPower

    bins = n_fft // 2 + 1
    generator = torch.Generator().manual_seed(n_mels)
    by_frame = torch.randn(3, 2, 40, bins, dtype=torch.complex64, generator=generator)
    expected_scale = torchaudio.transforms.MelScale(n_mels, sample_rate, 0.0, None, bins)
    ours = _MelPower(n_mels, sample_rate, bins)
    for spectrum in (by_frame.transpose(-1, -2), by_frame.transpose(-1, -2).contiguous()):
        got = ours(spectrum)
        assert got.shape == (3, 2, n_mels, 40)
        expected = expected_scale(spectrum.abs().square())
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:At least one mel filterbank has all zero values")
@pytest.mark.parametrize(
    ("n_mels", "sample_rate", "n_fft"),
    [(128, 16000, 1024), (128, 48000, 2048), (32, 16000, 1024), (17, 22050, 512), (64, 16000, 64)],
)
def test_the_shared_mel_filter_bank_in_torch_is_torchaudios_bit_for_bit(n_mels, sample_rate, n_fft):
    """Both mel-db featurizers take their bank from aetk_core; in torch it is torchaudio's
    ``melscale_fbanks`` exactly, so the torch featurizer needs no torchaudio to match it."""
    bins = n_fft // 2 + 1
    expected = torchaudio.functional.melscale_fbanks(
        bins, 0.0, sample_rate / 2, n_mels, sample_rate
    )
    got = aetk.mel_filter_bank(n_mels, sample_rate, bins, torch)
    assert got.dtype == torch.float32
    assert torch.equal(got, expected)
    in_numpy = aetk.mel_filter_bank(n_mels, sample_rate, bins)
    assert in_numpy.dtype == np.float32
    assert np.array_equal(in_numpy > 0, expected.numpy() > 0)  # the same bins in every band


@pytest.mark.parametrize(("top_db", "floor_db"), [(0.0, None), (80.0, None), (30.0, -60.0)])
def test_the_shared_decibels_are_torchaudios_in_torch_and_in_numpy(top_db, floor_db):
    """Both mel-db featurizers take their dB from ``aetk.power_to_decibels``: in torch it is
    torchaudio's AmplitudeToDB exactly, each clip of a batch floored below its own loudest
    value; numpy's is the same to its last float32 unit, silence included."""
    generator = torch.Generator().manual_seed(3)
    power = torch.rand(3, 2, 16, 50, generator=generator).pow(8) * 10.0
    power[1] *= 1e-6  # a quiet clip keeps its own top_db floor
    power[2, :, :4] = 0.0  # empty bands sit at the silence floor, -100 dB
    expected = torchaudio.transforms.AmplitudeToDB(top_db=top_db or None)(power)
    if floor_db is not None:
        expected = expected.clamp_min(floor_db)
    in_torch = aetk.power_to_decibels(power.clone(), top_db, floor_db, torch)
    assert torch.equal(in_torch, expected)
    in_numpy = aetk.power_to_decibels(power.numpy().copy(), top_db, floor_db)
    assert in_numpy.dtype == np.float32
    np.testing.assert_allclose(in_numpy, expected.numpy(), rtol=1e-6, atol=0)
    assert in_torch[2, :, :4].min() >= max(-100.0, floor_db or -100.0)
    if not top_db and floor_db is None:
        assert np.array_equal(in_numpy[2, :, :4], np.full((2, 4, 50), -100.0, np.float32))


def test_upsampled_recordings_leave_the_bands_above_their_nyquist_frequency_empty():
    """The one rule of both mel-db featurizers: bands starting above 99 % of an upsampled
    recording's Nyquist frequency are silence."""
    lows = aetk.mel_points_hz(128, 16000)[:128]
    empty = aetk.empty_mel_bands(128, 16000, 8000)
    assert empty == [band for band in range(128) if lows[band] >= 3960.0]
    assert 0 < len(empty) < 128 and empty == list(range(empty[0], 128))
    assert aetk.empty_mel_bands(128, 16000, 16000) == []
    assert aetk.empty_mel_bands(128, 16000, 48000) == []
    noise = np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32) * 0.1
    params = {"n_mels": 128, "target_length": 0, "top_db": 0.0}
    in_numpy = NumpyMelDb(params).featurize(noise, 8000)[0, 0]
    in_torch = MelDb(**params).featurize(torch.from_numpy(noise), 8000)[0, 0].numpy()
    for features in (in_numpy, in_torch):
        assert (features[empty] == -100.0).all()
        assert (features[: empty[0]] > -90.0).all()


def test_featurizing_at_the_analysis_rate_does_not_import_torchaudio():
    """Importing torchaudio cost each forked scoring worker about 25 ms: recordings at the
    analysis rate are featurized with torch alone (resampling still uses torchaudio)."""
    import subprocess
    import sys

    code = (
        "import sys, torch; from aetk_builtins.mel_db import MelDb\n"
        "featurizer = MelDb(n_mels=128, hop_length=512, frames=1, center=False, target_length=0)\n"
        "vectors = featurizer.featurize(torch.rand(1, 16000) - 0.5, 16000)\n"
        "assert vectors.shape == (30, 1, 128, 1), vectors.shape\n"
        "assert 'torchaudio' not in sys.modules, 'torchaudio was imported'\n"
        "featurizer.featurize(torch.rand(1, 8000) - 0.5, 8000)\n"
        "assert 'torchaudio' in sys.modules, 'resampling without torchaudio?'\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
