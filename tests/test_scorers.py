"""The built-in scorers: knn (clip and vector pooling), mse, clip-mahalanobis; pooling, identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aetk
from aetk import metrics
from aetk.components.pooling import pool
from aetk.fitting.trainer import train
from aetk_builtins.clip_mahalanobis import ClipMahalanobisScorer
from aetk_builtins.identity import IdentityModel
from aetk_builtins.knn import KnnScorer
from aetk_builtins.mse import MseScorer


def clips(count, vectors=20, dim=6, shift=0.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(vectors, dim, generator=generator) + shift for _ in range(count)]


@pytest.fixture
def identity():
    return IdentityModel().initialize((6,))


def test_pool_mean_and_top_fraction():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0, 20.0])
    np.testing.assert_allclose(pool(scores, [4, 2]), [2.5, 15.0])
    np.testing.assert_allclose(pool(scores, [4, 2], top_fraction=0.5), [3.5, 20.0])
    np.testing.assert_allclose(pool(scores, [4, 2], top_fraction=0.01), [4.0, 20.0])
    with pytest.raises(aetk.ConfigError, match="top_fraction"):
        pool(scores, [6], top_fraction=0)


def test_identity_model_has_no_parameters_and_is_not_trained():
    model = train(IdentityModel(), torch.randn(10, 2, 3))
    assert model.history_ == [] and not model.trainable
    assert sum(p.numel() for p in model.module_.parameters()) == 0
    x = torch.randn(4, 2, 3)
    assert torch.equal(model.latent(x), x.flatten(1))
    assert torch.equal(model.errors(x), torch.zeros_like(x))


@pytest.mark.parametrize("pooling", ["clip", "vector"])
def test_knn_scores_shifted_clips_above_normal_ones(identity, pooling):
    scorer = KnnScorer(pooling=pooling).fit(identity, clips(8), clips(2, seed=1))
    normal = scorer.score(identity, clips(5, seed=2))
    shifted = scorer.score(identity, clips(5, shift=1.5, seed=3))
    assert shifted.min() > normal.max()
    held_out = scorer.held_out_scores(identity, clips(8), clips(2, seed=1))
    assert len(held_out) == 10 and held_out.min() > 0


def test_knn_leave_one_out_excludes_the_clip_itself(identity):
    normal = clips(6)
    scorer = KnnScorer(pooling="vector").fit(identity, normal, [])
    # Scored against all references, a training clip finds itself: distance 0 (to float32
    # precision: cdist computes distances through matrix products).
    assert scorer.score(identity, normal[:1])[0] == pytest.approx(0.0, abs=1e-3)
    # Its leave-one-out score, used for the threshold, compares it with the other clips only.
    assert scorer.held_out_scores(identity, normal, []).min() > 0.5


def test_knn_clip_pooling_standardises_embeddings(identity):
    scorer = KnnScorer(pooling="clip").fit(identity, clips(10), [])
    assert scorer.reference_.shape == (10, 6)
    torch.testing.assert_close(scorer.reference_.mean(0), torch.zeros(6), atol=1e-5, rtol=0)


def test_knn_max_reference_bounds_memory(identity):
    scorer = KnnScorer(pooling="vector", max_reference=50).fit(identity, clips(10), [])
    assert scorer.reference_.shape == (50, 6)


def test_knn_keeps_the_vectors_of_lowest_priority_however_the_clips_come():
    # Clip by clip, pruned now and then: the same vectors as ranking all at once, in clip order.
    codes = [
        torch.randn(length, 3, generator=torch.Generator().manual_seed(length))
        for length in (40, 7, 90, 1, 60, 33)
    ]
    kept, owners = KnnScorer(max_reference=25)._sample_vectors(iter(codes))
    generator = torch.Generator().manual_seed(0)
    priorities = torch.cat([torch.rand(len(part), generator=generator) for part in codes])
    lowest = priorities.topk(25, largest=False).indices.sort().values
    assert torch.equal(kept, torch.cat(codes)[lowest])
    every_owner = torch.cat([torch.full((len(part),), index) for index, part in enumerate(codes)])
    assert torch.equal(owners, every_owner[lowest])


@pytest.mark.parametrize(
    ("params", "message"),
    [({"pooling": "median"}, "pooling"), ({"k": 0}, "k must be"), ({"top_fraction": 2}, "top_fr")],
)
def test_knn_invalid_parameters(identity, params, message):
    with pytest.raises(aetk.ConfigError, match=message):
        KnnScorer(**params).fit(identity, clips(3), [])


def test_knn_needs_two_clips(identity):
    with pytest.raises(aetk.ConfigError, match="at least 2 normal clips"):
        KnnScorer().fit(identity, clips(1), [])


def test_mse_top_fraction_scores_short_events(identity):
    from aetk_builtins.autoencoders import ImprovedAE

    model = train(ImprovedAE(hidden=[8], bottleneck=2), torch.cat(clips(10)))
    quiet = clips(1, seed=5)[0]
    burst = quiet.clone()
    burst[:2] += 8.0  # 2 of 20 vectors
    mean_scorer = MseScorer().fit(model, clips(4), clips(4, seed=1))
    top_scorer = MseScorer(top_fraction=0.1).fit(model, clips(4), clips(4, seed=1))
    mean_gain = mean_scorer.score(model, [burst])[0] / mean_scorer.score(model, [quiet])[0]
    top_gain = top_scorer.score(model, [burst])[0] / top_scorer.score(model, [quiet])[0]
    assert top_gain > mean_gain > 1


def test_mse_without_validation_warns_and_uses_training_clips(identity):
    from aetk_builtins.autoencoders import ImprovedAE

    model = train(ImprovedAE(hidden=[8], bottleneck=2), torch.cat(clips(10)))
    scorer = MseScorer().fit(model, clips(4), [])
    with pytest.warns(aetk.AetkWarning, match="no validation clips"):
        held_out = scorer.held_out_scores(model, clips(4), [])
    assert len(held_out) == 4


def test_knn_detector_round_trip(machine_sounds, tmp_path):
    detector = aetk.fit(
        machine_sounds["train"],
        preset="dcase",
        model="identity",
        scorer="knn",
        set=["featurizer.frames=1", "featurizer.n_mels=32", "training.normalize=per-feature"],
    )
    assert detector.training["train_loss"] == [] and detector.training["best_epoch"] is None
    loaded = aetk.Detector.load(detector.save(tmp_path / "knn.aetk"))
    expected = [r.score for r in detector.score(machine_sounds["test"])]
    assert [r.score for r in loaded.score(machine_sounds["test"])] == expected
    labels = [int("anomaly" in r.path) for r in loaded.score(machine_sounds["test"])]
    assert metrics.auc(labels, expected) > 0.9


class ReconstructsNothing(aetk.Model):
    """Reconstructs every vector as zeros, so that its residuals are the vectors themselves."""

    name = "reconstructs-nothing"

    def build(self, input_shape):
        from torch import nn

        class Zeros(nn.Module):
            def forward(self, x):
                return torch.zeros_like(x), x.flatten(1)

        return Zeros()


@pytest.fixture
def residuals_are_inputs():
    return ReconstructsNothing().initialize((2,))


def test_clip_mahalanobis_measures_in_standard_deviations_of_normal_residuals(
    residuals_are_inputs,
):
    # Normal residuals: ±1 on the first element, ±100 on the second, mean 0, no correlation.
    signs = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]]).repeat(25, 1)
    normal = [signs * torch.tensor([1.0, 100.0])]
    scorer = ClipMahalanobisScorer(shrinkage=1e-9).fit(residuals_are_inputs, normal, [])
    torch.testing.assert_close(scorer.mean_, torch.zeros(2))
    # A clip whose residuals are all shifted by one standard deviation of either element scores
    # the same, sqrt((n-1)/n) for the sample covariance of n = 100 vectors; the mean squared
    # error of the two clips differs 10,000-fold.
    one_sd = (99 / 100) ** 0.5
    shifted = scorer.score(
        residuals_are_inputs,
        [
            torch.full((10, 2), 0.0) + torch.tensor(shift)
            for shift in ([1.0, 0.0], [0.0, 100.0], [2.0, 0.0])
        ],
    )
    np.testing.assert_allclose(shifted, [one_sd, one_sd, 2 * one_sd], rtol=1e-5)


def test_clip_mahalanobis_averages_residuals_before_measuring_them(residuals_are_inputs):
    normal = clips(10, vectors=100, dim=2)
    scorer = ClipMahalanobisScorer().fit(residuals_are_inputs, normal, clips(2, 100, 2, seed=1))
    # Residuals three times as loud as normal but random score near 0 (their mean cancels);
    # a consistent shift of half a standard deviation in every vector is what stands out.
    loud_noise = [3 * clip for clip in clips(5, vectors=400, dim=2, seed=2)]
    consistent = clips(5, vectors=400, dim=2, shift=0.5, seed=3)
    noise_scores = scorer.score(residuals_are_inputs, loud_noise)
    shift_scores = scorer.score(residuals_are_inputs, consistent)
    assert noise_scores.max() < 0.5 < shift_scores.min()


def test_clip_mahalanobis_localizes_in_the_same_metric(residuals_are_inputs):
    scorer = ClipMahalanobisScorer().fit(
        residuals_are_inputs, clips(10, vectors=100, dim=2), clips(3, 100, 2, seed=1)
    )
    clip = clips(1, vectors=30, dim=2, seed=4)[0]
    clip[10:13, 1] += 8.0
    (score,), (localization,) = scorer.score_and_localize(residuals_are_inputs, [clip])
    assert score == pytest.approx(scorer.score(residuals_are_inputs, [clip])[0])
    assert set(localization.vector_scores.topk(3).indices.tolist()) == {10, 11, 12}
    assert localization.vector_scores[10:13].min() > scorer.event_threshold_
    assert (localization.contributions[10:13, 1] > localization.contributions[10:13, 0]).all()
    torch.testing.assert_close(localization.contributions.sum(1).sqrt(), localization.vector_scores)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"shrinkage": 0}, "shrinkage must lie in"),
        ({"shrinkage": 1.5}, "shrinkage must lie in"),
        ({"shrinkage": "a"}, "shrinkage must be a number"),
        ({"max_dimension": 0}, "max_dimension must be"),
        ({"max_dimension": 1}, "residual vectors have 2 values"),
    ],
)
def test_clip_mahalanobis_invalid_parameters(residuals_are_inputs, params, message):
    with pytest.raises(aetk.ConfigError, match=message):
        ClipMahalanobisScorer(**params).fit(residuals_are_inputs, clips(3, dim=2), [])


def test_window_maxima_finds_the_moment_and_covers_short_clips():
    from aetk.components.pooling import window_maxima

    scores = torch.tensor([1.0, 1.0, 1.0, 9.0, 7.0, 1.0, 1.0])
    value, start = window_maxima(scores, 2)
    assert float(value) == 8.0 and int(start) == 3
    value, start = window_maxima(scores[:2], 4)  # fewer vectors than the window: their mean
    assert float(value) == 1.0 and int(start) == 0
    with pytest.raises(aetk.ConfigError, match="event window"):
        window_maxima(scores, 0)


def test_moment_views_of_many_clips_at_once_equal_each_clip_alone(identity):
    """Clips of one length are taken as the columns of one matrix: the same views and moments,
    exactly, as each clip on its own, with clips of other lengths and one shorter than the
    window among them."""
    from aetk.components.pooling import window_maxima

    scores = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [9.0, 2.0], [7.0, 5.0]])
    value, start = window_maxima(scores, 2)
    assert value.tolist() == [8.0, 3.5] and start.tolist() == [3, 3]
    normal = event_clips(12, seed=0)
    scorer = KnnScorer(pooling="clip+frames+event+contrast", event_window=3).fit(
        identity, normal, []
    )
    clips = [*event_clips(3, seed=5), event_clips(1, seed=6, event_at=20)[0][:40], normal[0][:2]]
    distances = [scorer._nearest_vectors(clip)[0] for clip in clips]
    together = scorer._clips_moment_views(distances)
    assert together == [scorer._moment_views(clip) for clip in distances]
    assert all(len(views) == 3 for views, _ in together)  # frames, event, contrast
    assert together[4][1] == 0  # two vectors, fewer than the window: their mean


def test_view_scales_and_combination_pick_the_view_furthest_from_its_normal():
    from aetk.components.pooling import combine_views, view_scales

    held_out = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 12.0]])
    scales = view_scales(held_out)
    np.testing.assert_allclose(scales, [2.0, 10.0])
    scores, winners = combine_views(np.array([[4.0, 11.0], [2.0, 30.0]]), scales)
    np.testing.assert_allclose(scores, [2.0, 3.0])
    assert winners.tolist() == [0, 1]
    assert view_scales(np.zeros((3, 2))).min() > 0  # never a division by zero


def test_local_view_scales_come_from_the_nearest_normal_clips_never_below_the_views():
    from aetk.components.pooling import local_neighbours, local_view_scales

    held_out = torch.tensor([[1.0, 10.0], [2.0, 10.0], [6.0, 30.0], [8.0, 20.0], [9.0, 9.0]])
    # Held-out clips on a line; a quarter of five is two neighbours.
    held_out_clips = torch.tensor([[0.0], [1.0], [10.0], [11.0], [30.0]])
    scales = torch.tensor([2.0, 10.0])
    local = local_view_scales(torch.tensor([[10.4], [0.4]]), held_out_clips, held_out, scales)
    np.testing.assert_allclose(local, [[7.0, 25.0], [2.0, 10.0]])
    # The held-out clips themselves: none its own neighbour (the first's are the second and
    # the third, not itself).
    own = local_view_scales(held_out_clips, held_out_clips, held_out, scales, leave_out_self=True)
    np.testing.assert_allclose(own[0], [4.0, 20.0])
    assert [local_neighbours(n) for n in (1, 2, 4, 5, 11, 256)] == [1, 1, 1, 2, 3, 64]


def test_view_tails_move_each_view_towards_its_rare_normal_score():
    from aetk.components.pooling import view_tails

    # Held-out ratios 0.1 … 2.0 in one view, all 0.5 in the other: 90th percentiles 1.81 and
    # 0.5, the second raised to 1 (no view stricter than its typical normal score).
    ratios = np.stack([np.linspace(0.1, 2.0, 11), np.full(11, 0.5)], axis=1)
    np.testing.assert_allclose(view_tails(ratios, 0.0), [1.0, 1.0])
    np.testing.assert_allclose(view_tails(ratios, 1.0), [1.81, 1.0])
    np.testing.assert_allclose(view_tails(ratios, 0.5), [1.81**0.5, 1.0])
    for weight in (-0.1, 1.5, True, "half"):
        with pytest.raises(aetk.ConfigError, match="tail_weight must lie in"):
            view_tails(ratios, weight)
    with pytest.raises(aetk.ConfigError, match="tail_weight"):
        KnnScorer(pooling="clip+event", tail_weight=2).validate()


def spread_clips(count, seed, event_height=0.0, vectors=80, dim=6):
    """Clips of unit noise around means that differ from clip to clip (spread 0.5): the clip
    view's normal scores spread far wider than a moment's. ``event_height``: two vectors
    shifted by that much."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for _ in range(count):
        clip = 0.5 * torch.randn(dim, generator=generator)
        clip = clip + torch.randn(vectors, dim, generator=generator)
        clip[20:22] += event_height
        result.append(clip)
    return result


