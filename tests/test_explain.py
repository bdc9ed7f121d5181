"""Localization: when and in which bands a recording departs from normal, on a known answer."""

from __future__ import annotations

import numpy as np
import pytest
from aetk_core.describe import describe_views
from aetk_core.localization import find_events, to_grid
from aetk_core.results import describe_view
from conftest import write_wav

import aetk
from aetk import synth
from aetk.detect.explain import error_map
from aetk.detect.explanation import explain
from aetk_builtins.mel_db import MelDb

RATE = 16000
BURST = (1.0, 1.5)
TONE_HZ = 3000.0


def burst_clip(seed: int, bursts: tuple[tuple[float, float], ...] = (BURST,)) -> np.ndarray:
    """A normal 2-s clip with a 3 kHz tone during each of ``bursts`` (from 1.0 to 1.5 s)."""
    clip = synth.normal_clip(np.random.default_rng(seed), seconds=2.0)
    time = np.arange(len(clip)) / RATE
    for start, end in bursts:
        inside = (time >= start) & (time < end)
        clip[inside] += 0.3 * np.sin(2 * np.pi * TONE_HZ * time[inside]).astype(np.float32)
    return clip


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain")
    rng = np.random.default_rng(0)
    for index in range(16):
        write_wav(folder / "train" / f"normal_{index:02d}.wav", synth.normal_clip(rng, seconds=2.0))
    burst = write_wav(folder / "burst.wav", burst_clip(seed=99))
    normal = write_wav(folder / "normal.wav", synth.normal_clip(rng, seconds=2.0))
    return folder / "train", burst, normal


_SMALL_AUTOENCODER = [
    "featurizer.n_mels=32",
    "model.hidden=[32]",
    "model.bottleneck=4",
    "training.epochs=15",
]
LOCALIZING = {
    "autoencoder + mse": {"preset": "autoencoder", "scorer": "mse", "set": _SMALL_AUTOENCODER},
    "autoencoder (clip-mahalanobis)": {"preset": "autoencoder", "set": _SMALL_AUTOENCODER},
    "default (knn, clip pooling)": {"preset": "default"},
    "transient (knn, vector pooling)": {"preset": "transient"},
}


@pytest.mark.parametrize("options", LOCALIZING.values(), ids=LOCALIZING.keys())
def test_a_tone_burst_is_found_when_and_where_it_is(sounds, options):
    train, burst, _ = sounds
    detector = aetk.fit(train, **options)
    (result,) = detector.score(burst)
    assert result.anomalous
    assert result.segments, "the burst should give an event"
    main = max(result.segments, key=lambda event: event["score"])
    assert main["start"] < BURST[1] and main["end"] > BURST[0]  # overlaps the burst
    assert main["end"] - main["start"] < 1.5  # and does not cover the whole clip
    low, high = main["bands"][0]["low_hz"], main["bands"][0]["high_hz"]
    assert low <= TONE_HZ <= high, main["bands"]
    assert main["bands"][0]["ratio"] > 2


def test_json_segments_agree_with_the_error_map(sounds):
    train, burst, _ = sounds
    detector = aetk.fit(train, **LOCALIZING["autoencoder + mse"])
    explanation = explain(detector, burst)
    (result,) = detector.score(burst)
    assert result.segments == [event.as_dict() for event in explanation.errors.events]
    assert explanation.score == pytest.approx(result.score)
    grid = explanation.errors.contributions
    assert grid.shape == explanation.spectrogram.shape == explanation.reconstruction.shape
    times = explanation.errors.frame_times
    inside = (times >= BURST[0]) & (times < BURST[1])
    tone_band = next(
        b
        for b, (low, high) in enumerate(explanation.errors.layout.band_edges_hz)
        if low <= TONE_HZ <= high
    )
    assert grid[tone_band, inside].mean() > 3 * grid[tone_band, ~inside].mean()


def test_bursts_close_together_are_one_event_and_far_apart_two(sounds, tmp_path):
    train, _, _ = sounds
    detector = aetk.fit(train)
    close = write_wav(tmp_path / "close.wav", burst_clip(7, ((0.5, 0.65), (0.85, 1.0))))
    apart = write_wav(tmp_path / "apart.wav", burst_clip(7, ((0.2, 0.35), (1.4, 1.55))))
    (joined,), (separate,) = detector.score(close), detector.score(apart)
    assert [(e["start"] < 0.65, e["end"] > 0.85) for e in joined.segments] == [(True, True)]
    assert len(separate.segments) == 2
    assert separate.segments[0]["end"] < 1.4 and separate.segments[1]["start"] > 0.35


def test_whole_clip_anomaly_is_one_event_spanning_the_clip(sounds, tmp_path):
    train, _, _ = sounds
    detector = aetk.fit(train)
    louder = synth.anomalous_clip(np.random.default_rng(5), "imbalance", seconds=2.0, severity=3)
    (result,) = detector.score(write_wav(tmp_path / "imbalance.wav", louder))
    assert result.anomalous
    assert result.segments and result.segments[0]["start"] == 0.0
    assert result.segments[-1]["end"] == pytest.approx(2.0, abs=0.1)


