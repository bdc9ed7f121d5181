"""The plugin's own tests: aetk's contract kit, and a fit/score round trip through aetk."""

from __future__ import annotations

import aetk
from aetk import metrics, synth
from aetk.testing import parametrize_with_checks

from aetk_mahalanobis import ConvAE, MahalanobisScorer


@parametrize_with_checks([ConvAE(channels=[4, 8], bottleneck=4), MahalanobisScorer()])
def test_aetk_contract(component, check):
    check(component)


def test_registered_through_the_entry_point():
    host = aetk.plugins.get_host()
    assert host.registration("scorer", "mahalanobis").plugin == "mahalanobis"
    assert host.registration("model", "conv-ae").plugin == "mahalanobis"
    record = host.plugins["mahalanobis"]
    assert record.distribution == "aetk-mahalanobis"


def test_fit_save_load_score_with_the_plugin(tmp_path):
    data = synth.write_dataset(
        tmp_path / "sounds", train=16, test_normal=6, test_per_anomaly=2, seconds=0.5, seed=1
    )
    detector = aetk.fit(
        data["train"],
        preset="dcase",
        model="conv-ae",
        scorer="mahalanobis",
        epochs=5,
        set=[
            "featurizer.n_mels=32",
            "model.channels=[4, 8]",
            "model.bottleneck=8",
            "training.normalize='per-feature'",
        ],
    )
    loaded = aetk.Detector.load(detector.save(tmp_path / "d.aetk"))
    results = loaded.score(data["test"])
    assert [r.score for r in results] == [r.score for r in detector.score(data["test"])]
    labels = [int("anomaly" in r.path) for r in results]
    assert metrics.auc(labels, [r.score for r in results]) > 0.8