def test_view_tails_keep_a_fault_only_a_narrow_view_hears_above_a_wide_views_normals(identity):
    """A brief event that only the event view hears, in clips whose averages vary widely: in
    units of each view's typical normal score the normal clips' wide clip view outranks some
    faults; halfway to each view's rare normal score (``tail_weight = 0.5``) they rank higher
    on every draw. An old detector file (no tails) scores as ``tail_weight = 0``."""
    aucs: dict[float, list[float]] = {0.0: [], 0.5: []}
    labels = [0] * 16 + [1] * 16
    for draw in range(4):
        normal = spread_clips(24, 1 + 10 * draw)
        held, faulty = spread_clips(16, 2 + 10 * draw), spread_clips(16, 3 + 10 * draw, 2.0)
        plain = KnnScorer(pooling="clip+event", event_window=2).fit(identity, normal, [])
        halfway = KnnScorer(pooling="clip+event", event_window=2, tail_weight=0.5)
        halfway.fit(identity, normal, [])
        for weight, scorer in ((0.0, plain), (0.5, halfway)):
            scores = [*scorer.score(identity, held), *scorer.score(identity, faulty)]
            aucs[weight].append(metrics.auc(labels, scores))
        clip_tail, event_tail = halfway.view_tails_
        assert clip_tail > event_tail > 1.0  # the clip view spreads wider
        assert not np.allclose(halfway.score(identity, held), plain.score(identity, held))
        halfway.view_tails_ = None  # as in a detector file written before the tails
        np.testing.assert_allclose(halfway.score(identity, held), plain.score(identity, held))
    assert all(h >= t for h, t in zip(aucs[0.5], aucs[0.0], strict=True))
    assert np.mean(aucs[0.5]) > np.mean(aucs[0.0]) + 0.01


