"""An alert's picture for the live page, drawn with numpy and zlib alone: the recording's log-mel
spectrogram, low bands at the bottom, with each event's seconds lightened and the bands it names
outlined, on axes of seconds and hertz: the same picture in ``aetk watch`` and ``aetk-runtime
watch``, without a plotting library. The page shows the alert's file, score and threshold beside it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

from aetk_core.localization import Event

#: The colour scale from the quietest level to the loudest, evenly spaced stops in between
#: (near black, violet, red, orange, pale yellow): brightness rises steadily along it, so that
#: loudness reads the same in grey as in colour.
SCALE = np.array(
    [[0, 0, 0], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109], [252, 252, 196]],
    dtype=np.float64,
)
#: The scale in 256 steps.
COLOURS = (
    np.stack(
        [
            np.interp(np.linspace(0, len(SCALE) - 1, 256), np.arange(len(SCALE)), SCALE[:, channel])
            for channel in range(3)
        ],
        axis=1,
    )
    .round()
    .astype(np.uint8)
)
#: The outline of a band an event names (light blue: it stands out on every colour of the scale).
OUTLINE = np.array([79, 195, 247], dtype=np.uint8)
#: An event's seconds are mixed with this share of white.
SHADE = 0.25
#: The spectrogram's size in pixels, about: frames and bands are drawn as blocks of whole pixels,
#: and a recording of more frames than :data:`MAX_WIDTH` has each column show the loudest of a run.
WIDTH, HEIGHT, MAX_WIDTH = 720, 256, 1440
#: The axes' labels: characters of 3 × 5 cells (a row's cells as bits, the leftmost the highest),
#: each cell drawn as :data:`CELL` × :data:`CELL` pixels.
GLYPHS = {
    "0": (7, 5, 5, 5, 7),
    "1": (2, 6, 2, 2, 7),
    "2": (7, 1, 7, 4, 7),
    "3": (7, 1, 7, 1, 7),
    "4": (5, 5, 7, 1, 1),
    "5": (7, 4, 7, 1, 7),
    "6": (7, 4, 7, 5, 7),
    "7": (7, 1, 1, 2, 2),
    "8": (7, 5, 7, 5, 7),
    "9": (7, 5, 7, 1, 7),
    ".": (0, 0, 0, 0, 2),
    "k": (4, 5, 6, 5, 5),
    "s": (0, 3, 6, 1, 6),
    "H": (5, 5, 7, 5, 5),
    "z": (0, 7, 1, 2, 7),
    " ": (0, 0, 0, 0, 0),
}
CELL = 2
INK = np.array([51, 51, 51], dtype=np.uint8)
PAPER = 255
#: Margins around the spectrogram (pixels): the hertz labels at the left and their unit above,
#: the seconds below and their unit at the right.
LEFT, TOP, RIGHT, BOTTOM = 44, 20, 14, 20


def alert_picture(
    spectrogram: np.ndarray,
    events: Sequence[Event],
    band_edges_hz: Sequence[Sequence[float]],
    frame_seconds: float,
) -> bytes:
    """PNG of ``spectrogram`` (``[bands, frames]``, dB) with ``events`` marked (their seconds,
    and their bands by where they start in ``band_edges_hz``)."""
    levels = np.asarray(spectrogram, dtype=np.float64)
    bands, frames = levels.shape
    levels, repeat = _columns(levels)
    image = _coloured(levels)
    width, rows = image.shape[1] * repeat, max(1, HEIGHT // bands)

    def column(seconds: float) -> int:
        return int(np.clip(round(seconds / frame_seconds * width / frames), 0, width))

    image = np.repeat(image, repeat, axis=1)
    marks = []
    for event in events:
        first = column(event.start)
        last = max(first + 1, column(event.end))
        if not event.whole_clip:
            lighter = np.rint(image[:, first:last] * (1 - SHADE) + 255 * SHADE)
            image[:, first:last] = lighter.astype(np.uint8)
        marks += [(first, last, _band_index(band.low_hz, band_edges_hz)) for band in event.bands]
    image = np.repeat(image, rows, axis=0)[::-1].copy()
    for first, last, band in marks:
        _outline(
            image, image.shape[0] - (band + 1) * rows, image.shape[0] - band * rows, first, last
        )
    return png(_on_axes(image, frames * frame_seconds, band_edges_hz, rows))


def png(image: np.ndarray) -> bytes:
    """``image`` (``[height, width, 3]``, 8-bit RGB) as a PNG file's bytes."""
    height, width, _ = image.shape
    filtered = np.zeros((height, 1 + width * 3), dtype=np.uint8)  # each row: filter 0, its bytes
    filtered[:, 1:] = image.reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        # The fastest level: a ten-second clip's picture in about 3 ms, 10 % larger than at the
        # default level, which takes four times as long.
        + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 1))
        + chunk(b"IEND", b"")
    )


