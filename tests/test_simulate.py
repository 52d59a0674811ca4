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
    # the observables of the log: each report once, although steps after the checkpoint were logged twice
    from molenv.simulate.md import read_log

    reports = read_log(out, "production")
    assert reports["time"][-1] == pytest.approx(9.0) and np.all(np.diff(reports["time"]) > 0)
    assert np.allclose(np.diff(reports["time"]), reports["time"][1] - reports["time"][0])
    assert np.all(reports["potential_energy"] < 0) and np.all(reports["temperature"] > 0)
    assert len(read_log(out / "run.log")["time"]) > len(reports["time"])  # with the equilibration's
    import MDAnalysis as mda

    u = mda.Universe(str(out / "topology.pdb"), str(out / "trajectory.xtc"))
    times = np.array([ts.time for ts in u.trajectory])
    assert len(times) == 80 and u.dimensions is None
    assert np.allclose(np.diff(times), 0.1, atol=1e-3) and times[0] == pytest.approx(1.1, abs=1e-3)


def test_melt_protocol_stages(tmp_path, ff_cache, reference_dir):
    out = tmp_path / "melt"
    assert simulate("melt", "--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache, "--structure", reference_dir / "urea/formI.cif",
                    "--melt-time", 0.02, "--quench-time", 0.02, "--equilibrate", 0.02, "--production", 0.02, "--frame-interval", 0.01,
                    "--report-interval", 0.01, "--threads", 1, "--no-progress", "--no-minimise", "--no-melt-check", "--out", out) == 0
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


# ---------------------------------------------------------------------------------------
# interfaces in a chosen orientation (the paper's urea I / IV interface) and systems read from a file

PAPER_INTERFACE = dict(axis="z", orient_a="b,c,a", repeats_a=[8, 6, 5], orient_b="b,c,a", repeats_b=[6, 6, 10], symmetrise_b=0.3,
                       lateral_box=[43.2782, 28.01799], gap=1.1566)


def _directions(positions):
    """Unit C -> O and N1 -> N2 of urea molecules (n, 8, 3)."""
    co, nn = positions[:, 1] - positions[:, 0], positions[:, 5] - positions[:, 2]
    return co / np.linalg.norm(co, axis=1)[:, None], nn / np.linalg.norm(nn, axis=1)[:, None]


def _angles_to(positions, ref_co, ref_nn, sign):
    """Per molecule: the smallest over the reference orientations of the larger of the angles
    (degrees) between the C=O directions and between the (sign x) N1->N2 directions."""
    co, nn = _directions(positions)
    angle = np.maximum(np.arccos(np.clip(co @ ref_co.T, -1, 1)), np.arccos(np.clip(sign * nn @ ref_nn.T, -1, 1)))
    return np.degrees(angle.min(axis=1)), angle.argmin(axis=1)


def _neighbour_shell(positions, box, rmax=6.0):
    """Multiset of (distance, cos(N1->N2, N1->N2'), chi) over all pairs of molecules whose C
    atoms lie within rmax (minimum image, rectangular box), rounded to 1e-3: chi = (u.n)(u.(o x n))
    with u the unit C -> C' vector, o = C -> O, n = N1 -> N2 of the first molecule: it does not
    change when N1 and N2 swap, and changes sign under a mirror (it tells a crystal from its
    mirror image)."""
    from collections import Counter

    c = positions[:, 0]
    co, nn = _directions(positions)
    r = c[None, :, :] - c[:, None, :]
    r -= np.round(r / box[:3]) * box[:3]
    d = np.linalg.norm(r, axis=2)
    i, j = np.nonzero((d > 0.1) & (d < rmax))
    u = r[i, j] / d[i, j, None]
    chi = np.einsum("kx,kx->k", u, nn[i]) * np.einsum("kx,kx->k", u, np.cross(co[i], nn[i]))
    cos = np.einsum("kx,kx->k", nn[i], nn[j])
    return Counter(map(tuple, np.round(np.c_[d[i, j], cos, chi], 3) + 0.0))


