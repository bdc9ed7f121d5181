"""The live page's alert picture drawn with numpy alone (aetk_core.watch.picture, what
aetk-runtime's page shows): a PNG any decoder reads, the spectrogram low bands at the bottom, an
event's seconds lightened and its bands outlined where the event says, a short click kept in sight
in a long recording."""

from __future__ import annotations

import io

import numpy as np
import pytest
from aetk_core.localization import BandExcess, Event
from aetk_core.watch import picture
from aetk_core.watch.picture import alert_picture, png

Image = pytest.importorskip("PIL.Image", reason="decoding the pictures needs Pillow")

BANDS, FRAMES, FRAME_SECONDS = 64, 100, 0.05  # five seconds
EDGES = [(100.0 * band, 100.0 * (band + 1)) for band in range(BANDS)]


def decoded(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image.verify()  # the chunks' checksums
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def plot_area(image: np.ndarray) -> np.ndarray:
    """The spectrogram inside the axes' margins."""
    return image[picture.TOP : image.shape[0] - picture.BOTTOM, picture.LEFT : -picture.RIGHT]


def test_png_holds_the_pixels_it_was_given():
    pixels = np.random.default_rng(0).integers(0, 256, (7, 13, 3), dtype=np.uint8)
    assert np.array_equal(decoded(png(pixels)), pixels)


def test_the_spectrogram_is_drawn_low_bands_at_the_bottom_on_axes():
    levels = np.zeros((BANDS, FRAMES))
    levels[:4] = 60.0  # loud lowest bands
    image = decoded(alert_picture(levels, [], EDGES, FRAME_SECONDS))
    area = plot_area(image)
    rows = picture.HEIGHT // BANDS
    assert area.shape == (BANDS * rows, FRAMES * (picture.WIDTH // FRAMES), 3)
    brightness = area.astype(int).sum(2)
    assert brightness[-1].min() > brightness[0].max()  # the loud bands are the bottom rows
    assert tuple(area[-1, 0]) == tuple(picture.SCALE[-1].astype(np.uint8))
    assert tuple(area[0, 0]) == tuple(picture.SCALE[0].astype(np.uint8))
    # Ticks and labels in ink on the white margins.
    margin = image[-picture.BOTTOM :, picture.LEFT :]
    assert (margin == picture.INK).all(2).any() and (margin == picture.PAPER).all(2).any()


def test_an_event_is_lightened_for_its_seconds_and_its_bands_outlined():
    levels = np.random.default_rng(1).normal(size=(BANDS, FRAMES))
    event = Event(1.0, 2.0, 3.0, bands=[BandExcess(EDGES[10][0], EDGES[10][1], 4.0)])
    plain = plot_area(decoded(alert_picture(levels, [], EDGES, FRAME_SECONDS))).astype(int)
    marked = plot_area(decoded(alert_picture(levels, [event], EDGES, FRAME_SECONDS))).astype(int)
    per_second = plain.shape[1] / (FRAMES * FRAME_SECONDS)
    first, last = round(1.0 * per_second), round(2.0 * per_second)
    rows = picture.HEIGHT // BANDS
    band_top, band_bottom = plain.shape[0] - 11 * rows, plain.shape[0] - 10 * rows
    changed = (marked != plain).any(2)
    assert not changed[:, :first].any() and not changed[:, last:].any()  # only its seconds
    elsewhere = np.r_[0:band_top, band_bottom : plain.shape[0]]
    lighter, before = marked[elsewhere, first:last], plain[elsewhere, first:last]
    assert (lighter >= before).all() and (lighter.sum(2) > before.sum(2)).all()
    outline = (marked == picture.OUTLINE).all(2)
    assert outline[band_top:band_bottom, first].all() and outline[band_top, first:last].all()
    assert not outline[elsewhere].any()


def test_a_whole_clip_event_outlines_its_bands_without_lightening():
    levels = np.random.default_rng(2).normal(size=(BANDS, FRAMES))
    event = Event(0.0, 5.0, 2.0, bands=[BandExcess(EDGES[3][0], EDGES[3][1], 2.0)], whole_clip=True)
    plain = plot_area(decoded(alert_picture(levels, [], EDGES, FRAME_SECONDS)))
    marked = plot_area(decoded(alert_picture(levels, [event], EDGES, FRAME_SECONDS)))
    rows = picture.HEIGHT // BANDS
    changed = (marked != plain).any(2)
    assert changed.any()
    band = np.s_[marked.shape[0] - 4 * rows : marked.shape[0] - 3 * rows]
    assert not np.delete(changed, band, 0).any()


def test_a_click_in_a_long_recording_stays_in_sight():
    frames = 20 * picture.MAX_WIDTH + 7
    levels = np.zeros((BANDS, frames))
    levels[:, 12_345] = 80.0  # one loud frame
    area = plot_area(decoded(alert_picture(levels, [], EDGES, FRAME_SECONDS)))
    assert area.shape[1] <= picture.MAX_WIDTH
    loud = (area.astype(int).sum(2) > 600).all(0)
    assert loud.sum() == 1 and abs(np.flatnonzero(loud)[0] - 12_345 / frames * area.shape[1]) <= 1


def test_silence_and_missing_levels_still_draw():
    levels = np.full((BANDS, FRAMES), -100.0)
    levels[5, 5] = np.nan
    area = plot_area(decoded(alert_picture(levels, [], EDGES, FRAME_SECONDS)))
    assert (area == picture.SCALE[0].astype(np.uint8)).all()