def conditions(count, seed, spread, offset, shift=0.0, vectors=40, dim=6):
    """Clips of one operating condition: each its own mean (``spread`` around ``offset``, moved
    by ``shift`` for a fault) with noise over its vectors."""
    generator = torch.Generator().manual_seed(seed)
    result = []
    for _ in range(count):
        mean = offset + spread * torch.randn(dim, generator=generator) + shift
        result.append(mean + 0.3 * torch.randn(vectors, dim, generator=generator))
    return result


def test_knn_views_judge_a_clip_against_the_normal_clips_like_it(identity):
    # Two operating conditions, one whose normal clips vary far more than the other's: its
    # normal clips lie further from normal than the other condition's faults do, and must not
    # outrank those faults, as they do against one scale for every clip.
    tight, loose = conditions(10, 1, 0.05, 0.0), conditions(10, 2, 0.8, 10.0)
    scorer = KnnScorer(pooling="clip+event").fit(identity, tight + loose, [])
    normal, faulty = conditions(5, 3, 0.8, 10.0), conditions(5, 4, 0.05, 0.0, shift=0.5)

    def auc() -> float:
        scores = [*scorer.score(identity, normal), *scorer.score(identity, faulty)]
        return metrics.auc([0] * 5 + [1] * 5, scores)

    local = auc()
    scorer.held_out_views_ = None  # as in a detector file written before local scales
    assert local >= 0.8 and auc() <= 0.2


