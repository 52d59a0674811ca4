"""`molenv plumed-input`: the written plumed.dat runs (through `molenv reanalyse`) and gives
the numbers of the Python SF path, for molecules as one MOLECULES range (MD data in spec
order) and as MOLECULEn lists (the interface data file, atoms ordered by bond graph), with
region and path options."""
from __future__ import annotations

import numpy as np

from _analysis_support import md_files, read_prob_file, run_cli, urea_model  # noqa: F401
from molenv.analysis import Region, read_table, region_weights, soft_populations
from molenv.classification import classify_trajectory
from molenv.models import SFFrameClassifier
from molenv.plumed.inputs import atom_list, classify_actions, molecule_keywords
from molenv.plumed.reanalysis import reanalyse
from molenv.trajectory import Trajectory


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
