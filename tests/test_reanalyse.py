"""`molenv reanalyse`: frames read by MDAnalysis fed to PLUMED through its Python interface.

- the same COLVAR as `plumed driver` on an xyz file of the same frames (1e-9);
- a LAMMPS dump (which `plumed driver` cannot read): every molecule of the reference urea
  form I is form I, and PLUMED's per-molecule probabilities equal the Python SF path;
- --analyse turns the action's per-molecule probabilities (from PLUMED's data interface:
  MOLENV_PROBABILITIES; the numbers of its PROB_FILE, which is not needed) into the
  populations table of `molenv classify`;
- the PLUMED input reader (continuations, MOLECULEn, LABEL=) and the molecules as PLUMED reads
  their atom lists (ranges with strides, GROUP labels, @mdatoms), and the error messages.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from _analysis_support import UREA_TYPES, md_files, read_prob_file, run_cli, urea_model  # noqa: F401
from molenv.analysis import read_table
from molenv.plumed.inputs import PlumedInputError, classify_actions
from molenv.plumed.reanalysis import ReanalyseError, open_universe, reanalyse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "regtest"))
from harness import run_driver, xyz_text  # noqa: E402


def test_same_colvar_as_plumed_driver(tmp_path, urea_model, monkeypatch):
    """Frames 0-2 of an XTC (with a PDB topology) through reanalyse, and the same frames as
    an xyz file through `plumed driver`: every number of the COLVAR agrees to 1e-9."""
    from molenv.frames import box_matrix
    from molenv.plumed.kernel import module_path

    xtc, pdb = md_files("urea-I-100K")
    u = open_universe(xtc, pdb)
    dt = u.trajectory.dt  # the file's frame interval (ps)
    positions, boxes = [], []
    for ts in u.trajectory[:3]:
        positions.append(u.atoms.positions.astype(np.float64))
        boxes.append(box_matrix(ts.dimensions))
    plumed_dat = (
        "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
        f"c: MOLENV_CLASSIFY MODEL={urea_model} MOLECULES=1-1280\n"
        "d: DISTANCE ATOMS=1,900\nv: VOLUME\n"
        "PRINT ARG=c.*,d,v FILE=colvar FMT=%.17g\n"
    )
    driver = run_driver(tmp_path / "driver", plumed_dat, ["--ixyz", "traj.xyz", "--length-units", "A", "--timestep", str(dt)],
                        {"traj.xyz": xyz_text(positions, boxes)})
    assert driver.returncode == 0, driver.output[-2000:]
    expected = read_table(tmp_path / "driver" / "colvar")

    work = tmp_path / "reanalyse"
    work.mkdir()
    (work / "plumed.dat").write_text(plumed_dat.replace("@MOLENV_LIB@", str(module_path())))
    monkeypatch.chdir(work)
    run = reanalyse("plumed.dat", xtc, pdb, stop=3, progress=False)
    assert run.frames == [0, 1, 2] and run.timestep == pytest.approx(dt) and dt > 0  # the file's frame interval
    got = read_table(work / "colvar")
    assert got.names == expected.names and got.data.shape == expected.data.shape == (3, len(got.names))
    scale = np.maximum(np.abs(expected.data), 1.0)
    assert np.all(np.abs(got.data - expected.data) <= 1e-9 * scale), np.abs(got.data - expected.data).max()
    assert np.all(got.column("c.nmol") == 160) and np.all(got.column("c.f_I") > 0.5)
    # the step is the frame's index in the file, also for a slice: PLUMED time = index x timestep
    (work / "colvar").unlink()
    reanalyse("plumed.dat", xtc, pdb, start=3, stop=8, step=4, timestep=0.5, progress=False)
    assert np.allclose(read_table(work / "colvar").column("time"), [1.5, 3.5])


@pytest.fixture
def dump_run(tmp_path, urea_model, reference_dir, monkeypatch):
    """The reference urea form I dump (LAMMPS, 432 molecules, 2 frames) through reanalyse
    with per-molecule probabilities (PROB_FILE)."""
    from molenv.plumed.kernel import module_path

    dump = reference_dir / "urea" / "formI_6x6x6_molstruc.dump"
    (tmp_path / "plumed.dat").write_text(
        f"UNITS LENGTH=A\nLOAD FILE={module_path()}\n"
        f"c: MOLENV_CLASSIFY MODEL={urea_model} MOLECULES=1-3456 PROB_FILE=prob.dat\n"
        "PRINT ARG=c.* FILE=colvar FMT=%.17g\n"
    )
    monkeypatch.chdir(tmp_path)
    return dump, reanalyse("plumed.dat", dump, progress=False)


def test_lammps_dump_that_plumed_driver_cannot_read(dump_run, urea_model):
    """Every molecule of the reference form I dump is form I, and PLUMED's per-molecule
    probabilities equal those of the Python SF path (`molenv.classification`) to 1e-9."""
    from molenv.classification import classify_trajectory
    from molenv.models import SFFrameClassifier
    from molenv.trajectory import Trajectory

    dump, run = dump_run
    assert run.n_atoms == 3456 and run.frames == [0, 1] and run.times == [0.0, 10.0]
    colvar = read_table("colvar")
    assert np.allclose(colvar.column("time"), [0.0, 10.0])  # timestep = the dump's frame interval
    assert np.all(colvar.column("c.nmol") == 432) and np.all(colvar.column("c.f_I") > 0.999)
    classifier = SFFrameClassifier(urea_model)
    times, prob = read_prob_file("prob.dat", 432, classifier.classes)
    assert prob.shape == (2, 432, 7) and np.all(prob.argmax(axis=2) == 0)
    python = classify_trajectory(Trajectory(dump, "urea", type_elements=UREA_TYPES), classifier, progress=False, with_coordination=False)
    assert np.abs(python.probabilities - prob).max() <= 1e-9
    assert np.allclose(colvar.column("c.n_I"), python.probabilities[:, :, 0].sum(axis=1), rtol=1e-10)


def test_cli_analyse(dump_run, tmp_path):
    """`molenv reanalyse --analyse`: the action's probabilities -> the populations table and
    per-molecule file; they are the numbers of its PROB_FILE, which the analysis does not need."""
    from molenv.analysis import ClassificationResult

    dump, _ = dump_run
    code = run_cli(["reanalyse", "--plumed", "plumed.dat", "-t", dump, "--analyse", "--no-progress", "--per-molecule", "npz",
                    "--type-elements", UREA_TYPES, "--xyz", "--out", "out"])
    assert code == 0
    table = read_table("out/populations.dat")
    assert np.all(table.column("n_I") == 432) and np.all(table.column("n_uncertain") == 0)
    assert np.all(table.column("core_n_I") == 432) and np.all(table.column("surface_nmol") == 0)  # periodic bulk
    result = ClassificationResult.load("out/molecules.npz")
    assert result.probabilities.shape == (2, 432, 7) and result.coordination.min() >= 20
    assert result.source.startswith("MOLENV_CLASSIFY c")
    first = Path("out/classes.extxyz").read_text().splitlines()
    assert first[0] == "3456" and first[2].split()[0] == "C" and first[3].split()[0] == "O"  # species from --type-elements
    _, prob = read_prob_file("prob.dat", 432, result.classes)
    assert np.array_equal(result.probabilities, prob)
    Path("noprob.dat").write_text(Path("plumed.dat").read_text().replace(" PROB_FILE=prob.dat", ""))
    assert run_cli(["reanalyse", "--plumed", "noprob.dat", "-t", dump, "--analyse", "--no-progress", "--per-molecule", "npz", "--out", "out2"]) == 0
    assert np.array_equal(ClassificationResult.load("out2/molecules.npz").probabilities, prob)
    assert np.array_equal(read_table("out2/populations.dat").data, table.data)


def test_plumed_input_reader(tmp_path):
    text = (
        "UNITS LENGTH=A # comment\n"
        "a: MOLENV_CLASSIFY ...\n   MODEL=m.molenv   # the model\n   MOLECULE1=1-3,7 MOLECULE2=4,5,6\n   PROB_FILE=p FILE_STRIDE=5 NOPBC\n...\n"
        "MOLENV_CLASSIFY LABEL=b MODEL={m.molenv} MOLECULES=1-12:2\n"
        "grp: GROUP ATOMS=13-16\n"
        "c: MOLENV_CLASSIFY MODEL=m.molenv MOLECULES=grp\n"
        "d: MOLENV_CLASSIFY MODEL=m.molenv MOLECULES=@mdatoms\n"
        "e: MOLENV_CLASSIFY MODEL=m.molenv MOLECULES=nogroup\n"
        "f: MOLENV_CLASSIFY MODEL=m.molenv\n"
    )
    (tmp_path / "p.dat").write_text(text)
    a, b, c, d, e, f = classify_actions(tmp_path / "p.dat")
    assert (a.label, b.label, c.label) == ("a", "b", "c")
    assert a.keywords["PROB_FILE"] == "p" and a.file_stride == 5 and a.nopbc and not b.nopbc and str(b.model_path) == "m.molenv"
    assert a.atom_lists() == ["1-3,7", "4,5,6"] and c.definitions == ["grp: GROUP ATOMS=13-16"]
    # the atoms as PLUMED reads the lists: strides, MOLECULEn in order, groups, @mdatoms
    assert b.molecules(20, 3).tolist() == [[0, 2, 4], [6, 8, 10]]
    assert a.molecules(20, 7).tolist() == [[0, 1, 2, 6, 3, 4, 5]]
    assert c.molecules(20, 2).tolist() == [[12, 13], [14, 15]]
    assert d.molecules(6, 3).tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(PlumedInputError, match=r"p.dat:2: the molecules of a are 7 atoms, not a multiple of the model's 4"):
        a.molecules(20, 4)
    with pytest.raises(PlumedInputError, match=r"p.dat:11: PLUMED cannot read the molecules of e: it was not possible to interpret atom name nogroup"):
        e.molecules(20, 2)
    with pytest.raises(PlumedInputError, match=r"p.dat:12: MOLENV_CLASSIFY without MOLECULES or MOLECULE1"):
        f.molecules(20, 2)


def test_errors_name_file_and_problem(tmp_path, urea_model, reference_dir, monkeypatch, capsys):
    from molenv.plumed.kernel import module_path

    dump = reference_dir / "urea" / "formI_6x6x6_molstruc.dump"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ReanalyseError, match=r"nothere.xtc: file not found"):
        open_universe(tmp_path / "nothere.xtc", dump)
    bad = tmp_path / "bad.dat"
    bad.write_text(f"LOAD FILE={module_path()}\nc: MOLENV_CLASSIFY MODEL={urea_model} MOLECULES=1-3455\n")
    with pytest.raises(ReanalyseError, match=r"bad.dat: PLUMED could not start: .*multiple of"):
        reanalyse(bad, dump, progress=False)
    small = tmp_path / "small.dat"
    small.write_text(f"LOAD FILE={module_path()}\nc: MOLENV_CLASSIFY MODEL={urea_model} MOLECULES=1-3456\nPRINT ARG=c.nmol FILE=cv\n")
    with pytest.raises(ReanalyseError, match=r"small.dat: PLUMED stopped at step 7: .*too small for the model cutoff"):
        # a 15 A box is too small for the 10 A cutoff
        from molenv.plumed.reanalysis import PlumedFeeder

        with PlumedFeeder(small, 3456, 1.0) as feeder:
            feeder.feed(7, np.zeros((3456, 3)) + np.arange(3456)[:, None] * 0.001, np.eye(3) * 15.0)
    unlabelled = tmp_path / "unlabelled.dat"
    unlabelled.write_text(f"LOAD FILE={module_path()}\nMOLENV_CLASSIFY MODEL={urea_model} MOLECULES=1-3456\n")
    assert run_cli(["reanalyse", "--plumed", unlabelled, "-t", dump, "--analyse", "--no-progress"]) == 2
    assert "unlabelled.dat:2: the MOLENV_CLASSIFY action has no label" in capsys.readouterr().err