def event_clips(count, seed, event_at=None, vectors=80, dim=6):
    """Normal clips of unit noise; ``event_at``: two vectors from there on shifted far."""
    result = clips(count, vectors=vectors, dim=dim, seed=seed)
    if event_at is not None:
        for clip in result:
            clip[event_at : event_at + 2] += 4.0
    return result


def test_knn_clip_and_event_views_hear_a_short_event_the_clip_average_misses(identity):
    normal, held = event_clips(12, seed=0), event_clips(6, seed=5)
    with_event = event_clips(6, seed=6, event_at=10)
    averaged = KnnScorer(pooling="clip").fit(identity, normal, [])
    both = KnnScorer(pooling="clip+event", event_window=2).fit(identity, normal, [])
    assert both.views() == ("clip", "event") and averaged.views() == ()
    clip_auc = metrics.auc(
        [0] * 6 + [1] * 6, [*averaged.score(identity, held), *averaged.score(identity, with_event)]
    )
    both_scores = both.score(identity, held), both.score(identity, with_event)
    assert both_scores[1].min() > both_scores[0].max()
    assert clip_auc < 1.0
    # The score, its localization and the view that raised it come from one pass.
    scores, localizations = both.score_and_localize(identity, with_event)
    np.testing.assert_allclose(scores, both_scores[1])
    for clip, localization in zip(with_event, localizations, strict=True):
        assert localization.view == "event" and localization.view_vectors == (10, 12)
        assert int(localization.vector_scores.argmax()) in (10, 11)
        # Each vector against its nearest normal vector, worked out when first read.
        nearest = torch.cdist(clip, both.vector_reference_).min(1).values
        torch.testing.assert_close(localization.vector_scores, nearest)
        torch.testing.assert_close(
            localization.contributions.sum(1).sqrt(), localization.vector_scores
        )


