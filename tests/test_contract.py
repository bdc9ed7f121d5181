"""Every built-in component passes the contract kit that third-party plugins use."""

from __future__ import annotations

import pytest

from aetk.testing import checks_for, parametrize_with_checks
from aetk_builtins.autoencoders import BaselineAE, ConditionedAE, ImprovedAE
from aetk_builtins.clip_mahalanobis import ClipMahalanobisScorer
from aetk_builtins.identity import IdentityModel
from aetk_builtins.knn import KnnScorer
from aetk_builtins.machine_classifier import MachineClassifier
from aetk_builtins.mel_db import MelDb
from aetk_builtins.mse import MseScorer

BUILTINS = [
    MelDb(),
    MelDb(channels=2, n_mels=16, n_fft=256, hop_length=128, target_length=8000),
    MelDb(
        sample_rate=32000,
        n_fft=2048,
        hop_length=1024,
        n_mels=64,
        target_length=0,
        frames=1,
        top_db=60.0,
    ),
    BaselineAE(hidden=[16], bottleneck=4),
    ImprovedAE(hidden=[16], bottleneck=4),
    ConditionedAE(hidden=[16], bottleneck=4),
    MachineClassifier(hidden=[16]),
    IdentityModel(),
    MseScorer(),
    MseScorer(top_fraction=0.25),
    KnnScorer(),
    KnnScorer(pooling="vector"),
    KnnScorer(pooling="clip+event"),
    KnnScorer(pooling="clip+frames+event"),  # the default's scorer
    KnnScorer(pooling="clip+frames+event+contrast"),
    ClipMahalanobisScorer(),
    ClipMahalanobisScorer(pooling="clip+event"),
    ClipMahalanobisScorer(pooling="clip+frames+event"),
]


@parametrize_with_checks(BUILTINS)
def test_builtins_pass_the_contract_kit(component, check):
    check(component)


class Broken(MseScorer):
    """Scores every clip the same: the kit must catch it."""

    name = "broken"

    def score(self, model, clips):
        self.check_fitted()
        return super().score(model, clips) * 0


def test_the_kit_catches_a_scorer_that_cannot_tell_anomalies():
    (ranking,) = [c for c in checks_for(Broken()) if "anomalies" in c.__name__]
    with pytest.raises(AssertionError, match="must score higher than normal clips"):
        ranking(Broken())


class Inconsistent(MseScorer):
    """Scores otherwise when it localizes: with ``localizes_while_scoring()``, aetk's table would
    take those scores."""

    name = "inconsistent"

    def score_and_localize(self, model, clips):
        scores, localizations = super().score_and_localize(model, clips)
        return scores + 1.0, localizations


def test_the_kit_catches_a_scorer_that_scores_otherwise_when_it_localizes():
    (scoring,) = [c for c in checks_for(Inconsistent()) if "scores_each_clip" in c.__name__]
    with pytest.raises(AssertionError, match="the same scores as score"):
        scoring(Inconsistent())


class Unstored(ImprovedAE):
    """Transforms a constructor argument instead of storing it as given."""

    name = "unstored"

    def __init__(self, hidden=(16,), bottleneck=4):
        super().__init__(hidden=[*hidden, 8], bottleneck=bottleneck)


def test_the_kit_catches_parameters_that_do_not_round_trip():
    (forward,) = [c for c in checks_for(Unstored()) if "forward" in c.__name__]
    with pytest.raises(AssertionError, match="does not give back the same parameters"):
        forward(Unstored())


def test_a_component_must_name_its_parameters():
    import aetk

    class Open(aetk.Featurizer):
        name = "open"

        def __init__(self, **options):
            self.options = options

    class Named(Open):
        def __init__(self, n_mels: int = 8):
            self.n_mels = n_mels

    with pytest.raises(TypeError, match=r"Open.__init__ must list its parameters explicitly"):
        Open.param_names()
    assert Named.param_names() == ["n_mels"]
    assert Named(n_mels=4).get_params() == {"n_mels": 4}
