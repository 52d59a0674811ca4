"""Import of the original authors' SF-MLP models: classification of the reference crystals,
file-format details, validation messages and the `molenv import-reference` command."""
import numpy as np
import pytest

from molenv.cli import main
from molenv.descriptors import compute_descriptors
from molenv.modelfile import read_model, write_model
from molenv.reference import (
    REFERENCE_CLASSES,
    ReferenceFormatError,
    import_reference,
    read_reference_weights,
    read_sf_input,
    shipped_reference_model,
)
from molenv.spec import load_spec
from molenv.trajectory import read_frames

pytestmark = pytest.mark.reference


def crystal_frames(reference_dir, molecule):
    if molecule == "urea":
        return read_frames(reference_dir / "urea" / "formI_6x6x6_molstruc.dump", "urea", type_elements="1:H,2:O,3:C,4:N")
    ref = reference_dir / "nicotinamide"
    return read_frames(ref / "formVII_5x2x2_molstruc.dump", "nicotinamide", type_elements=ref / "formVII_cell_gaff.data")


@pytest.mark.parametrize("molecule, form, n_molecules", [("urea", "I", 432), ("nicotinamide", "VII", 80)])
def test_reference_models_classify_their_crystal(reference_dir, molecule, form, n_molecules):
    model = shipped_reference_model(molecule, reference_dir)
    for frame in crystal_frames(reference_dir, molecule):
        p = model.predict_proba(compute_descriptors(frame, model.descriptors))
        assert p.shape == (n_molecules, len(REFERENCE_CLASSES[molecule]))
        predicted = np.array(model.classes)[p.argmax(axis=1)]
        assert np.all(predicted == form), f"{molecule}: {dict(zip(*np.unique(predicted, return_counts=True)))}"
        assert p[:, model.classes.index(form)].min() > 0.99


@pytest.mark.parametrize("molecule, vectors", [("urea", [(3, 6), (1, 2)]), ("nicotinamide", [(7, 9), (4, 1)])])
def test_wrong_vector_assignment_misclassifies(reference_dir, molecule, vectors):
    """The classification test can fail: the reference vectors swapped give another form."""
    right = shipped_reference_model(molecule, reference_dir)
    ref = reference_dir / molecule
    wrong = import_reference(
        ref / "sf_mlp_weights_molstruc.txt", ref / "sf_input_molstruc.dat",
        atoms_per_molecule=right.descriptors.atoms_per_molecule, centre_atom=right.descriptors.centre_atom,
        vectors=vectors, classes=right.classes,
    )
    frame = crystal_frames(reference_dir, molecule)[0]
    assert np.mean(wrong.predict_proba(compute_descriptors(frame, wrong.descriptors)).argmax(axis=1) == right.predict_proba(compute_descriptors(frame, right.descriptors)).argmax(axis=1)) < 0.5


@pytest.mark.parametrize("molecule", ["urea", "nicotinamide"])
def test_imported_descriptors_are_the_spec_descriptors(reference_dir, molecule):
    model = shipped_reference_model(molecule, reference_dir)
    assert model.descriptors == load_spec(molecule).descriptor_set()
    assert model.classes == REFERENCE_CLASSES[molecule]
    assert model.network.sizes == [24, 25, 25, len(model.classes)]
    assert model.network.hidden_activation == "sigmoid"
    assert model.network.output_activation == {"urea": "sigmoid", "nicotinamide": "softmax"}[molecule]
    assert model.meta["reference_iterations"] == {"urea": "1000", "nicotinamide": "2000"}[molecule]
    assert model.meta["reference_vec_ids"] == {"urea": "1:2 3:4", "nicotinamide": "10:9 4:6"}[molecule]


def test_weight_layout(reference_dir):
    """Row 0 of each layer block is the bias, row j the weights from input j (checked on raw tokens)."""
    path = reference_dir / "urea" / "sf_mlp_weights_molstruc.txt"
    tokens = path.read_text().split()
    net = read_reference_weights(path).network
    first_layer = 1 + 4 + 1 + 2 * (24 + 7) + 1  # counts, sizes, activation, scaling, iterations
    rows = np.array(tokens[first_layer:first_layer + 25 * 25], dtype=float).reshape(25, 25)
    assert np.array_equal(net.biases[0], rows[0])
    assert np.array_equal(net.weights[0][:, 3], rows[4])
    assert net.mean[0] == 6.578002 and net.stretch[0] == 0.166798
    # forward pass by hand for one input
    x = np.linspace(0, 20, 24)
    h = (x - net.mean) * net.stretch
    for w, b in zip(net.weights, net.biases):
        h = 1 / (1 + np.exp(-(w @ h + b)))
    np.testing.assert_allclose(net.forward(x[None])[0], h, rtol=1e-12, atol=1e-15)  # tanh-form sigmoid: absolute accuracy


