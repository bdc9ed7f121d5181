"""The text's two autoencoders and the shared training loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import aetk
from aetk.fitting.config import TrainingConfig
from aetk.fitting.trainer import train
from aetk_builtins.autoencoders import BaselineAE, ImprovedAE


def layer_types(module):
    return [type(layer) for layer in module.modules() if not isinstance(layer, nn.Sequential)][1:]


def test_forward_returns_reconstruction_and_latent_of_the_right_shapes():
    for cls in (BaselineAE, ImprovedAE):
        model = cls(hidden=[32, 16], bottleneck=4).initialize((1, 8, 5))
        model.module_.eval()
        reconstruction, latent = model.module_(torch.randn(7, 1, 8, 5))
        assert reconstruction.shape == (7, 1, 8, 5)
        assert latent.shape == (7, 4)


def test_baseline_is_linear_relu_with_a_plain_output():
    model = BaselineAE(hidden=[32, 16], bottleneck=4).initialize((40,))
    assert layer_types(model.module_) == [
        nn.Linear,
        nn.ReLU,
        nn.Linear,
        nn.ReLU,
        nn.Linear,
        nn.ReLU,  # 40 → 32 → 16 → 4
        nn.Linear,
        nn.ReLU,
        nn.Linear,
        nn.ReLU,
        nn.Linear,  # 4 → 16 → 32 → 40
    ]


def test_improved_is_linear_batchnorm_leakyrelu_with_a_plain_output():
    model = ImprovedAE(hidden=[32], bottleneck=4).initialize((40,))
    types = layer_types(model.module_)
    assert types == [
        nn.Linear,
        nn.BatchNorm1d,
        nn.LeakyReLU,
        nn.Linear,
        nn.BatchNorm1d,
        nn.LeakyReLU,
        nn.Linear,
        nn.BatchNorm1d,
        nn.LeakyReLU,
        nn.Linear,
    ]
    slopes = {m.negative_slope for m in model.module_.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}


def test_seed_size_matches_the_text():
    """25,024 → 8,224 → 2,056 → 1,024 → 512 → 256 and back: about 451 M parameters."""
    with torch.device("meta"):
        model = ImprovedAE().initialize((2, 32, 391))
    linears = [m for m in model.module_.modules() if isinstance(m, nn.Linear)]
    widths = [linears[0].in_features] + [m.out_features for m in linears]
    assert widths == [25024, 8224, 2056, 1024, 512, 256, 512, 1024, 2056, 8224, 25024]
    parameters = sum(p.numel() for p in model.module_.parameters())
    assert 450e6 < parameters < 452e6


def test_input_width_follows_the_features():
    model = ImprovedAE(hidden=[8], bottleneck=2).initialize((3, 7))
    assert model.module_.encoder[0].in_features == 21


def test_invalid_widths_are_config_errors():
    with pytest.raises(aetk.ConfigError, match="positive integers"):
        ImprovedAE(hidden=[0], bottleneck=2).initialize((4,))


def test_training_lowers_the_loss_and_keeps_the_best_validation_weights():
    torch.manual_seed(0)
    data = torch.randn(256, 8) @ torch.randn(8, 32)  # rank-8 data, learnable with bottleneck 8
    model = ImprovedAE(hidden=[64], bottleneck=8)
    reports = []
    train(
        model,
        data[:200],
        data[200:],
        TrainingConfig(epochs=15, batch_size=32, lr=1e-2),
        on_epoch=reports.append,
    )
    losses = [r["train_loss"] for r in model.history_]
    assert losses[-1] < losses[0] / 2
    best = min(model.history_, key=lambda r: r["val_loss"])
    assert best["best"] is True
    assert [r.epoch for r in reports] == list(range(1, 16))
    from aetk.fitting.trainer import mean_error

    assert mean_error(model, data[200:]) == pytest.approx(best["val_loss"], rel=1e-5)


def test_unfitted_model_is_a_clear_error():
    with pytest.raises(aetk.NotFittedError, match="model 'improved-ae' is not fitted"):
        ImprovedAE().errors(torch.zeros(1, 4))


def test_training_is_deterministic_for_a_seed():
    data = torch.randn(100, 12, generator=torch.Generator().manual_seed(1))
    config = TrainingConfig(epochs=3, batch_size=16, seed=7)
    first = train(ImprovedAE(hidden=[8], bottleneck=2), data, config=config)
    second = train(ImprovedAE(hidden=[8], bottleneck=2), data, config=config)
    for a, b in zip(
        first.module_.state_dict().values(), second.module_.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "options",
    [{"precision": "bf16"}, {"compile": True}],
    ids=["bf16-autocast", "torch-compile"],
)
def test_training_options_train_and_keep_plain_weights(options):
    torch.manual_seed(0)
    data = torch.randn(256, 4) @ torch.randn(4, 24)
    model = ImprovedAE(hidden=[32], bottleneck=4)
    train(model, data, config=TrainingConfig(epochs=6, batch_size=64, lr=1e-2, **options))
    losses = [r["train_loss"] for r in model.history_]
    assert losses[-1] < losses[0]
    assert all(not name.startswith("_orig_mod") for name in model.module_.state_dict())
    assert model.errors(data).dtype == torch.float32


def test_invalid_training_options_are_config_errors():
    with pytest.raises(aetk.ConfigError, match="precision must be one of"):
        TrainingConfig.from_dict({"precision": "fp8"})
    with pytest.raises(aetk.ConfigError, match="compile must be true or false"):
        TrainingConfig.from_dict({"compile": "yes"})
