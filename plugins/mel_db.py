"""Featurizer ``mel-db``: log-mel (dB) spectrogram images or frame-context vectors.

The pipeline of the method text: fix the length, ``MelSpectrogram`` (power 2, centred Hann frames),
``AmplitudeToDB(top_db=80)``. Files at another rate are resampled first; channels are mixed down
or the first N are kept.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import aetk

if TYPE_CHECKING:
    import torch


class MelDb(aetk.Featurizer):
    """Log-mel spectrogram in dB.

    :param sample_rate: rate (Hz) the audio is resampled to before analysis.
    :param channels: ``"mono"`` mixes all channels down to one; an integer N keeps the first N
        channels, and a file with fewer is an error.
    :param target_length: samples (at ``sample_rate``) each clip is cut or zero-padded to;
        0 keeps each clip's own length.
    :param n_fft: FFT size; :param hop_length: hop between frames; :param n_mels: mel bands.
    :param top_db: floor, in dB below the clip's loudest bin; 0 for no such floor.
    :param center: centre frames on their sample (torchaudio's default, padding the clip's ends
        by reflection); ``False`` frames only whole windows of real samples, so that the first
        and last frames do not look unusual in every clip.
    :param floor_db: absolute floor in dB (of the power spectrogram as torchaudio computes it);
        ``None`` for none. Unlike ``top_db`` it does not move with the clip's loudest moment, so
        bands a recording leaves empty stay constant whatever else happens in the clip.
    :param frames: 0 yields one vector per clip, the whole ``[channels, n_mels, time]`` image;
        N > 0 yields one ``[channels, n_mels, N]`` vector per run of N consecutive frames (hop 1),
        the DCASE baseline's frame context.
    """

    name = "mel-db"
    #: 2: bands above an upsampled recording's Nyquist frequency are silence, exactly.
    cache_version = "2"

    def __init__(
        self,
        sample_rate: int = 16000,
        channels: int | str = "mono",
        target_length: int = 100_000,
        n_fft: int = 1024,
        hop_length: int = 256,
        n_mels: int = 32,
        top_db: float = 80.0,
        frames: int = 0,
        center: bool = True,
        floor_db: float | None = None,
    ):
        self.sample_rate = sample_rate
        self.channels = channels
        self.target_length = target_length
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.top_db = top_db
        self.frames = frames
        self.center = center
        self.floor_db = floor_db

    def frames_to_read(self, file_sample_rate: int) -> int | None:
        if not self.target_length:
            return None
        return math.ceil(self.target_length * file_sample_rate / self.sample_rate) + 1

    def featurize(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return self.featurize_batch(waveform.unsqueeze(0), sample_rate)[0]

    def featurize_batch(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        import torch

        self.validate()
        if waveforms.shape[-1] == 0:
            raise aetk.AudioError("holds no audio samples")
        waveforms = self._select_channels(waveforms)
        if sample_rate != self.sample_rate:
            waveforms = self._resampler(sample_rate)(waveforms)
        waveforms = self._fix_length(waveforms)
        spectrogram, mel_power = self._transforms()
        mels = mel_power(spectrogram(waveforms))
        empty = self.empty_bands(sample_rate)
        if empty:
            mels[..., empty, :] = 0.0
        decibels = aetk.power_to_decibels(mels, self.top_db, self.floor_db, torch)
        if not self.frames:
            return decibels.unsqueeze(1)
        # [batch, channels, mels, time] → [batch, vectors, channels, mels, frames]
        return decibels.unfold(-1, self.frames, 1).permute(0, 3, 1, 2, 4).contiguous()

    def empty_bands(self, file_sample_rate: int) -> list[int]:
        """The mel bands a recording at ``file_sample_rate`` leaves empty when it is upsampled
        (:func:`aetk.empty_mel_bands`): silence, exactly."""
        return aetk.empty_mel_bands(self.n_mels, self.sample_rate, file_sample_rate)

    def layout(self) -> aetk.FeatureLayout:
        """Frames every ``hop_length`` samples; mel bands on torchaudio's HTK scale from 0 Hz to
        Nyquist, band ``b`` spanning the ``b``-th to the ``b + 2``-th mel point."""
        return _layout(self.sample_rate, self.n_mels, self.hop_length, bool(self.frames))

    def minimum_samples(self) -> int:
        """The shortest clip (at ``sample_rate``) that yields at least one vector."""
        later_frames = (max(self.frames, 1) - 1) * self.hop_length
        if self.center:  # frames every hop from sample 0; reflection needs n_fft / 2 samples
            return max(self.n_fft // 2 + 1, later_frames + 1)
        return self.n_fft + later_frames

    def validate(self) -> None:
        for name, low, high in _INTEGER_RANGES:
            value = getattr(self, name)
            if not _is_int(value) or not low <= value <= high:
                raise aetk.ConfigError(
                    f"mel-db: {name} must be an integer in {low}..{high}, not {str(value)[:40]}"
                )
        if self.channels != "mono" and not (
            isinstance(self.channels, int) and _is_int(self.channels) and 1 <= self.channels <= 256
        ):
            raise aetk.ConfigError(
                "mel-db: channels must be 'mono' or an integer in 1..256, "
                f"not {str(self.channels)[:40]!r}"
            )
        for name in ("top_db", "floor_db"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and math.isfinite(value)):
                raise aetk.ConfigError(f"mel-db: {name} must be a finite number, not {value!r}")
        if not isinstance(self.center, bool):
            raise aetk.ConfigError(f"mel-db: center must be true or false, not {self.center!r}")
        if self.target_length and self.target_length < self.minimum_samples():
            raise aetk.ConfigError(
                f"mel-db: target_length {self.target_length} is shorter than the "
                f"{self.minimum_samples()} samples that {self.frames} frames need"
            )

    def _select_channels(self, waveforms: torch.Tensor) -> torch.Tensor:
        if self.channels == "mono":
            return waveforms if waveforms.shape[1] == 1 else waveforms.mean(dim=1, keepdim=True)
        available, wanted = waveforms.shape[1], int(self.channels)
        if available < wanted:
            raise aetk.AudioError(
                f"has {available} channel(s) but the featurizer uses {self.channels} "
                "(set featurizer.channels to 'mono' or fewer channels)"
            )
        return waveforms[:, :wanted]

    def _fix_length(self, waveforms: torch.Tensor) -> torch.Tensor:
        import torch

        length = waveforms.shape[-1]
        if self.target_length:
            if length >= self.target_length:
                return waveforms[..., : self.target_length]
            return torch.nn.functional.pad(waveforms, (0, self.target_length - length))
        if length < self.minimum_samples():
            raise aetk.AudioError(
                f"is too short: {length / self.sample_rate:.3f} s, the featurizer needs at least "
                f"{self.minimum_samples() / self.sample_rate:.3f} s"
            )
        return waveforms

    # Transforms are built once per featurizer (and per input rate for resampling): building
    # the mel filter bank and resampling kernels costs more than applying them to a short clip.
    # The key and the transforms are published together, in one assignment, so threads
    # featurizing at once never see one without the other.

    def _transforms(self):
        key = (self.sample_rate, self.n_fft, self.hop_length, self.n_mels, self.center)
        built = getattr(self, "_built", None)
        if built is None or built[0] != key:
            built = (
                key,
                _Spectrogram(self.n_fft, self.hop_length, self.center),
                _MelPower(self.n_mels, self.sample_rate, self.n_fft // 2 + 1),
            )
            self._built = built
        return built[1:]

    def _resampler(self, file_sample_rate: int):
        cache = self.__dict__.setdefault("_resamplers", {})
        key = (file_sample_rate, self.sample_rate)
        if key not in cache:
            import torchaudio

            source = aetk.tractable_rate(file_sample_rate, self.sample_rate)
            cache[key] = torchaudio.transforms.Resample(source, self.sample_rate)
        return cache[key]


class _Spectrogram:
    """torchaudio's ``Spectrogram`` (``power=None``: complex, periodic Hann window of ``n_fft``,
    reflection padding when ``center``) of ``[..., samples]``, as the one ``torch.stft`` call it
    makes, without importing torchaudio. An object rather than a closure, so that a featurizer
    that has featurized still pickles."""

    def __init__(self, n_fft: int, hop_length: int, center: bool):
        import torch

        self.n_fft, self.hop_length, self.center = n_fft, hop_length, center
        self.window = torch.hann_window(n_fft)

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``[..., samples]`` → ``[..., bins, frames]`` complex."""
        import torch

        spectrum = torch.stft(
            waveforms.reshape(-1, waveforms.shape[-1]),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=self.center,
            pad_mode="reflect",
            return_complex=True,
        )
        return spectrum.reshape(*waveforms.shape[:-1], *spectrum.shape[-2:])