def test_old_weight_files_without_activation_line_mean_sigmoid(reference_dir, tmp_path):
    path = reference_dir / "nicotinamide" / "sf_mlp_weights_molstruc.txt"
    lines = path.read_text().splitlines()
    assert lines[2].strip() == "1"
    old = tmp_path / "old.txt"
    old.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    new, legacy = read_reference_weights(path), read_reference_weights(old)
    assert new.activation_line and not legacy.activation_line
    assert new.network.output_activation == "softmax" and legacy.network.output_activation == "sigmoid"
    for a, b in zip(new.network.weights, legacy.network.weights):
        assert np.array_equal(a, b)
    # the line layout does not matter, only the values
    flat = tmp_path / "flat.txt"
    flat.write_text(" ".join(path.read_text().split()))
    assert read_reference_weights(flat).network.output_activation == "softmax"


def _edited(tmp_path, source, old, new, count=1):
    text = source.read_text()
    assert old in text
    path = tmp_path / source.name
    path.write_text(text.replace(old, new, count))
    return path


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("24 25 25 7 \n0\n", "24 25 25 7 \n3\n", "output activation 3 is unknown"),
        ("24 25 25 7", "24 25 26 7", r"layer sizes \[24, 25, 26, 7\] need \d+ values after them"),
        ("1000\n", "many\n", "iteration count: 'many' is not an integer"),
        ("0.000000e+00         1.000000e+00 \n", "0.000000e+00         2.000000e+00 \n", "output scaling pairs must all be '0 1'"),
        ("6.578002e+00         1.667980e-01", "6.578002e+00         0.0", "stretch of input 1 is zero"),
        ("6.578002e+00", "nan", "non-finite"),
    ],
)
def test_bad_weight_files(reference_dir, tmp_path, old, new, message):
    path = _edited(tmp_path, reference_dir / "urea" / "sf_mlp_weights_molstruc.txt", old, new)
    with pytest.raises(ReferenceFormatError, match=message) as err:
        read_reference_weights(path)
    assert str(path) in str(err.value)


def test_truncated_weight_file(reference_dir, tmp_path):
    path = tmp_path / "short.txt"
    path.write_text(" ".join((reference_dir / "urea" / "sf_mlp_weights_molstruc.txt").read_text().split()[:-30]))
    with pytest.raises(ReferenceFormatError, match="the file has"):
        read_reference_weights(path)


def test_sf_input(reference_dir):
    sf = read_sf_input(reference_dir / "nicotinamide" / "sf_input_molstruc.dat")
    assert (sf.rmin, sf.rmax) == (6.8, 7.0)
    assert sf.vec_ids == [(10, 9), (4, 6)]
    assert [f.kind for f in sf.functions] == ["S1"] * 4 + ["S3"] * 8 + ["S2"] * 4 + ["S4"] * 8
    assert sf.functions[5].params == (2.71, 1.11) and sf.functions[5].vector == 1
    assert sf.settings["center atom"] == "9" and sf.settings["atm in molec"] == "16"


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("G2G3             G3\nkappa            2.5 4.54", "G2G3             G4\nkappa            2.5 4.54", "unknown block type G2G3 'G4'"),
        ("eta              2.44 2.68 1.0 1.0", "eta              2.44 2.68 1.0", "'eta' has 3 values, number_of_para says 4"),
        ("num_sf           24", "num_sf           20", "num_sf is 20 but the blocks define 24"),
        ("num_pvsf_type    2", "num_pvsf_type    3", "num_pvsf_type is 3 but the blocks use 2 distinct vec_id pairs"),
        ("cutoffmax        10.0", "cutoffmax        9.0", "need 0 <= cutoffmin < cutoffmax"),
        ("fullNeigh        7", "fullneighbours   7", "unknown key 'fullneighbours'"),
        ("vec_id           1 2\nG2G3             G2", "vec_id           1\nG2G3             G2", "vec_id takes two atom types"),
        ("point            true\nG2G3             G2", "point            maybe\nG2G3             G2", "point must be 'true' or 'false'"),
        ("point            true\nG2G3             G2\nRs", "point            true\nG2G3             G2\nkappa  1 2 3 4\nRs", "'kappa' does not belong in a S1 block"),
    ],
)
def test_bad_sf_input(reference_dir, tmp_path, old, new, message):
    path = _edited(tmp_path, reference_dir / "urea" / "sf_input_molstruc.dat", old, new)
    with pytest.raises(ReferenceFormatError, match=message) as err:
        read_sf_input(path)
    assert str(path) in str(err.value)


