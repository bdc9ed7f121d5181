"""Featurizers without PyTorch, for detectors exported to aetk-runtime.

This is the contract a featurizer meets to run without torch: a *twin*, a numpy implementation
under the featurizer's name, built from the same parameters (``Twin(params: dict)``), with
``featurize(samples, rate)`` taking ``[channels, samples]`` float32 and returning the vectors
aetk's featurizer gives (``[n_vectors, *vector_shape]``), and ``frames_to_read(rate)`` as aetk's
featurizer has it. The built-in twins are in :data:`FEATURIZERS` (tests/test_mel_db.py compares
them with aetk's on every test run); a plugin distribution adds its own under the entry-point
group :data:`TWIN_GROUP`, in a module that imports neither torch nor aetk, and aetk's contract kit
(``aetk.testing``) compares it with the featurizer. ``aetk export`` refuses a detector whose
featurizer has no twin, rather than exporting a graph the runtime cannot feed.

The built-in ``mel-db`` in numpy: the same resampling, STFT, mel filter bank, dB and frame
context as aetk's (PyTorch/torchaudio), to within 1e-3 dB.

- resampling: a windowed-sinc polyphase filter (Hann window, 6 zero crossings, roll-off 0.99), as
  ``torchaudio.transforms.Resample`` builds it;
- power spectrum: periodic Hann window of ``n_fft``, reflection padding when ``center``;
- mel filter bank: HTK mel scale, triangles from 0 Hz to Nyquist, not normalised;
- bands starting above an upsampled recording's Nyquist frequency are silence, exactly;
- dB: ``10 log10(max(power, 1e-10))``, floored ``top_db`` below the clip's loudest value
  (:func:`power_to_decibels`, aetk's too).
"""

from __future__ import annotations

import importlib.metadata
import math
from functools import lru_cache
from typing import Any

import numpy as np

from aetk_core.errors import AudioError, ConfigError

#: Largest resampling kernel (in elements of up × down phases) built for an exact rate ratio.
_MAX_KERNEL_PHASES = 1_000_000


