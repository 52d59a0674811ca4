"""The labelling convention of graph-equivalent atoms (molenv.labelling): urea's N1 -> N2 of
all molecules in one hemisphere, applied by every system builder, reported by `molenv labelling`."""
from __future__ import annotations

import numpy as np
import pytest

from molenv.labelling import alignment_direction, apply_convention, check_labelling, equivalent_vectors
from molenv.spec import load_spec

REPO_DATA = __import__("pathlib").Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def urea():
    return load_spec("urea")


def unit_v2(molecules):
    v = molecules[:, 5] - molecules[:, 2]
    return v / np.linalg.norm(v, axis=1)[:, None]


def test_equivalent_vectors(urea):
    (ev,) = equivalent_vectors(urea)
    assert ev.index == 1 and ev.label == "N1->N2"
    # the automorphism swaps N1 with N2 and each N's hydrogens with the other's, keeps C and O
    names = [urea.atom_names[k] for k in ev.permutation]
    assert names[:2] == ["C", "O"] and names[2] == "N2" and names[5] == "N1"
    assert set(names[3:5]) == {"H21", "H22"} and set(names[6:8]) == {"H11", "H12"}
    assert equivalent_vectors(load_spec("nicotinamide")) == []  # C6->C3 and amide C->N: not equivalent


def test_alignment_direction_and_relabelling_of_random_labels(urea):
    rng = np.random.default_rng(3)
    # 40 molecules around two directions 47 degrees apart (form IV-like), each randomly labelled
    base = np.array([[0.9, 0.4, 0.0], [0.9, -0.4, 0.0]])
    mol = np.zeros((40, 8, 3))
    mol += rng.normal(size=(40, 1, 3)) * 5  # molecule positions
    mol += rng.normal(scale=0.3, size=(40, 8, 3))
    v = base[np.arange(40) % 2] * np.where(rng.random(40) < 0.5, 1, -1)[:, None]
    mol[:, 2] = mol[:, 0] - v
    mol[:, 5] = mol[:, 0] + v
    (before,) = check_labelling(urea, mol)
    assert before.n_against > 5 and not before.follows
    assert abs(alignment_direction(2 * v) @ np.array([1.0, 0, 0])) == pytest.approx(1.0, abs=1e-9)
    out, (report,) = apply_convention(urea, mol)
    assert report.n_relabelled == before.n_against and report.follows
    w = unit_v2(out)
    assert np.all(w @ report.direction > 0)
    cos = w @ w.T
    assert np.allclose(np.unique(np.round(np.abs(cos), 3)), np.unique(np.round(cos, 3)))  # no negative cosine left
    # relabelling moves atoms between slots, it does not move atoms: the same set of positions per molecule
    assert np.allclose(np.sort(out.reshape(40, -1), axis=1), np.sort(mol.reshape(40, -1), axis=1))
    (again,) = check_labelling(urea, out)
    assert again.follows and again.n_relabelled == 0


@pytest.mark.parametrize("form,tolerance,cosines", [("formI.cif", None, [0.0, 1.0]), ("formIV_approx_P1.cif", 0.3, [0.675, 1.0])])
def test_built_systems_follow_the_convention(reference_dir, urea, form, tolerance, cosines):
    """Crystal and cluster systems: every N1->N2 in one hemisphere, so form IV's sublattices have
    cos +0.675 (the authors' files), not -0.675 (labels carried by symmetry)."""
    from molenv.simulate.systems import cluster_system, crystal_system

    crystal = crystal_system(urea, reference_dir / "urea" / form, symmetrise_tolerance=tolerance)
    w = unit_v2(crystal.positions)
    assert np.unique(np.round(w @ w.T, 2)).tolist() == pytest.approx(cosines, abs=0.011)
    (report,) = check_labelling(urea, crystal.positions, crystal.dimensions)
    assert report.follows
    assert crystal.info["labelling"][0].startswith("N1->N2: follows the convention")
    if form.startswith("formIV"):
        assert "relabelled 90 molecules" in crystal.info["labelling"][0]  # one sublattice of 180
        assert abs(report.direction[1]) == pytest.approx(1.0, abs=1e-6)  # along b
    cluster = cluster_system(urea, reference_dir / "urea" / form, diameter=20, symmetrise_tolerance=tolerance)
    assert check_labelling(urea, cluster.positions)[0].follows


def test_authors_interface_follows_it(reference_dir, urea):
    """The authors' form I / form IV interface: all but 3 of 1200 N1->N2 along -x."""
    from molenv.trajectory import read_frame

    frame = read_frame(reference_dir / "urea/formI_formIV_interface.data", urea, name_map={"4": "N1", "5": "N2"})
    (report,) = check_labelling(urea, frame.molecule_positions(), frame.box)
    assert report.n_molecules == 1200 and report.n_against == 3
    assert report.direction[0] == pytest.approx(-1.0, abs=0.01)


def test_labelling_command(tmp_path, reference_dir, capsys):
    from molenv.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["labelling", "--spec", "urea", "--crystal", str(reference_dir / "urea/formIV_approx_P1.cif"), "--symmetrise", "0.3"])
    assert exit_.value.code == 1 and "1 of 2 molecules against the convention" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["labelling", "--spec", "urea", "--crystal", str(reference_dir / "urea/formI.cif")])
    assert exit_.value.code == 0 and "1 of 1 frames follow" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["labelling", "--spec", "nicotinamide", "--crystal", str(reference_dir / "nicotinamide/NICOAM13.pdb")])
    assert exit_.value.code == 0 and "no descriptor vector joins graph-equivalent atoms" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["labelling", "--crystal", str(reference_dir / "urea/formI.cif")])
    assert exit_.value.code == 2 and "give --spec" in capsys.readouterr().err


def test_thermal_frames_and_melts(urea):
    """A form I crystal with libration noise keeps following (its two optima, d along a or b,
    are equally good); random directions (a melt) have no order and are not 'against' it."""
    rng = np.random.default_rng(5)
    base = np.array([[-0.71, 0.71, 0.0], [-0.71, -0.71, 0.0]])
    mol = rng.normal(scale=0.2, size=(160, 8, 3)) + rng.normal(size=(160, 1, 3)) * 10
    for k in range(20):
        v = base[np.arange(160) % 2] + rng.normal(scale=0.15, size=(160, 3))
        mol[:, 2], mol[:, 5] = mol[:, 0] - v, mol[:, 0] + v
        (report,) = check_labelling(urea, mol)
        assert report.follows and report.ordered and report.n_against == 0
    v = rng.normal(size=(160, 3))
    mol[:, 2], mol[:, 5] = mol[:, 0] - v, mol[:, 0] + v
    (report,) = check_labelling(urea, mol)
    assert not report.ordered and report.follows and "does not apply" in report.describe()
