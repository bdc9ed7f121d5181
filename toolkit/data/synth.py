"""Synthetic machine sounds: a motor hum as normal, four kinds of mechanical fault as anomalies.

Normal: a rotating machine's hum (fundamental plus decaying harmonics) whose speed wanders a little
within and between clips, a broadband airflow noise modulated at the shaft rate, and background
noise. Anomalies add to a normal clip:

- ``bearing``: a high, narrow tone (2-4 kHz) amplitude-modulated at a bearing-defect rate;
- ``knock``: periodic impacts, each a short decaying resonance around 1.2-2 kHz;
- ``rub``: bursts of band-limited friction noise (600-2,400 Hz) once per revolution;
- ``imbalance``: sidebands at ± the shaft rate around every harmonic, and a stronger fundamental.

``severity`` scales every anomaly; 1.0 is clearly audible, ``0.0`` is identical to normal.

Short events, the faults a clip's average hides (:func:`event_clip`, :func:`write_event_dataset`):
a machine whose normal sound is the hum plus a valve that clicks once a second, and three faults
that last a fraction of a clip, at a chosen level relative to the hum:

- ``knock``: one impact, a decaying resonance (0.8-3 kHz) 50-300 ms long;
- ``chatter``: the valve's timing changes once: a burst of 3-5 clicks 30-60 ms apart;
- ``rub``: one burst of band-limited friction noise (0.5-4 kHz), 0.2-0.5 s long.

:func:`event_clip` says where its event lies, and :func:`write_event_dataset` writes that
to ``events.csv``, so that a benchmark can check where a detector says the event is.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ANOMALIES = ("bearing", "knock", "rub", "imbalance")
EVENTS = ("knock", "chatter", "rub")


@dataclass(frozen=True)
class Machine:
    """One machine's sound; clips vary around these values."""

    sample_rate: int = 16000
    fundamental: float = 120.0
    harmonics: int = 10
    shaft_rate: float = 24.0
    speed_jitter: float = 0.01
    noise_level: float = 0.05


def normal_clip(
    rng: np.random.Generator, seconds: float = 2.0, machine: Machine = Machine()
) -> np.ndarray:
    """One normal clip, float32 mono in [-1, 1]."""
    clip, _ = _normal_parts(rng, seconds, machine)
    return _finish(clip)


def anomalous_clip(
    rng: np.random.Generator,
    kind: str,
    seconds: float = 2.0,
    machine: Machine = Machine(),
    severity: float = 1.0,
) -> np.ndarray:
    """One clip of a machine with fault ``kind`` (one of :data:`ANOMALIES`)."""
    if kind not in ANOMALIES:
        raise ValueError(f"unknown anomaly {kind!r} (choose from {', '.join(ANOMALIES)})")
    clip, parts = _normal_parts(rng, seconds, machine)
    clip = clip + severity * _FAULTS[kind](rng, parts, machine)
    return _finish(clip)


def write_dataset(
    folder: str | Path,
    *,
    train: int = 40,
    test_normal: int = 20,
    test_per_anomaly: int = 5,
    seconds: float = 2.0,
    severity: float = 1.0,
    machine: Machine = Machine(),
    seed: int = 0,
    fleet_machine: str | None = None,
) -> dict[str, list[Path]]:
    """Write ``train/normal_*.wav`` and ``test/{normal,anomaly_<kind>}_*.wav`` (16-bit PCM);
    with ``fleet_machine`` NAME, under ``train/NAME/`` and ``test/NAME/``: one machine of a fleet,
    as ``aetk fit --machines folders`` reads it.

    :return: the written paths under the keys ``"train"`` and ``"test"``.
    """
    rng = np.random.default_rng(seed)

    def make(kind: str | None) -> np.ndarray:
        if kind is None:
            return normal_clip(rng, seconds, machine)
        return anomalous_clip(rng, kind, seconds, machine, severity)

    return _write(
        folder, train, test_normal, test_per_anomaly, ANOMALIES, make, machine, fleet_machine
    )


@dataclass(frozen=True)
class PlacedEvent:
    """Where a short event lies in its clip: from ``start`` to ``end`` seconds, its sound
    between ``low_hz`` and ``high_hz`` (a knock's resonance: one frequency; None for a
    broadband event, the chatter's clicks)."""

    kind: str
    start: float
    end: float
    low_hz: float | None
    high_hz: float | None


def event_clip(
    rng: np.random.Generator,
    kind: str | None,
    seconds: float = 10.0,
    machine: Machine = Machine(),
    level_db: float = -5.0,
) -> tuple[np.ndarray, PlacedEvent | None]:
    """One clip of the clicking machine: normal (``kind=None``) or with one short event of
    :data:`EVENTS`, whose power while it lasts is ``level_db`` relative to the hum's; and where
    that event lies (None for a normal clip)."""
    if kind is not None and kind not in EVENTS:
        raise ValueError(f"unknown event {kind!r} (choose from {', '.join(EVENTS)})")
    clip, _ = _normal_parts(rng, seconds, machine)
    hum_power = float(np.mean(clip**2))
    clip = clip + _clicks(rng, len(clip), machine.sample_rate, hum_power)
    placed = None
    if kind is not None:
        event, band = _EVENTS[kind](rng, machine.sample_rate, hum_power)
        gain = np.sqrt(10 ** (level_db / 10) * hum_power / max(np.mean(event**2), 1e-20))
        start = rng.integers(0, len(clip) - len(event))
        clip[start : start + len(event)] += gain * event
        rate = machine.sample_rate
        placed = PlacedEvent(kind, start / rate, (start + len(event)) / rate, *band)
    return _finish(clip), placed


