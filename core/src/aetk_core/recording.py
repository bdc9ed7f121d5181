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
  the training recordings' band (:func:`aetk_core.features.within_band`).
- ``gain``: the recording is more than :data:`GAIN_MARGIN_DB` quieter or louder than every
  training recording.
- ``clipping``: more than :data:`CLIPPED_SHARE` of its samples (and twice the worst training
  recording's share) sit at full scale.
- ``dropout``: a stretch of digital silence (every channel exactly zero) of at least
  :data:`DROPOUT_SECONDS`, longer than twice the training recordings' longest: a recorder or a
  link that lost its signal, which no sound of a running machine does. The silence is far from
  any normal moment: a fan recording with 0.1 s zeroed scores 8 times its threshold.
- ``channels``: a channel count no training recording had.
- ``dc-offset``: a constant offset above :data:`DC_OFFSET` of full scale (and twice the worst
  training recording's).
- ``duration``: shorter than :data:`SHORT_SHARE` of the training recordings' typical (median)
  length. Its average varies more than theirs and its threshold was set for their length: a
  detector of 10-s clips flags nearly every normal 2-s recording.
- ``machine``: the file's DCASE or MIMII name says a machine that the training recordings' names
  did not (a recording of another machine judged against this one's normal; checked by name,
  :func:`machine_warnings`).

At fit time the same checks compare each training recording with the others (band limit,
clipping, dropout and DC offset as above; a channel count other than the most common one; a level
more than :data:`FIT_LEVEL_MARGIN_DB` from the median; a length below :data:`SHORT_SHARE` of the
median).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aetk_core.names import named_machine

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
#: The shortest stretch of digital silence named as a dropout (800 samples at 16 kHz: a live
#: microphone's noise never holds exactly zero that long).
DROPOUT_SECONDS = 0.05
NAMES = (
    "band-limit",
    "gain",
    "clipping",
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

    @classmethod
    def measure(cls, samples: np.ndarray, sample_rate: int) -> RecordingProfile:
        """The profile of ``[channels, frames]`` float samples in [-1, 1]."""
        samples = np.asarray(samples, dtype=np.float32)
        seconds = samples.shape[1] / sample_rate
        if samples.size == 0:
            return cls(int(sample_rate), int(samples.shape[0]), SILENCE_DB, 0.0, 0.0, seconds)
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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecordingProfile:
        """A profile as :meth:`as_dict` wrote it (a ``KeyError`` for one written before the
        length and dropouts were measured: the feature cache measures those again)."""
        seconds = data["seconds"]
        return cls(
            int(data["sample_rate"]),
            int(data["channels"]),
            float(data["level_db"]),
            float(data["clipped_share"]),
            float(data["dc_offset"]),
            None if seconds is None else float(seconds),
            float(data["dropout_seconds"]),
            float(data["dropout_start"]),
        )

    def nyquist_hz(self) -> float:
        return self.sample_rate / 2


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
    clipped_share: float = 0.0
    dc_offset: float = 0.0
    band_rate: int | None = None
    #: The training recordings' median length in seconds.
    seconds: float | None = None
    #: The training recordings' longest dropout in seconds.
    dropout_seconds: float = 0.0

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
            max(profile.clipped_share for profile in profiles),
            max(profile.dc_offset for profile in profiles),
            fastest.sample_rate if narrower else None,
            median_seconds(profiles),
            max(profile.dropout_seconds for profile in profiles),
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
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], analysed_hz: float | None) -> RecordingNorms:
        """Norms stored in a detector file; ``analysed_hz`` when the file did not keep it."""
        channels, levels = data.get("channels"), data.get("level_db")
        stored_hz, band_rate = data.get("analysed_hz"), data.get("band_rate")
        seconds = data.get("seconds")
        return cls(
            float(stored_hz) if stored_hz is not None else analysed_hz,
            None if channels is None else tuple(int(c) for c in channels),
            None if levels is None else (float(levels[0]), float(levels[1])),
            float(data.get("clipped_share", 0.0)),
            float(data.get("dc_offset", 0.0)),
            None if band_rate is None else int(band_rate),
            None if seconds is None else float(seconds),
            float(data.get("dropout_seconds", 0.0)),
        )

    def check(self, profile: RecordingProfile) -> list[RecordingWarning]:
        """The ways ``profile`` does not match the training recordings, in :data:`NAMES` order."""
        found = [
            band_limit(profile, self.heard_hz),
            self._gain(profile),
            clipping(profile, 2 * self.clipped_share),
            dropout(profile, 2 * self.dropout_seconds),
            self._channels(profile),
            dc_offset(profile, 2 * self.dc_offset),
            duration(profile, self.seconds, "the training recordings' length"),
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


def clipping(profile: RecordingProfile, usual_share: float = 0.0) -> RecordingWarning | None:
    if profile.clipped_share <= max(CLIPPED_SHARE, usual_share):
        return None
    return RecordingWarning(
        "clipping", f"{100 * profile.clipped_share:.2g} % of its samples are at full scale"
    )


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
    median_level = float(np.median([profile.level_db for profile in profiles]))
    usual_seconds = median_seconds(profiles)
    found = []
    for profile in profiles:
        warnings = [
            band_limit(profile, heard_hz),
            _level_outlier(profile, median_level),
            clipping(profile),
            dropout(profile),
            _channel_outlier(profile, usual_channels),
            dc_offset(profile),
            duration(profile, usual_seconds, "the training recordings' median length"),
        ]
        found.append([warning for warning in warnings if warning is not None])
    return found


def _level_outlier(profile: RecordingProfile, median_db: float) -> RecordingWarning | None:
    if abs(profile.level_db - median_db) <= FIT_LEVEL_MARGIN_DB:
        return None
    side = "below" if profile.level_db < median_db else "above"
    return RecordingWarning(
        "gain",
        f"level {profile.level_db:.1f} dBFS, {abs(profile.level_db - median_db):.0f} dB {side} "
        f"the training recordings' median ({median_db:.1f} dBFS)",
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
