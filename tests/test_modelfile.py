"""Model file: exact round trip and validation messages."""
import numpy as np
import pytest

from molenv.modelfile import Model, ModelFileError, Network, read_model, write_model
from molenv.spec import load_spec


def random_model(seed=0, output="softmax"):
    rng = np.random.default_rng(seed)
    spec = load_spec("urea")
    n = spec.descriptor_set().n_features
    sizes = [n, 6, 5, 3]
    weights = [rng.normal(size=(b, a)) for a, b in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(size=b) for b in sizes[1:]]
    net = Network(rng.normal(size=n), rng.uniform(0.1, 2, size=n), weights, biases, "sigmoid", output)
    return Model("random urea", ["I", "IV", "Melt"], spec.descriptor_set(), net, {"seed": str(seed)})


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_round_trip_is_exact(tmp_path, output):
    model = random_model(output=output)
    back = read_model(write_model(model, tmp_path / "m.molenv"))
    x = np.random.default_rng(1).normal(size=(7, model.descriptors.n_features)) * 10
    assert np.array_equal(model.predict_proba(x), back.predict_proba(x))
    for w, v in zip(model.network.weights, back.network.weights):
        assert np.array_equal(w, v)
    assert back.classes == model.classes and back.meta == model.meta
    assert back.descriptors == model.descriptors


def test_softmax_rows_sum_to_one():
    p = random_model().predict_proba(np.random.default_rng(2).normal(size=(5, 24)))
    assert np.allclose(p.sum(axis=1), 1.0)


def _edit(tmp_path, old, new):
    path = write_model(random_model(), tmp_path / "m.molenv")
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("molenv_model 1", "molenv_model 2", "unsupported model file version 2"),
        ("centre_atom 1", "centre_atom 9", "centre atom 9 is outside the molecule"),
        ("vector 2 3 6", "vector 2 3 12", "vector 2 atom 12 is outside the molecule"),
        ("cutoff 9.8 10.0", "cutoff 10.0 9.8", "rmin < rmax"),
        ("descriptor 1 S1 - 6.16 2.44", "descriptor 1 S1 - nan 2.44", "non-finite"),
        ("descriptor 1 S1 - 6.16 2.44", "descriptor 1 S7 - 6.16 2.44", "unknown kind 'S7'"),
        ("descriptor 5 S3 1", "descriptor 5 S3 3", "vector index in 1..2"),
        ("classes 3 I IV Melt", "classes 4 I IV Melt", "announces 4 names, found 3"),
        ("layer 3 5 3", "layer 3 5 4", "layer 3 row 4"),
        ("hidden_activation sigmoid", "hidden_activation relu6", "unknown hidden activation"),
        ("end", "", "unexpected end of file"),
    ],
)
def test_validation_messages(tmp_path, old, new, message):
    path = _edit(tmp_path, old, new)
    with pytest.raises(ModelFileError, match=message.replace("(", r"\(")) as err:
        read_model(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="model file not found"):
        read_model(tmp_path / "nope.molenv")