def test_knn_clip_and_event_held_out_scores_are_leave_one_out_and_bounded(identity):
    normal = event_clips(10, seed=0)
    scorer = KnnScorer(pooling="clip+event", max_held_out=4).fit(identity, normal, [])
    held_out = scorer.held_out_scores(identity, normal, [])
    assert len(held_out) == 4 and held_out.min() > 0
    # Scored against every reference, a training clip finds itself and scores lower.
    assert scorer.score(identity, normal).mean() < held_out.mean()
    assert len(scorer.view_scales_) == 2 and min(scorer.view_scales_) > 0


def test_lower_median_is_torchs_median_and_exports_any_length():
    generator = torch.Generator().manual_seed(3)
    for count in range(1, 8):
        values = torch.randn(count, generator=generator)
        assert float(aetk.networks.lower_median(values)) == float(values.median())


def test_knn_contrast_view_hears_a_moment_that_stands_out_not_a_shifted_recording(identity):
    normal = event_clips(12, seed=0)
    scorer = KnnScorer(pooling="clip+event+contrast", event_window=2).fit(identity, normal, [])
    assert scorer.views() == ("clip", "event", "contrast") and len(scorer.view_scales_) == 3
    (plain,) = event_clips(1, seed=9)
    (with_event,) = event_clips(1, seed=9, event_at=30)

    def moment_views(clip):
        return scorer._moment_views(scorer._nearest_vectors(clip)[0])[0]

    (event, contrast), (shifted_event, shifted_contrast) = map(moment_views, (plain, plain + 1))
    # A whole recording further from normal: its worst moment is further too, but it does not
    # stand out of its own clip any more than before.
    assert shifted_event > event and shifted_contrast <= contrast
    assert moment_views(with_event)[1] > 3 * contrast
    (score,), (localization,) = scorer.score_and_localize(identity, [with_event])
    assert localization.view in ("event", "contrast") and localization.view_vectors == (30, 32)
    # The score is the larger moment view in the clip's scales (its average hides the event).
    clip = scorer._standardise(identity.latent(with_event).mean(0, keepdim=True))
    moments = np.array(moment_views(with_event)) / scorer._local_scales(clip)[0, 1:]
    assert score == pytest.approx(moments.max())