def test_orientation_is_a_proper_rotation():
    from molenv.simulate import SimulationError
    from molenv.simulate.systems import parse_orientation

    rot, label, note = parse_orientation(None)
    assert np.array_equal(rot, np.eye(3)) and label == "a,b,c" and note is None
    rot, label, note = parse_orientation("b,c,a")  # cyclic: a rotation as it is
    assert label == "b,c,a" and note is None and np.array_equal(rot @ [1, 0, 0], [0, 0, 1])  # a along z
    rot, label, note = parse_orientation("a,c,b")  # odd: a mirror image; the axis along z reversed
    assert label == "a,c,-b" and "mirror image" in note and round(np.linalg.det(rot)) == 1
    assert parse_orientation("a,c,b", axis="y")[1] == "a,-c,b"
    assert parse_orientation("-a,c,b")[1] == "-a,c,b" and parse_orientation(" A, C, -B ")[1] == "a,c,-b"
    for bad in ("a,a,b", "a,b", "x,y,z", "a,b,c,a", "ab,c", ""):
        with pytest.raises(SimulationError, match="expected the cell axes a, b, c"):
            parse_orientation(bad)


@pytest.mark.parametrize("orient", ["b,c,a", "a,c,b", "c,a,b"])
def test_rotated_form_iv_is_the_same_crystal(reference_dir, orient):
    """Form IV (P2(1)2(1)2, chiral) rotated by --orient has the neighbour shells of the
    unrotated crystal (distances, N-N cosines after the labelling convention, and the
    handedness-sensitive chi); its mirror image has not (chi changes sign)."""
    from molenv.simulate.systems import MolecularSystem, _cell, _orient_cell, parse_orientation
    from molenv.crystals import supercell

    spec = load_spec("urea")
    cell = _cell(reference_dir / "urea/formIV_approx_P1.cif", spec, 0.3)
    plain = supercell(cell, repeats=[4, 2, 3])  # 14.6 x 14.3 x 13.8 A: the 6 A shell fits
    reference = _neighbour_shell(MolecularSystem(spec, plain.positions, plain.dimensions, [("IV", 48)], "").positions, plain.dimensions)
    rotation, label, _ = parse_orientation(orient)
    assert round(np.linalg.det(rotation)) == 1
    oriented = _orient_cell(cell, rotation, spec)
    repeats = [[4, 2, 3][i] for i in np.abs(rotation).argmax(axis=1)]
    sc = supercell(oriented, repeats=repeats)
    assert sc.dimensions[:3] == pytest.approx(plain.dimensions[:3][np.abs(rotation).argmax(axis=1)])
    assert np.all((sc.positions[:, 0] >= -1e-9) & (sc.positions[:, 0] < sc.dimensions[:3]))  # centres in the box
    built = MolecularSystem(spec, sc.positions, sc.dimensions, [("IV", 48)], "")
    shell = _neighbour_shell(built.positions, sc.dimensions)
    assert shell == reference
    assert {round(k[1], 2) for k in shell} == {1.0, 0.68}  # sublattices at cos +0.675 (labelling convention)
    mirror = built.positions.copy()
    mirror[..., 1] = sc.dimensions[1] - mirror[..., 1]
    mirrored = _neighbour_shell(MolecularSystem(spec, mirror, sc.dimensions, [("IV", 48)], "").positions, sc.dimensions)
    assert mirrored != reference
    assert mirrored == {(d, c, -chi + 0.0): n for (d, c, chi), n in reference.items()}