def write_event_dataset(
    folder: str | Path,
    *,
    train: int = 30,
    test_normal: int = 20,
    test_per_event: int = 10,
    seconds: float = 10.0,
    level_db: tuple[float, float] = (-10.0, 0.0),
    machine: Machine = Machine(),
    seed: int = 0,
) -> dict[str, list[Path]]:
    """Write ``train/normal_*.wav`` and ``test/{normal,anomaly_<event>}_*.wav`` of the clicking
    machine, each event at a level drawn uniformly from ``level_db``, and ``events.csv`` beside
    them: each test anomaly's file (relative to ``folder``) and where its event lies
    (:class:`PlacedEvent`'s fields; an empty band for a broadband event)."""
    rng = np.random.default_rng(seed)
    placed: list[PlacedEvent | None] = []

    def make(kind: str | None) -> np.ndarray:
        clip, event = event_clip(rng, kind, seconds, machine, float(rng.uniform(*level_db)))
        placed.append(event)
        return clip

    written = _write(folder, train, test_normal, test_per_event, EVENTS, make, machine)
    with open(Path(folder) / "events.csv", "w", newline="") as stream:
        table = csv.writer(stream)
        table.writerow(["file", "kind", "start", "end", "low_hz", "high_hz"])
        for path, event in zip(written["train"] + written["test"], placed, strict=True):
            if event is not None:
                where = [round(event.start, 4), round(event.end, 4)]
                band = ["" if hz is None else round(hz, 1) for hz in (event.low_hz, event.high_hz)]
                table.writerow([path.relative_to(folder).as_posix(), event.kind, *where, *band])
    return written


def _write(
    folder: str | Path,
    train: int,
    test_normal: int,
    test_per_kind: int,
    kinds: tuple[str, ...],
    make: Callable[[str | None], np.ndarray],
    machine: Machine,
    fleet_machine: str | None = None,
) -> dict[str, list[Path]]:
    """Write the clips ``make(kind)`` returns (``None``: normal) as a train/test set (in each
    split's ``fleet_machine`` folder, when given)."""
    import soundfile

    folder = Path(folder)
    written: dict[str, list[Path]] = {"train": [], "test": []}
    plan: list[tuple[str, str, str | None]] = [
        ("train", f"normal_{i:04d}", None) for i in range(train)
    ]
    plan += [("test", f"normal_{i:04d}", None) for i in range(test_normal)]
    plan += [
        ("test", f"anomaly_{kind}_{i:04d}", kind) for kind in kinds for i in range(test_per_kind)
    ]
    for split, stem, kind in plan:
        path = folder / split / (fleet_machine or "") / f"{stem}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, make(kind), machine.sample_rate, subtype="PCM_16")
        written[split].append(path)
    return written


def _click(rng: np.random.Generator, rate: int) -> np.ndarray:
    """A valve's click: a 10-ms burst of decaying broadband noise."""
    length = int(0.01 * rate)
    return rng.normal(size=length) * np.exp(-np.arange(length) / (0.002 * rate))


def _clicks(rng: np.random.Generator, count: int, rate: int, hum_power: float) -> np.ndarray:
    """The valve's normal rhythm: one click a second (±20 ms), at the hum's level."""
    clicks = np.zeros(count)
    click = _click(rng, rate)
    gain = np.sqrt(hum_power / np.mean(click**2))
    for start in np.arange(rng.uniform(0.1, 0.9), count / rate - 0.02, 1.0):
        index = int((start + rng.uniform(-0.02, 0.02)) * rate)
        clicks[index : index + len(click)] += gain * click[: count - index]
    return clicks


#: An event's sound and its band (low, high) in Hz, (None, None) when broadband.
_Event = tuple[np.ndarray, tuple[float | None, float | None]]


def _knock_event(rng: np.random.Generator, rate: int, hum_power: float) -> _Event:
    length = int(rng.uniform(0.05, 0.3) * rate)
    resonance = rng.uniform(800.0, 3000.0)
    time = np.arange(length) / rate
    ringing = np.exp(-time / (length / rate / 4)) * np.sin(2 * np.pi * resonance * time)
    return ringing, (resonance, resonance)


def _chatter_event(rng: np.random.Generator, rate: int, hum_power: float) -> _Event:
    gaps = rng.uniform(0.03, 0.06, size=int(rng.integers(3, 6)))
    starts = np.concatenate([[0], np.cumsum(gaps)])
    click = _click(rng, rate)
    burst = np.zeros(int(starts[-1] * rate) + len(click))
    for start in starts:
        index = int(start * rate)
        burst[index : index + len(click)] += click
    return burst, (None, None)