def alternating_clips(count, seed, change=0.0, vectors=80, dim=6):
    """A machine that alternates between two states every 5 vectors, with a brief normal
    transient (2 vectors far off, each clip's its own) somewhere in each clip; ``change`` moves
    one state up and the other down by that much in another dimension: every moment is off, the
    clip's average is not."""
    generator = torch.Generator().manual_seed(seed)
    state = (torch.arange(vectors) // 5 % 2).float() * 2 - 1  # -1, +1 alternating
    result = []
    for _ in range(count):
        clip = 0.3 * torch.randn(vectors, dim, generator=generator)
        clip[:, 0] += 2 * state
        clip[:, 1] += change * state
        start = int(torch.randint(vectors - 2, (1,), generator=generator))
        clip[start : start + 2] += 3 * torch.randn(dim, generator=generator)
        result.append(clip)
    return result


def test_knn_frames_view_hears_every_moment_changed_when_the_average_and_worst_are_not(identity):
    normal, held = alternating_clips(16, seed=0), alternating_clips(8, seed=1)
    changed = alternating_clips(8, seed=2, change=1.5)
    labels = [0] * 8 + [1] * 8

    def auc(scorer) -> float:
        return metrics.auc(
            labels, [*scorer.score(identity, held), *scorer.score(identity, changed)]
        )

    with_frames = KnnScorer(pooling="clip+frames+event").fit(identity, normal, [])
    assert with_frames.views() == ("clip", "frames", "event")
    assert len(with_frames.view_scales_) == 3
    # The normal transients set the event view's scale, the alternation hides the change from
    # the clip's average: only the frames' mean distance tells the changed machine apart.
    assert auc(with_frames) == 1.0
    assert auc(KnnScorer(pooling="clip+event").fit(identity, normal, [])) < 0.8
    scores, localizations = with_frames.score_and_localize(identity, changed)
    np.testing.assert_allclose(scores, with_frames.score(identity, changed))
    for localization in localizations:
        assert localization.view == "frames" and localization.view_vectors is None


def test_knn_codebook_summarises_normal_vectors_by_their_clusters(identity):
    centres = torch.tensor([[0.0] * 6, [8.0] * 6, [-8.0, 8.0] * 3])
    generator = torch.Generator().manual_seed(1)
    normal = [
        centres[torch.arange(30) % 3] + 0.1 * torch.randn(30, 6, generator=generator)
        for _ in range(10)
    ]
    scorer = KnnScorer(pooling="clip+event", codebook_size=3).fit(identity, normal, [])
    assert scorer.vector_reference_.shape == (3, 6)
    # Each centroid sits on one cluster's centre (to within the clusters' spread).
    distances = torch.cdist(scorer.vector_reference_, centres)
    assert sorted(distances.argmin(1).tolist()) == [0, 1, 2]
    assert float(distances.min(1).values.max()) < 0.1


def test_knn_codebook_hears_events_and_cross_fits_its_held_out_scores(identity):
    normal, held = event_clips(12, seed=0), event_clips(6, seed=5)
    with_event = event_clips(6, seed=6, event_at=10)
    scorer = KnnScorer(pooling="clip+event", event_window=2, codebook_size=64)
    scorer.fit(identity, normal, [])
    assert scorer.vector_reference_.shape == (64, 6)
    assert scorer.score(identity, with_event).min() > scorer.score(identity, held).max()
    assert len(scorer.held_out_scores(identity, normal, [])) == 12
    # The event view's scale comes from clips scored against codebooks learned without them:
    # further from normal than the training clips are from the codebook they shaped.
    in_sample = [
        float(aetk.scoring.window_maxima(scorer._nearest_vectors(clip)[0], 2)[0]) for clip in normal
    ]
    assert scorer.view_scales_[1] > 1.05 * np.median(in_sample)
    localization = scorer.localize(identity, with_event[0])
    assert localization.view == "event" and localization.view_vectors == (10, 12)


def test_knn_codebook_of_repeated_vectors_holds_them_exactly(identity):
    """Identical recordings (a repeated test tone, digital silence): each prototype is its
    vectors' value to the bit, so a training clip lies at distance 0, not at rounding noise that
    standardisation could magnify."""
    rows = torch.tensor([[0.1, 0.2, 0.3, 0.7, 1.1, 1.3], [2.9, -0.7, 0.3, 0.1, 0.1, 0.2]])
    clip = rows[torch.arange(30) % 2]
    scorer = KnnScorer(pooling="clip+event", codebook_size=2).fit(identity, [clip] * 10, [])
    assert scorer.vector_reference_.shape == (2, 6)
    assert float(scorer._nearest_vectors(clip)[0].max()) == 0.0


def test_knn_codebook_is_learned_only_from_many_more_vectors_than_its_size(identity):
    from aetk_builtins.knn import CODEBOOK_MIN_RATIO

    test = event_clips(3, seed=2, vectors=40)
    few = event_clips(CODEBOOK_MIN_RATIO, seed=0, vectors=40)  # exactly the ratio × 40 vectors
    exact = KnnScorer(pooling="clip+event").fit(identity, few, [])
    kept = KnnScorer(pooling="clip+event", codebook_size=40).fit(identity, few, [])
    torch.testing.assert_close(kept.vector_reference_, exact.vector_reference_)
    codes = torch.cat(test)
    torch.testing.assert_close(kept._nearest_vectors(codes)[0], exact._nearest_vectors(codes)[0])
    many = event_clips(CODEBOOK_MIN_RATIO + 1, seed=0, vectors=40)
    learned = KnnScorer(pooling="clip+event", codebook_size=40).fit(identity, many, [])
    assert learned.vector_reference_.shape == (40, 6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"event_window": 0}, "event_window"),
        ({"max_held_out": 1.5}, "max_held_out"),
        ({"codebook_size": -1}, "codebook_size"),
    ],
)
def test_knn_clip_and_event_invalid_parameters(identity, params, message):
    with pytest.raises(aetk.ConfigError, match=message):
        KnnScorer(pooling="clip+event", **params).fit(identity, clips(4), [])


