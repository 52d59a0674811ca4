"""`molenv plumed-input`: the written plumed.dat runs (through `molenv reanalyse`) and gives
the numbers of the Python SF path, for molecules as one MOLECULES range (MD data in spec
order) and as MOLECULEn lists (the interface data file, atoms ordered by bond graph), with
region and path options; a GNN model file (the committed nicotinamide GNN) gives the numbers
of the numpy GNN, and --ood with an SF model file calibrated by `molenv ood-calibrate` gives
Python's out-of-distribution score as n_other."""
from __future__ import annotations

import numpy as np
import pytest

from _analysis_support import REPO, md_files, read_prob_file, run_cli, urea_dataset, urea_model  # noqa: F401
from molenv.analysis import Region, read_table, region_weights, soft_populations
from molenv.classification import classify_trajectory
from molenv.gnn.modelfile import read_gnn_model, write_gnn_model
from molenv.models import GNNModelFileClassifier, SFFrameClassifier
from molenv.plumed.inputs import atom_list, classify_actions, molecule_keywords
from molenv.plumed.reanalysis import reanalyse
from molenv.trajectory import Trajectory

MODELS = REPO / "models"


def test_atom_lists():
    assert atom_list([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    assert molecule_keywords(np.arange(16).reshape(2, 8) + 8) == ["MOLECULES=9-24"]
    assert molecule_keywords(np.array([[0, 1, 5], [2, 3, 4]])) == ["MOLECULE1=1-2,6", "MOLECULE2=3-5"]


def test_interface_molecule_lists_run_and_match_python(tmp_path, urea_model, reference_dir, monkeypatch):
    data = reference_dir / "urea" / "formI_formIV_interface.data"
    monkeypatch.chdir(tmp_path)
    assert run_cli(["plumed-input", "--model", urea_model, "--topology", data, "--name-map", "4:N1,5:N2", "--prob-file", "prob.dat",
                    "--num-threads", "2", "-o", "plumed.dat"]) == 0
    text = (tmp_path / "plumed.dat").read_text()
    assert "LOAD FILE=" in text and "MOLECULE1200=" in text and "MOLECULES=" not in text and "PRINT ARG=cls.* FILE=COLVAR" in text
    (action,) = classify_actions("plumed.dat")
    traj = Trajectory(data, "urea", name_map={"4": "N1", "5": "N2"})
    assert np.array_equal(action.molecules(traj.universe.atoms.n_atoms, 8), traj.atoms.indices[traj.molecules])
    reanalyse("plumed.dat", data, progress=False)
    python = classify_trajectory(traj, SFFrameClassifier(urea_model), progress=False, with_coordination=False)
    _, prob = read_prob_file("prob.dat", 1200, SFFrameClassifier(urea_model).classes)
    assert np.abs(prob - python.probabilities).max() <= 1e-9
    colvar = read_table("COLVAR")
    assert colvar.column("cls.nmol")[0] == 1200
    assert np.allclose(colvar.column("cls.n_IV"), python.probabilities[:, :, 1].sum(axis=1), rtol=1e-9)
    assert colvar.column("cls.f_I")[0] > 0.1 and colvar.column("cls.f_IV")[0] > 0.4


def test_range_region_and_path(tmp_path, urea_model, monkeypatch):
    xtc, pdb = md_files("urea-I-100K")
    monkeypatch.chdir(tmp_path)
    assert run_cli(["plumed-input", "--model", urea_model, "--topology", pdb, "--region", "z:3:5:1.5",
                    "--path", "I,IV:0.9,0.1:0.27,0.73:10:200", "--label", "u", "--colvar", "cv", "-o", "plumed.dat"]) == 0
    text = (tmp_path / "plumed.dat").read_text()
    assert "MOLECULES=1-1280" in text and "PATH_CLASSES=I,IV" in text and "REGION_AXIS=z" in text
    reanalyse("plumed.dat", xtc, pdb, stop=2, progress=False)
    cv = read_table("cv")
    assert {"u.s", "u.z", "u.nmol", "u.n_I"} <= set(cv.names)
    python = classify_trajectory(Trajectory(xtc, "urea", topology=pdb, stop=2), SFFrameClassifier(urea_model), progress=False, with_coordination=False)
    w = region_weights(python.centres, python.boxes, Region("z", 3.0, 5.0, 1.5))
    assert np.allclose(cv.column("u.nmol"), w.sum(axis=1), rtol=1e-9) and np.all(w.sum(axis=1) < 100)
    assert np.allclose(cv.column("u.n_I"), soft_populations(python, w)[:, 0], rtol=1e-9)
    assert np.all((cv.column("u.s") >= 0) & (cv.column("u.s") <= 1))


def test_errors(tmp_path, urea_model, capsys):
    xtc, pdb = md_files("urea-I-100K")
    out = tmp_path / "p.dat"
    assert run_cli(["plumed-input", "--model", urea_model, "--topology", pdb, "--path", "I,X:0.9,0.1:0.2,0.8:5:100", "-o", out]) == 2
    assert "path classes X are not classes of the model" in capsys.readouterr().err
    assert run_cli(["plumed-input", "--model", urea_model, "--topology", pdb, "--path", "I,IV:0.9", "-o", out]) == 2
    assert "expected CLASSES:START:END:NIMAGES:LAMBDA" in capsys.readouterr().err
    assert run_cli(["plumed-input", "--model", urea_model, "--topology", xtc, "-o", out]) == 2
    assert "holds coordinates only" in capsys.readouterr().err
    assert not out.exists()
    assert run_cli(["plumed-input", "--topology", pdb]) == 2
    assert "the following arguments are required: --model" in capsys.readouterr().err


@pytest.mark.slow
def test_gnn_model_file_runs_and_matches_python(tmp_path, monkeypatch):
    """The committed GNN model file on a committed nicotinamide frame: the same molecules and
    keywords as for an SF model, and PLUMED's polymorph and topology probabilities and
    populations are the numpy GNN's (`molenv classify` with the model file)."""
    run = REPO / "data" / "nicotinamide" / "nicotinamide-I-350K"
    xtc, pdb = run.with_suffix(".xtc"), run.with_suffix(".pdb.gz")
    if not xtc.exists():
        pytest.skip(f"committed MD data {xtc.name} not found")
    model = MODELS / "nicotinamide_gnn.molenv"
    monkeypatch.chdir(tmp_path)
    assert run_cli(["plumed-input", "--model", model, "--topology", pdb, "--prob-file", "prob.dat", "-o", "plumed.dat"]) == 0
    text = (tmp_path / "plumed.dat").read_text()
    assert f"MODEL={model}" in text and "MOLECULES=1-2160" in text and "OOD" not in text
    reanalyse("plumed.dat", xtc, pdb, stop=1, progress=False)
    classifier = GNNModelFileClassifier(model)
    python = classify_trajectory(Trajectory(xtc, "nicotinamide", topology=pdb, stop=1), classifier, progress=False, with_coordination=False)
    _, prob = read_prob_file("prob.dat", 144, classifier.classes + classifier.model.topology_classes)
    n_forms = len(classifier.classes)
    assert np.abs(prob[..., :n_forms] - python.probabilities).max() <= 1e-9
    assert np.abs(prob[..., n_forms:] - python.topology_probabilities).max() <= 1e-9
    colvar = read_table("COLVAR")
    assert colvar.column("cls.nmol")[0] == 144
    for k, name in enumerate(classifier.classes):
        assert np.allclose(colvar.column(f"cls.n_{name}"), python.probabilities[:, :, k].sum(axis=1), rtol=1e-9, atol=1e-12)
    assert colvar.column("cls.f_I")[0] > 0.5


@pytest.fixture(scope="module")
def calibrated_urea_model(tmp_path_factory):
    """models/urea_sf.molenv (no ood block) with the block `molenv ood-calibrate` adds, fitted
    on every 10th frame of the committed form I, form IV and melt runs."""
    folder = tmp_path_factory.mktemp("ood")
    dataset = urea_dataset(folder, ["urea-I-100K", "urea-IV-100K", "urea-melt-350K"])
    out = folder / "urea_ood.molenv"
    assert run_cli(["ood-calibrate", MODELS / "urea_sf.molenv", dataset.path, "--out", out]) == 0
    return out


@pytest.mark.slow
def test_ood_adds_other_and_matches_python(tmp_path, calibrated_urea_model, monkeypatch, capsys):
    xtc, pdb = md_files("urea-IV-100K")
    monkeypatch.chdir(tmp_path)
    assert run_cli(["plumed-input", "--model", calibrated_urea_model, "--topology", pdb, "--ood", "--prob-file", "prob.dat", "-o", "plumed.dat"]) == 0
    assert "cls.n_other, cls.f_other" in capsys.readouterr().out
    assert "   OOD\n" in (tmp_path / "plumed.dat").read_text()
    reanalyse("plumed.dat", xtc, pdb, stop=2, progress=False)
    classifier = SFFrameClassifier(calibrated_urea_model)
    python = classify_trajectory(Trajectory(xtc, "urea", topology=pdb, stop=2), classifier, progress=False, with_coordination=False, ood=True)
    _, prob = read_prob_file("prob.dat", 180, classifier.classes + ["other"])
    assert np.abs(prob[..., -1] - python.other).max() <= 1e-9
    colvar = read_table("COLVAR")
    assert np.allclose(colvar.column("cls.n_other"), python.other.sum(axis=1), rtol=1e-9, atol=1e-12)
    assert np.allclose(colvar.column("cls.f_other"), python.other.mean(axis=1), rtol=1e-9, atol=1e-12)
    assert np.allclose(colvar.column("cls.n_IV"), python.probabilities[:, :, 1].sum(axis=1), rtol=1e-9)  # unchanged by OOD


def test_model_kind_errors(tmp_path, capsys):
    """A TorchScript export, --ood without an ood block or with a GNN, and --region with a GNN
    are refused before anything is written, naming the file and what to do."""
    _, urea_pdb = md_files("urea-I-100K")
    nicotinamide_pdb = REPO / "data" / "nicotinamide" / "nicotinamide-I-350K.pdb.gz"
    out = tmp_path / "p.dat"
    assert run_cli(["plumed-input", "--model", MODELS / "nicotinamide_gnn.pt", "--topology", nicotinamide_pdb, "-o", out]) == 2
    err = capsys.readouterr().err
    assert "nicotinamide_gnn.pt: a TorchScript export of a graph classifier" in err and "molenv export RUN --out NAME.molenv" in err
    assert run_cli(["plumed-input", "--model", MODELS / "urea_sf.molenv", "--topology", urea_pdb, "--ood", "-o", out]) == 2
    err = capsys.readouterr().err
    assert f"--ood: {MODELS / 'urea_sf.molenv'} has no ood block" in err and "molenv ood-calibrate" in err
    gnn = tmp_path / "no_ood.molenv"  # the committed GNN without its ood block
    model = read_gnn_model(MODELS / "nicotinamide_gnn.molenv")
    model.ood = None
    write_gnn_model(model, gnn)
    assert run_cli(["plumed-input", "--model", gnn, "--topology", nicotinamide_pdb, "--ood", "-o", out]) == 2
    assert f"--ood: {gnn} has no ood block" in capsys.readouterr().err
    assert run_cli(["plumed-input", "--model", gnn, "--topology", nicotinamide_pdb, "--region", "z:10:5", "-o", out]) == 2
    assert f"--region: {gnn} is a GNN model, which has no molecule centre" in capsys.readouterr().err
    assert not out.exists()
