"""The GNN model file (kind gnn): torch -> file -> numpy reference evaluator.

The numpy evaluator (`molenv.gnn.numpy_model`) is the specification the C++ action will be
checked against, so it must equal the torch network: here to 1e-10 in float64 (it lands at
~1e-15) on periodic orthorhombic and triclinic frames, molecules split across the boundary
and a cluster, with one and two convolutions.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from _frames_support import sheared, wrapped
from _torch_support import one_torch_thread  # noqa: F401 - autouse fixture: one torch thread
from molenv.cli import main
from molenv.gnn import synthetic
from molenv.gnn.export import export_model_file, gnn_model_file
from molenv.gnn.graph import graph_edges as torch_graph_edges
from molenv.gnn.model import MolecularGNN
from molenv.gnn.modelfile import GNNModel, read_gnn_model, write_gnn_model
from molenv.gnn.numpy_model import GNNInputError, classify_frame
from molenv.modelfile import ModelFileError, read_model

FORMS = ["parallel", "antiparallel", "melt"]
SMALL = dict(hidden=32, conv_channels=16, num_radial=8)


def random_gnn(num_convs: int, seed: int = 0, **sizes) -> MolecularGNN:
    """A small untrained network with every parameter perturbed (LayerNorm weights away
    from 1, biases away from 0, frequencies away from k pi), so that every record of the
    file matters to the outputs."""
    torch.manual_seed(seed)
    model = MolecularGNN(n_forms=len(FORMS), num_convs=num_convs, **{**SMALL, **sizes}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def torch_probabilities(model: MolecularGNN, frame, reference: bool = False):
    """The torch network's probabilities for ``frame``, with the training pipeline's own
    graph builder (`molenv.gnn.graph.graph_edges`), edge lengths in float64."""
    atoms = frame.molecules.reshape(-1)
    edge_index, shift, wrapped = torch_graph_edges(frame.positions[atoms], frame.box, model.cutoff)
    length = np.linalg.norm(wrapped[edge_index[0]] + shift - wrapped[edge_index[1]], axis=1)
    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        out = model(
            torch.as_tensor(np.asarray(frame.atomic_numbers)[atoms], dtype=torch.long),
            torch.as_tensor(edge_index),
            torch.as_tensor(length, dtype=dtype),
            torch.arange(frame.n_molecules).repeat_interleave(frame.atoms_per_molecule),
            frame.n_molecules,
            reference=reference,
        )
    return out.polymorph_logits.softmax(-1).numpy(), out.topology_logits.softmax(-1).numpy()


# ----------------------------------------------------------------------------- frames


def make_frames():
    rng = np.random.default_rng(3)
    orthorhombic = synthetic.crystal("antiparallel", (2, 2, 4), rng)  # 13 x 20 x 14 A, whole molecules
    triclinic = sheared(synthetic.crystal("parallel", (3, 3, 4), rng))  # heights 16.7, 13.1, 14 A
    return {
        "orthorhombic": orthorhombic,
        "triclinic": triclinic,
        "split": wrapped(orthorhombic),
        "triclinic-split": wrapped(triclinic),
        "cluster": synthetic.cluster(synthetic.crystal("parallel", (3, 4, 6), rng), 7.0)[0],
    }


FRAMES = make_frames()


def test_test_frames_are_what_they_claim():
    assert np.allclose(FRAMES["orthorhombic"].box[3:], 90) and not np.allclose(FRAMES["triclinic"].box[3:], 90)
    np.testing.assert_allclose(FRAMES["triclinic"].box_matrix()[1:, 0], [4.05, 2.8])  # the cell the shear makes
    for name in ("split", "triclinic-split"):
        frame = FRAMES[name]
        extent = np.ptp(frame.positions[frame.molecules], axis=1).max(axis=1)
        assert (extent > 5.0).sum() >= 4, name  # molecules (< 4.1 A across) split across faces
    assert FRAMES["cluster"].box is None


# ----------------------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(torch model, model file path, GNNModel read back) for 1 and 2 convolutions."""
    folder = tmp_path_factory.mktemp("gnnfile")
    out = {}
    for convs in (1, 2):
        model = random_gnn(convs, seed=convs)
        path = export_model_file(model, folder / f"conv{convs}.molenv", FORMS, synthetic.UREA_Z, name=f"toy {convs} conv", meta={"seed": str(convs)})
        out[convs] = model, path, read_gnn_model(path)
    return out