def test_clip_mahalanobis_event_view_hears_what_the_clip_mean_washes_out():
    model = ReconstructsNothing().initialize((6,))
    normal, validation = event_clips(12, seed=0), event_clips(8, seed=5)
    held, with_event = event_clips(6, seed=7), event_clips(6, seed=6, event_at=30)
    averaged = ClipMahalanobisScorer().fit(model, normal, validation)
    both = ClipMahalanobisScorer(pooling="clip+event", event_window=2).fit(
        model, normal, validation
    )
    assert both.views() == ("clip", "event") and averaged.views() == ()
    labels = [0] * 6 + [1] * 6
    assert metrics.auc(labels, [*both.score(model, held), *both.score(model, with_event)]) == 1.0
    assert (
        metrics.auc(labels, [*averaged.score(model, held), *averaged.score(model, with_event)])
        < 1.0
    )
    # Scales are the validation clips' median view scores: a normal clip reads about 1.
    assert np.median(both.score(model, validation)) == pytest.approx(1.0, abs=0.35)
    scores, localizations = both.score_and_localize(model, with_event)
    np.testing.assert_allclose(scores, both.score(model, with_event))
    for localization in localizations:
        assert localization.view == "event" and localization.view_vectors == (30, 32)
    # A whole clip shifted a little in every vector is a clip-view finding.
    shifted = [clip + 0.8 for clip in event_clips(3, seed=8)]
    for localization in both.score_and_localize(model, shifted)[1]:
        assert localization.view == "clip" and localization.view_vectors is None