class MelDb:
    """``mel-db`` with the parameters an exported detector carries."""

    name = "mel-db"
    sample_rate: int
    channels: str | int
    target_length: int
    n_fft: int
    hop_length: int
    n_mels: int
    top_db: float
    frames: int
    center: bool
    floor_db: float | None
    PARAMS = (
        "sample_rate",
        "channels",
        "target_length",
        "n_fft",
        "hop_length",
        "n_mels",
        "top_db",
        "frames",
        "center",
        "floor_db",
    )

    def __init__(self, params: dict):
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            raise ConfigError(
                f"mel-db parameters the torch-free featurizer does not know: {unknown}"
            )
        defaults = {
            "channels": "mono",
            "target_length": 100_000,
            "n_fft": 1024,
            "hop_length": 256,
            "n_mels": 32,
            "top_db": 80.0,
            "frames": 0,
            "center": True,
            "floor_db": None,
            "sample_rate": 16000,
        }
        values = {**defaults, **params}
        for name in self.PARAMS:
            setattr(self, name, values[name])

    def frames_to_read(self, rate: int) -> int | None:
        if not self.target_length:
            return None
        return math.ceil(self.target_length * rate / self.sample_rate) + 1

    def minimum_samples(self) -> int:
        later = (max(self.frames, 1) - 1) * self.hop_length
        if self.center:
            return max(self.n_fft // 2 + 1, later + 1)
        return self.n_fft + later

    def featurize(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """``[channels, samples]`` at ``rate`` → ``[n_vectors, channels, n_mels, frames]``."""
        if samples.shape[-1] == 0:
            raise AudioError("holds no audio samples")
        samples = self._channels(samples.astype(np.float32))
        if rate != self.sample_rate:
            samples = resample(samples, rate, self.sample_rate)
        samples = self._fix_length(samples)
        bank = mel_filter_bank(self.n_mels, self.sample_rate, self.n_fft // 2 + 1)
        mels = _mel_power(samples, bank, self.n_fft, self.hop_length, self.center)
        mels[:, empty_mel_bands(self.n_mels, self.sample_rate, rate), :] = 0.0
        decibels = power_to_decibels(mels, self.top_db, self.floor_db)
        if not self.frames:
            return decibels[None]
        count = decibels.shape[-1] - self.frames + 1
        if count < 1:
            raise AudioError("yields no feature vectors")
        windows = np.lib.stride_tricks.sliding_window_view(decibels, self.frames, axis=-1)
        return np.ascontiguousarray(windows.transpose(2, 0, 1, 3))  # [vectors, C, mels, frames]

    def _channels(self, samples: np.ndarray) -> np.ndarray:
        if self.channels == "mono":
            return samples if samples.shape[0] == 1 else samples.mean(0, keepdims=True)
        if samples.shape[0] < self.channels:
            raise AudioError(
                f"has {samples.shape[0]} channel(s) but the featurizer uses {self.channels} "
                "(set featurizer.channels to 'mono' or fewer channels)"
            )
        return samples[: self.channels]

    def _fix_length(self, samples: np.ndarray) -> np.ndarray:
        length = samples.shape[-1]
        if self.target_length:
            if length >= self.target_length:
                return samples[:, : self.target_length]
            return np.pad(samples, ((0, 0), (0, self.target_length - length)))
        if length < self.minimum_samples():
            raise AudioError(
                f"is too short: {length / self.sample_rate:.3f} s, the featurizer needs at least "
                f"{self.minimum_samples() / self.sample_rate:.3f} s"
            )
        return samples


FEATURIZERS = {MelDb.name: MelDb}
#: The entry-point group of plugins' twins: ``featurizer-name = "module:Class"``.
TWIN_GROUP = "aetk_core.featurizers"


def twin_class(name: str) -> Any | None:
    """The twin of the featurizer called ``name``: built in, or a plugin's (None: none)."""
    if name in FEATURIZERS:
        return FEATURIZERS[name]
    for entry in importlib.metadata.entry_points(group=TWIN_GROUP):
        if entry.name == name:
            try:
                return entry.load()
            except Exception as exc:  # a plugin's module: any import error is possible
                raise ConfigError(
                    f"featurizer '{name}': its torch-free twin {entry.value} cannot be loaded "
                    f"({type(exc).__name__}: {exc})"
                ) from None
    return None


def featurizer_for(entry: dict) -> Any:
    """The torch-free featurizer for a ``{"name", "params"}`` entry (an exported detector's
    metadata); a featurizer without a twin is a :class:`ConfigError`."""
    name = str(entry.get("name"))
    twin = twin_class(name)
    if twin is None:
        raise ConfigError(
            f"featurizer '{name}' has no torch-free twin (aetk-core has {', '.join(FEATURIZERS)}; "
            f"a plugin adds one under the entry-point group '{TWIN_GROUP}'); score this "
            "detector with aetk itself"
        )
    return twin(dict(entry.get("params") or {}))


def tractable_rate(rate: int, target: int) -> int:
    """The file's rate, or the nearest multiple of 50 Hz when the exact kernel would be huge."""
    divisor = math.gcd(rate, target)
    if (rate // divisor) * (target // divisor) <= _MAX_KERNEL_PHASES:
        return rate
    return max(50, round(rate / 50) * 50)


def within_band(samples: np.ndarray, rate: int, band_rate: int | None) -> tuple[np.ndarray, int]:
    """A recording heard through the band its detector's training recordings held.

    ``band_rate`` is the fastest training recording's rate when every one of them was sampled
    slower than the featurizer analyses (an 8-kHz machine analysed at 16 kHz), else None. Their
    bands above its Nyquist frequency were silence in training, so a recording sampled faster is
    resampled to ``band_rate`` first: those bands stay silent instead of holding sound the
    detector never heard, which would raise any recording of a faster recorder. ``samples`` is
    ``[channels, frames]``; returns the samples and their rate."""
    if band_rate is None or rate <= band_rate:
        return samples, rate
    return resample(samples, rate, band_rate), band_rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    source = tractable_rate(rate, target)
    divisor = math.gcd(source, target)
    down, up = source // divisor, target // divisor
    kernel, width = _sinc_kernel(down, up)
    length = samples.shape[-1]
    padded = np.pad(samples.astype(np.float64), ((0, 0), (width, width + down)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernel.shape[1], axis=-1)[:, ::down]
    out = np.einsum("cnk,pk->cnp", frames, kernel, optimize=True).reshape(samples.shape[0], -1)
    return out[:, : math.ceil(up * length / down)].astype(np.float32)


@lru_cache(maxsize=16)
def _sinc_kernel(down: int, up: int, zeros: int = 6, rolloff: float = 0.99):
    base = min(down, up) * rolloff
    width = math.ceil(zeros * down / base)
    index = np.arange(-width, width + down, dtype=np.float64)[None] / down
    t = (np.arange(0, -up, -1, dtype=np.float32)[:, None].astype(np.float64) / up + index) * base
    t = np.clip(t, -zeros, zeros)
    window = np.cos(t * math.pi / zeros / 2) ** 2
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):
        kernel = np.where(t == 0, 1.0, np.sin(t) / t)
    kernel = kernel * window * (base / down)
    return kernel.astype(np.float32).astype(np.float64), width


#: The power that stands for silence (torchaudio's ``amin``): -100 dB.
SILENCE_POWER = 1e-10


def power_to_decibels(
    power: Any, top_db: float | None = None, floor_db: float | None = None, xp: Any = np
) -> Any:
    """The decibels of a power spectrogram ``[..., channels, bands, frames]`` (float32), as
    torchaudio's ``AmplitudeToDB`` (power, reference 1) gives them: ``10 log10(max(power,
    SILENCE_POWER))``, floored ``top_db`` below each clip's loudest value (0 or None: no such
    floor) and at ``floor_db`` (None: none). Computed with the array module ``xp`` (numpy, or
    torch), written over ``power``: the one dB rule of both ``mel-db`` featurizers."""
    decibels = xp.clip(power, SILENCE_POWER, None, out=power)
    if xp is np:
        # numpy's float32 logarithm misses torch's by a unit in the last place for about half
        # of all values; in float64, rounded once, it gives torch's but for about 1 in 10,000.
        # A band that was constant in training (silent above the training recordings' band)
        # magnifies any such difference.
        decibels[...] = np.log10(decibels.astype(np.float64))
    else:
        xp.log10(decibels, out=decibels)
    xp.multiply(decibels, 10.0, out=decibels)
    if top_db:
        loudest = xp.amax(decibels.reshape(*decibels.shape[:-3], -1), -1)
        decibels = xp.maximum(decibels, (loudest - top_db).reshape(*decibels.shape[:-3], 1, 1, 1))
    if floor_db is not None:
        decibels = decibels.clip(min=floor_db)
    return decibels


def empty_mel_bands(n_mels: int, sample_rate: int, file_sample_rate: int) -> list[int]:
    """The bands of an ``n_mels``-band analysis at ``sample_rate`` that a recording at
    ``file_sample_rate`` leaves empty when it is upsampled: those starting above 99 % of its
    Nyquist frequency (the resampler's roll-off). They would carry only the resampler's rounding
    noise, which standardisation magnifies, so ``mel-db`` makes them silence, exactly."""
    if file_sample_rate >= sample_rate:
        return []
    lows = mel_points_hz(n_mels, sample_rate)[:n_mels]
    return [band for band, low in enumerate(lows) if low >= 0.99 * file_sample_rate / 2]


#: Analysis frames transformed at a time: each step's arrays (about half a megabyte) are
#: reused from the last step's freed memory, where a whole clip's (megabytes) are handed back to
#: the system and faulted in afresh for every clip (glibc): 1.1 ms against 3.2 ms for a
#: ten-second clip's mel power on one thread.
FRAMES_PER_STEP = 64


def _mel_power(
    samples: np.ndarray, bank: np.ndarray, n_fft: int, hop: int, center: bool
) -> np.ndarray:
    """``[channels, samples]`` → the power in each mel band ``[channels, mels, time]``: the
    Hann-windowed frames' power spectrum through the filter ``bank`` ``[bins, mels]``."""
    if center:
        samples = np.pad(samples, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft, axis=-1)[:, ::hop]
    hann = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    # In float64: numpy's float64 FFT is about 4 times faster than its float32 one here.
    window = hann.astype(np.float64)
    mels = np.empty((frames.shape[0], bank.shape[1], frames.shape[1]), dtype=np.float32)
    for first in range(0, frames.shape[1], FRAMES_PER_STEP):
        step = slice(first, first + FRAMES_PER_STEP)
        spectrum = np.fft.rfft(frames[:, step] * window, axis=-1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)  # [channels, time, bins]
        mels[:, :, step] = (power @ bank).transpose(0, 2, 1)
    return mels


def hz_to_mel(hertz: float) -> float:
    """The HTK mel scale."""
    return 2595.0 * math.log10(1.0 + hertz / 700.0)


def mel_points_hz(n_mels: int, sample_rate: int) -> list[float]:
    """The ``n_mels + 2`` points, equally spaced in mel from 0 Hz to Nyquist, on which the mel
    bands stand: band ``b`` spans points ``b`` to ``b + 2`` and peaks at ``b + 1``."""
    top = hz_to_mel(sample_rate / 2)
    return [700.0 * (10 ** (top * i / (n_mels + 1) / 2595.0) - 1.0) for i in range(n_mels + 2)]


@lru_cache(maxsize=16)
def mel_filter_bank(n_mels: int, sample_rate: int, bins: int, xp: Any = np) -> Any:
    """The mel filter bank ``[bins, n_mels]`` of a one-sided spectrum of ``bins`` bins:
    triangles on :func:`mel_points_hz`, not normalised, in float32, computed with the array
    module ``xp`` (numpy, or torch), as scikit-learn's array API support does.

    One home for the bank of both ``mel-db`` featurizers: these are torchaudio's
    ``melscale_fbanks`` operations (HTK, 0 Hz to Nyquist, no norm), so with ``xp=torch`` the bank
    is torchaudio's bit for bit, without importing torchaudio (a forked scoring worker's first
    clips paid about 25 ms for that import), and numpy gives the same operations in its own
    float32. The result is cached: do not write to it."""
    frequencies = xp.asarray(xp.linspace(0, sample_rate // 2, bins), dtype=xp.float32)
    mels = xp.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2)
    hertz = 700.0 * (10.0 ** (xp.asarray(mels, dtype=xp.float32) / 2595.0) - 1.0)
    spacing = hertz[1:] - hertz[:-1]
    slopes = hertz[None, :] - frequencies[:, None]
    down = (-1.0 * slopes[:, :-2]) / spacing[:-1]
    up = slopes[:, 2:] / spacing[1:]
    return xp.minimum(down, up).clip(min=0)