def test_interface_in_the_papers_geometry(reference_dir):
    """The options of docs/simulate.md build the authors' urea I / IV interface
    (formI_formIV_interface.data): the same box, molecules per slab and layers, and in each
    slab the same molecular orientations (C=O and N1->N2 together, N1->N2 up to one global
    sign); the wrong form I orientation (a,c,-b) or a mirror image does not match."""
    from molenv.simulate import SimulationError
    from molenv.simulate.systems import file_system, interface_system

    spec = load_spec("urea")
    ref = reference_dir / "urea"
    built = interface_system(spec, ref / "formI.cif", ref / "formIV_approx_P1.cif", **PAPER_INTERFACE)
    authors = file_system(spec, ref / "formI_formIV_interface.data", name_map={"4": "N1", "5": "N2"})
    assert built.groups == [("formI", 480), ("formIV_approx_P1", 720)]
    assert built.dimensions == pytest.approx(authors.dimensions, abs=2e-4)
    assert built.info["orientations"] == ["b,c,a", "b,c,a"] and built.info["repeats"] == [[8, 6, 5], [6, 6, 10]]
    assert np.ravel(built.info["lateral_strain"]) == pytest.approx([-0.0279, -0.0031, 0.0103, 0.0131], abs=1e-4)

    def layers(z):  # molecules per layer of centre atoms (layers > 0.6 A apart)
        z = np.sort(z)
        return np.diff(np.r_[0, np.nonzero(np.diff(z) > 0.6)[0] + 1, len(z)]).tolist()

    assert layers(built.positions[:480, 0, 2]) == [48] * 10 and layers(built.positions[480:, 0, 2]) == [36] * 20
    z = authors.positions[:, 0, 2]
    slabs = {"formIV_approx_P1": z < 140.0, "formI": z >= 140.0}  # IV below (20 layers of 36), I above, in the file
    assert slabs["formIV_approx_P1"].sum() == 720 and layers(z[slabs["formIV_approx_P1"]]) == [36] * 20
    assert layers(z[z > 160.7]) == [48] * 3  # the authors' fixed top layers of form I
    # the interface across the periodic boundary, between the authors' fixed layers (as built): 3.57 A
    assert built.info["interface_spacing"] == pytest.approx(z.min() + authors.dimensions[2] - z.max(), abs=0.15)

    start = 0
    for name, n in built.groups:
        ours = built.positions[start:start + n]
        start += n
        co, nn = _directions(ours)
        _, first = np.unique(np.round(np.c_[co, nn], 3), axis=0, return_index=True)
        assert len(first) == 2  # two orientations per slab, 50/50
        theirs = authors.positions[slabs[name]]
        fixed = authors.positions[slabs[name] & ((z < 107.1) | (z > 160.7))]  # the authors' fixed layers: as built
        sign = max((1, -1), key=lambda s: (_angles_to(theirs, co[first], nn[first], s)[0] < 25).mean())
        angle, which = _angles_to(theirs, co[first], nn[first], sign)
        assert (angle < 25).mean() > (0.98 if name == "formIV_approx_P1" else 0.8)  # form I: the interface layers are disordered
        assert np.bincount(which[angle < 25], minlength=2).min() > 0.4 * len(theirs)
        assert len(fixed) in (108, 144) and _angles_to(fixed, co[first], nn[first], sign)[0].max() < 1.0
        mirror = ours.copy()
        mirror[..., 1] *= -1
        mco, mnn = _directions(mirror)
        assert max((_angles_to(theirs, mco[first], mnn[first], s)[0] < 25).mean() for s in (1, -1)) < 0.05
    other = interface_system(spec, ref / "formI.cif", ref / "formIV_approx_P1.cif", **(PAPER_INTERFACE | {"orient_a": "a,c,b"}))
    assert other.info["orientations"] == ["a,c,-b", "b,c,a"] and "mirror image" in other.info["orientation_notes"][0]
    co, nn = _directions(other.positions[:480])
    _, first = np.unique(np.round(np.c_[co, nn], 3), axis=0, return_index=True)
    assert max((_angles_to(authors.positions[slabs["formI"]], co[first], nn[first], s)[0] < 25).mean() for s in (1, -1)) < 0.05
    with pytest.raises(SimulationError, match=r"formI.cif \(\[44.52, 28.104\] A, repeats \[8, 6, 5\] along x, y, z\) needs strain \[-0.102, -0.003\] > 0.05"):
        interface_system(spec, ref / "formI.cif", ref / "formIV_approx_P1.cif", **(PAPER_INTERFACE | {"lateral_box": [40.0, 28.01799]}))


