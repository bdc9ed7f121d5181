"""The contract test kit: one call runs aetk's checks over a plugin's components.

In a plugin's pytest suite::

    from aetk.testing import parametrize_with_checks

    @parametrize_with_checks([MyFeaturizer(), MyModel(hidden=[8]), MyScorer()])
    def test_aetk_contract(component, check):
        check(component)

Every built-in component passes the same checks. A check raises ``AssertionError`` with a message
saying what the component did wrong. What the checks feed each kind:

- featurizers: synthetic machine sounds (:mod:`aetk.synth`) at :data:`SAMPLE_RATE`, 1 s, two
  channels (and awkward audio: empty, one sample, silence, a square wave, eight channels, 8 kHz);
  a featurizer with a torch-free twin (:mod:`aetk_core.features`) is compared with it;
- models: vectors of shape :data:`MODEL_INPUT_SHAPE` (channels, mels, frames) unless a check is
  given another ``input_shape``, lying near a 2-dimensional pattern; 2 epochs of aetk's trainer;
  a conditioned model is given the categories of a fleet of :data:`KIT_MACHINES` machines, each
  vector a machine's code, and is judged bound to one of them;
- scorers: 8 training, 4 validation, 4 normal test and 4 anomalous clips of 12 such vectors, scored
  with a small private reference autoencoder (trained once per shape, 30 epochs) and with the
  ``identity`` model's exact reconstruction.

Components run on the CPU in these checks. In aetk, featurizers run on several threads at once
(one clip each), so ``featurize`` must not change the featurizer's state except through caches
that are safe to fill twice; models and scorers run on one thread.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from aetk.components.base import Component, Featurizer, Localization, Model, Scorer
from aetk.errors import AetkError, NotFittedError

MODEL_INPUT_SHAPE = (1, 16, 4)
SAMPLE_RATE = 16000
#: The fleet a conditioned model is checked on.
KIT_MACHINES = ("kit-a", "kit-b", "kit-c")


# -- helpers -----------------------------------------------------------------------------------


AnyComponent = TypeVar("AnyComponent", bound=Component)


def _rebuild(component: AnyComponent) -> AnyComponent:
    rebuilt = type(component)(**component.get_params())
    assert rebuilt.get_params() == component.get_params(), (
        f"{type(component).__name__}(**get_params()) does not give back the same parameters: "
        "store every constructor argument under its own name"
    )
    model: Component = rebuilt
    if isinstance(model, Model) and model.conditioned:
        from aetk.fleet.categories import Categories

        model.categories_ = Categories.learn({"machine": name} for name in KIT_MACHINES).as_dict()
    return rebuilt


def _codes(model: Model, count: int) -> tuple[Any, ...]:
    """What a conditioned model's network takes beside ``count`` vectors: each one's machine
    code (the kit's machines in turn); nothing for another model."""
    import torch

    if not model.conditioned:
        return ()
    return (torch.arange(count).remainder(len(KIT_MACHINES))[:, None],)


def _trained(model: Model, x: Any, config: Any) -> Model:
    """``model`` trained on ``x`` by aetk's trainer; a conditioned one on the kit's machines,
    then bound to the first."""
    from aetk.fitting.trainer import train

    codes = _codes(model, len(x))
    fitted = train(model, x, config=config, codes=(codes[0], None) if codes else None)
    return fitted.bind([0]) if model.conditioned else fitted


def _round_trip_state(component: AnyComponent) -> AnyComponent:
    """The component's learned state written to a real detector file and read back."""
    from aetk.components.state import decode_state, encode_state
    from aetk.detect.detector_file import read_detector, write_detector

    tensors: dict = {}
    state = encode_state("component", component, tensors)
    json.dumps(state)  # everything that is not a tensor is JSON (encode_state checks it)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "check.aetk"
        write_detector(path, {"state": state}, tensors)
        manifest, loaded = read_detector(path)
    rebuilt = _rebuild(component)
    decode_state(path, "component", rebuilt, manifest["state"], loaded)
    return rebuilt


def _waveform(channels: int = 1, seconds: float = 1.0, seed: int = 0, anomaly: str | None = None):
    import torch

    from aetk.data import synth

    machine = synth.Machine(sample_rate=SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    clips = [
        synth.normal_clip(rng, seconds, machine)
        if anomaly is None
        else synth.anomalous_clip(rng, anomaly, seconds, machine)
        for _ in range(channels)
    ]
    return torch.from_numpy(np.stack(clips))


def _structured_vectors(count: int, shape: tuple[int, ...], seed: int, anomalous: bool = False):
    """Vectors on a 2-dimensional pattern (normal). Anomalous ones are pushed off the pattern and
    far along it, so that reconstruction-based and distance-based scorers can both see them."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    size = int(np.prod(shape))
    basis = torch.randn(2, size, generator=torch.Generator().manual_seed(1234))
    coefficients = torch.randn(count, 2, generator=generator)
    noise = 0.05 * torch.randn(count, size, generator=generator)
    if anomalous:
        coefficients = coefficients + 6.0
        noise = noise + 2.0 * torch.randn(count, size, generator=generator)
    return (coefficients @ basis + noise).reshape(count, *shape)


@functools.cache
def _reference_model(shape: tuple[int, ...]) -> Model:
    """A small trained autoencoder for the scorer checks, trained once per shape."""
    from aetk.fitting.config import TrainingConfig
    from aetk.fitting.trainer import train

    train_vectors = _structured_vectors(256, shape, seed=1)
    config = TrainingConfig(epochs=30, batch_size=64, lr=1e-2, seed=0)
    return train(_ReferenceAutoencoder(), train_vectors, config=config)


class _ReferenceAutoencoder(Model):
    """Flatten → Linear → Tanh → Linear(2) → Linear → Tanh → Linear, outside any plugin."""

    name = "contract-kit-reference"

    def build(self, input_shape: tuple[int, ...]) -> Any:
        from torch import nn

        from aetk.components.networks import FlatAutoencoder

        size = int(np.prod(input_shape))
        return FlatAutoencoder(
            nn.Sequential(nn.Linear(size, 16), nn.Tanh(), nn.Linear(16, 2)),
            nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, size)),
        )


class _ExactModel(Model):
    """Reconstructs exactly: what a scorer that claims not to need reconstruction errors sees."""

    name = "contract-kit-exact"
    trainable = False

    def build(self, input_shape: tuple[int, ...]) -> Any:
        from aetk.components.networks import Identity

        return Identity()


# -- featurizers -------------------------------------------------------------------------------


def check_featurizer_output_is_float32_vectors(featurizer: Featurizer) -> None:
    features = featurizer.featurize(_waveform(channels=2), SAMPLE_RATE)
    assert hasattr(features, "dtype") and str(features.dtype) == "torch.float32", (
        f"featurize must return a float32 tensor, not {getattr(features, 'dtype', type(features))}"
    )
    assert features.dim() >= 2 and len(features) >= 1, (
        f"featurize must return [n_vectors, *vector_shape] with n_vectors ≥ 1, not "
        f"{tuple(features.shape)}"
    )
    assert bool(features.isfinite().all()), "featurize returned NaN or infinite values"


def check_featurizer_vector_shape_is_stable(featurizer: Featurizer) -> None:
    first = featurizer.featurize(_waveform(channels=2, seed=1), SAMPLE_RATE)
    second = featurizer.featurize(_waveform(channels=2, seed=2, anomaly="knock"), SAMPLE_RATE)
    assert first.shape[1:] == second.shape[1:], (
        f"vector shape changed between two clips of the same length: {tuple(first.shape[1:])} "
        f"and {tuple(second.shape[1:])}"
    )


def check_featurizer_is_deterministic(featurizer: Featurizer) -> None:
    import torch

    waveform = _waveform(channels=2, seed=3)
    assert torch.equal(
        featurizer.featurize(waveform, SAMPLE_RATE), featurizer.featurize(waveform, SAMPLE_RATE)
    ), "featurize gave different results for the same input"


def check_featurizer_params_round_trip(featurizer: Featurizer) -> None:
    import torch

    waveform = _waveform(channels=2, seed=4)
    rebuilt = _rebuild(featurizer)
    assert torch.equal(
        featurizer.featurize(waveform, SAMPLE_RATE), rebuilt.featurize(waveform, SAMPLE_RATE)
    ), "a featurizer rebuilt from get_params() featurizes differently"
    assert featurizer.learned_state() == {}, (
        "featurizers hold no learned state (attributes ending in '_'); aetk standardises features"
    )


def check_featurizer_batch_matches_single(featurizer: Featurizer) -> None:
    import torch

    batch = torch.stack([_waveform(channels=2, seed=s) for s in (5, 6)])
    together = featurizer.featurize_batch(batch, SAMPLE_RATE)
    apart = torch.stack([featurizer.featurize(waveform, SAMPLE_RATE) for waveform in batch])
    assert torch.allclose(together, apart, atol=1e-4), (
        "featurize_batch differs from featurize applied clip by clip"
    )


def check_featurizer_bad_audio_gives_audio_error(featurizer: Featurizer) -> None:
    import torch

    awkward = {
        "no samples": torch.zeros(1, 0),
        "one sample": torch.full((1, 1), 0.1),
        "ten samples": torch.full((1, 10), 0.1),
        "digital silence": torch.zeros(1, SAMPLE_RATE),
        "full-scale square wave": torch.sign(torch.sin(torch.arange(SAMPLE_RATE) / 5.0))[None],
        "eight channels": _waveform(channels=8, seed=7),
        "8 kHz": _waveform(channels=2, seconds=0.5)[:, ::2].contiguous(),
    }
    for case, waveform in awkward.items():
        rate = 8000 if case == "8 kHz" else SAMPLE_RATE
        try:
            features = featurizer.featurize(waveform, rate)
        except AetkError:
            continue
        except Exception as exc:  # any other exception is what this check reports
            raise AssertionError(
                f"{case}: featurize raised {type(exc).__name__}: {exc}; raise aetk.AudioError "
                "with a reason for audio it cannot use"
            ) from exc
        assert len(features) >= 1 and bool(features.isfinite().all()), (
            f"{case}: featurize returned no vectors or non-finite values instead of AudioError"
        )


def check_featurizer_frames_to_read(featurizer: Featurizer) -> None:
    for rate in (8000, 16000, 48000):
        frames = featurizer.frames_to_read(rate)
        assert frames is None or (isinstance(frames, int) and frames > 0), (
            f"frames_to_read({rate}) must be None or a positive int, not {frames!r}"
        )


def check_featurizer_twin_matches(featurizer: Featurizer) -> None:
    """A featurizer with a torch-free twin (:mod:`aetk_core.features`: built in, or a plugin's
    under the entry-point group ``aetk_core.featurizers``) must featurize as its twin does, so
    that an exported detector hears what aetk heard: the same vectors to within a thousandth of
    their spread (mono, two channels, a slower recording), the same refusals
    (:class:`aetk.AudioError`) and the same ``frames_to_read``. Without a twin there is nothing
    to compare (``aetk export`` refuses such a featurizer)."""

    from aetk_core.features import featurizer_for, twin_class

    if twin_class(featurizer.name) is None:
        return
    twin = featurizer_for({"name": featurizer.name, "params": featurizer.get_params()})
    cases = {
        "mono": (_waveform(channels=1, seed=8), SAMPLE_RATE),
        "two channels": (_waveform(channels=2, seed=9), SAMPLE_RATE),
        "8 kHz": (_waveform(channels=1, seed=10)[:, ::2].contiguous(), 8000),
    }
    for case, (waveform, rate) in cases.items():
        try:
            expected = featurizer.featurize(waveform, rate).numpy()
        except AetkError as refusal:
            try:
                twin.featurize(waveform.numpy(), rate)
            except AetkError:
                continue  # refused by both: as it should be
            raise AssertionError(
                f"{case}: the featurizer refuses it ({refusal}) and its twin does not"
            ) from None
        got = np.asarray(twin.featurize(waveform.numpy(), rate))
        assert got.shape == expected.shape, (
            f"{case}: the torch-free twin gives vectors of shape {got.shape}, the featurizer "
            f"{expected.shape}"
        )
        if not got.size:
            continue
        # A thousandth of the values' spread (a thousandth of a standard deviation once aetk
        # has standardised them), and float rounding for values that do not vary.
        tolerance = 1e-3 * float(expected.std()) + 1e-6 * float(np.abs(expected).max())
        worst = float(np.abs(got - expected).max())
        assert worst <= tolerance, (
            f"{case}: the torch-free twin differs by up to {worst:.3g} (allowed: {tolerance:.3g}, "
            "a thousandth of the values' spread)"
        )
    for rate in (8000, 16000, 48000):
        assert twin.frames_to_read(rate) == featurizer.frames_to_read(rate), (
            f"frames_to_read({rate}): the twin reads {twin.frames_to_read(rate)} frames, the "
            f"featurizer {featurizer.frames_to_read(rate)}"
        )


# -- models ------------------------------------------------------------------------------------


def check_model_forward_returns_reconstruction_and_latent(
    model: Model, input_shape: tuple[int, ...] = MODEL_INPUT_SHAPE
) -> None:
    import torch

    fresh = _rebuild(model).initialize(input_shape)
    fresh.module_.eval()
    x = _structured_vectors(8, input_shape, seed=2)
    with torch.no_grad():
        output = fresh.module_(x, *_codes(fresh, len(x)))
    assert isinstance(output, tuple) and len(output) == 2, (
        "the network's forward(x) (a conditioned one's forward(x, codes)) must return "
        "(reconstruction, latent)"
    )
    reconstruction, latent = output
    assert reconstruction.shape == fresh.target(x).shape, (
        f"reconstruction has shape {tuple(reconstruction.shape)}, target(x) "
        f"{tuple(fresh.target(x).shape)}"
    )
    assert latent.shape[0] == 8, "latent codes must keep the batch axis first"


def check_model_training_step_lowers_the_loss(
    model: Model, input_shape: tuple[int, ...] = MODEL_INPUT_SHAPE
) -> None:
    import torch

    torch.manual_seed(0)
    fresh = _rebuild(model).initialize(input_shape)
    parameters = [p for p in fresh.module_.parameters() if p.requires_grad]
    if not fresh.trainable:
        assert not parameters, "a model that is not trainable must have no trainable parameters"
        vectors = _structured_vectors(16, input_shape, seed=3)
        assert _trained(fresh, vectors, None).history_ == [], (
            "a model that is not trainable must not report training epochs"
        )
        return
    assert parameters, "a trainable model must have parameters (or set trainable = False)"
    batch = _structured_vectors(32, input_shape, seed=3)
    optimizer = torch.optim.Adam(parameters, lr=1e-3)
    fresh.module_.train()

    def loss() -> torch.Tensor:
        return fresh.loss(fresh.module_(batch, *_codes(fresh, len(batch))), batch)

    before = loss()
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = loss()
    assert after.item() < before.item(), (
        f"one Adam step on a tiny batch did not lower the loss ({before.item():.4g} → "
        f"{after.item():.4g})"
    )


def check_model_state_survives_the_detector_file(
    model: Model, input_shape: tuple[int, ...] = MODEL_INPUT_SHAPE
) -> None:
    import torch

    from aetk.fitting.config import TrainingConfig

    x = _structured_vectors(64, input_shape, seed=4)
    fitted = _trained(_rebuild(model), x, TrainingConfig(epochs=2, batch_size=16))
    loaded = _round_trip_state(fitted)
    assert torch.equal(fitted.errors(x), loaded.errors(x)), (
        "a model loaded from a detector file reconstructs differently"
    )


def check_model_is_deterministic_for_a_seed(
    model: Model, input_shape: tuple[int, ...] = MODEL_INPUT_SHAPE
) -> None:
    import torch

    from aetk.fitting.config import TrainingConfig

    x = _structured_vectors(64, input_shape, seed=5)
    config = TrainingConfig(epochs=2, batch_size=16, seed=3)
    first = _trained(_rebuild(model), x, config).errors(x)
    second = _trained(_rebuild(model), x, config).errors(x)
    assert torch.equal(first, second), "two fits with the same seed gave different models"


# -- scorers -----------------------------------------------------------------------------------


def _scorer_data(shape: tuple[int, ...]):
    normal = [_structured_vectors(12, shape, seed=10 + i) for i in range(8)]
    validation = [_structured_vectors(12, shape, seed=30 + i) for i in range(4)]
    test_normal = [_structured_vectors(12, shape, seed=50 + i) for i in range(4)]
    anomalous = [_structured_vectors(12, shape, seed=70 + i, anomalous=True) for i in range(4)]
    return normal, validation, test_normal, anomalous


def check_scorer_refuses_to_score_before_fit(scorer: Scorer) -> None:
    model = _reference_model(MODEL_INPUT_SHAPE)
    try:
        _rebuild(scorer).score(model, _scorer_data(MODEL_INPUT_SHAPE)[2])
    except NotFittedError:
        return
    raise AssertionError("score() before fit() must raise aetk.NotFittedError (check_fitted())")


def check_scorer_fit_returns_self_and_scores_each_clip(scorer: Scorer) -> None:
    model = _reference_model(MODEL_INPUT_SHAPE)
    normal, validation, test_normal, _ = _scorer_data(MODEL_INPUT_SHAPE)
    fresh = _rebuild(scorer)
    assert fresh.fit(model, normal, validation) is fresh, "fit must return self"
    assert not hasattr(fresh, "threshold_"), (
        "scorers only score: aetk calibrates the threshold from held_out_scores()"
    )
    held_out = np.asarray(fresh.held_out_scores(model, normal, validation), dtype=np.float64)
    assert held_out.ndim == 1 and len(held_out) >= len(validation), (
        f"held_out_scores must give one score per normal clip held out, not shape {held_out.shape}"
    )
    assert np.isfinite(held_out).all(), "held_out_scores returned NaN or infinite values"
    scores = np.asarray(fresh.score(model, test_normal))
    assert scores.shape == (len(test_normal),), (
        f"score must return one score per clip: shape {scores.shape} for {len(test_normal)} clips"
    )
    assert np.isfinite(scores).all(), "score returned NaN or infinite values"
    together, localizations = fresh.score_and_localize(model, test_normal)
    # With localizes_while_scoring(), aetk takes a table's scores from score_and_localize.
    assert np.allclose(np.asarray(together), scores), (
        "score_and_localize must give the same scores as score"
    )
    assert isinstance(fresh.localizes_while_scoring(), bool), (
        "localizes_while_scoring() must return True or False"
    )
    assert len(localizations) == len(test_normal), (
        "score_and_localize must give one localization (or None) per clip"
    )


def check_scorer_ranks_constructed_anomalies_higher(scorer: Scorer) -> None:
    model = _reference_model(MODEL_INPUT_SHAPE)
    normal, validation, test_normal, anomalous = _scorer_data(MODEL_INPUT_SHAPE)
    fresh = _rebuild(scorer).fit(model, normal, validation)
    normal_scores = np.asarray(fresh.score(model, test_normal))
    anomalous_scores = np.asarray(fresh.score(model, anomalous))
    assert anomalous_scores.min() > normal_scores.max(), (
        "clips far off the normal pattern must score higher than normal clips (higher means more "
        f"anomalous): normal {normal_scores.round(4)}, anomalous {anomalous_scores.round(4)}"
    )


def check_scorer_says_whether_it_needs_reconstruction(scorer: Scorer) -> None:
    """A scorer that does not declare ``needs_reconstruction`` must still tell clips apart with a
    model that reconstructs exactly (aetk refuses that pairing for one that declares it)."""
    if scorer.needs_reconstruction:
        return
    model = _ExactModel().initialize(MODEL_INPUT_SHAPE)
    model.history_ = []
    normal, validation, test_normal, anomalous = _scorer_data(MODEL_INPUT_SHAPE)
    fresh = _rebuild(scorer).fit(model, normal, validation)
    scores = np.asarray(fresh.score(model, [*test_normal, *anomalous]))
    assert np.ptp(scores) > 0, (
        "with a model that reconstructs exactly every clip got the same score: if the scorer "
        "scores reconstruction errors, set needs_reconstruction = True on its class"
    )


def check_scorer_export_module_scores_as_the_scorer(scorer: Scorer) -> None:
    """A scorer that opts in to ``aetk export`` must give, through its export module, the score
    ``score`` gives (clips of different lengths included), with a trained model and (unless it
    needs reconstruction errors) with one whose latent space is the features themselves. A
    module that also says which view gave it (``(score, view)``) must name one of ``views()``
    and a moment within the clip; one that also localizes (``(score, view, vector_scores,
    contributions)``) must give the localization ``score_and_localize`` gives."""
    models = [_reference_model(MODEL_INPUT_SHAPE)]
    if not scorer.needs_reconstruction:  # aetk refuses it a model that reconstructs exactly
        models.append(_ExactModel().initialize(MODEL_INPUT_SHAPE))
        models[-1].history_ = []
    for model in models:
        normal, validation, test_normal, anomalous = _scorer_data(MODEL_INPUT_SHAPE)
        fitted = _rebuild(scorer).fit(model, normal, validation)
        module = fitted.export_module(model)
        if module is None:
            return
        _check_exported_clips(fitted, model, module, [*test_normal, anomalous[0][:5]])


def _check_exported_clips(fitted: Scorer, model: Model, module: Any, clips: list[Any]) -> None:
    import torch

    expected = np.asarray(fitted.score(model, clips), dtype=np.float64)
    with torch.no_grad():
        outputs = [module.eval()(clip) for clip in clips]
    scores = [output[0] if isinstance(output, tuple) else output for output in outputs]
    got = np.array([float(score.reshape(-1)[0]) for score in scores])
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-7), (
        f"export_module(model) scores {got.round(5)} where score gives {expected.round(5)}"
    )
    for clip, output in zip(clips, outputs, strict=True):
        if not isinstance(output, tuple):
            continue
        localization = fitted.score_and_localize(model, [clip])[1][0]
        if fitted.views():
            _check_exported_view(fitted, localization, clip, output[1])
        if len(output) == 4:
            _check_exported_localization(localization, output[2], output[3])


def _check_exported_view(
    fitted: Scorer, localization: Localization | None, clip: Any, view: Any
) -> None:
    winner, first, last = (int(value) for value in view.reshape(-1))
    views = fitted.views()
    assert 0 <= winner < len(views) and 0 <= first <= last <= len(clip), (
        f"export_module(model)'s view {[winner, first, last]} is not one of the "
        f"{len(views)} views with a moment inside the clip's {len(clip)} vectors"
    )
    if localization is None or localization.view is None:
        return
    moment = None if first == last else (first, last)
    assert (views[winner], moment) == (localization.view, localization.view_vectors), (
        f"export_module(model) names view {views[winner]!r} at vectors {moment} where "
        f"score_and_localize names {localization.view!r} at {localization.view_vectors}"
    )


def _check_exported_localization(
    localization: Localization | None, vector_scores: Any, contributions: Any
) -> None:
    assert localization is not None, (
        "export_module(model) localizes where score_and_localize gives no localization"
    )
    for name, got, expected in (
        ("vector_scores", vector_scores, localization.vector_scores),
        ("contributions", contributions, localization.contributions),
    ):
        assert tuple(got.shape) == tuple(expected.shape), (
            f"export_module(model)'s {name} have shape {list(got.shape)} where "
            f"score_and_localize gives {list(expected.shape)}"
        )
        difference = float((got.double() - expected.double()).abs().max())
        allowed = 1e-4 * float(expected.double().abs().max()) + 1e-6
        assert difference <= allowed, (
            f"export_module(model)'s {name} differ from score_and_localize's by up to "
            f"{difference:.3g} (allowed {allowed:.3g})"
        )


def check_scorer_state_survives_the_detector_file(scorer: Scorer) -> None:
    model = _reference_model(MODEL_INPUT_SHAPE)
    normal, validation, test_normal, _ = _scorer_data(MODEL_INPUT_SHAPE)
    fitted = _rebuild(scorer).fit(model, normal, validation)
    loaded = _round_trip_state(fitted)
    assert np.array_equal(fitted.score(model, test_normal), loaded.score(model, test_normal)), (
        "a scorer loaded from a detector file scores differently"
    )


# -- running them ------------------------------------------------------------------------------

CHECKS: dict[type[Component], list[Callable[..., None]]] = {
    Featurizer: [
        check_featurizer_output_is_float32_vectors,
        check_featurizer_vector_shape_is_stable,
        check_featurizer_is_deterministic,
        check_featurizer_params_round_trip,
        check_featurizer_batch_matches_single,
        check_featurizer_bad_audio_gives_audio_error,
        check_featurizer_frames_to_read,
        check_featurizer_twin_matches,
    ],
    Model: [
        check_model_forward_returns_reconstruction_and_latent,
        check_model_training_step_lowers_the_loss,
        check_model_state_survives_the_detector_file,
        check_model_is_deterministic_for_a_seed,
    ],
    Scorer: [
        check_scorer_refuses_to_score_before_fit,
        check_scorer_fit_returns_self_and_scores_each_clip,
        check_scorer_ranks_constructed_anomalies_higher,
        check_scorer_says_whether_it_needs_reconstruction,
        check_scorer_export_module_scores_as_the_scorer,
        check_scorer_state_survives_the_detector_file,
    ],
}


def checks_for(component: Component, **options: Any) -> list[Callable[[Component], None]]:
    """The checks that apply to ``component`` (``options`` such as ``input_shape`` go to the
    model checks)."""
    for kind, checks in CHECKS.items():
        if isinstance(component, kind):
            if kind is Model and options:
                return [partial(check, **options) for check in checks]
            return list(checks)
    raise TypeError(f"{component!r} is not an aetk Featurizer, Model or Scorer")


def check_component(component: Component, **options: Any) -> None:
    """Run every check that applies to ``component``; the first failure raises."""
    for check in checks_for(component, **options):
        check(component)


def parametrize_with_checks(components: Iterable[Component], **options: Any):
    """A ``pytest.mark.parametrize`` over every (component, check) pair, with readable ids."""
    import pytest

    pairs, ids = [], []
    for component in components:
        for check in checks_for(component, **options):
            name = getattr(check, "func", check).__name__
            pairs.append((component, check))
            ids.append(f"{type(component).__name__}-{name}")
    return pytest.mark.parametrize(("component", "check"), pairs, ids=ids)


__all__ = ["CHECKS", "check_component", "checks_for", "parametrize_with_checks"] + [
    check.__name__ for checks in CHECKS.values() for check in checks
]