def _rub_event(rng: np.random.Generator, rate: int, hum_power: float) -> _Event:
    length = int(rng.uniform(0.2, 0.5) * rate)
    low = rng.uniform(500.0, 2000.0)
    return _band_noise(rng, length, rate, low, 2 * low) * np.hanning(length), (low, 2 * low)


_EVENTS: dict[str, Callable[[np.random.Generator, int, float], _Event]] = {
    "knock": _knock_event,
    "chatter": _chatter_event,
    "rub": _rub_event,
}


@dataclass
class _Parts:
    time: np.ndarray
    shaft_phase: np.ndarray
    hum_phase: np.ndarray
    shaft_rate: float


def _normal_parts(
    rng: np.random.Generator, seconds: float, machine: Machine
) -> tuple[np.ndarray, _Parts]:
    rate = machine.sample_rate
    count = round(seconds * rate)
    time = np.arange(count) / rate
    # Speed: a per-clip offset plus a slow random wander, both around 1 %.
    speed = 1.0 + machine.speed_jitter * (rng.normal() * 0.5 + _slow_noise(rng, count, rate, 2.0))
    shaft_phase = 2 * np.pi * np.cumsum(machine.shaft_rate * speed) / rate + rng.uniform(
        0, 2 * np.pi
    )
    hum_phase = 2 * np.pi * np.cumsum(machine.fundamental * speed) / rate
    hum = np.zeros(count)
    for k in range(1, machine.harmonics + 1):
        amplitude = (0.5 / k**1.1) * rng.uniform(0.9, 1.1)
        hum += amplitude * np.sin(k * hum_phase + rng.uniform(0, 2 * np.pi))
    airflow = _band_noise(rng, count, rate, 200.0, 5000.0) * (1.0 + 0.3 * np.sin(shaft_phase))
    background = rng.normal(scale=1.0, size=count)
    clip = hum + 0.15 * airflow + machine.noise_level * background
    return clip, _Parts(time, shaft_phase, hum_phase, machine.shaft_rate)


def _bearing(rng, parts: _Parts, machine: Machine) -> np.ndarray:
    tone = rng.uniform(2000.0, 4000.0)
    defect_rate = parts.shaft_rate * rng.uniform(3.0, 5.0)
    envelope = 0.5 * (1 + np.sin(2 * np.pi * defect_rate * parts.time))
    return 0.15 * envelope * np.sin(2 * np.pi * tone * parts.time)


def _knock(rng, parts: _Parts, machine: Machine) -> np.ndarray:
    rate = machine.sample_rate
    resonance = rng.uniform(1200.0, 2000.0)
    decay = np.exp(-np.arange(int(0.03 * rate)) / (0.004 * rate))
    impulse = decay * np.sin(2 * np.pi * resonance * np.arange(len(decay)) / rate)
    knocks = np.zeros(len(parts.time))
    # One impact every second revolution, where the shaft phase wraps.
    revolutions = np.floor(parts.shaft_phase / (4 * np.pi))
    for start in np.flatnonzero(np.diff(revolutions) > 0):
        end = min(len(knocks), int(start) + len(impulse))
        knocks[start:end] += impulse[: end - start]
    return 0.6 * knocks


def _rub(rng, parts: _Parts, machine: Machine) -> np.ndarray:
    friction = _band_noise(rng, len(parts.time), machine.sample_rate, 600.0, 2400.0)
    contact = np.clip(np.sin(parts.shaft_phase + rng.uniform(0, 2 * np.pi)), 0.0, None) ** 4
    return 0.35 * contact * friction


def _imbalance(rng, parts: _Parts, machine: Machine) -> np.ndarray:
    wobble = np.sin(parts.shaft_phase)
    sidebands = np.zeros(len(parts.time))
    for k in range(1, machine.harmonics + 1):
        sidebands += (0.5 / k**1.1) * wobble * np.sin(k * parts.hum_phase)
    return 0.35 * sidebands + 0.3 * np.sin(parts.hum_phase)


_FAULTS = {"bearing": _bearing, "knock": _knock, "rub": _rub, "imbalance": _imbalance}


def _slow_noise(rng: np.random.Generator, count: int, rate: int, hertz: float) -> np.ndarray:
    """Smooth random wander with about ``hertz`` changes per second, unit spread."""
    points = max(2, int(np.ceil(count / rate * hertz)) + 2)
    knots = rng.normal(size=points)
    return np.interp(np.linspace(0, points - 1, count), np.arange(points), knots)


def _band_noise(
    rng: np.random.Generator, count: int, rate: int, low: float, high: float
) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=count))
    frequencies = np.fft.rfftfreq(count, 1 / rate)
    spectrum[(frequencies < low) | (frequencies > high)] = 0
    band = np.fft.irfft(spectrum, n=count)
    return band / (band.std() + 1e-12)


def _finish(clip: np.ndarray) -> np.ndarray:
    """Scale to a fixed peak headroom (like a recorder's gain), as float32."""
    return (0.5 * clip / (np.abs(clip).max() + 1e-12)).astype(np.float32)