def test_interface_slabs_are_centred_with_equal_interfaces(reference_dir):
    from molenv.simulate.systems import interface_system

    s = interface_system(load_spec("urea"), reference_dir / "urea/formI.cif", reference_dir / "urea/formIV_approx_P1.cif", axis="y", symmetrise_b=0.3)
    y = s.positions[:, 0, 1]
    a, b = y[:160], y[160:]
    spacing = [b.min() - a.max(), a.min() + s.dimensions[1] - b.max()]  # the two interfaces
    assert spacing == pytest.approx([s.info["interface_spacing"]] * 2, abs=1e-9)
    assert s.info["lateral_strain"][0] == [0.0, 0.0] and s.info["orientations"] == ["a,b,c", "a,b,c"]


@pytest.mark.parametrize("case, message", [
    (["--orient", "a,a,c"], "orientation 'a,a,c': expected the cell axes a, b, c"),
    (["--lateral-box", "40", "28.01799"], "lateral box [40.0, 28.01799] A"),
])
def test_bad_interface_options_fail_early(tmp_path, reference_dir, capsys, case, message):
    ref = reference_dir / "urea"
    out = tmp_path / "bad"
    code = simulate("interface", "--molecule", "urea", "--structure", ref / "formI.cif", "--orient", "b,c,a", "--repeats", 8, 6, 5,
                    "--structure2", ref / "formIV_approx_P1.cif", "--symmetrise2", 0.3, "--orient2", "b,c,a", "--repeats2", 6, 6, 10,
                    *case, "--out", out, "--no-progress")
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_interface_command_line_options(reference_dir):
    """--orient/--orient2/--lateral-box reach the builder; the command line in run.json repeats them."""
    from molenv.cli import build_parser
    from molenv.commands.simulate import _build, _request, command_line

    ref = reference_dir / "urea"
    argv = ["simulate", "interface", "--molecule", "urea", "--structure", str(ref / "formI.cif"), "--orient", "b,c,a", "--repeats", "8", "6", "5",
            "--structure2", str(ref / "formIV_approx_P1.cif"), "--symmetrise2", "0.3", "--orient2", "b,c,a", "--repeats2", "6", "6", "10",
            "--axis", "z", "--lateral-box", "43.2782", "28.01799", "--gap", "1.1566", "--barostat", "z", "--out", "x"]
    args = build_parser().parse_args(argv)
    spec = load_spec("urea")
    s = _build(args, spec)
    assert s.n_molecules == 1200 and s.dimensions[:3] == pytest.approx([43.2782, 28.01799, 66.5572], abs=2e-4)
    assert "--lateral-box 43.2782 28.01799" in command_line(args) and "--orient2 b,c,a" in command_line(args)
    req = _request(args, spec)
    assert req["orient"] == "b,c,a" and req["lateral_box"] == [43.2782, 28.01799] and req["structure2_sha"]


def test_system_from_the_authors_interface_file(reference_dir):
    """`simulate system` reads the authors' LAMMPS data file as 1200 whole urea molecules in its box."""
    from molenv.cli import build_parser
    from molenv.commands.simulate import _barostat, _build, _request

    path = reference_dir / "urea/formI_formIV_interface.data"
    args = build_parser().parse_args(["simulate", "system", "--molecule", "urea", "--structure", str(path), "--name-map", "4:N1,5:N2",
                                      "--type-elements", "1:H,2:O,3:C,4:N,5:N", "--out", "x"])
    spec = load_spec("urea")
    s = _build(args, spec)
    assert s.n_molecules == 1200 and s.n_atoms == 9600 and s.groups == [("formI_formIV_interface", 1200)]
    assert s.dimensions == pytest.approx([43.2782, 28.01799, 66.5572, 90, 90, 90], abs=2e-4)
    assert s.description == "urea system from formI_formIV_interface.data, 1200 molecules"
    assert np.all(np.linalg.norm(s.positions[:, 1] - s.positions[:, 0], axis=1) < 1.5)  # whole molecules
    assert np.all(np.linalg.norm(s.positions[:, 5] - s.positions[:, 2], axis=1) < 2.5)
    assert "relabelled 3 molecules" in s.info["labelling"][0]  # 1197 of 1200 N1->N2 along -x in the file
    assert _barostat(args, s) == "aniso"
    req = _request(args, spec)
    assert req["mode"] == "system" and req["name_map"] == "4:N1,5:N2" and req["structure_sha"] and req["no_pbc"] is False
    s.check_box(9.0)