def _columns(levels: np.ndarray) -> tuple[np.ndarray, int]:
    """The spectrogram's frames as the picture's columns, and how many pixels wide each is drawn:
    runs of frames reduced to their loudest (so that a short event stays in sight) where there
    are more than :data:`MAX_WIDTH`."""
    frames = levels.shape[1]
    if frames > MAX_WIDTH:
        run = -(-frames // MAX_WIDTH)
        return np.maximum.reduceat(levels, np.arange(0, frames, run), axis=1), 1
    return levels, max(1, WIDTH // frames)


def _coloured(levels: np.ndarray) -> np.ndarray:
    """``[rows, columns, 3]`` colours of the scale (8 bits), the quietest level its first, the
    loudest its last (all the first where every level is the same)."""
    finite = levels[np.isfinite(levels)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    where = (
        np.nan_to_num((levels - low) / (high - low), nan=0.0)
        if high > low
        else np.zeros_like(levels)
    )
    return COLOURS[np.rint(np.clip(where, 0.0, 1.0) * 255).astype(np.uint8)]


def _band_index(low_hz: float, band_edges_hz: Sequence[Sequence[float]]) -> int:
    """The band that starts at ``low_hz`` (the first above it, for rounding)."""
    return next(
        (index for index, (low, _) in enumerate(band_edges_hz) if low >= low_hz - 1e-6),
        len(band_edges_hz) - 1,
    )


def _on_axes(
    plot: np.ndarray, seconds: float, band_edges_hz: Sequence[Sequence[float]], rows: int
) -> np.ndarray:
    """``plot`` on white with ticks: seconds below (about eight, at a round step), the low edges
    of five bands at the left, in hertz."""
    height, width, _ = plot.shape
    image = np.full((TOP + height + BOTTOM, LEFT + width + RIGHT, 3), PAPER, dtype=np.uint8)
    image[TOP : TOP + height, LEFT : LEFT + width] = plot
    step = next((s for s in TIME_STEPS if seconds / s <= 8), TIME_STEPS[-1])
    for tick in np.arange(0.0, seconds + 1e-9, step):
        x = LEFT + min(width - 1, round(tick / seconds * width))
        image[TOP + height : TOP + height + 3, x] = INK
        _write(image, f"{tick:g}", x, TOP + height + 5, centred=True)
    _write(image, "s", LEFT + width + 4, TOP + height + 5)
    bands = len(band_edges_hz)
    for band in np.linspace(0, bands - 1, min(5, bands)).astype(int).tolist():
        y = TOP + height - band * rows - (rows + 1) // 2
        image[y, LEFT - 3 : LEFT] = INK
        _write(image, _hertz(band_edges_hz[band][0]), LEFT - 5, y - 5, right=True)
    _write(image, "Hz", LEFT - 5, 2, right=True)
    return image


#: Steps between the seconds' ticks, the first that leaves at most eight.
TIME_STEPS = (0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


def _hertz(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def _write(
    image: np.ndarray, text: str, x: int, y: int, centred: bool = False, right: bool = False
) -> None:
    """``text`` in :data:`GLYPHS` with its top at row ``y``, starting at column ``x`` (or centred
    on it, or ending at it); what falls outside the image is left out."""
    advance = 4 * CELL
    width = len(text) * advance - CELL
    left = x - width // 2 if centred else x - width if right else x
    for index, character in enumerate(text):
        for row, bits in enumerate(GLYPHS.get(character, GLYPHS[" "])):
            for cell in range(3):
                if bits >> (2 - cell) & 1:
                    top, start = y + row * CELL, left + index * advance + cell * CELL
                    if top >= 0 and start >= 0 and start + CELL <= image.shape[1]:
                        image[top : top + CELL, start : start + CELL] = INK


def _outline(image: np.ndarray, top: int, bottom: int, first: int, last: int) -> None:
    """A one-pixel rectangle around rows ``[top, bottom)`` and columns ``[first, last)``."""
    image[top:bottom, [first, last - 1]] = OUTLINE
    image[[top, bottom - 1], first:last] = OUTLINE
