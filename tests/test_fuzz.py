"""Property-based fuzzing of the audio loader and the featurizer.

Whatever bytes a file holds, the only outcomes are a result or aetk's own error type: never
another exception, a crash, a hang or a non-finite feature.
"""

from __future__ import annotations

import contextlib
import io
import struct

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aetk
from aetk.data.features import featurize_audio
from aetk_builtins.mel_db import MelDb

FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def valid_wav(subtype: str, channels: int, rate: int) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    samples = (0.2 * rng.standard_normal((rate // 10, channels))).astype(np.float32)
    soundfile.write(buffer, samples, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


SEEDS = {
    (subtype, channels, rate): valid_wav(subtype, channels, rate)
    for subtype in ("PCM_16", "PCM_24", "FLOAT", "PCM_U8")
    for channels in (1, 2)
    for rate in (16000, 44100)
}
FEATURIZERS = [
    MelDb(sample_rate=16000, target_length=0, n_fft=256, hop_length=128, n_mels=16, frames=3),
    MelDb(sample_rate=16000, channels=2, target_length=4000, n_fft=256, hop_length=128, n_mels=16),
]


def load_and_featurize(path):
    """Read and featurize; returns features or raises AetkError (anything else fails)."""
    audio = aetk.read_audio(path)
    assert audio.samples.dtype == np.float32 and np.isfinite(audio.samples).all()
    results = []
    for featurizer in FEATURIZERS:
        try:
            features = featurize_audio(featurizer, audio, path)
        except aetk.AudioError:
            continue
        assert torch.isfinite(features).all()
        results.append(features)
    return results


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096))
def test_arbitrary_bytes_give_audio_or_an_audio_error(tmp_path, data):
    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    with contextlib.suppress(aetk.AetkError):
        load_and_featurize(path)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
    st.tuples(
        st.just("field"),
        st.sampled_from([4, 16, 20, 22, 24, 28, 32, 34, 40]),
        st.integers(0, 2**32 - 1),
    ),
)


@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), mutations=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_wav_files_give_audio_or_an_audio_error(tmp_path, seed, mutations):
    data = bytearray(SEEDS[seed])
    for kind, position, value in mutations:
        if kind == "flip" and data:
            data[position % len(data)] ^= value
        elif kind == "truncate":
            del data[position % (len(data) + 1) :]
        elif kind == "field" and len(data) >= position + 4:
            data[position : position + 4] = struct.pack("<I", value)
    path = tmp_path / "mutated.wav"
    path.write_bytes(bytes(data))
    with contextlib.suppress(aetk.AetkError):
        load_and_featurize(path)


@pytest.mark.parametrize("seed", sorted(SEEDS)[:4])
def test_unmutated_seeds_load_and_featurize(tmp_path, seed):
    path = tmp_path / "seed.wav"
    path.write_bytes(SEEDS[seed])
    assert load_and_featurize(path)