@pytest.mark.parametrize("frame_name", list(FRAMES))
@pytest.mark.parametrize("convs", [1, 2])
def test_numpy_evaluator_equals_torch_in_float64(exported, convs, frame_name):
    model, _, file_model = exported[convs]
    frame = FRAMES[frame_name]
    got = classify_frame(file_model, frame)
    model64 = copy.deepcopy(model).double()
    for reference in (False, True):  # the fast attention and torch_geometric's TransformerConv itself
        polymorph, topology = torch_probabilities(model64, frame, reference)
        np.testing.assert_allclose(got.polymorph, polymorph, rtol=0, atol=1e-10)
        np.testing.assert_allclose(got.topology, topology, rtol=0, atol=1e-10)
    assert got.polymorph.shape == (frame.n_molecules, 3) and got.topology.shape == (frame.n_molecules, 2)
    np.testing.assert_allclose(got.polymorph.sum(1), 1.0, atol=1e-14)
    # the network is not trivially constant: molecules differ
    assert np.ptp(got.polymorph[:, 0]) > 1e-4


@pytest.mark.parametrize("convs", [1, 2])
def test_numpy_evaluator_near_float32_torch(exported, convs):
    """The deployed (float32) network: the same to float32 rounding."""
    model, _, file_model = exported[convs]
    frame = FRAMES["split"]
    polymorph, topology = torch_probabilities(model, frame)
    got = classify_frame(file_model, frame)
    np.testing.assert_allclose(got.polymorph, polymorph, rtol=0, atol=2e-6)
    np.testing.assert_allclose(got.topology, topology, rtol=0, atol=2e-6)


