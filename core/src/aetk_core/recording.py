"""The recording chain: how a recording was made (rate, channels, level, clipping, dropouts, DC
offset, length), and the named warnings when it does not match the recordings a detector learned
from. aetk measures and checks recordings with these rules when it fits and scores, and
aetk-runtime with the same rules and the norms an exported detector carries.

A detector learns what its machine sounds like *through one recording chain*. A recording made
through another chain (a lower sample rate, another gain, a clipping preamplifier, another
channel count, an offset converter) differs from normal for reasons that have nothing to do with
the machine, and its score says so. Each check names its reason so that the verdict can be read
for what it is:

- ``band-limit``: the recording's Nyquist frequency lies below the top of the band the detector
  hears (an 8-kHz recording scored by a detector of 16-kHz recordings); the bands above it are
  empty. The band it hears is the analysed band, or less when every training recording was
  sampled slower than the featurizer analyses: then a recording sampled faster is heard through
  the training recordings' band (:func:`aetk_core.features.within_band`). Or its spectrum ends
  short of its Nyquist frequency: from some band up, most bands lie :data:`EMPTY_BAND_DB` or
  more below the quietest level that two or more training recordings reached there (one that
  ends early is a fluke the fit names), each spectrum taken relative to its own upper-quartile
  band (a codec, a low-pass filter, a recording resampled from a lower rate). A
  machine's sound does not end at a frequency, and a fault adds sound; a spectrum that ends is
  the recording chain's.
- ``codec``: its file was coded with a lossy codec (MP3, Vorbis, Opus, ADPCM, GSM: read from
  the file, :data:`LOSSY_CODECS`) that no training recording was coded with. What such a codec
  drops and smears is chosen for a listener, not for a machine's faults; and it need not end
  the spectrum early (``band-limit``).
- ``gain``: the recording is more than :data:`GAIN_MARGIN_DB` quieter or louder than every
  training recording.
- ``clipping``: more than :data:`CLIPPED_SHARE` of its samples (and twice the largest share
  that two or more training recordings reached: :func:`habitual`) sit at full scale.
- ``quantization``: its sample values take coarser steps (an 8-bit, µ-law or A-law recording):
  the noise they add lies :data:`STEP_MARGIN_DB` or more above the coarsest that two or more
  training recordings had, both in dBFS and relative to its own level (its upper-quartile band).
  Measured from the steps between the values its samples take (the median step of the values
  that recur), where all lie on the grid of every fourth 16-bit step; a 16-bit, 24-bit or float
  recording's counts as one least significant bit of 16 bits. Coarser in dBFS alone is a
  recording amplified, louder against its sound alone a 16-bit one made quieter: each a gain
  change (``gain``). One made quieter, then amplified back, has coarse steps at the usual level.
- ``dropout``: a stretch of digital silence (every channel exactly zero) of at least
  :data:`DROPOUT_SECONDS`, longer than twice the longest that two or more training recordings
  held (:func:`habitual`): a recorder or a link that lost its signal, which no sound of a
  running machine does. The silence is far from any normal moment: a fan recording with 0.1 s
  zeroed scores 8 times its threshold.
- ``channels``: a channel count no training recording had.
- ``dc-offset``: a constant offset above :data:`DC_OFFSET` of full scale (and twice the largest
  that two or more training recordings had: :func:`habitual`).
- ``duration``: shorter than :data:`SHORT_SHARE` of the training recordings' typical (median)
  length. Its average varies more than theirs and its threshold was set for their length: a
  detector of 10-s clips flags nearly every normal 2-s recording. Or, scored whole, longer than
  :data:`LONG_FACTOR` times that length: a fault in a part of it fades in its average (a
  detector of 10-s clips missed most 10-s knocks in 40-s recordings and found them all in
  windows of 10 s).
- ``machine``: the file's DCASE or MIMII name says a machine that the training recordings' names
  did not (a recording of another machine judged against this one's normal; checked by name,
  :func:`machine_warnings`).

At fit time the same checks compare each training recording with the others (band limit,
clipping, dropout and DC offset as above; sample steps against the median recording's; a codec
or a channel count other than the most common one; a level more than
:data:`FIT_LEVEL_MARGIN_DB` from the median; a length below :data:`SHORT_SHARE` of the median).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aetk_core.names import named_machine

if TYPE_CHECKING:
    from aetk_core.audio import Audio

#: A sample at or beyond this share of full scale counts as clipped.
CLIP_LEVEL = 0.999
#: Share of clipped samples above which a recording is called clipped.
CLIPPED_SHARE = 1e-3
#: A DC offset above this share of full scale is named.
DC_OFFSET = 0.01
#: How far (dB) outside the training recordings' levels a recording's level must lie.
GAIN_MARGIN_DB = 10.0
#: At fit time, how far (dB) from the median training level a recording must lie.
FIT_LEVEL_MARGIN_DB = 20.0
#: The level of digital silence (dBFS), so that levels stay finite.
SILENCE_DB = -150.0
#: A recording shorter than this share of the training recordings' median length is named: the
#: share below which the last window of a recording scored in windows is dropped, for the same
#: reason (it would be scored on less sound than the others).
SHORT_SHARE = 0.5
#: A recording scored whole that is longer than this many times the training recordings' median
#: length is named: twice as long, a fault lasting one training recording's length still
#: stood out of the whole (docs/reliability.md).
LONG_FACTOR = 2.0
#: The shortest stretch of digital silence named as a dropout (800 samples at 16 kHz: a live
#: microphone's noise never holds exactly zero that long).
DROPOUT_SECONDS = 0.05
#: A recording's spectrum is measured in this many equal bands from 0 Hz to its Nyquist frequency
#: (250 Hz wide at 16 kHz), from up to :data:`SPECTRUM_FRAMES` frames of :data:`SPECTRUM_FRAME`
#: samples spread evenly over it: a coarse shape, enough to see where a spectrum ends.
SPECTRUM_BANDS = 32
SPECTRUM_FRAME = 256
SPECTRUM_FRAMES = 16
#: How far (dB) below the quietest training recording's a band must lie to count as empty. On
#: the shared real sets no test recording, normal or faulty, had a band more than 19 dB below
#: (a lathe clip's near-silent top); an MP3 of a fan or valve clip, or one through half or a
#: quarter of its rate, lay 38–66 dB below from where its sound ends (docs/reliability.md).
EMPTY_BAND_DB = 30.0
#: How far (dB) above the training recordings' (:func:`_coarsest_steps`) the noise of a
#: recording's sample steps must lie to be named, in dBFS and against its sound (two bits
#: coarser). On the shared real sets no test recording's lay above the training recordings';
#: 8-bit copies of six normal test clips of each set lay 32–44 dB above, µ-law ones 8–28 dB
#: (docs/reliability.md).
STEP_MARGIN_DB = 12.0
#: The noise of 16-bit steps (one least significant bit) in each band, the finest that the
#: recording checks tell apart: 24-bit and float recordings count as 16-bit ones.
SIXTEEN_BIT_NOISE_DB = 10 * math.log10(2.0**-30 / 12 / SPECTRUM_BANDS)
#: The lossy codecs among soundfile's subtypes, by the name a warning gives them.
LOSSY_CODECS = {
    "MPEG_LAYER_I": "MPEG layer I",
    "MPEG_LAYER_II": "MP2",
    "MPEG_LAYER_III": "MP3",
    "VORBIS": "Vorbis",
    "OPUS": "Opus",
    "GSM610": "GSM 06.10",
    "IMA_ADPCM": "IMA ADPCM",
    "MS_ADPCM": "Microsoft ADPCM",
    "VOX_ADPCM": "VOX ADPCM",
    "G721_32": "G.721 ADPCM",
    "G723_24": "G.723 ADPCM",
    "G723_40": "G.723 ADPCM",
    "NMS_ADPCM_16": "NMS ADPCM",
    "NMS_ADPCM_24": "NMS ADPCM",
    "NMS_ADPCM_32": "NMS ADPCM",
}
NAMES = (
    "band-limit",
    "codec",
    "gain",
    "clipping",
    "quantization",
    "dropout",
    "channels",
    "dc-offset",
    "duration",
    "machine",
)


@dataclass(frozen=True)
class RecordingWarning:
    """A way a recording does not match the detector's recordings: ``name`` (one of
    :data:`NAMES`) and a one-line ``message``."""

    name: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "message": self.message}


@dataclass(frozen=True)
class RecordingProfile:
    """How one recording (or window of one) was made, measured from its decoded samples."""

    sample_rate: int
    channels: int
    level_db: float
    clipped_share: float
    dc_offset: float
    #: Its length in seconds (None: not measured).
    seconds: float | None = None
    #: Its longest stretch of digital silence, if at least :data:`DROPOUT_SECONDS` (else 0), and
    #: where that starts (seconds).
    dropout_seconds: float = 0.0
    dropout_start: float = 0.0
    #: The level (dBFS) of :data:`SPECTRUM_BANDS` equal bands from 0 Hz to its Nyquist
    #: frequency (None: shorter than one frame, or not measured).
    band_levels_db: tuple[float, ...] | None = None
    #: The level (dBFS) in each of those bands of the noise that the steps between its sample
    #: values add, as white noise, and at least 16 bits' (None: not measured).
    step_noise_db: float | None = None
    #: The lossy codec its file was coded with (:data:`LOSSY_CODECS`' names; None: a lossless
    #: coding, or samples given in memory).
    codec: str | None = None

    @classmethod
    def of(cls, audio: Audio) -> RecordingProfile:
        """The profile of a decoded recording: its samples, measured as its file coded them."""
        return cls.measure(audio.samples, audio.sample_rate, audio.coding)

    @classmethod
    def measure(
        cls, samples: np.ndarray, sample_rate: int, coding: str | None = None
    ) -> RecordingProfile:
        """The profile of ``[channels, frames]`` float samples in [-1, 1], decoded from a file
        of soundfile's subtype ``coding`` (None: given in memory)."""
        samples = np.asarray(samples, dtype=np.float32)
        seconds = samples.shape[1] / sample_rate
        codec = LOSSY_CODECS.get(coding or "")
        if samples.size == 0:
            return cls(
                int(sample_rate), int(samples.shape[0]), SILENCE_DB, 0.0, 0.0, seconds, codec=codec
            )
        # Measured at every decode: one BLAS dot product for the power and a peak test before
        # counting clipped samples (a third of the time of float64 passes, the same to 1e-6).
        means = samples.sum(axis=1) / samples.shape[1]
        flat = samples.reshape(-1)
        power = float(np.dot(flat, flat)) / flat.size
        level = 10 * math.log10(power) if power > 0 else SILENCE_DB
        peak = max(float(flat.max()), -float(flat.min()))
        clipped = (
            float(np.count_nonzero(np.abs(flat) >= CLIP_LEVEL)) / flat.size
            if peak >= CLIP_LEVEL
            else 0.0
        )
        return cls(
            int(sample_rate),
            int(samples.shape[0]),
            max(level, SILENCE_DB),
            clipped,
            float(np.abs(means).max()),
            seconds,
            *_longest_silence(samples, sample_rate),
            *_spectrum_and_steps(samples),
            codec,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "level_db": round(self.level_db, 3),
            "clipped_share": self.clipped_share,
            "dc_offset": self.dc_offset,
            "seconds": self.seconds,
            "dropout_seconds": self.dropout_seconds,
            "dropout_start": self.dropout_start,
            "band_levels_db": None
            if self.band_levels_db is None
            else [round(level, 2) for level in self.band_levels_db],
            "step_noise_db": None if self.step_noise_db is None else round(self.step_noise_db, 2),
            "codec": self.codec,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordingProfile:
        """A profile as :meth:`as_dict` wrote it (a ``KeyError`` for one written before the
        length, dropouts, spectrum, sample steps and codec were measured: the feature cache
        measures those again)."""
        seconds, levels, steps = data["seconds"], data["band_levels_db"], data["step_noise_db"]
        return cls(
            int(data["sample_rate"]),
            int(data["channels"]),
            float(data["level_db"]),
            float(data["clipped_share"]),
            float(data["dc_offset"]),
            None if seconds is None else float(seconds),
            float(data["dropout_seconds"]),
            float(data["dropout_start"]),
            None if levels is None else tuple(float(level) for level in levels),
            None if steps is None else float(steps),
            None if data["codec"] is None else str(data["codec"]),
        )

    def nyquist_hz(self) -> float:
        return self.sample_rate / 2

    def step_floor_db(self) -> float | None:
        """The noise of its sample steps in dB relative to its own upper-quartile band (None:
        not measured)."""
        if self.step_noise_db is None or self.band_levels_db is None:
            return None
        bands = np.array([self.band_levels_db])
        return self.step_noise_db - float(_upper_quartiles(bands)[0, 0])


def _longest_silence(samples: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Length and start (seconds) of the longest run of frames in which every channel is
    exactly zero, when it is at least :data:`DROPOUT_SECONDS`; ``(0.0, 0.0)`` otherwise. The
    first channel's zeros are counted first: a recording with fewer holds no such run, and
    the runs are looked for only then (one comparison pass for a live recording)."""
    shortest = max(1, math.ceil(DROPOUT_SECONDS * sample_rate))
    if np.count_nonzero(samples[0] == 0) < shortest:
        return 0.0, 0.0
    silent = (samples == 0).all(axis=0).astype(np.int8)
    edges = np.flatnonzero(np.diff(silent, prepend=0, append=0))
    starts, lengths = edges[::2], edges[1::2] - edges[::2]
    longest = int(np.argmax(lengths))
    if lengths[longest] < shortest:
        return 0.0, 0.0
    return float(lengths[longest]) / sample_rate, float(starts[longest]) / sample_rate


def _spectrum_and_steps(
    samples: np.ndarray,
) -> tuple[tuple[float, ...] | None, float | None]:
    """The recording's coarse spectrum (:attr:`RecordingProfile.band_levels_db`): the mean power
    of Hann-windowed frames spread evenly over it, summed into bands; and the noise of its
    sample steps in those frames (:attr:`RecordingProfile.step_noise_db`). In few numpy calls: a
    call on small arrays holds the GIL, and every featurizing thread measures every clip."""
    length = samples.shape[1]
    count = min(SPECTRUM_FRAMES, length // SPECTRUM_FRAME)
    if count < 1:
        return None, None
    indices, window, scale = _spectrum_plan(length, count)
    framed = samples[:, indices]
    spectra = np.fft.rfft(framed * window, axis=-1)
    parts = np.ascontiguousarray(spectra).view(np.float32)  # real and imaginary parts
    power = np.einsum("cfk,cfk->k", parts, parts)[2:].reshape(SPECTRUM_BANDS, -1).sum(axis=1)
    power *= scale / samples.shape[0]  # the mean over channels
    levels = 10 * np.log10(np.maximum(power, 10 ** (SILENCE_DB / 10)))
    # Steps from every other frame: 2,048 values of a mono recording show them, and sorting
    # them (an 8-bit, µ-law or A-law recording's) is the costliest part of measuring one.
    return tuple(levels.tolist()), _step_noise_db(framed[:, ::2].reshape(-1))


def _step_noise_db(values: np.ndarray) -> float:
    """The level in each of :data:`SPECTRUM_BANDS` bands of the noise that rounding to the
    steps between ``values`` adds (a step's square over 12, spread evenly over the bands).
    Where a value lies off every fourth step of 16 bits (a 16-bit, 24-bit or float recording),
    16 bits' (:data:`SIXTEEN_BIT_NOISE_DB`): no coarser step is at hand, and most recordings
    are told apart without sorting their samples. Else (8-bit, µ-law and A-law values all lie
    on that grid) the step is the median, over the values that recur, of the distance to the
    nearest other value, each counted as often as it occurs."""
    on_grid = values * (2.0**15 / 4)
    if not np.array_equal(on_grid, np.rint(on_grid)):
        return SIXTEEN_BIT_NOISE_DB
    ordered = np.sort(values)
    starts = np.flatnonzero(np.diff(ordered, prepend=np.inf))  # each distinct value's first
    counts = np.diff(starts, append=ordered.size)
    recurring = counts > 1
    if starts.size < 2 or not recurring.any():
        return SIXTEEN_BIT_NOISE_DB  # digital silence, or too few values to show a step
    gaps = np.diff(ordered[starts])
    nearest = np.minimum(np.append(np.inf, gaps), np.append(gaps, np.inf))
    step = float(np.median(np.repeat(nearest[recurring], counts[recurring])))
    return 10 * math.log10(step * step / 12 / SPECTRUM_BANDS)


@functools.lru_cache(maxsize=16)
def _spectrum_plan(length: int, count: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Where ``count`` frames spread evenly over ``length`` samples lie, the Hann window, and
    the factor that makes the bands (bins 1 … SPECTRUM_FRAME/2, the DC bin left out) add up to
    the level: one side of the spectrum, the window's power and the frames' count undone."""
    starts = np.linspace(0, length - SPECTRUM_FRAME, count).astype(np.int64)
    window = np.hanning(SPECTRUM_FRAME).astype(np.float32)
    scale = 2 / (SPECTRUM_FRAME * float(np.square(window).sum()) * count)
    return starts[:, None] + np.arange(SPECTRUM_FRAME), window, scale


def band_shape(profile: RecordingProfile, top_hz: float) -> np.ndarray | None:
    """One profile's spectrum shape (:func:`band_shapes`)."""
    shapes = band_shapes([profile], top_hz)
    return None if shapes is None else shapes[0]


def band_shapes(profiles: Sequence[RecordingProfile], top_hz: float) -> np.ndarray | None:
    """The profiles' spectra on :data:`SPECTRUM_BANDS` equal bands from 0 Hz to ``top_hz``
    (read off their own bands), each in dB above its upper quartile: neither the gain nor a
    loud tone in a few bands moves the others, and a spectrum that ends a quarter of the way up
    keeps its reference. ``[profiles, bands]``; None: one of them was not measured, or was
    recorded narrower than ``top_hz``."""
    if any(p.band_levels_db is None or p.nyquist_hz() < 0.99 * top_hz for p in profiles):
        return None
    on_grid = np.array([profile.band_levels_db for profile in profiles], dtype=np.float64)
    centres = (np.arange(on_grid.shape[1]) + 0.5) / on_grid.shape[1]
    for row, profile in enumerate(profiles):
        if profile.nyquist_hz() != top_hz:  # a faster recording's bands, read at the grid's
            on_grid[row] = np.interp(centres * top_hz, centres * profile.nyquist_hz(), on_grid[row])
    return on_grid - _upper_quartiles(on_grid)


def _upper_quartiles(rows: np.ndarray) -> np.ndarray:
    """``np.percentile(rows, 75, axis=1, keepdims=True)``, the same numbers, without its
    tenth of a millisecond a call (every recording scored is checked)."""
    ordered = np.sort(rows, axis=1)
    position = 0.75 * (rows.shape[1] - 1)
    low = math.floor(position)
    high, fraction = min(low + 1, rows.shape[1] - 1), position - low
    below, above = ordered[:, low : low + 1], ordered[:, high : high + 1]
    step = above - below
    # numpy's interpolation, from the nearer end: the same rounding.
    return below + step * fraction if fraction < 0.5 else above - step * (1 - fraction)


def spectrum_ends(shapes: np.ndarray, quietest: np.ndarray) -> list[tuple[int, float] | None]:
    """Where each spectrum (a row of ``shapes``) ends short of its Nyquist frequency, against
    the quietest normal shape per band (the same row of ``quietest``): the lowest band from
    which, up to the top, the band itself and at least half of those above it lie
    :data:`EMPTY_BAND_DB` below it (two bands at least: one band is no edge); that band and the
    median depth of the bands from it up. None: no end."""
    below = quietest - shapes
    empty = below > EMPTY_BAND_DB
    bands = below.shape[1]
    from_here_up = np.cumsum(empty[:, ::-1], axis=1)[:, ::-1]
    ends = empty & (2 * from_here_up >= bands - np.arange(bands))
    ends[:, -1] = False
    return [
        (int(row.argmax()), float(np.median(depths[row.argmax() :]))) if row.any() else None
        for row, depths in zip(ends, below, strict=True)
    ]


@dataclass(frozen=True)
class RecordingNorms:
    """What a detector's training recordings were like, kept in its file, for the checks at
    score time. ``analysed_hz``: the top of the band the featurizer analyses (None: unknown);
    ``band_rate``: the fastest training recording's rate when every one was sampled slower than
    the analysis (its band is what the detector heard; None otherwise); the rest is ``None`` for
    a detector fitted before they were recorded."""

    analysed_hz: float | None
    channels: tuple[int, ...] | None = None
    level_db: tuple[float, float] | None = None
    #: The largest clipped share and DC offset that two or more training recordings had
    #: (:func:`habitual`).
    clipped_share: float = 0.0
    dc_offset: float = 0.0
    band_rate: int | None = None
    #: The training recordings' median length in seconds.
    seconds: float | None = None
    #: The longest dropout in seconds that two or more training recordings held
    #: (:func:`habitual`).
    dropout_seconds: float = 0.0
    #: The quietest level that two or more training recordings reached in each band of their
    #: spectra's shape up to ``band_shape_hz``, the slowest one's Nyquist frequency
    #: (:func:`band_shape`, :func:`_quietest_shape`; None: a detector fitted before spectra
    #: were measured).
    band_shape_db: tuple[float, ...] | None = None
    band_shape_hz: float | None = None
    #: The noise of the training recordings' sample steps (the coarsest that two or more had:
    #: :func:`_coarsest_steps`), in dBFS and relative to their own level
    #: (:attr:`RecordingProfile.step_noise_db`, :meth:`RecordingProfile.step_floor_db`; None:
    #: not measured).
    step_noise_db: float | None = None
    step_floor_db: float | None = None
    #: The lossy codecs the training recordings were coded with (``()``: none; None: a detector
    #: fitted before codecs were read).
    codecs: tuple[str, ...] | None = None

    @classmethod
    def learn(
        cls, profiles: Iterable[RecordingProfile], analysed_hz: float | None
    ) -> RecordingNorms:
        profiles = list(profiles)
        if not profiles:
            return cls(analysed_hz)
        levels = [profile.level_db for profile in profiles]
        fastest = max(profiles, key=lambda profile: profile.sample_rate)
        narrower = band_limit(fastest, analysed_hz) is not None
        return cls(
            analysed_hz,
            tuple(sorted({profile.channels for profile in profiles})),
            (min(levels), max(levels)),
            habitual(profile.clipped_share for profile in profiles),
            habitual(profile.dc_offset for profile in profiles),
            fastest.sample_rate if narrower else None,
            median_seconds(profiles),
            habitual(profile.dropout_seconds for profile in profiles),
            *_quietest_shape(profiles),
            *_coarsest_steps(profiles),
            tuple(sorted({profile.codec for profile in profiles if profile.codec})),
        )

    @property
    def heard_hz(self) -> float | None:
        """The top of the band the detector heard: the analysed band's, or the training
        recordings' Nyquist frequency when they were all narrower."""
        return self.analysed_hz if self.band_rate is None else self.band_rate / 2

    def as_dict(self) -> dict[str, Any]:
        return {
            "analysed_hz": self.analysed_hz,
            "channels": None if self.channels is None else list(self.channels),
            "level_db": None if self.level_db is None else [round(v, 3) for v in self.level_db],
            "clipped_share": self.clipped_share,
            "dc_offset": self.dc_offset,
            "band_rate": self.band_rate,
            "seconds": None if self.seconds is None else round(self.seconds, 6),
            "dropout_seconds": self.dropout_seconds,
            "band_shape_db": None
            if self.band_shape_db is None
            else [round(level, 2) for level in self.band_shape_db],
            "band_shape_hz": self.band_shape_hz,
            "step_noise_db": None if self.step_noise_db is None else round(self.step_noise_db, 2),
            "step_floor_db": None if self.step_floor_db is None else round(self.step_floor_db, 2),
            "codecs": None if self.codecs is None else list(self.codecs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], analysed_hz: float | None) -> RecordingNorms:
        """Norms stored in a detector file; ``analysed_hz`` when the file did not keep it."""
        channels, levels = data.get("channels"), data.get("level_db")
        stored_hz, band_rate = data.get("analysed_hz"), data.get("band_rate")
        seconds, shape, shape_hz = (
            data.get("seconds"),
            data.get("band_shape_db"),
            data.get("band_shape_hz"),
        )
        steps, floor = data.get("step_noise_db"), data.get("step_floor_db")
        codecs = data.get("codecs")
        return cls(
            float(stored_hz) if stored_hz is not None else analysed_hz,
            None if channels is None else tuple(int(c) for c in channels),
            None if levels is None else (float(levels[0]), float(levels[1])),
            float(data.get("clipped_share", 0.0)),
            float(data.get("dc_offset", 0.0)),
            None if band_rate is None else int(band_rate),
            None if seconds is None else float(seconds),
            float(data.get("dropout_seconds", 0.0)),
            None if shape is None else tuple(float(level) for level in shape),
            None if shape_hz is None else float(shape_hz),
            None if steps is None else float(steps),
            None if floor is None else float(floor),
            None if codecs is None else tuple(str(codec) for codec in codecs),
        )

    def check(
        self, profile: RecordingProfile, window_seconds: float = 0.0
    ) -> list[RecordingWarning]:
        """The ways ``profile`` does not match the training recordings, in :data:`NAMES` order.
        ``window_seconds``: the recording is a window of a file scored in windows of that length;
        its ``duration`` is then measured against the windows where they are the shorter, and a
        window is never named long (their length against the training recordings' is said once,
        not for every window: :func:`aetk_core.verdict.window_length_warning`)."""
        typical, whose = self.seconds, "the training recordings' length"
        if window_seconds and typical is not None and window_seconds < typical:
            typical, whose = window_seconds, "the windows asked for"
        found = [
            band_limit(profile, self.heard_hz)
            or spectrum_limit(profile, self.band_shape_db, self.band_shape_hz, self.heard_hz),
            self._codec(profile),
            self._gain(profile),
            clipping(profile, 2 * self.clipped_share),
            coarse_steps(
                profile, self.step_noise_db, self.step_floor_db, "the training recordings'"
            ),
            dropout(profile, 2 * self.dropout_seconds),
            self._channels(profile),
            dc_offset(profile, 2 * self.dc_offset),
            duration(profile, typical, whose)
            or (None if window_seconds else overlong(profile, self.seconds)),
        ]
        return [warning for warning in found if warning is not None]

    def _gain(self, profile: RecordingProfile) -> RecordingWarning | None:
        if self.level_db is None:
            return None
        low, high = self.level_db
        if profile.level_db < low - GAIN_MARGIN_DB:
            return RecordingWarning(
                "gain",
                f"level {profile.level_db:.1f} dBFS, {low - profile.level_db:.0f} dB below the "
                f"quietest training recording ({low:.1f} dBFS): a gain change?",
            )
        if profile.level_db > high + GAIN_MARGIN_DB:
            return RecordingWarning(
                "gain",
                f"level {profile.level_db:.1f} dBFS, {profile.level_db - high:.0f} dB above the "
                f"loudest training recording ({high:.1f} dBFS): a gain change?",
            )
        return None

    def _codec(self, profile: RecordingProfile) -> RecordingWarning | None:
        if self.codecs is None or profile.codec is None or profile.codec in self.codecs:
            return None
        unlike = f"coded as {' or '.join(self.codecs)}" if self.codecs else "not"
        return RecordingWarning(
            "codec",
            f"coded as {profile.codec}, a lossy codec, where the training recordings were "
            f"{unlike} (what it drops and smears can raise the score)",
        )

    def _channels(self, profile: RecordingProfile) -> RecordingWarning | None:
        if self.channels is None or profile.channels in self.channels:
            return None
        had = " or ".join(map(str, self.channels))
        return RecordingWarning(
            "channels", f"{profile.channels} channel(s), but the training recordings had {had}"
        )


def band_limit(profile: RecordingProfile, heard_hz: float | None) -> RecordingWarning | None:
    """A recording narrower than the band the detector hears (up to ``heard_hz``)."""
    if heard_hz is None or profile.nyquist_hz() >= 0.99 * heard_hz:
        return None
    return RecordingWarning(
        "band-limit",
        f"recorded at {profile.sample_rate} Hz: nothing above {profile.nyquist_hz():.0f} Hz, but "
        f"the detector hears up to {heard_hz:.0f} Hz (the empty bands raise the score)",
    )


def spectrum_limit(
    profile: RecordingProfile,
    quietest: Sequence[float] | None,
    top_hz: float | None,
    heard_hz: float | None,
) -> RecordingWarning | None:
    """A recording whose spectrum ends below the band the detector hears (:func:`spectrum_ends`
    against the ``quietest`` training shape up to ``top_hz``)."""
    if quietest is None or top_hz is None:
        return None
    shape = band_shape(profile, top_hz)
    if shape is None or len(shape) != len(quietest):
        return None
    (found,) = _spectrum_warnings(
        shape[None], np.asarray(quietest)[None], top_hz, heard_hz, "the training recordings'"
    )
    return found


def _spectrum_warnings(
    shapes: np.ndarray, quietest: np.ndarray, top_hz: float, heard_hz: float | None, whose: str
) -> list[RecordingWarning | None]:
    """For each row of ``shapes``, a ``band-limit`` when its spectrum ends below the band the
    detector hears (``whose``: the quietest shapes', in words)."""
    band_hz = top_hz / shapes.shape[1]
    return [_end_warning(end, band_hz, heard_hz, whose) for end in spectrum_ends(shapes, quietest)]


def _end_warning(
    end: tuple[int, float] | None, band_hz: float, heard_hz: float | None, whose: str
) -> RecordingWarning | None:
    if end is None:
        return None
    end_hz = end[0] * band_hz
    if heard_hz is not None and end_hz >= 0.99 * heard_hz:
        return None  # it ends above what the detector hears
    return RecordingWarning(
        "band-limit",
        f"its sound ends near {end_hz:.0f} Hz: above, it lies {end[1]:.0f} dB below {whose} "
        "(a codec, a low-pass filter or a recording resampled from a lower rate?)",
    )


def _training_shapes(
    profiles: Sequence[RecordingProfile],
) -> tuple[np.ndarray, float] | None:
    """Every training recording's spectrum shape up to the slowest one's Nyquist frequency, and
    that frequency (None: one of them was not measured)."""
    if not profiles:
        return None
    top_hz = min(profile.nyquist_hz() for profile in profiles)
    shapes = band_shapes(profiles, top_hz)
    return None if shapes is None else (shapes, top_hz)


def _quietest_shape(
    profiles: Sequence[RecordingProfile],
) -> tuple[tuple[float, ...] | None, float | None]:
    """The quietest level of each band that two or more of the recordings' shapes reached (the
    second quietest; a lone recording's own), and the shapes' top: one recording whose spectrum
    ends early is a fluke that the fit names, and must not excuse every band-limited recording
    scored."""
    found = _training_shapes(profiles)
    if found is None:
        return None, None
    shapes, top_hz = found
    quietest = np.sort(shapes, axis=0)[min(1, len(shapes) - 1)]
    return tuple(float(level) for level in quietest), top_hz


def clipping(profile: RecordingProfile, usual_share: float = 0.0) -> RecordingWarning | None:
    if profile.clipped_share <= max(CLIPPED_SHARE, usual_share):
        return None
    return RecordingWarning(
        "clipping", f"{100 * profile.clipped_share:.2g} % of its samples are at full scale"
    )


def coarse_steps(
    profile: RecordingProfile,
    usual_noise_db: float | None,
    usual_floor_db: float | None,
    whose: str,
) -> RecordingWarning | None:
    """A ``quantization`` warning when the noise of the recording's sample steps lies
    :data:`STEP_MARGIN_DB` above ``usual_noise_db`` in dBFS and ``usual_floor_db`` relative to
    its own level (``whose``, in words): coarser steps, and louder against its sound. Either
    alone is another gain (a recording amplified, or a 16-bit one made quieter)."""
    if profile.step_noise_db is None or usual_noise_db is None or usual_floor_db is None:
        return None
    if profile.step_noise_db - usual_noise_db < STEP_MARGIN_DB:
        return None  # every 16-bit recording: its level's upper quartile is not worked out
    floor = profile.step_floor_db()
    louder = None if floor is None else floor - usual_floor_db
    if louder is None or louder < STEP_MARGIN_DB:
        return None
    return RecordingWarning(
        "quantization",
        f"its samples take coarser steps than {whose} (an 8-bit, µ-law or A-law recording?): "
        f"the noise they add lies {louder:.0f} dB higher against its sound (it can raise the "
        "score)",
    )


def _coarsest_steps(profiles: Sequence[RecordingProfile]) -> tuple[float | None, float | None]:
    """The step noise (dBFS) and the step floor (relative) that two or more of the recordings
    reached (a lone recording's own): one coarser than all the others is a fluke, as a defect
    is for :func:`habitual`."""
    steps = _steps(profiles)
    if len(steps) < 2:
        return steps[0] if steps else (None, None)
    noises, floors = zip(*steps, strict=True)
    return habitual(noises), habitual(floors)


def _steps(profiles: Sequence[RecordingProfile]) -> list[tuple[float, float]]:
    """Each recording's step noise and step floor, where measured (not in one shorter than a
    frame)."""
    return [
        (profile.step_noise_db, floor)
        for profile in profiles
        if profile.step_noise_db is not None and (floor := profile.step_floor_db()) is not None
    ]


def dropout(profile: RecordingProfile, usual_seconds: float = 0.0) -> RecordingWarning | None:
    # A profile's dropout is 0 below DROPOUT_SECONDS, so the bar is never below that.
    if profile.dropout_seconds <= usual_seconds:
        return None
    return RecordingWarning(
        "dropout",
        f"{profile.dropout_seconds:.3g} s of digital silence from {profile.dropout_start:.2f} s: "
        "the recording lost its signal?",
    )


def dc_offset(profile: RecordingProfile, usual_offset: float = 0.0) -> RecordingWarning | None:
    if profile.dc_offset <= max(DC_OFFSET, usual_offset):
        return None
    return RecordingWarning(
        "dc-offset", f"a constant offset of {100 * profile.dc_offset:.2g} % of full scale"
    )


def duration(
    profile: RecordingProfile, typical_seconds: float | None, whose: str
) -> RecordingWarning | None:
    """A recording shorter than :data:`SHORT_SHARE` of ``typical_seconds`` (``whose`` length
    that is, in words)."""
    if profile.seconds is None or typical_seconds is None:
        return None
    if profile.seconds >= SHORT_SHARE * typical_seconds:
        return None
    return RecordingWarning(
        "duration",
        f"{profile.seconds:.3g} s long, less than half {whose} ({typical_seconds:.3g} s): a short "
        "recording's average varies more than a long one's",
    )


def overlong(profile: RecordingProfile, typical_seconds: float | None) -> RecordingWarning | None:
    """A recording scored whole that is longer than :data:`LONG_FACTOR` times the training
    recordings' median length ``typical_seconds``."""
    if profile.seconds is None or typical_seconds is None:
        return None
    if profile.seconds <= LONG_FACTOR * typical_seconds:
        return None
    window = f"{typical_seconds:.3g}"
    return RecordingWarning(
        "duration",
        f"{round(profile.seconds, 1):g} s long, more than twice the training recordings' length "
        f"({window} s): a fault in a part of it fades in its average; score it in windows "
        f"(--segment {window}, or --window {window} when watching)",
    )


def machine_warnings(learned: Sequence[str], path: str | Path) -> list[RecordingWarning]:
    """A ``machine`` warning when the DCASE or MIMII name of ``path`` says a machine that the
    training recordings' names did not. ``learned``: the machines their names said; empty (names
    that did not all say one, or a detector file from before) checks nothing."""
    if not learned:
        return []
    machine = named_machine(Path(path).stem)
    if machine is None or machine in learned:
        return []
    shown = ", ".join(learned[:4]) + (", …" if len(learned) > 4 else "")
    return [
        RecordingWarning(
            "machine",
            f"its name says {machine}, a machine the detector did not learn (it learned "
            f"{shown}): judged against another machine's normal",
        )
    ]


def habitual(defects: Iterable[float]) -> float:
    """The largest of the training recordings' ``defects`` (a dropout's length, a clipped share,
    a DC offset; 0 where there is none) that two or more of them reached: the second largest.
    One recording's defect is a fluke that the fit names, not how the recorder records, and
    must not excuse it in every recording scored: a lathe's 400 training recordings held one
    dropout, of 0.118 s, and that one had kept two normal test clips that lost 0.204 and
    0.082 s of their signal (and scored 7.8 and 1.8 times the threshold) from being named."""
    largest = sorted(defects, reverse=True)
    return largest[1] if len(largest) > 1 else 0.0


def median_seconds(profiles: Sequence[RecordingProfile]) -> float | None:
    """The recordings' median length; None when any was not measured."""
    lengths = [profile.seconds for profile in profiles if profile.seconds is not None]
    if not lengths or len(lengths) < len(profiles):
        return None
    return float(np.median(lengths))


def training_warnings(
    profiles: Sequence[RecordingProfile], heard_hz: float | None
) -> list[list[RecordingWarning]]:
    """For each training recording, the ways it differs from the band the detector hears
    (:attr:`RecordingNorms.heard_hz` of these recordings), from a clean recording, or from the
    other training recordings (see the module documentation)."""
    if not profiles:
        return []
    usual_channels = Counter(profile.channels for profile in profiles).most_common(1)[0][0]
    usual_codec = Counter(profile.codec for profile in profiles).most_common(1)[0][0]
    median_level = float(np.median([profile.level_db for profile in profiles]))
    usual_seconds = median_seconds(profiles)
    spectra = _spectra_unlike_the_others(profiles, heard_hz)
    steps = _steps(profiles)
    median_noise, median_floor = (
        (float(np.median([noise for noise, _ in steps])), float(np.median([f for _, f in steps])))
        if steps
        else (None, None)
    )
    found = []
    for profile, spectrum in zip(profiles, spectra, strict=True):
        warnings = [
            band_limit(profile, heard_hz) or spectrum,
            _codec_outlier(profile, usual_codec),
            _level_outlier(profile, median_level),
            clipping(profile),
            coarse_steps(profile, median_noise, median_floor, "the median training recording's"),
            dropout(profile),
            _channel_outlier(profile, usual_channels),
            dc_offset(profile),
            duration(profile, usual_seconds, "the training recordings' median length"),
        ]
        found.append([warning for warning in warnings if warning is not None])
    return found


def _spectra_unlike_the_others(
    profiles: Sequence[RecordingProfile], heard_hz: float | None
) -> list[RecordingWarning | None]:
    """For each recording, a ``band-limit`` when its spectrum ends against the quietest level
    of each band of the other recordings' shapes (the smallest, or where it is its own, the
    second smallest)."""
    found = _training_shapes(profiles)
    if found is None or len(profiles) < 2:
        return [None] * len(profiles)
    shapes, top_hz = found
    order = np.argsort(shapes, axis=0)
    smallest = np.take_along_axis(shapes, order[:2], axis=0)
    own = order[0][None, :] == np.arange(len(profiles))[:, None]
    others = np.where(own, smallest[1], smallest[0])
    return _spectrum_warnings(shapes, others, top_hz, heard_hz, "the other training recordings'")


def _level_outlier(profile: RecordingProfile, median_db: float) -> RecordingWarning | None:
    if abs(profile.level_db - median_db) <= FIT_LEVEL_MARGIN_DB:
        return None
    side = "below" if profile.level_db < median_db else "above"
    return RecordingWarning(
        "gain",
        f"level {profile.level_db:.1f} dBFS, {abs(profile.level_db - median_db):.0f} dB {side} "
        f"the training recordings' median ({median_db:.1f} dBFS)",
    )


def _codec_outlier(profile: RecordingProfile, usual: str | None) -> RecordingWarning | None:
    if profile.codec is None or profile.codec == usual:
        return None
    were = "were not" if usual is None else f"were coded as {usual}"
    return RecordingWarning(
        "codec", f"coded as {profile.codec}, a lossy codec, where most training recordings {were}"
    )


def _channel_outlier(profile: RecordingProfile, usual: int) -> RecordingWarning | None:
    if profile.channels == usual:
        return None
    return RecordingWarning(
        "channels", f"{profile.channels} channel(s), but most training recordings have {usual}"
    )


def merged(warnings: Iterable[RecordingWarning]) -> list[RecordingWarning]:
    """One warning of each name (the first), in :data:`NAMES` order: a file's windows repeat
    the same findings."""
    first: dict[str, RecordingWarning] = {}
    for warning in warnings:
        first.setdefault(warning.name, warning)
    return sorted(first.values(), key=lambda warning: NAMES.index(warning.name))


def mismatch_error(warnings: Sequence[RecordingWarning]) -> str:
    """The error of a recording refused for not matching the detector's (``--strict``)."""
    return "recording does not match the detector's (--strict): " + "; ".join(
        f"{warning.name}: {warning.message}" for warning in warnings
    )


def describe_warnings(warnings: Iterable[dict[str, str]]) -> str:
    """Recording warnings (as results carry them) on one line: ``band-limit: …; gain: …``."""
    return "; ".join(f"{warning['name']}: {warning['message']}" for warning in warnings)