def test_import_validates_against_the_given_geometry(reference_dir, tmp_path):
    ref = reference_dir / "urea"
    kwargs = dict(atoms_per_molecule=8, centre_atom=1, vectors=[(1, 2), (3, 6)], classes=REFERENCE_CLASSES["urea"])
    with pytest.raises(ReferenceFormatError, match=r"sf_input_molstruc.dat: the SF file uses 2 vectors .*, 1 were given"):
        import_reference(ref / "sf_mlp_weights_molstruc.txt", ref / "sf_input_molstruc.dat", **{**kwargs, "vectors": [(1, 2)]})
    with pytest.raises(ReferenceFormatError, match="the network has 7 outputs, 3 class names were given"):
        import_reference(ref / "sf_mlp_weights_molstruc.txt", ref / "sf_input_molstruc.dat", **{**kwargs, "classes": ["I", "IV", "Melt"]})
    with pytest.raises(ReferenceFormatError, match="vector 2 atom 9 is outside the molecule"):
        import_reference(ref / "sf_mlp_weights_molstruc.txt", ref / "sf_input_molstruc.dat", **{**kwargs, "vectors": [(1, 2), (3, 9)]})
    nic = reference_dir / "nicotinamide"
    fewer = tmp_path / "sf_20.dat"  # drop the last block: 20 symmetry functions for a 24-input network
    text = (ref / "sf_input_molstruc.dat").read_text().replace("num_sf           24", "num_sf           20")
    fewer.write_text(text[: text.rindex("number_of_para")])
    with pytest.raises(ReferenceFormatError, match=r"the network has 24 inputs, .*sf_20.dat defines 20 symmetry functions"):
        import_reference(ref / "sf_mlp_weights_molstruc.txt", fewer, **kwargs)
    with pytest.raises(ReferenceFormatError, match="the network has 10 outputs, 7 class names"):
        import_reference(nic / "sf_mlp_weights_molstruc.txt", ref / "sf_input_molstruc.dat", **kwargs)


# ----------------------------------------------------------------------------- command line


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    out = capsys.readouterr()
    return exit_.value.code, out.out, out.err


def test_cli_round_trip(reference_dir, tmp_path, capsys):
    ref = reference_dir / "urea"
    out = tmp_path / "urea_ref.molenv"
    code, stdout, _ = run_cli(
        ["import-reference", "--weights", str(ref / "sf_mlp_weights_molstruc.txt"), "--sf-input", str(ref / "sf_input_molstruc.dat"),
         "--atoms-per-molecule", "8", "--centre", "1", "--vectors", "1:2,3:6", "--classes", "I,IV,Melt,A,B,C,III", "--out", str(out)],
        capsys,
    )
    assert code == 0 and "24-25-25-7 (sigmoid outputs)" in stdout
    model = read_model(out)
    expected = shipped_reference_model("urea", reference_dir)
    assert model.descriptors == expected.descriptors and model.classes == expected.classes
    for a, b in zip(model.network.weights + model.network.biases, expected.network.weights + expected.network.biases):
        assert np.array_equal(a, b)
    assert np.array_equal(model.network.mean, expected.network.mean) and np.array_equal(model.network.stretch, expected.network.stretch)
    assert model.meta["reference_weights"] == "sf_mlp_weights_molstruc.txt"
    # written file reads back identical
    again = write_model(model, tmp_path / "again.molenv")
    assert again.read_text() == out.read_text()
    # --spec gives the same geometry
    code, _, _ = run_cli(
        ["import-reference", "--weights", str(ref / "sf_mlp_weights_molstruc.txt"), "--sf-input", str(ref / "sf_input_molstruc.dat"),
         "--spec", "urea", "--classes", "I,IV,Melt,A,B,C,III", "--out", str(tmp_path / "spec.molenv")],
        capsys,
    )
    assert code == 0 and read_model(tmp_path / "spec.molenv").descriptors == model.descriptors


def test_cli_help_and_errors(reference_dir, tmp_path, capsys):
    code, stdout, _ = run_cli(["import-reference", "--help"], capsys)
    assert code == 0 and "--weights" in stdout and "vec_id" in stdout
    ref = reference_dir / "urea"
    base = ["import-reference", "--weights", str(ref / "sf_mlp_weights_molstruc.txt"), "--sf-input", str(ref / "sf_input_molstruc.dat"),
            "--classes", "I,IV,Melt,A,B,C,III", "--out", str(tmp_path / "x.molenv")]
    code, _, err = run_cli(base + ["--atoms-per-molecule", "8", "--centre", "1", "--vectors", "1-2,3:6"], capsys)
    assert code == 2 and "--vectors: expected a:b pairs" in err
    code, _, err = run_cli(base + ["--atoms-per-molecule", "8"], capsys)
    assert code == 2 and "give --centre, --vectors (or --spec)" in err
    code, _, err = run_cli([*base[:2], str(tmp_path / "missing.txt"), *base[3:], "--spec", "urea"], capsys)
    assert code == 2 and "missing.txt: weight file not found" in err
    assert not (tmp_path / "x.molenv").exists()
