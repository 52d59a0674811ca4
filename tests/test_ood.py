"""The out-of-distribution score (issue 16, "none of these"): `molenv.ood` fitted and
calibrated, the ood block of the model file, and MOLENV_CLASSIFY OOD (the class other):
the same numbers as Python, analytic derivatives against PLUMED's finite differences of
positions and box (orthorhombic, triclinic, molecules split across the boundary, no box),
and clear refusals where a model has no ood block."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from _fd_support import DUMP_FORCES, assert_forces_match
from molenv.modelfile import ModelFileError, read_model, write_model
from molenv.ood import OODError, fit_ood

REGTEST = Path(__file__).resolve().parent.parent / "regtest"
sys.path.insert(0, str(REGTEST))

from harness import read_xyz, run_driver, xyz_text  # noqa: E402

APM = 5


def test_fit_calibrates_the_threshold_and_flags_far_molecules():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0, 0, 0, 0], [4.0, 0, 0, 1, 0], [0.0, 4, 0, 0, 1]])
    mix = rng.normal(size=(5, 5))

    def sample(n, k):
        return centres[k] + rng.normal(size=(n, 5)) @ mix

    labels = np.repeat(np.arange(3), 2000)
    train = np.concatenate([sample(2000, k) for k in range(3)])
    val = np.concatenate([sample(2000, k) for k in range(3)])
    score = fit_ood(train, labels, ["A", "B", "C"], val)
    assert (score.quantile, score.low_quantile, score.n_validation) == (0.99, 0.9, 6000)
    assert np.mean(score.other(val) > 0.5) == pytest.approx(0.01, abs=1e-3)  # the calibration
    assert np.mean(score.other(np.concatenate([sample(2000, k) for k in range(3)])) > 0.5) == pytest.approx(0.01, abs=0.005)
    assert np.median(score.other(val)) < 1e-3
    far = centres[1] + 8.0 * rng.normal(size=(500, 5)) @ mix  # a broader, unseen population
    assert np.mean(score.other(far) > 0.5) > 0.9
    # d other / d h against central differences
    h = np.concatenate([val[:5], far[:5]])
    grad = score.other_gradient(h)
    eps = 1e-6
    for j in range(5):
        e = np.zeros(5)
        e[j] = eps
        fd = (score.other(h + e) - score.other(h - e)) / (2 * eps)
        np.testing.assert_allclose(grad[:, j], fd, rtol=1e-6, atol=1e-9)
    with pytest.raises(OODError, match="no validation molecules"):
        fit_ood(train, labels, ["A", "B", "C"], val[:0])


def toy_ood_model(tmp_path: Path, case: str = "rt-forces", layer: int = 1) -> tuple[Path, object]:
    """The toy model of `case` with an ood block on the inputs of `layer` (1: the scaled
    descriptors; the toy has 3 layers) fitted on the features of its own frames, its
    threshold at the median distance and a narrow width, so that other varies from 0 to 1
    across the molecules and its derivatives are large."""
    from molenv.descriptors import compute_descriptors

    model = read_model(REGTEST / case / "softmax.molenv")
    features = np.concatenate([compute_descriptors(frame, model.descriptors) for frame in frames_of(case)])
    hidden = model.network.layer_outputs(features)[layer - 1]
    labels = model.predict_proba(features).argmax(1)
    score = fit_ood(hidden, labels, model.classes, hidden, layer=layer)
    d = score.distance(hidden)
    score.threshold, score.width = float(np.median(d)), float(0.3 * d.std())
    model.ood = score
    path = write_model(model, tmp_path / "ood.molenv")
    return path, model


def frames_of(case: str):
    """The frames of a regtest trajectory as molenv MolecularFrames (5-atom toy molecules)."""
    from molenv.frames import MolecularFrame

    frames, boxes = read_xyz(REGTEST / case / "traj.xyz")
    out = []
    for x, h in zip(frames, boxes):
        n = len(x)
        box = None if h is None else cell_parameters(h)
        out.append(MolecularFrame(x, box, np.arange(n).reshape(n // APM, APM), np.full(n, 6)))
    return out


def cell_parameters(h: np.ndarray) -> np.ndarray:
    """[a, b, c, alpha, beta, gamma] in float64 of a cell whose vectors (rows) are in the
    standard orientation (a along x, b in the xy plane), as the regtest cells are."""
    assert h[0, 1] == h[0, 2] == h[1, 2] == 0.0
    lengths = np.linalg.norm(h, axis=1)
    angle = lambda i, j: np.degrees(np.arccos(h[i] @ h[j] / (lengths[i] * lengths[j])))  # noqa: E731
    return np.array([*lengths, angle(1, 2), angle(0, 2), angle(0, 1)])


def test_model_file_round_trip(tmp_path):
    path, model = toy_ood_model(tmp_path)
    again = read_model(path)
    for name in ("whitening", "means"):
        assert getattr(again.ood, name).tobytes() == getattr(model.ood, name).tobytes()
    assert again.ood.class_names == model.ood.class_names and again.ood.threshold == model.ood.threshold
    write_model(again, tmp_path / "again.molenv")
    assert (tmp_path / "again.molenv").read_bytes() == path.read_bytes()
    # a model without the block: written as before, and no score
    old = read_model(REGTEST / "rt-forces" / "softmax.molenv")
    write_model(old, tmp_path / "old.molenv")
    assert (tmp_path / "old.molenv").read_bytes() == (REGTEST / "rt-forces" / "softmax.molenv").read_bytes()
    with pytest.raises(ModelFileError, match="has no ood block"):
        old.other(np.zeros((1, old.descriptors.n_features)))


@pytest.mark.parametrize("case, layer", [("rt-forces", 1), ("rt-forces", 3), ("rt-nopbc", 1), ("rt-nopbc", 2)])
def test_plumed_gives_pythons_other(tmp_path, case, layer):
    """PROB_FILE's other column and n_other / f_other: Python's numbers to 1e-9 on
    orthorhombic and triclinic frames (rt-forces) and clusters without a box (rt-nopbc)."""
    from molenv.descriptors import compute_descriptors

    path, model = toy_ood_model(tmp_path, case, layer)
    frames = frames_of(case)
    natoms = frames[0].positions.shape[0]
    text = (f"UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\nc: MOLENV_CLASSIFY MODEL=ood.molenv MOLECULES=1-{natoms} OOD PROB_FILE=prob.dat\n"
            "PRINT ARG=c.n_A,c.n_other,c.f_other,c.nmol FILE=colvar FMT=%.17g\n")
    run = run_driver(tmp_path / "run", text, ["--ixyz", "traj.xyz", "--length-units", "A"], {"traj.xyz": REGTEST / case / "traj.xyz", "ood.molenv": path})
    assert run.returncode == 0, run.output[-3000:]
    assert "out-of-distribution score as class other" in run.output
    fields, prob = run.read_table("prob.dat")
    assert fields[-4:] == ["A", "B", "Melt", "other"]
    _, colvar = run.read_table("colvar")
    nmol = natoms // APM
    for f, frame in enumerate(frames):
        G = compute_descriptors(frame, model.descriptors)
        expected = np.c_[model.predict_proba(G), model.other(G)]
        np.testing.assert_allclose(prob[f * nmol:(f + 1) * nmol, 2:], expected, rtol=0, atol=1e-9)
        other = model.other(G)
        np.testing.assert_allclose(colvar[f, 2:4], [other.sum(), other.mean()], rtol=1e-9)
        assert 0.05 < other.mean() < 0.95  # the check has something to check


@pytest.mark.parametrize("layer, component, flags", [
    (1, "c.n_other", ""),
    (1, "c.f_other", ""),
    (1, "c.n_other", "FULL_DERIVATIVES"),
    (1, "c.n_other", "REGION_AXIS=z REGION_CENTER=1.0 REGION_HALFWIDTH=2.0 REGION_SMOOTHING=2.5"),
    (2, "c.n_other", ""),
    (3, "c.f_other", "FULL_DERIVATIVES"),
])
def test_other_has_the_finite_difference_forces(tmp_path, layer, component, flags):
    """A bias on n_other / f_other: analytic forces and virial against `plumed driver
    --debug-forces` (PLUMED's finite differences of positions and box); rt-forces: an
    orthorhombic and a triclinic frame with molecules split across the boundary."""
    case = "rt-forces"
    path, _ = toy_ood_model(tmp_path, case, layer)
    frames, _ = read_xyz(REGTEST / case / "traj.xyz")
    natoms = len(frames[0])
    text = (f"UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\nc: MOLENV_CLASSIFY MODEL=ood.molenv MOLECULES=1-{natoms} OOD {flags}\n"
            f"BIASVALUE ARG={component}\n")
    run = run_driver(tmp_path / "run", text, ["--ixyz", "traj.xyz", "--length-units", "A", "--debug-forces", "debug", "--dump-forces-fmt", "%.12e"],
                     {"traj.xyz": REGTEST / case / "traj.xyz", "ood.molenv": path})
    assert run.returncode == 0, run.output[-3000:]
    run.check_debug_forces(natoms, len(frames), component)


@pytest.mark.parametrize("layer, flags", [(1, ""), (1, "FULL_DERIVATIVES"), (3, "")])
def test_other_forces_without_a_box(tmp_path, layer, flags):
    """Clusters without a box (rt-nopbc; PLUMED's --debug-forces would perturb the zero box):
    the energy of restraints on n_other and f_other at x +- eps u against the dumped forces."""
    path, _ = toy_ood_model(tmp_path, "rt-nopbc", layer)
    frames0, _ = read_xyz(REGTEST / "rt-nopbc" / "traj.xyz")
    rng = np.random.default_rng(3)
    eps = 1e-5
    frames, directions = [], []
    for x0 in frames0:
        u = rng.normal(size=x0.shape)
        frames += [x0, x0 + eps * u, x0 - eps * u]
        directions.append(u)
    natoms = len(frames0[0])
    text = (f"UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\nc: MOLENV_CLASSIFY MODEL=ood.molenv MOLECULES=1-{natoms} OOD {flags}\n"
            "b: RESTRAINT ARG=c.n_other,c.f_other AT=3.0,0.2 KAPPA=0.7,30\nPRINT ARG=b.bias FILE=energy FMT=%.17g\n")
    run = run_driver(tmp_path / "run", text, ["--ixyz", "traj.xyz", "--length-units", "A", *DUMP_FORCES],
                     {"traj.xyz": xyz_text(frames, [None] * len(frames)), "ood.molenv": path})
    assert run.returncode == 0, run.output[-3000:]
    _, energy = run.read_table("energy")
    dumped = run.read_dump_forces()
    for k, u in enumerate(directions):
        _, forces = dumped[3 * k]
        assert_forces_match(energy[3 * k + 1, 1], energy[3 * k + 2, 1], forces, u, eps, minimum=1e-2)


def test_ood_is_refused_without_an_ood_block(tmp_path):
    text = "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\nc: MOLENV_CLASSIFY MODEL=old.molenv MOLECULES=1-100 OOD\n"
    run = run_driver(tmp_path, text, ["--ixyz", "traj.xyz", "--length-units", "A"],
                     {"traj.xyz": REGTEST / "rt-forces" / "traj.xyz", "old.molenv": REGTEST / "rt-forces" / "softmax.molenv"})
    assert run.returncode != 0
    assert "OOD needs a model file with an ood block (the calibrated out-of-distribution score), and old.molenv has none" in run.output


# ----------------------------------------------------------------------------- the tools


@pytest.fixture(scope="module")
def without_form_iv(tmp_path_factory):
    """A model of urea form I and melt (every 10th frame of the 100 K crystal and the melt; 5
    epochs), exported with its ood score: (folder, dataset, checkpoint, model file)."""
    from _analysis_support import urea_dataset
    from molenv.sf.export import export_sf
    from molenv.sf.train import SFTrainConfig, train_sf

    folder = tmp_path_factory.mktemp("ood")
    dataset = urea_dataset(folder, ["urea-I-100K", "urea-melt-350K"], also_needed=("urea-IV-100K",))
    checkpoint = train_sf(dataset, SFTrainConfig(max_epochs=5, batch_size=128), folder / "run")
    model = export_sf(checkpoint, folder / "model.molenv", log=lambda *a: None)
    return folder, dataset, checkpoint, model


def test_an_unseen_form_is_flagged(without_form_iv):
    """The issue's case: every form IV molecule, which the model calls form I, is flagged
    (other > 0.5), and about 1 % of the known-class validation molecules."""
    from conftest import REPO
    from molenv import classify
    from molenv.sf.train import training_molecules

    folder, dataset, _, model = without_form_iv
    assert model.ood is not None and model.ood.layer == 1 and model.ood.class_names == ["I", "melt"]
    val = training_molecules(dataset, "val")
    assert model.ood.n_validation == len(val)
    assert np.mean(model.other(val.features) > 0.5) == pytest.approx(0.01, abs=0.01)
    data = REPO / "data" / "urea"
    result = classify(data / "urea-IV-100K.xtc", folder / "model.molenv", topology=data / "urea-IV-100K.pdb.gz", stop=3, ood=True)
    assert result.other.shape == (3, 180)
    assert np.all(result.probabilities[..., 0] > 0.5)  # called form I ...
    assert np.mean(result.other > 0.5) > 0.9  # ... and flagged


def test_export_calibrate_evaluate_classify(without_form_iv, tmp_path, capsys):
    """`molenv ood-calibrate` adds to a file exported without it the block `molenv export`
    writes; `molenv evaluate` reports the score per class; `molenv classify --ood` writes it
    and refuses a model without the block."""
    import json

    from conftest import REPO
    from molenv.cli import main
    from molenv.evaluate import evaluate_sf

    folder, dataset, checkpoint, model = without_form_iv
    for argv in (["export", str(checkpoint), "--out", str(tmp_path / "plain.molenv"), "--no-ood"],
                 ["ood-calibrate", str(tmp_path / "plain.molenv"), str(dataset.path), "--out", str(tmp_path / "calibrated.molenv")]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
    assert read_model(tmp_path / "plain.molenv").ood is None
    again = read_model(tmp_path / "calibrated.molenv").ood
    assert again.whitening.tobytes() == model.ood.whitening.tobytes() and again.threshold == model.ood.threshold
    metrics = evaluate_sf(model, dataset, tmp_path / "eval", "val", plots=False)
    assert metrics["ood"]["per_class"]["I"]["known_to_the_model"]
    assert metrics["ood"]["known_classes"]["flagged_fraction"] == pytest.approx(0.01, abs=0.01)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["ood"]["calibration"]["threshold"] == model.ood.threshold
    data = REPO / "data" / "urea"
    args = ["classify", "--model", str(folder / "model.molenv"), "--trajectory", str(data / "urea-IV-100K.xtc"), "--topology",
            str(data / "urea-IV-100K.pdb.gz"), "--stop", "2", "--no-progress", "--no-plot", "--ood", "--out", str(tmp_path / "cls")]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    from molenv.analysis import read_table

    table = read_table(tmp_path / "cls" / "populations.dat")
    assert np.all(table.column("n_other") > 0.9 * 180) and np.all(table.column("soft_other") > 0.9 * 180)
    with pytest.raises(SystemExit) as done:
        main([*args[:2], str(tmp_path / "plain.molenv"), *args[3:-1], str(tmp_path / "cls2")])
    assert done.value.code == 2
    assert "the out-of-distribution score (other) needs an SF model with an ood block" in capsys.readouterr().err


def test_other_in_the_per_molecule_outputs(tmp_path):
    """With OOD, other is a column like a class's in every per-molecule output: the vector
    p_other (PROB_VECTORS) and the MOLENV_PROBABILITIES matrix equal PROB_FILE's column; the
    model's classes' components are those of the action without OOD; two threads give n_other."""
    path, _ = toy_ood_model(tmp_path)
    text = ("UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
            "c: MOLENV_CLASSIFY MODEL=ood.molenv MOLECULES=1-100 OOD PROB_VECTORS PROB_FILE=prob.dat\n"
            "d: MOLENV_CLASSIFY MODEL=ood.molenv MOLECULES=1-100\n"
            "t: MOLENV_CLASSIFY MODEL=ood.molenv MOLECULES=1-100 OOD NUM_THREADS=2\n"
            "p: MOLENV_PROBABILITIES CLASSIFIER=c\n"
            "PRINT ARG=c.n_A,c.n_B,c.n_Melt,d.n_A,d.n_B,d.n_Melt,c.n_other,t.n_other FILE=colvar FMT=%.17g\n"
            "DUMPVECTOR ARG=c.p_other FILE=other FMT=%.17g PRINT_ONE_FILE STRIDE=1\n"
            "DUMPVECTOR ARG=p FILE=matrix FMT=%.17g PRINT_ONE_FILE STRIDE=1\n")
    run = run_driver(tmp_path / "run", text, ["--ixyz", "traj.xyz", "--length-units", "A"],
                     {"traj.xyz": REGTEST / "rt-forces" / "traj.xyz", "ood.molenv": path})
    assert run.returncode == 0, run.output[-3000:]
    _, prob = run.read_table("prob.dat")
    _, colvar = run.read_table("colvar")
    np.testing.assert_array_equal(colvar[:, 1:4], colvar[:, 4:7])
    np.testing.assert_allclose(colvar[:, 8], colvar[:, 7], rtol=1e-13)  # two threads
    _, other = run.read_table("other")
    np.testing.assert_array_equal(other[:, 2], prob[:, -1])  # rows: time, molecule, p_other
    fields, matrix = run.read_table("matrix")
    assert fields[-4:] == ["p.A", "p.B", "p.Melt", "p.other"]  # rows: time, molecule, a column per class
    np.testing.assert_array_equal(matrix[:, 2:], prob[:, 2:])