def test_clip_mahalanobis_frames_view_hears_every_vector_off_where_the_mean_cancels(
    residuals_are_inputs,
):
    normal, validation = clips(10, vectors=100, dim=2), clips(6, 100, 2, seed=1)
    held = clips(5, vectors=400, dim=2, seed=5)
    # Residuals three times as loud as normal in every vector, in no consistent direction:
    # their mean cancels (the clip view's blind spot, tested above), their lengths do not.
    loud_noise = [3 * clip for clip in clips(5, vectors=400, dim=2, seed=2)]
    scorer = ClipMahalanobisScorer(pooling="clip+frames").fit(
        residuals_are_inputs, normal, validation
    )
    assert scorer.views() == ("clip", "frames") and len(scorer.view_scales_) == 2
    held_scores = scorer.score(residuals_are_inputs, held)
    scores, localizations = scorer.score_and_localize(residuals_are_inputs, loud_noise)
    assert scores.min() > 2 * held_scores.max()
    for score, localization in zip(scores, localizations, strict=True):
        assert localization.view == "frames" and localization.view_vectors is None
        # The frames view is the mean of the vectors' own distances, in its scale.
        mean_length = float(localization.vector_scores.double().mean())
        assert score == pytest.approx(mean_length / scorer.view_scales_[1], rel=1e-5)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"pooling": "top"}, "pooling must be one of"), ({"event_window": 0}, "event_window")],
)
def test_clip_mahalanobis_invalid_pooling(residuals_are_inputs, params, message):
    with pytest.raises(aetk.ConfigError, match=message):
        ClipMahalanobisScorer(**params).fit(residuals_are_inputs, clips(3, dim=2), [])


def test_knn_row_minima_are_torchs_minima_with_the_first_column_on_ties():
    from aetk_builtins.knn import _row_minima

    ranking = torch.tensor(
        [[3.0, 1.0, 1.0, 2.0], [0.5, 4.0, -2.0, -2.0], [7.0, float("nan"), 1.0, 0.0]]
    )
    values, index = _row_minima(ranking)
    expected_values, expected_index = ranking.min(1, keepdim=True)
    assert index.tolist() == expected_index.tolist() == [[1], [2], [1]]
    assert torch.equal(values[:2], expected_values[:2])
    assert values[2].isnan().all()
    assert index.dtype == torch.long and values.shape == (3, 1)