#: Mel bands weighed together in one block of the filter bank (see :class:`_MelPower`): 16
#: measured fastest of 8, 16 and 32 on 10-s clips at 16 kHz.
MEL_BLOCK = 16


class _MelPower:
    """torchaudio's MelScale (HTK, 0 Hz to Nyquist, unnormalised) of a complex spectrum's power
    ``|z|²``, as a few dense products. Each band spans a few FFT bins, so the bank is a band of
    non-zero weights (128 bands over 513 bins hold 1,012 of 65,664), and each block of
    ``MEL_BLOCK`` consecutive bands is the product with only the bins that block spans.

    The products also add ``re²`` and ``im²``: they read each bin's two squares side by side, as
    the STFT lays them out frame by frame, against each weight taken twice, so the power
    spectrum is never written. On one thread that takes two thirds of the time of squaring the
    two parts and adding them first (torchaudio's ``power=2`` also takes a square root only to
    square it again), and a quarter less than a sparse product."""

    def __init__(self, n_mels: int, sample_rate: int, bins: int):
        import torch

        self.n_mels, self.bins = n_mels, bins
        bank = aetk.mel_filter_bank(n_mels, sample_rate, bins, torch)
        self.blocks = []
        for first in range(0, n_mels, MEL_BLOCK):
            last = min(first + MEL_BLOCK, n_mels)
            used = bank[:, first:last].ne(0).any(1).nonzero()[:, 0]
            if len(used):  # bands narrower than a bin hold no weight and stay zero
                low, high = int(used.min()), int(used.max()) + 1
                weights = bank[low:high, first:last].repeat_interleave(2, dim=0).contiguous()
                self.blocks.append((first, last, 2 * low, 2 * high, weights))

    def __call__(self, spectrum: torch.Tensor) -> torch.Tensor:
        """``[..., bins, frames]`` complex → ``[..., mels, frames]``, laid out frame by frame."""
        import torch

        squares = torch.view_as_real(spectrum).square()  # [..., bins, frames, re² and im²]
        frames = spectrum.shape[-1]
        by_frame = squares.transpose(-2, -3).reshape(*spectrum.shape[:-2], frames, 2 * self.bins)
        mels = by_frame.new_zeros(*by_frame.shape[:-1], self.n_mels)
        for first, last, low, high, weights in self.blocks:
            mels[..., first:last] = by_frame[..., low:high] @ weights
        return mels.transpose(-1, -2)


#: (parameter, smallest, largest): wide enough for any real recording, narrow enough that a crafted
#: detector file cannot ask for absurd allocations.
_INTEGER_RANGES = (
    ("sample_rate", 1000, 1_000_000),
    ("n_fft", 1, 1 << 20),
    ("hop_length", 1, 1 << 20),
    ("n_mels", 1, 4096),
    ("target_length", 0, 1 << 34),
    ("frames", 0, 100_000),
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# Asked for once per clip explained: the same few layouts, each worked out once.
@functools.lru_cache(maxsize=64)
def _layout(sample_rate: int, n_mels: int, hop_length: int, frames: bool) -> aetk.FeatureLayout:
    hertz = aetk.mel_points_hz(n_mels, sample_rate)
    return aetk.FeatureLayout(
        frame_seconds=hop_length / sample_rate,
        band_edges_hz=tuple((hertz[b], hertz[b + 2]) for b in range(n_mels)),
        vector_step=1 if frames else 0,
    )


@aetk.hookimpl
def register_featurizers(register):
    register(MelDb)
