"""The SF classifier: input scaling, torch network = model-file network, seeded training
(same data + seed -> same model), checkpoints and exported model files."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molenv.dataset import DatasetError
from molenv.descriptors import descriptor_set_to_dict
from molenv.featurize import featurize, sources_from_manifest
from molenv.modelfile import HIDDEN_ACTIVATIONS, read_model
from molenv.models import open_model
from molenv.sf.export import export_sf
from molenv.sf.model import SFClassifier, input_scaling
from molenv.sf.train import SFTrainConfig, load_sf, train_sf, training_molecules
from molenv.spec import load_spec

from conftest import REPO


def test_input_scaling_is_the_reference_one():
    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, -2.0], [2.0, 5.0, 0.0]])
    mean, stretch = input_scaling(x)
    assert np.allclose(mean, [2.0, 5.0, 0.0])
    assert np.allclose(stretch, [2 / 2.0, 1.0, 2 / 4.0])  # 2 / (max - min); 1 for a constant feature
    scaled = (x - mean) * stretch
    assert np.allclose(scaled.max(0) - scaled.min(0), [2.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        input_scaling(np.zeros((0, 3)))


def test_cli_activations_are_the_model_files():
    """`molenv train sf --activation` offers exactly the hidden activations a model file holds."""
    import argparse

    from molenv.sf.cli import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    activation = next(a for a in parser._actions if a.dest == "activation")
    assert tuple(activation.choices) == HIDDEN_ACTIVATIONS


@pytest.mark.parametrize("activation", HIDDEN_ACTIVATIONS)
def test_model_file_network_equals_torch(activation):
    torch.manual_seed(0)
    spec = load_spec("urea")
    clf = SFClassifier(["a", "b", "c"], descriptor_set_to_dict(spec.descriptor_set()), hidden=(7, 5), activation=activation)
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(50, 24))
    clf.set_scaling(x)
    model = clf.to_model(meta={"note": "test"})
    assert model.network.sizes == [24, 7, 5, 3] and model.network.output_activation == "softmax"
    with torch.no_grad():
        p_torch = torch.softmax(clf(torch.as_tensor(x)), 1).numpy()
        hidden_torch = clf.layer_outputs(torch.as_tensor(x))[-2].numpy()
    layers = model.network.layer_outputs(x)
    assert np.abs(layers[-1] - p_torch).max() < 1e-14
    assert np.abs(layers[-2] - hidden_torch).max() < 1e-13
    with pytest.raises(ValueError, match="two or more classes"):
        SFClassifier(["a"], descriptor_set_to_dict(spec.descriptor_set()))
    with pytest.raises(ValueError, match="unknown activation"):
        SFClassifier(["a", "b"], descriptor_set_to_dict(spec.descriptor_set()), activation="relu")


def small_config(seed: int = 0) -> SFTrainConfig:
    return SFTrainConfig(max_epochs=3, seed=seed, batch_size=128)


@pytest.fixture(scope="module")
def trained(urea_md_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("sf")
    return out, train_sf(urea_md_dataset, small_config(), out)


def test_training_writes_checkpoint_logs_and_config(trained, urea_md_dataset):
    out, checkpoint = trained
    assert checkpoint == out / "checkpoints" / "best.ckpt" and checkpoint.is_file()
    assert (out / "logs" / "metrics.csv").read_text().count("\n") > 3
    info = json.loads((out / "train_config.json").read_text())
    assert info["config"]["hidden"] == [25, 25] and info["provenance"]["train_sources"] == ["urea-I-100K", "urea-IV-100K", "urea-melt-350K"]
    clf = load_sf(checkpoint)
    # scaling from the periodic bulk training molecules, stored with the model
    train = training_molecules(urea_md_dataset, "train")
    assert np.allclose(clf.mean.numpy(), train.features.mean(0), rtol=1e-12)
    expected = sum(s["frames"]["train"] * s["n_molecules"] for s in urea_md_dataset.manifest["sources"] if s["periodic"])
    assert len(train) == info["provenance"]["train_molecules"] == expected > 0
    # learns: three epochs already separate the classes on validation frames
    val = training_molecules(urea_md_dataset, "val")
    assert (clf.to_model().predict_proba(val.features).argmax(1) == val.labels).mean() > 0.9


def test_same_data_and_seed_give_the_same_model(trained, urea_md_dataset, tmp_path):
    _, first = trained
    again = train_sf(urea_md_dataset, small_config(), tmp_path / "again")
    other = train_sf(urea_md_dataset, small_config(seed=1), tmp_path / "other")
    a, b, c = (load_sf(p).state_dict() for p in (first, again, other))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_input_noise_changes_training_only(trained, urea_md_dataset, tmp_path):
    # noise on the training inputs: another model than without it, the same one for the same
    # seed, and the training data (so the input scaling) are unchanged
    _, plain = trained
    noisy = [train_sf(urea_md_dataset, SFTrainConfig(max_epochs=3, batch_size=128, input_noise=0.2), tmp_path / d) for d in ("a", "b")]
    a, b, c = (load_sf(p).state_dict() for p in (noisy[0], noisy[1], plain))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.weight"], c["layers.0.weight"])
    assert torch.equal(a["mean"], c["mean"]) and torch.equal(a["stretch"], c["stretch"])
    assert json.loads((tmp_path / "a" / "train_config.json").read_text())["config"]["input_noise"] == 0.2
    # still learns the (well separated) urea classes
    val = training_molecules(urea_md_dataset, "val")
    assert (load_sf(noisy[0]).to_model().predict_proba(val.features).argmax(1) == val.labels).mean() > 0.9
    with pytest.raises(ValueError, match="input_noise must be >= 0"):
        SFClassifier(["a", "b"], descriptor_set_to_dict(load_spec("urea").descriptor_set()), input_noise=-1.0)


def test_export_writes_provenance(trained, urea_md_dataset, tmp_path):
    _, checkpoint = trained
    model = export_sf(checkpoint, tmp_path / "m.molenv", command="molenv export x --out m.molenv")
    back = read_model(tmp_path / "m.molenv")
    assert back.classes == ["I", "IV", "melt"] and back.name == "urea SF-MLP (I, IV, melt)"
    assert back.meta["dataset_manifest_sha256"] == urea_md_dataset.manifest_sha256()
    assert back.meta["train_sources"] == "urea-I-100K,urea-IV-100K,urea-melt-350K"
    assert json.loads(back.meta["config"])["seed"] == 0 and float(back.meta["best_val_loss"]) > 0
    assert back.meta["command"] == "molenv export x --out m.molenv"
    x = urea_md_dataset.molecules("test").features
    assert np.array_equal(back.predict_proba(x), model.predict_proba(x))  # the file round-trips exactly
    # the checkpoint, and its run directory, open as the same network (`molenv classify`, `molenv evaluate`)
    for path in (checkpoint, checkpoint.parent.parent):
        opened = open_model(path)
        assert (opened.kind, opened.form, opened.path, opened.classes) == ("sf", "checkpoint", checkpoint, back.classes)
        assert np.array_equal(opened.model.predict_proba(x), back.predict_proba(x))


def test_training_needs_two_bulk_classes(tmp_path):
    sources = sources_from_manifest(REPO / "data/manifest.json", "urea", ["urea-I-100K", "urea-IV-cluster-100K"])
    for s in sources:
        s.reader["stop"] = 3
    ds = featurize(sources, "urea", tmp_path / "ds", progress=False)
    with pytest.raises(DatasetError, match="single class .I."):
        train_sf(ds, small_config(), tmp_path / "run")


def test_train_sf_options_are_checked():
    import argparse

    from molenv.cli import CommandError
    from molenv.sf.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["ds", "--out", "o", "--input-noise", "0.2"])).input_noise == 0.2
    with pytest.raises(SystemExit):  # refused by argparse (tests/test_bad_input.py has the message)
        parser.parse_args(["ds", "--out", "o", "--input-noise", "-0.1"])
    with pytest.raises(CommandError, match="--hidden"):
        config_from_args(parser.parse_args(["ds", "--out", "o", "--hidden", "25,x"]))