def test_normal_clip_has_no_or_few_events(sounds):
    train, _, normal = sounds
    detector = aetk.fit(train, **LOCALIZING["autoencoder + mse"])
    (result,) = detector.score(normal)
    assert sum(event["end"] - event["start"] for event in result.segments) < 0.3


def test_scorer_that_cannot_localize_gives_null_segments(sounds):
    train, burst, _ = sounds
    detector = aetk.fit(train, preset="dcase", scorer="knn", epochs=2)  # knn on AE latents
    assert detector.scorer.localize(detector.model, detector.vectors(burst)) is None
    assert error_map(detector, None) is None
    (result,) = detector.score(burst)
    assert result.segments is None
    assert explain(detector, burst) is None


def test_mel_db_layout():
    layout = MelDb(sample_rate=16000, hop_length=512, n_mels=64, frames=5).layout()
    assert layout.frame_seconds == 512 / 16000
    assert layout.vector_step == 1
    assert len(layout.band_edges_hz) == 64
    assert layout.band_edges_hz[0][0] == 0.0
    assert layout.band_edges_hz[-1][1] == pytest.approx(8000.0)
    lows = [low for low, _ in layout.band_edges_hz]
    assert lows == sorted(lows)
    assert MelDb(frames=0).layout().vector_step == 0


def test_grid_averages_overlapping_vectors_and_sums_channels():
    # 3 vectors of 2 frames, step 1 → 4 frames; 2 channels, 1 band.
    values = np.array(
        [[[[1.0, 2.0]], [[1.0, 2.0]]], [[[3.0, 4.0]], [[3.0, 4.0]]], [[[5.0, 6.0]], [[5.0, 6.0]]]]
    )
    np.testing.assert_allclose(to_grid(values, step=1), [[2.0, 5.0, 9.0, 12.0]])
    np.testing.assert_allclose(
        to_grid(values, step=1, average_channels=True), [[1.0, 2.5, 4.5, 6.0]]
    )
    np.testing.assert_allclose(to_grid(values, step=2), [[2.0, 4.0, 6.0, 8.0, 10.0, 12.0]])
    image = np.arange(6.0).reshape(1, 1, 2, 3)
    np.testing.assert_allclose(to_grid(image, step=0), [[0, 1, 2], [3, 4, 5]])
    # One frame per vector and one channel (the default's layout): each frame is its vector.
    frames = np.arange(12.0).reshape(4, 1, 3, 1)  # 4 vectors of 3 bands
    grid = to_grid(frames, step=1)
    np.testing.assert_array_equal(grid, [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]])
    np.testing.assert_array_equal(to_grid(frames, step=1, average_channels=True), grid)


def test_a_whole_clip_event_is_marked_and_not_shaded_as_a_moment():
    """A clip anomalous as a whole with no vector above the event line gets one event of the
    whole clip, and the score plot says so instead of shading a curve that never crosses it."""
    from aetk.detect.explain import ErrorMap
    from aetk.detect.explanation import Explanation
    from aetk.eval import plots

    layout = MelDb(n_mels=8, frames=1).layout()
    spans = [(i * layout.frame_seconds, (i + 1) * layout.frame_seconds) for i in range(20)]
    scores, grid, normal = np.full(20, 0.5), np.ones((8, 20)), np.ones(8)
    events = find_events(spans, scores, 1.0, True)
    assert len(events) == 1 and events[0].whole_clip
    assert not find_events(spans, np.r_[scores[:19], 2.0], 1.0, True)[0].whole_clip
    errors = ErrorMap(layout, grid, normal, spans, scores, 1.0, events)
    explained = Explanation("x.wav", 3.0, 2.0, grid, None, errors)
    figure = plots.explanation(explained, "whole clip")
    (curve,) = [axis for axis in figure.axes if axis.get_ylabel() == "score"]
    assert "the whole clip departs from normal" in curve.get_title()
    assert len(curve.patches) == 0  # nothing shaded
    # The event line, the highest thing drawn here, stays below the legend, in sight.
    figure.canvas.draw()
    line_height = curve.transData.transform((0.0, 1.0))[1]
    assert line_height < curve.get_legend().get_window_extent().y0


def test_views_are_described_in_words_with_their_moments():
    assert describe_view({"view": "event", "start": 3.2, "end": 3.33}) == "event at 3.20–3.33 s"
    assert describe_view({"view": "contrast", "start": 1.0, "end": 1.13}) == (
        "stand-out moment at 1.00–1.13 s"
    )
    assert describe_view({"view": "clip"}) == "clip average" and describe_view(None) == ""
    two = [{"view": "clip", "scale": 6.4}, {"view": "event", "scale": 10.5}]
    assert describe_views(two) == (
        "views: clip average (normal ≈ 6.4), most unusual moment (normal ≈ 10.5); "
        "a clip scores the larger in units of its normal"
    )
    three = describe_views([*two, {"view": "contrast", "scale": 1.3}])
    assert "moment against the rest of its clip (normal ≈ 1.3)" in three
    assert three.endswith("scores the largest in units of its normal")
