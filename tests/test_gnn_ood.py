"""The out-of-distribution score ("none of these", issue 16) of the GNN kind: the ood block
of a GNN model file (version 4) on the radial sums of the molecule's atoms or the inputs of a
head layer, `molenv.gnn.numpy_model`'s score, and MOLENV_CLASSIFY OOD with a GNN model: PROB_FILE's other column and n_other /
f_other equal Python's numbers to 1e-9, and their analytic derivatives (the score's
gradient entering GraphNetwork's reverse pass at its head layer) equal central finite
differences of positions and cell on orthorhombic and triclinic cells, molecules split
across the boundary, a skewed cell and a cluster without box; the bias forces of the
default mode equal FULL_DERIVATIVES' and two threads'. The tools on real urea frames:
`molenv ood-calibrate` of a GNN model file, `molenv evaluate` of it and `molenv classify
--ood`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _fd_support import assert_derivatives_match, assert_forces_match, assert_virial_matches, directional_frames, forces_in_every_mode, perturbed_frames
from _gnn_support import ARGS, CUTOFF, FRAMES, driver_files, head, run_driver
from molenv.gnn import synthetic
from molenv.gnn.modelfile import read_gnn_model, write_gnn_model
from molenv.gnn.numpy_model import classify_frame
from molenv.modelfile import ModelFileError, read_model
from molenv.ood import fit_ood, layer_name

EPS = 1e-6  # A (and A for the cell entries)

FORMS = ["I", "IV", "melt"]


def toy_ood_model(folder: Path, layer: int, convs: int = 2, seed: int = 2):
    """(path, GNNModel) of a random toy GNN with an ood block on the features of `layer` (1:
    the radial sums of the molecule's atoms, 2: the pooled embedding, 3: head block 2's
    inputs, 4: the output layer's), fitted on the
    molecules of the test frames (labels: the model's own calls), its threshold at the median
    distance and a narrow width, so that other varies from 0 to 1 across the molecules and
    its derivatives are large."""
    model = synthetic.random_model(np.random.default_rng(seed), cutoff=CUTOFF, convs=convs)
    outs = [classify_frame(model, frame) for frame in FRAMES.values()]
    h = np.concatenate([o.ood_features[layer - 1] for o in outs])
    labels = np.concatenate([o.polymorph.argmax(1) for o in outs])
    score = fit_ood(h, labels, model.classes, h, layer=layer)
    d = score.distance(h)
    score.threshold, score.width = float(np.median(d)), float(0.3 * d.std())
    model.ood = score
    return write_gnn_model(model, folder / f"ood{layer}.molenv"), model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gnn-ood")
    return {layer: toy_ood_model(folder, layer) for layer in (1, 2, 3, 4)}


def test_model_file_round_trip(tmp_path, models):
    """A model with the block is written as version 4 and read back bit for bit; one without
    it stays version 2, byte for byte; the SF reader names the kind of a version 4 file."""
    path, model = models[4]
    text = path.read_text()
    assert text.splitlines()[1:3] == ["molenv_model 4", "kind gnn"] and "\nood mahalanobis 4 8 " in text
    again = read_gnn_model(path)
    assert again.ood.whitening.tobytes() == model.ood.whitening.tobytes() and again.ood.threshold == model.ood.threshold
    write_gnn_model(again, tmp_path / "again.molenv")
    assert (tmp_path / "again.molenv").read_bytes() == path.read_bytes()
    again.ood = None
    plain = write_gnn_model(again, tmp_path / "plain.molenv")
    assert plain.read_text().splitlines()[1] == "molenv_model 2" and "ood" not in plain.read_text()
    assert classify_frame(read_gnn_model(plain), FRAMES["orthorhombic"]).other is None
    with pytest.raises(ModelFileError, match="unsupported model file version 4 for read_model, which reads SF model files .* of kind 'gnn'"):
        read_model(path)
    model.ood.layer = 5  # not a layer (the radial sums, 2 head blocks, the output layer)
    with pytest.raises(ModelFileError, match=r"ood: layer 5 is not a layer of the network \(1..4\)"):
        write_gnn_model(model, tmp_path / "bad.molenv")
    model.ood.layer = 4


def test_numpy_score_is_the_score_of_its_layer(models):
    for layer, (_, model) in models.items():
        frame = FRAMES["triclinic-split"]
        out = classify_frame(model, frame)
        np.testing.assert_array_equal(out.other, model.ood.other(out.ood_features[layer - 1]))
        assert [h.shape for h in out.ood_features] == [(18, 8 * 4)] + [(18, 8)] * 3
    # layer 1: the radial basis summed over the edges into each atom, atoms concatenated
    from molenv.gnn.numpy_model import graph_edges, radial_basis

    atoms = frame.molecules.reshape(-1)
    target, _, distance = graph_edges(frame.positions[atoms], frame.box, model.cutoff)
    basis = radial_basis(distance, model)
    sums = np.array([basis[target == i].sum(axis=0) for i in range(len(atoms))]).reshape(18, -1)
    np.testing.assert_allclose(out.ood_features[0], sums, rtol=1e-13, atol=1e-13)


COLUMNS = ["g.n_other", "g.f_other", "g.n_I", "g.nmol"]


@pytest.mark.parametrize("layer", [1, 2, 3, 4])
def test_plumed_gives_pythons_other(tmp_path, models, layer):
    """PROB_FILE (polymorph, other, topology columns), p_other and n_other / f_other on every
    test frame (orthorhombic, split, triclinic split, skewed cell, cluster): Python's numbers."""
    path, model = models[layer]
    frames = list(FRAMES.values())
    others = []
    for name, frame in FRAMES.items():
        folder = tmp_path / name
        text = head(f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{frame.n_atoms} OOD PROB_FILE=prob.dat PROB_VECTORS\n"
                    f"so: SUM ARG=g.p_other PERIODIC=NO\nPRINT ARG={','.join(COLUMNS)},so FILE=colvar FMT=%.17g\n")
        run = run_driver(folder, text, ARGS, driver_files([frame], path))
        assert run.returncode == 0, run.output[-3000:]
        assert "out-of-distribution score as class other (OOD)" in run.output and f"layer {layer} ({layer_name(layer, 'gnn')}" in run.output
        ref = classify_frame(model, frame)
        fields, prob = run.read_table("prob.dat")
        assert fields == ["time", "mol", *FORMS, "other", "bulk", "surface"]
        np.testing.assert_allclose(prob[:, 2:], np.c_[ref.polymorph, ref.other, ref.topology], rtol=0, atol=1e-9, err_msg=name)
        _, colvar = run.read_table("colvar")
        N = frame.n_molecules
        np.testing.assert_allclose(colvar[0, 1:], [ref.other.sum(), ref.other.mean(), ref.polymorph[:, 0].sum(), N, ref.other.sum()], rtol=1e-10, atol=1e-11)
        others.append(ref.other)
    others = np.concatenate(others)
    assert 0.1 < np.mean(others > 0.5) < 0.9 and len(frames) == 5  # the check has something to check


@pytest.mark.parametrize("name, layer", [("orthorhombic", 1), ("split", 1), ("triclinic-split", 1), ("skewed-cell", 1), ("cluster", 1),
                                         ("split", 2), ("triclinic-split", 3), ("skewed-cell", 4), ("cluster", 2)])
def test_derivatives_of_other_against_finite_differences(tmp_path, models, name, layer):
    """The derivative arrays (DUMPDERIVATIVES) of n_other, f_other and n_I with respect to
    atoms and cell against central differences of the printed values (as
    tests/test_plumed_gnn_forces.py for the classes' components)."""
    path, _ = models[layer]
    frame = FRAMES[name]
    n = frame.n_atoms
    positions, boxes, checks, h = perturbed_frames(frame.positions, frame.box_matrix(), np.random.default_rng(len(name) + layer), EPS)
    comps = COLUMNS[:3]
    text = head(f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{n} OOD\nPRINT ARG={','.join(comps)} FILE=colvar FMT=%.17g\n"
                f"DUMPDERIVATIVES ARG={','.join(comps)} FILE=deriv FMT=%.17g STRIDE=1000000\n")
    run = run_driver(tmp_path, text, ARGS, driver_files(positions, path, boxes))
    assert run.returncode == 0, run.output[-3000:]
    values = run.read_table("colvar")[1][:, 1:]
    fields, deriv = run.read_table("deriv")
    assert fields == ["time", "parameter", *comps] and len(deriv) == 3 * n + 9
    for c, comp in enumerate(comps):
        d = deriv[:, 2 + c]
        assert_derivatives_match(values[:, c], d[: 3 * n].reshape(n, 3), d[3 * n :], h, checks, EPS, comp)


RESTRAINTS = """b0: RESTRAINT ARG=g.n_other AT=4.0 KAPPA=0.7 SLOPE=0.3
b1: RESTRAINT ARG=g.f_other,g.f_I AT=0.2,0.5 KAPPA=30,8
PRINT ARG=b0.bias,b1.bias FILE=energy FMT=%.17g
"""


@pytest.mark.parametrize("name, layer", [("triclinic-split", 1), ("triclinic-split", 3), ("cluster", 1)])
def test_bias_forces_in_both_modes_and_threads(tmp_path, models, name, layer):
    """Forces and virial of restraints on n_other, f_other and f_I: the default mode (one
    reverse pass, other's seed with the classes') = FULL_DERIVATIVES = two threads, and =
    central differences of the bias energy along random directions of atoms and cell."""
    path, _ = models[layer]
    frame = FRAMES[name]
    rng = np.random.default_rng(5)
    x0 = frame.positions
    u, dh = rng.normal(size=x0.shape), rng.normal(size=(3, 3))
    positions, boxes, h = directional_frames(x0, frame.box_matrix(), u, dh, EPS)
    files = driver_files(positions, path, boxes)
    runs = forces_in_every_mode(tmp_path, lambda extra: head(f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{frame.n_atoms} OOD {extra}\n") + RESTRAINTS,
                                ARGS, files)
    energy = runs["default"].read_table("energy")[1][:, 1:].sum(axis=1)
    virial, forces = runs["default"].read_dump_forces()[0]
    assert_forces_match(energy[1], energy[2], forces, u, EPS)
    assert_virial_matches(energy[3], energy[4], virial, h, dh, EPS)


def test_ood_is_refused_without_an_ood_block(tmp_path):
    from _gnn_support import model_file

    path, _ = model_file(tmp_path, seed=1)
    frame = FRAMES["orthorhombic"]
    run = run_driver(tmp_path / "run", head(f"g: MOLENV_CLASSIFY MODEL=gnn.molenv MOLECULES=1-{frame.n_atoms} OOD\n"), ARGS, driver_files([frame], path))
    assert run.returncode != 0
    assert "OOD needs a model file with an ood block (the calibrated out-of-distribution score), and gnn.molenv has none" in run.output


# ----------------------------------------------------------------------------- the tools


@pytest.fixture(scope="module")
def urea(tmp_path_factory):
    """A small urea dataset (every 10th frame of form I at 100 K and of the melt) and a random
    toy GNN of urea without the ood block: (folder, dataset, model file)."""
    from _analysis_support import urea_dataset

    folder = tmp_path_factory.mktemp("gnn-ood-urea")
    dataset = urea_dataset(folder, ["urea-I-100K", "urea-melt-350K"], also_needed=("urea-IV-100K",))
    model = synthetic.random_model(np.random.default_rng(4), cutoff=CUTOFF)
    return folder, dataset, write_gnn_model(model, folder / "plain.molenv")


def test_calibrate_evaluate_classify(urea, tmp_path, capsys):
    """`molenv ood-calibrate` adds the block to a GNN model file (fitted on the training
    frames, the threshold at the 0.99 quantile of the validation molecules); `molenv evaluate`
    of the file reports the score per class; `molenv classify --ood` writes it and refuses a
    file without the block."""
    from conftest import REPO
    from molenv.analysis import read_table
    from molenv.cli import main
    from molenv.evaluate import evaluate_path

    folder, dataset, plain = urea
    calibrated = tmp_path / "calibrated.molenv"
    with pytest.raises(SystemExit) as done:
        main(["ood-calibrate", str(plain), str(dataset.path), "--out", str(calibrated), "--layer", "4"])
    assert done.value.code == 0
    assert "ood score (Mahalanobis distance of the outputs of head block 2, 8 features, to 2 class means)" in capsys.readouterr().out
    model = read_gnn_model(calibrated)
    val_molecules = sum(int((item.polymorph >= 0).sum()) for item in dataset.frames("val"))
    assert model.ood.layer == 4 and model.ood.class_names == ["I", "melt"] and model.ood.n_validation == val_molecules
    metrics = evaluate_path(calibrated, dataset, tmp_path / "eval", "val", plots=False)
    assert metrics["ood"]["known_classes"]["n"] == val_molecules
    assert metrics["ood"]["known_classes"]["flagged_fraction"] == pytest.approx(0.01, abs=0.01)  # the calibration
    assert metrics["heads"]["polymorph"]["n"] == val_molecules and "topology" in metrics["heads"]
    data = REPO / "data" / "urea"
    args = ["classify", "--model", str(calibrated), "--trajectory", str(data / "urea-IV-100K.xtc"), "--topology",
            str(data / "urea-IV-100K.pdb.gz"), "--stop", "1", "--no-progress", "--no-plot", "--ood", "--out", str(tmp_path / "cls")]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    from molenv.trajectory import read_frame

    expected = classify_frame(model, read_frame(data / "urea-IV-100K.xtc", "urea", topology=data / "urea-IV-100K.pdb.gz")).other
    table = read_table(tmp_path / "cls" / "populations.dat")
    np.testing.assert_allclose(table.column("soft_other"), [expected.sum()], rtol=1e-6)
    assert table.column("n_other")[0] == np.sum(expected > 0.5)
    with pytest.raises(SystemExit) as done:
        main([*args[:2], str(plain), *args[3:-1], str(tmp_path / "cls2")])
    assert done.value.code == 2
    assert "the out-of-distribution score (other) needs a GNN model with an ood block" in capsys.readouterr().err