def test_published_sizes(tmp_path):
    """The published layout (hidden 256, 128 channels, 32 radial functions, embedding 5)."""
    torch.manual_seed(5)
    model = MolecularGNN(n_forms=len(FORMS)).eval()
    path = export_model_file(model, tmp_path / "big.molenv", FORMS, synthetic.UREA_Z)
    back = read_gnn_model(path)
    assert (back.hidden, back.channels, back.num_radial, back.type_dim, len(back.head)) == (256, 128, 32, 5, 2)
    frame = FRAMES["split"]
    polymorph, topology = torch_probabilities(copy.deepcopy(model).double(), frame)
    got = classify_frame(back, frame)
    np.testing.assert_allclose(got.polymorph, polymorph, rtol=0, atol=1e-10)
    np.testing.assert_allclose(got.topology, topology, rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------- the file


def test_round_trip_is_bit_exact(exported, tmp_path):
    model, path, back = exported[2]
    again = write_gnn_model(back, tmp_path / "again.molenv")
    assert again.read_text() == path.read_text()
    # every number is the float64 value of the float32 parameter, exactly
    assert np.array_equal(back.convs[1].key.weight, model.convs[1].conv.lin_key.weight.detach().double().numpy())
    assert np.array_equal(back.radial_frequencies, model.basis.freq.detach().double().numpy())
    assert np.array_equal(back.embedding, model.type_embedding.weight.detach().double().numpy()[[1, 6, 7, 8]])
    assert back.atom_types == [1, 6, 7, 8] and back.molecule_atoms == synthetic.UREA_Z.tolist()
    assert back.classes == FORMS and back.topology_classes == ["bulk", "surface"]
    assert back.meta == {"seed": "2"} and back.name == "toy 2 conv"
    assert (back.cutoff, back.envelope_exponent, len(back.convs)) == (6.0, 5, 2)
    assert back.convs[0].edge.bias is None and back.output.bias is None and back.convs[0].beta.weight.shape == (1, 48)


def test_kinds_are_kept_apart(exported, tmp_path):
    """read_model (SF) refuses a GNN file with a message pointing to read_gnn_model, and the
    other way round; an SF file reads as before (tests/test_modelfile.py covers the rest)."""
    from test_modelfile import random_model

    from molenv.modelfile import Model, write_model

    _, path, back = exported[1]
    assert isinstance(back, GNNModel)
    with pytest.raises(ModelFileError, match=r"unsupported model file version 2 .* kind 'gnn'.*read_gnn_model"):
        read_model(path)
    sf = write_model(random_model(), tmp_path / "sf.molenv")
    assert isinstance(read_model(sf), Model)
    with pytest.raises(ModelFileError, match=r"found version 1 \(an SF model file: read it with molenv.modelfile.read_model\)"):
        read_gnn_model(sf)


def _lines(path) -> list[str]:
    return path.read_text().splitlines()


def _header(lines: list[str], start: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(start))


def _edited(exported, tmp_path, edit) -> str:
    """The message of reading the 1-conv file after ``edit(lines)`` changed its lines."""
    _, path, _ = exported[1]
    lines = _lines(path)
    edit(lines)
    bad = tmp_path / "bad.molenv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(ModelFileError) as err:
        read_gnn_model(bad)
    assert str(err.value).startswith(str(bad))
    return str(err.value)


def _replace(old: str, new: str):
    def edit(lines):
        i = _header(lines, old)
        lines[i] = lines[i].replace(old, new, 1)

    return edit


def _shrink_key_outputs(lines):
    """linear key 16 -> 15 outputs, one row fewer: consistent within the record, not with the model."""
    i = _header(lines, "linear key ")
    lines[i] = "linear key 16 15 bias"
    del lines[i + 16]


def _drop_number(start: str, row: int):
    def edit(lines):
        i = _header(lines, start) + row
        lines[i] = lines[i].rsplit(" ", 1)[0]

    return edit


def _set_number(start: str, row: int, value: str):
    def edit(lines):
        i = _header(lines, start) + row
        lines[i] = " ".join([value] + lines[i].split()[1:])

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        # inconsistent shapes (each record well formed, the network does not chain)
        (_shrink_key_outputs, r"conv 1 linear 'key' has shape \(15, 16\) \(outputs, inputs\); the model needs \(16, 16\)"),
        (_replace("linear edge 16 16 nobias", "linear edge 16 16 bias"), r"conv 1 linear 'edge' row 1 \(bias \+ 16 weights\) has 16 numbers, expected 17"),
        (_replace("molecule_atoms 8 6 8 7 1 1 7 1 1", "molecule_atoms 8 6 8 7 1 1 7 1 9"), r"molecule_atoms has elements \[9\] that are not atom types \[1, 6, 7, 8\]"),
        # unknown and missing records, records out of order
        (lambda lines: lines.insert(_header(lines, "pooling"), "dropout 0.5"), r":\d+: unknown record 'dropout' \(expected 'pooling'\)"),
        (lambda lines: lines.remove("pooling max"), r"expected record 'pooling', found 'head_block_count'"),
        (lambda lines: lines.remove("topology_classes 2 bulk surface"), r"expected record 'topology_classes', found 'molecule_atoms'"),
        (lambda lines: lines.remove("end"), r"unexpected end of file, expected end"),
        (_replace("linear query", "linear value"), r"expected conv 1 linear 'query', found linear 'value'"),
        # wrong counts
        (_replace("conv_count 1", "conv_count 2"), r"expected record 'conv', found 'pooling'"),
        (_replace("classes 3 parallel", "classes 4 parallel"), r"'classes' announces 4 names, found 3"),
        (_replace("atom_types 4 5", "atom_types 4 6"), r"'atom_type' 1 has 5 embedding numbers, expected 6"),
        (_replace("radial_basis bessel 8 5", "radial_basis bessel 9 5"), r"'radial_frequencies' has 8 numbers, radial_basis announces 9"),
        (_drop_number("layer_norm block_norm", 1), r"conv 1 layer_norm weight has 31 numbers, expected 32"),
        (_replace("head_block 2", "head_block 3"), r"head_block: expected index 2, found 3"),
        # unsupported variants and bad numbers
        (_replace("kind gnn", "kind gat"), r"unknown model kind 'gat'"),
        (_replace("activation gelu_erf", "activation gelu_tanh"), r"unsupported activation 'gelu_tanh' \(this molenv knows 'gelu_erf'\)"),
        (_replace("attention transformer 1", "attention transformer 4"), r"unsupported attention 'transformer 4'"),
        (_set_number("linear output", 2, "nan"), r"linear 'output' row 2 .*: non-finite number 'nan'"),
        (_replace("layer_norm block_norm 32 1e-05", "layer_norm block_norm 32 0.0"), r"conv 1 layer_norm 'block_norm' eps must be a positive number"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_files_are_refused_naming_the_problem(exported, tmp_path, edit, message):
    import re

    assert re.search(message, _edited(exported, tmp_path, edit)), message


# ----------------------------------------------------------------------------- bad frames


def test_bad_frames_are_refused(exported):
    _, _, model = exported[1]
    frame = FRAMES["orthorhombic"]
    fluorine = frame.atomic_numbers.copy()
    fluorine[frame.molecules[3, 4]] = 9  # one H -> F
    with pytest.raises(GNNInputError, match=r"elements \(atomic numbers\) \[9\] that the GNN's atom-type embedding does not know \(it knows \[1, 6, 7, 8\]\)"):
        classify_frame(model, frame.replace(atomic_numbers=fluorine))
    swapped = frame.replace(molecules=frame.molecules[:, [1, 0, 2, 3, 4, 5, 6, 7]])  # O before C
    with pytest.raises(GNNInputError, match=r"not the model's molecule \(molecule_atoms \[6, 8, 7, 1, 1, 7, 1, 1\]\) in the same atom order"):
        classify_frame(model, swapped)
    small = synthetic.crystal("parallel", (2, 2, 4), np.random.default_rng(0))  # 12 x 9 x 14 A
    with pytest.raises(GNNInputError, match=r"box is too small for the GNN's graph cutoff of 6 A: .* exceed twice the cutoff \(12 A\)"):
        classify_frame(model, small)


def test_gnn_model_file_checks_its_inputs():
    model = random_gnn(1)
    with pytest.raises(ValueError, match="2 form names for a model with 3"):
        gnn_model_file(model, FORMS[:2], synthetic.UREA_Z)
    with pytest.raises(ValueError, match=r"embedding covers atomic numbers 0..99"):
        gnn_model_file(model, FORMS, [6, 120])


# ----------------------------------------------------------------------------- molenv export


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import lightning as L

    from molenv.gnn.lightning import GNNClassifier

    torch.manual_seed(0)
    net = GNNClassifier(FORMS, dropout=0.0, **SMALL).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": dict(net.hparams), "pytorch-lightning_version": L.__version__, "epoch": 3}, path)
    return net, path


def run_export(capsys, *args) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["export", *map(str, args)])
    out = capsys.readouterr()
    return exit_.value.code, out.out + out.err


def test_export_command_writes_molenv_or_torchscript(checkpoint, tmp_path, capsys):
    net, ckpt = checkpoint
    code, out = run_export(capsys, ckpt, "--out", tmp_path / "m.molenv", "--molecule", "urea", "--name", "tiny toy GNN")
    assert code == 0, out
    assert "classes parallel, antiparallel, melt; topology bulk, surface; hidden 32, 1 conv(s) of 16 channels" in out
    model = read_gnn_model(tmp_path / "m.molenv")
    assert model.name == "tiny toy GNN" and model.molecule_atoms == [6, 8, 7, 1, 1, 7, 1, 1]  # urea spec order
    assert model.meta["molecule"] == "urea" and model.meta["epoch"] == "3" and model.meta["command"].startswith("molenv export")
    got = classify_frame(model, FRAMES["split"])
    polymorph, _ = torch_probabilities(copy.deepcopy(net.model).double(), FRAMES["split"])
    np.testing.assert_allclose(got.polymorph, polymorph, rtol=0, atol=1e-10)
    # TorchScript, as before
    code, out = run_export(capsys, ckpt, "--out", tmp_path / "m.pt")
    assert code == 0 and "(TorchScript)" in out
    # no molecule known (no dataset recorded): a clear error; an unknown suffix: too
    code, out = run_export(capsys, ckpt, "--out", tmp_path / "n.molenv")
    assert code == 2 and "cannot tell which molecule the model was trained on" in out and "--molecule" in out
    code, out = run_export(capsys, ckpt, "--out", tmp_path / "m.onnx")
    assert code == 2 and "(.molenv) or as TorchScript (.pt)" in out


def test_export_takes_the_molecule_from_the_training_dataset(checkpoint, tmp_path, capsys):
    """The checkpoint's fit record names the dataset, whose manifest names the spec (here by
    a path that has gone, so by its shipped name)."""
    import json

    net, ckpt = checkpoint
    state = torch.load(ckpt, weights_only=False)
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "manifest.json").write_text(json.dumps({"spec": {"name": "urea", "path": str(tmp_path / "gone.toml")}}))
    state["molenv_fit"] = {"dataset": str(tmp_path / "dataset"), "dataset_manifest_sha256": "abc"}
    torch.save(state, tmp_path / "fit.ckpt")
    code, out = run_export(capsys, tmp_path / "fit.ckpt", "--out", tmp_path / "m.molenv")
    assert code == 0, out
    model = read_gnn_model(tmp_path / "m.molenv")
    assert model.molecule_atoms == [6, 8, 7, 1, 1, 7, 1, 1] and model.meta["dataset_manifest_sha256"] == "abc"
    assert model.name == "urea GNN (parallel, antiparallel, melt)"
