"""Fleets judged by one network: the conditioned autoencoder (``fleet-ae``) and the machine
classifier with its surprise scorer (``fleet-classifier``), bound to each machine; the categories'
encoding inside the network; one copy of the network in the file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import FLEET_MACHINES as MACHINES
from conftest import write_uneven_fleet

import aetk
from aetk.components.networks import CategoryEncoding
from aetk.detect.detector_file import SHARED_FLEET_SCHEMA, _manifest, read_detector
from aetk.fleet.categories import Categories, embedding_size
from aetk.fleet.detector import FleetDetector, fit_fleet

TINY = ("training.epochs=3", "training.batch_size=64")


@pytest.fixture(scope="module")
def ae_fleet(fleet_folders):
    settings = (*TINY, "model.hidden=[32]", "model.bottleneck=4")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AETK_CACHE", "0")  # features in a cache that lives for the fit only
        fleet = fit_fleet([fleet_folders / "train"], "folders", preset="fleet-ae", set=settings)
    return fleet, fleet.save(fleet_folders / "fleet-ae.aetk")


@pytest.fixture(scope="module")
def classifier_fleet(fleet_folders):
    settings = (*TINY, "training.epochs=8", "model.hidden=[32]")
    fleet = fit_fleet([fleet_folders / "train"], "folders", preset="fleet-classifier", set=settings)
    return fleet, fleet.save(fleet_folders / "fleet-classifier.aetk")


def test_one_network_is_bound_to_each_machine_with_its_own_threshold(ae_fleet):
    fleet, _ = ae_fleet
    models = [fleet.detector(machine).model for machine in MACHINES]
    assert len({id(model.module_) for model in models}) == 1  # one network for the fleet
    assert [model.condition_ for model in models] == [[0], [1], [2]]
    assert len({fleet.detector(machine).threshold for machine in MACHINES}) == 3
    assert all(fleet.detector(machine).training["files"] == 8 for machine in MACHINES)


def test_the_machine_a_vector_is_said_to_come_from_changes_its_reconstruction(
    ae_fleet, fleet_folders
):
    fleet, _ = ae_fleet
    clip = next((fleet_folders / "test" / "pump-01").glob("normal_*.wav"))
    vectors = fleet.detector("pump-01").vectors(clip)
    own = fleet.detector("pump-01").model.errors(vectors).mean()
    other = fleet.detector("fan-01").model.errors(vectors).mean()
    assert not torch.equal(own, other)
    assert own < other  # told its own machine, the network reconstructs it better


def test_the_file_keeps_the_shared_network_once_and_loads_it_back(ae_fleet, fleet_folders):
    fleet, path = ae_fleet
    manifest, tensors = read_detector(path)
    assert _manifest(path, path.read_bytes())["schema_version"] == SHARED_FLEET_SCHEMA
    aliases = manifest["fleet"]["aliases"]
    assert any(".module_." in name and name.startswith("m1/") for name in aliases)
    assert not any(name.startswith("m1/model.module_.") for name in tensors)
    loaded = FleetDetector.load(path)
    test = [fleet_folders / "test"]
    assert [r.score for r in loaded.score(test)] == [r.score for r in fleet.score(test)]
    assert loaded.detector("pump-02").model.condition_ == [2]
    # Loaded, the machines share one network again: memory holds one copy, not one per machine.
    networks = {id(loaded.detector(machine).model.module_) for machine in MACHINES}
    assert len(networks) == 1


def test_an_alias_to_a_missing_tensor_is_refused(ae_fleet):
    from aetk.fleet.detector import _with_aliases

    with pytest.raises(aetk.DetectorFileError, match="lacks tensor 'm0/nowhere'"):
        _with_aliases("f.aetk", {}, {"m1/x": "m0/nowhere"})
    with pytest.raises(aetk.DetectorFileError, match="aliases are malformed"):
        _with_aliases("f.aetk", {}, ["m0/x"])


def test_categories_enter_the_network_one_hot_below_fifty_values_and_embedded_from_fifty():
    def encoding(machines: int) -> CategoryEncoding:
        names = [f"m{index:02d}" for index in range(machines)]
        return CategoryEncoding(Categories.learn({"machine": n} for n in names).as_dict())

    below, at = encoding(49), encoding(50)
    assert below.width == 49 and not any(p.requires_grad for p in below.parameters())
    codes = torch.tensor([[3], [48]])
    np.testing.assert_array_equal(below(codes).argmax(1), [3, 48])
    assert below(codes).sum().item() == 2  # one-hot: a single one per row
    assert at.width == embedding_size(50) and all(p.requires_grad for p in at.parameters())
    assert at(torch.tensor([[49]])).shape == (1, embedding_size(50))


def test_the_demo_refuses_a_fleet_preset_before_writing_anything(cli, tmp_path):
    refused = cli("demo", "--preset", "fleet-classifier", "--out", tmp_path / "demo")
    assert refused.code == 2 and "one network for a fleet of machines" in refused.stderr
    assert not (tmp_path / "demo").exists()


def test_a_conditioned_model_is_refused_without_a_fleet(fleet_folders):
    from aetk.fitting.trainer import train
    from aetk_builtins.autoencoders import ConditionedAE

    with pytest.raises(aetk.ConfigError, match=r"one network for a fleet.*--machines"):
        aetk.fit(fleet_folders / "train" / "fan-01", preset="fleet-ae")
    with pytest.raises(aetk.ConfigError, match="conditioned on categories: fit it on a fleet"):
        train(ConditionedAE(hidden=[8], bottleneck=2), torch.zeros(4, 1, 8, 2))


def test_surprise_is_lower_for_a_clip_of_the_machine_it_is_said_to_be(
    classifier_fleet, fleet_folders
):
    fleet, _ = classifier_fleet
    clips = sorted((fleet_folders / "test" / "fan-01").glob("normal_*.wav"))
    as_itself = fleet.score(clips, machine="fan-01")
    as_another = fleet.score(clips, machine="pump-02")
    assert all(r.machine == "fan-01" for r in as_itself)
    for own, other in zip(as_itself, as_another, strict=True):
        assert own.score < other.score


def test_the_surprise_scorer_and_the_classifier_pair_only_with_each_other(fleet_folders):
    train = [fleet_folders / "train"]
    with pytest.raises(aetk.ConfigError, match="does not reconstruct"):
        fit_fleet(train, "folders", preset="fleet-classifier", scorer="mse", set=TINY)
    with pytest.raises(aetk.ConfigError, match="use --model machine-classifier"):
        fit_fleet(train, "folders", preset="fleet-ae", scorer="surprise", set=TINY)


def test_the_export_graph_of_a_bound_network_scores_as_aetk(classifier_fleet, ae_fleet):
    for fleet, _ in (classifier_fleet, ae_fleet):
        detector = fleet.detector("pump-01")
        graph = detector.scorer.export_module(detector.model).eval()
        vectors = torch.randn(7, *detector.model.input_shape_)
        with torch.no_grad():
            outputs = graph(vectors)
        # The score, first of the outputs when the scorer localizes (the autoencoder's does).
        exported = float((outputs[0] if isinstance(outputs, tuple) else outputs).reshape(-1)[0])
        assert exported == pytest.approx(detector.scorer.score(detector.model, [vectors])[0])


def test_fit_cli_fits_one_network_for_the_fleet_and_score_routes_to_it(
    fleet_folders, tmp_path, cli
):
    output = tmp_path / "f.aetk"
    settings = [item for pair in zip(["--set"] * 2, TINY, strict=True) for item in pair]
    ran = cli(
        "fit",
        fleet_folders / "train",
        "--machines",
        "folders",
        "--preset",
        "fleet-classifier",
        *settings,
        "-o",
        output,
        "--json",
    )
    assert ran.code == 0, ran.stderr
    summary = json.loads(ran.stdout.splitlines()[-1])
    assert set(summary["machines"]) == set(MACHINES)
    assert {m["model"] for m in summary["machines"].values()} == {"machine-classifier"}
    assert summary["one_network"] is True
    ran = cli("score", fleet_folders / "test", "-d", output, "--json")
    assert ran.code in (0, 1), ran.stderr
    rows = [json.loads(line) for line in ran.stdout.splitlines()]
    assert {row["machine"] for row in rows} == set(MACHINES)
    assert all(row["score"] is not None for row in rows)


def test_a_machine_with_few_recordings_is_scored_by_what_the_fleet_network_sees(tmp_path):
    write_uneven_fleet(tmp_path, test_normal=1)
    with pytest.warns(aetk.AetkWarning, match="machine small: 2 normal recording"):
        fleet = fit_fleet(
            [tmp_path / "train"],
            "folders",
            preset="fleet-classifier",
            scorer="knn",  # in the classifier's embedding space
            set=(*TINY, "model.hidden=[16]", "scorer.pooling=clip"),
        )
    assert fleet.detector("small").training["files"] == 8  # the whole fleet's recordings
    assert fleet.detector("big").training["files"] == 6
    assert fleet.detector("small").model.condition_ == [1]
    latent = fleet.detector("small").model.latent(
        torch.randn(5, *fleet.detector("big").model.input_shape_)
    )
    assert latent.shape == (5, 16)  # the embedding machines are told apart by
    assert all(r.score is not None for r in fleet.score([tmp_path / "test"]))


@pytest.mark.filterwarnings("ignore:.*no validation clips")
def test_a_fleet_of_fifty_machines_learns_their_embedding_end_to_end(tmp_path):
    import soundfile

    rng = np.random.default_rng(0)
    table = ["file,machine"]
    for index in range(50):
        path = tmp_path / f"m{index:02d}.wav"
        tone = np.sin(2 * np.pi * (100 + 37 * index) * np.arange(3200) / 16000)
        soundfile.write(path, 0.3 * tone + 0.01 * rng.standard_normal(3200), 16000)
        table.append(f"{path.name},m{index:02d}")
    (tmp_path / "machines.csv").write_text("\n".join(table) + "\n")
    with pytest.warns(aetk.AetkWarning, match="fewer than 4"):
        fleet = fit_fleet(
            [tmp_path],
            str(tmp_path / "machines.csv"),
            preset="fleet-ae",
            set=(*TINY, "model.hidden=[16]", "model.bottleneck=4"),
        )
    assert fleet.summary()["categories"][0]["encoding"] == "embedding"
    model = fleet.detector("m07").model
    embedding = model.module_.encoding.columns[0]
    assert embedding.weight.shape == (50, embedding_size(50)) and embedding.weight.requires_grad
    torch.manual_seed(fleet.detector("m07").training["seed"])  # as the trainer seeds the build
    untrained = model.bind([0]).initialize(model.input_shape_).module_.encoding.columns[0]
    assert not torch.equal(embedding.weight, untrained.weight)  # trained, not as built
    loaded = FleetDetector.load(fleet.save(tmp_path / "fifty.aetk"))
    clips = [tmp_path / "m07.wav", tmp_path / "m31.wav"]
    assert [r.score for r in loaded.score(clips)] == [r.score for r in fleet.score(clips)]
