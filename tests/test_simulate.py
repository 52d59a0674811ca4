"""The simulation pipeline: parametrisation, systems, short OpenMM runs, resume, bad input."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from _md_support import kill_in_production, simulate
from molenv.spec import load_spec

pytest.importorskip("openmm")
pytestmark = pytest.mark.reference



@pytest.fixture(scope="session")
def ff_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("forcefields")


@pytest.fixture(scope="session")
def urea_ff(ff_cache):
    from molenv.simulate.parametrise import parametrise

    return parametrise(load_spec("urea"), atom_types="gaff", cache_dir=ff_cache)



def test_parametrise_urea_is_cached(ff_cache, urea_ff):
    from molenv.simulate.parametrise import parametrise, read_mol2

    spec = load_spec("urea")
    mol = read_mol2(urea_ff.mol2)
    assert mol.names == spec.atom_names and mol.resname == "URE"
    assert mol.types == ["c", "o", "n", "hn", "hn", "n", "hn", "hn"]
    assert mol.charges.sum() == pytest.approx(0.0, abs=1e-5)
    assert mol.charges[2] == pytest.approx(mol.charges[5], abs=1e-3) and mol.charges[0] > 0.5 > 0 > mol.charges[1]
    t0 = time.perf_counter()
    again = parametrise(spec, atom_types="gaff", cache_dir=ff_cache)
    assert again.info["cached"] and time.perf_counter() - t0 < 0.5
    assert again.mol2 == urea_ff.mol2
    other = parametrise(spec, atom_types="gaff2", cache_dir=ff_cache)  # other options: another entry
    assert other.mol2 != urea_ff.mol2 and read_mol2(other.mol2).types[2] == "nt"


def test_user_forcefield_is_put_in_spec_order(tmp_path, ff_cache, urea_ff):
    from molenv.simulate.parametrise import Mol2, read_mol2, user_forcefield, write_mol2

    spec = load_spec("urea")
    mol = read_mol2(urea_ff.mol2)
    perm = [4, 2, 7, 0, 5, 1, 3, 6]  # new position k holds old atom perm[k]
    inverse = {old: new for new, old in enumerate(perm)}
    shuffled = Mol2([f"X{k}" for k in range(8)], mol.coordinates[perm], [mol.types[i] for i in perm], mol.charges[perm],
                    [(inverse[i], inverse[j], t) for i, j, t in mol.bonds], "UNL")
    write_mol2(tmp_path / "mine.mol2", shuffled)
    ff = user_forcefield(spec, tmp_path / "mine.mol2", [urea_ff.frcmods[0]], atom_types="gaff", cache_dir=ff_cache)
    back = read_mol2(ff.mol2)
    assert back.names == spec.atom_names and [e for e in back.elements] == spec.elements
    assert np.allclose(back.charges, mol.charges, atol=1e-6)
    assert back.types == mol.types


def test_crystal_run_writes_frames_mdanalysis_reads(tmp_path, ff_cache, reference_dir):
    import MDAnalysis as mda

    out = tmp_path / "urea-I"
    code = simulate("crystal", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache,
                    "--structure", reference_dir / "urea/formI.cif", "--temperature", 100, "--equilibrate", 0.02,
                    "--production", 0.04, "--frame-interval", 0.01, "--threads", 1, "--no-progress", "--out", out)
    assert code == 0
    u = mda.Universe(str(out / "topology.pdb"), str(out / "trajectory.xtc"))
    spec = load_spec("urea")
    assert len(u.residues) == 160 and u.atoms.n_atoms == 1280
    for res in u.residues[[0, 77, 159]]:
        assert list(res.atoms.names) == spec.atom_names
    assert len(u.trajectory) == 4
    times = [ts.time for ts in u.trajectory]
    assert np.allclose(np.diff(times), 0.01, atol=1e-4)
    u.trajectory[-1]
    assert u.dimensions[:3] == pytest.approx([22.26, 22.26, 23.42], abs=0.5) and u.dimensions[3:] == pytest.approx([90, 90, 90])
    # whole molecules: C=O bond length in every molecule
    pos = u.atoms.positions.reshape(160, 8, 3)
    assert np.all(np.linalg.norm(pos[:, 1] - pos[:, 0], axis=1) < 1.5)
    # molenv's own reader: molecules from residues, atom order by name
    from molenv.trajectory import Trajectory

    traj = Trajectory(out / "trajectory.xtc", spec, topology=out / "topology.pdb")
    assert len(traj) == 4 and traj.molecules_from == "residues" and traj.atom_order == "name"
    assert traj[3].box == pytest.approx(u.dimensions, abs=1e-4)
    meta = json.loads((out / "run.json").read_text())
    assert meta["system"]["barostat"] == "xy" and meta["command"].startswith("molenv simulate crystal --molecule urea")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_frames"] == 4 and summary["stages"][1]["wall_s"] > 0
    assert not (out / "chunks").exists() and (out / "final.xml").is_file()
    # the same command again: complete, nothing rerun; other options: refused
    before = (out / "trajectory.xtc").stat().st_mtime_ns
    assert simulate("crystal", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache,
                    "--structure", reference_dir / "urea/formI.cif", "--temperature", 100, "--equilibrate", 0.02,
                    "--production", 0.04, "--frame-interval", 0.01, "--threads", 1, "--no-progress", "--out", out) == 0
    assert (out / "trajectory.xtc").stat().st_mtime_ns == before


def test_other_options_in_same_directory_are_refused(tmp_path, ff_cache, reference_dir, capsys):
    out = tmp_path / "c"
    args = ["cluster", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache, "--structure", reference_dir / "urea/formI.cif",
            "--diameter", 10, "--equilibrate", 0.01, "--production", 0.01, "--frame-interval", 0.01, "--threads", 1, "--no-progress", "--out", out]
    assert simulate(*args) == 0
    capsys.readouterr()
    assert simulate(*args[:-2], "--temperature", 150, "--out", out) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "stages.1.temperature: 100.0 in the run directory, 150.0 now" in err
    assert simulate(*args[:-2], "--temperature", 150, "--overwrite", "--out", out) == 0
    assert json.loads((out / "run.json").read_text())["stages"][1]["temperature"] == 150.0
    command = json.loads((out / "run.json").read_text())["command"]
    assert "--temperature 150.0" in command and "--overwrite" in command


def test_interrupted_run_resumes_from_checkpoint(tmp_path, ff_cache, reference_dir, urea_ff):
    """Kill a run after a checkpoint in production, rerun the command: it continues from the
    checkpoint, and the trajectory has every frame exactly once."""
    out = tmp_path / "cluster"
    args = ["simulate", "cluster", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", str(ff_cache),
            "--structure", str(reference_dir / "urea/formI.cif"), "--diameter", "12", "--temperature", "100",
            "--equilibrate", "1", "--production", "8", "--frame-interval", "0.1", "--checkpoint-interval", "0.5",
            "--threads", "1", "--no-progress", "--no-minimise", "--out", str(out)]
    stopped = kill_in_production(args, out, step=500)
    assert not stopped["done"] and stopped["n_frames"] >= 5
    assert simulate(*args[1:]) == 0
    log = (out / "run.log").read_text()
    assert f"resuming at stage 1 (production), step {stopped['step']}" in log
    assert log.count("minimised") == 0 and log.count("stage 1/2 equilibrate") == 1  # equilibration not redone
    import MDAnalysis as mda

    u = mda.Universe(str(out / "topology.pdb"), str(out / "trajectory.xtc"))
    times = np.array([ts.time for ts in u.trajectory])
    assert len(times) == 80 and u.dimensions is None
    assert np.allclose(np.diff(times), 0.1, atol=1e-3) and times[0] == pytest.approx(1.1, abs=1e-3)


def test_melt_protocol_stages(tmp_path, ff_cache, reference_dir):
    out = tmp_path / "melt"
    assert simulate("melt", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache, "--structure", reference_dir / "urea/formI.cif",
                    "--melt-time", 0.02, "--quench-time", 0.02, "--equilibrate", 0.02, "--production", 0.02, "--frame-interval", 0.01,
                    "--report-interval", 0.01, "--threads", 1, "--no-progress", "--no-minimise", "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["melt", "quench", "equilibrate", "production"]
    assert [s["ensemble"] for s in summary["stages"]] == ["npt"] * 4
    assert summary["stages"][1]["temperature"] == 800 and summary["stages"][1]["temperature_end"] == 350
    assert "barostat iso" in (out / "run.log").read_text()


def test_interface_system(reference_dir):
    from molenv.simulate.systems import interface_system

    spec = load_spec("urea")
    s = interface_system(spec, reference_dir / "urea/formI.cif", reference_dir / "urea/formIV_approx_P1.cif", axis="y", symmetrise_b=0.3)
    assert s.groups == [("formI", 160), ("formIV_approx_P1", 180)]
    assert s.dimensions[[0, 2]].tolist() == pytest.approx([22.26, 23.42]) and s.dimensions[1] == pytest.approx(22.26 + 21.4194 + 3.0)
    top = s.topology()
    assert [c.id for c in top.chains()] == ["A", "B"] and top.getNumResidues() == 340


def test_reduced_box_keeps_the_lattice():
    from molenv.crystals import box_vectors
    from molenv.simulate.systems import reduced_box

    v = box_vectors([10.0, 12.0, 30.0, 60.0, 110.0, 70.0])
    r = reduced_box(v)
    assert abs(r[1, 0]) <= r[0, 0] / 2 and abs(r[2, 0]) <= r[0, 0] / 2 and abs(r[2, 1]) <= r[1, 1] / 2
    assert abs(np.linalg.det(r)) == pytest.approx(abs(np.linalg.det(v)))
    coeff = r @ np.linalg.inv(v)  # integer combinations of the old vectors
    assert np.allclose(coeff, np.round(coeff), atol=1e-9)


@pytest.mark.parametrize("case, message", [
    (["--molecule", "benzene"], "unknown molecule 'benzene'"),
    (["--molecule", "nicotinamide", "--atom-types", "gaff2"], "but spec 'nicotinamide' is"),
    (["--molecule", "urea", "--repeats", "2", "2", "2"], "box too small"),
    (["--molecule", "urea", "--cutoff", "12"], "twice the MD cutoff 12.0 A"),
])
def test_bad_input_fails_early(tmp_path, reference_dir, capsys, case, message):
    out = tmp_path / "bad"
    code = simulate("crystal", *case, "--structure", reference_dir / "urea/formI.cif", "--out", out, "--no-progress")
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_structure_errors_name_the_file(tmp_path, capsys):
    assert simulate("crystal", "--molecule", "urea", "--structure", tmp_path / "missing.cif", "--out", tmp_path / "o") == 2
    assert "missing.cif: structure file not found" in capsys.readouterr().err


def test_nose_hoover_cluster(tmp_path, ff_cache, reference_dir):
    out = tmp_path / "nh"
    assert simulate("cluster", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache, "--structure", reference_dir / "urea/formI.cif",
                    "--diameter", 10, "--thermostat", "nose-hoover", "--friction", 5, "--equilibrate", 0.1, "--production", 0.02,
                    "--frame-interval", 0.01, "--threads", 1, "--no-progress", "--out", out) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["thermostat"] == "nose-hoover" and meta["system"]["box_vectors"] is None
    assert json.loads((out / "summary.json").read_text())["n_frames"] == 2


def _final_state(out: Path):
    """positions (A, numpy) and box vectors (A, 3x3) of <out>/final.xml."""
    import openmm
    from openmm import unit

    state = openmm.XmlSerializer.deserialize((out / "final.xml").read_text())
    return (state.getPositions(asNumpy=True).value_in_unit(unit.angstrom),
            np.array(state.getPeriodicBoxVectors().value_in_unit(unit.angstrom)))


def test_npzt_barostat_moves_z_only(tmp_path, ff_cache, reference_dir):
    """--barostat z: 400 steps (16 Monte Carlo box moves), x and y of the box fixed to 1e-12,
    z changed; recorded in run.json and the log."""
    out = tmp_path / "npzt"
    assert simulate("crystal", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache, "--structure", reference_dir / "urea/formI.cif",
                    "--barostat", "z", "--no-minimise", "--equilibrate", 0.4, "--production", 0.4, "--frame-interval", 0.02,
                    "--report-interval", 0.2, "--threads", 1, "--no-progress", "--out", out) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["settings"]["barostat"] == "z" and meta["system"]["barostat"] == "z" and "--barostat z" in meta["command"]
    assert [s["ensemble"] for s in meta["stages"]] == ["npt", "npt"]
    assert "barostat z" in (out / "run.log").read_text()
    start = np.array(meta["system"]["box_vectors"])
    _, end = _final_state(out)
    assert np.allclose(end[:2], start[:2], rtol=1e-12, atol=0)  # a and b (the xy plane): untouched
    assert np.allclose(end[2, :2], start[2, :2], rtol=1e-12, atol=1e-12)
    assert abs(end[2, 2] / start[2, 2] - 1) > 1e-4  # z moved
    dims = np.load(out / "frame_boxes.npz")["dimensions"]
    assert len(dims) == 20
    assert np.allclose(dims[:, :2], np.linalg.norm(start[:2], axis=1), rtol=1e-12, atol=0)
    assert np.allclose(dims[:, 3:], 90.0, rtol=1e-12)
    assert len(np.unique(dims[:, 2])) > 1  # z changes during production too


def test_no_minimise_starts_from_the_built_coordinates(tmp_path, ff_cache, reference_dir):
    """Zero-length stages: the final state is the state at step 0. With --no-minimise it holds
    the coordinates of system.pdb (= the built system to its 0.001 A precision); without, the
    minimised ones."""
    from openmm import app, unit

    from molenv.simulate.systems import cluster_system

    built = cluster_system(load_spec("urea"), reference_dir / "urea/formI.cif", diameter=10).positions.reshape(-1, 3)
    args = ["cluster", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache, "--structure", reference_dir / "urea/formI.cif",
            "--diameter", 10, "--equilibrate", 0, "--production", 0, "--threads", 1, "--no-progress"]
    for minimise in (False, True):
        out = tmp_path / ("min" if minimise else "nomin")
        assert simulate(*args, *([] if minimise else ["--no-minimise"]), "--out", out) == 0
        positions, _ = _final_state(out)
        pdb = app.PDBFile(str(out / "system.pdb")).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
        assert positions.shape == built.shape
        assert np.allclose(pdb, built, rtol=0, atol=5.1e-4)
        log = (out / "run.log").read_text()
        if minimise:
            assert "minimised" in log and np.abs(positions - pdb).max() > 0.01
        else:
            assert "minimised" not in log
            assert np.array_equal(positions, pdb)
        assert json.loads((out / "summary.json").read_text())["n_frames"] == 0


@pytest.mark.parametrize("case, message", [
    (["cluster", "--diameter", 10], "unrecognized arguments: --barostat z"),  # no box: clusters have no --barostat
    (["interface", "--structure2", "formIV_approx_P1.cif", "--symmetrise2", 0.3, "--axis", "y"],
     "--barostat z (NPzT) couples only z to the pressure, but this interface is stacked along y (--axis y)"),
])
def test_npzt_barostat_refused_where_it_cannot_apply(tmp_path, reference_dir, capsys, case, message):
    out = tmp_path / "bad"
    case = [reference_dir / "urea" / c if c == "formIV_approx_P1.cif" else c for c in case]
    code = simulate(case[0], "--molecule", "urea", "--structure", reference_dir / "urea/formI.cif", *case[1:],
                    "--barostat", "z", "--out", out, "--no-progress")
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