def test_system_mode_runs_md_on_a_file(tmp_path, ff_cache, reference_dir, capsys):
    """A PDB written from a crystal supercell: run as it is (box from CRYST1, coordinates kept);
    without a box it needs --no-pbc, and then runs NVT without cutoff."""
    from openmm import app, unit

    from molenv.simulate.systems import cluster_system, crystal_system

    spec = load_spec("urea")
    crystal = crystal_system(spec, reference_dir / "urea/formI.cif", repeats=[4, 4, 5])
    pdb = tmp_path / "cell.pdb"
    crystal.write_pdb(pdb)
    out = tmp_path / "run"
    common = ["--molecule", "urea", "--atom-types", "gaff", "--ff-cache", ff_cache, "--no-minimise", "--equilibrate", 0, "--production", 0.02,
              "--frame-interval", 0.01, "--threads", 1, "--no-progress"]
    assert simulate("system", "--structure", pdb, *common, "--out", out) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["system"]["description"] == "urea system from cell.pdb, 160 molecules" and meta["system"]["groups"] == [["cell", 160]]
    assert meta["system"]["barostat"] == "aniso" and meta["request"]["structure_sha"] and meta["command"].startswith("molenv simulate system")
    assert meta["system"]["dimensions"] == pytest.approx(crystal.dimensions.round(4).tolist(), abs=1e-3)
    built = app.PDBFile(str(out / "system.pdb")).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    assert np.allclose(built, crystal.positions.reshape(-1, 3), atol=2e-3)
    assert json.loads((out / "summary.json").read_text())["n_frames"] == 2

    cluster = cluster_system(spec, reference_dir / "urea/formI.cif", diameter=10)
    xyz = tmp_path / "cluster.pdb"
    cluster.write_pdb(xyz)  # no box: no CRYST1
    capsys.readouterr()
    assert simulate("system", "--structure", xyz, *common, "--out", tmp_path / "nobox") == 2
    assert "has no periodic box; give --no-pbc" in capsys.readouterr().err
    assert simulate("system", "--structure", xyz, "--no-pbc", "--barostat", "z", *common, "--out", tmp_path / "nobox") == 2
    assert "--barostat z needs a periodic box" in capsys.readouterr().err
    assert simulate("system", "--structure", xyz, "--no-pbc", *common, "--out", tmp_path / "gas") == 0
    meta = json.loads((tmp_path / "gas/run.json").read_text())
    assert meta["system"]["box_vectors"] is None and meta["system"]["barostat"] is None
    assert [s["ensemble"] for s in meta["stages"]] == ["nvt", "nvt"]


def test_melt_density_expands_rigid_molecules(reference_dir):
    """`molenv simulate melt --density`: the supercell expanded isotropically to the density
    asked for, molecules rigid (intramolecular distances unchanged); compression refused."""
    from molenv.simulate import SimulationError
    from molenv.simulate.systems import at_density, crystal_system, density

    spec = load_spec("urea")
    crystal = crystal_system(spec, reference_dir / "urea" / "formI.cif")
    assert density(crystal) == pytest.approx(1.375, abs=0.001)  # the experimental cell
    expanded = at_density(crystal, 1.24)
    assert density(expanded) == pytest.approx(1.24, rel=1e-9)
    inner = lambda s: np.linalg.norm(s.positions[:, :, None] - s.positions[:, None, :], axis=-1)  # noqa: E731
    assert np.allclose(inner(expanded), inner(crystal), atol=1e-9)
    assert expanded.info["density_g_cm3"] == 1.24 and "expanded to 1.24 g/cm3" in expanded.description
    with pytest.raises(SimulationError, match="would compress"):
        at_density(crystal, 1.5)
