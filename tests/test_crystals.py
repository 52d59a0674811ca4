"""Crystal structures -> whole molecules in spec order -> supercells (molenv.crystals)."""
from __future__ import annotations

import numpy as np
import pytest

from molenv import crystals as C
from molenv.frames import perpendicular_heights
from molenv.spec import load_spec

pytestmark = pytest.mark.reference

NICOTINAMIDE_Z = {"NICOAM07": 2, "NICOAM08": 4, "NICOAM09": 40, "NICOAM13": 4, "NICOAM14": 16, "NICOAM15": 16,
                  "NICOAM16": 8, "NICOAM17": 4, "NICOAM18": 4}


@pytest.fixture(scope="module")
def urea():
    return load_spec("urea")


@pytest.fixture(scope="module")
def nicotinamide():
    return load_spec("nicotinamide")


def assert_whole_in_spec_order(positions: np.ndarray, spec) -> None:
    """Every spec bond is a covalent bond length (whole molecule, atoms in spec order) and
    every non-bonded pair of heavy atoms is farther apart than a bond."""
    bonded = np.zeros((spec.atoms_per_molecule,) * 2, bool)
    for i, j in spec.bonds:
        bonded[i, j] = bonded[j, i] = True
        d = np.linalg.norm(positions[:, i] - positions[:, j], axis=1)
        assert np.all((d > 0.8) & (d < 1.65)), f"{spec.atom_names[i]}-{spec.atom_names[j]} lengths {d.min():.2f}..{d.max():.2f}"
    heavy = [k for k, e in enumerate(spec.elements) if e != "H"]
    for a in heavy:
        for b in heavy:
            if a < b and not bonded[a, b]:
                assert np.all(np.linalg.norm(positions[:, a] - positions[:, b], axis=1) > 1.9)


def test_urea_form_I_supercell(reference_dir, urea):
    cell = C.cell_molecules(C.read_crystal(reference_dir / "urea/formI.cif"), urea)
    assert cell.n_molecules == 2 and cell.spacegroup == "P -4 21 m"
    sc = C.supercell(cell, min_height=20.0)
    assert sc.repeats == (4, 4, 5) and sc.n_molecules == 160
    assert np.all(perpendicular_heights(C.box_vectors(sc.dimensions)) >= 20.0)
    assert_whole_in_spec_order(sc.positions, urea)
    frame = sc.frame()
    assert frame.molecules.shape == (160, 8) and frame.box.tolist() == pytest.approx([22.26, 22.26, 23.42, 90, 90, 90])
    assert frame.atomic_numbers[:8].tolist() == [6, 8, 7, 1, 1, 7, 1, 1]
    # centre atoms inside the supercell
    frac = sc.positions[:, 0] @ np.linalg.inv(C.box_vectors(sc.dimensions))
    assert np.all((frac >= -1e-9) & (frac < 1))


def test_min_height_follows_request(reference_dir, urea):
    cell = C.cell_molecules(C.read_crystal(reference_dir / "urea/formI.cif"), urea)
    assert C.supercell(cell, min_height=30.0).repeats == (6, 6, 7)
    assert C.supercell(cell, repeats=(1, 2, 3)).n_molecules == 12


@pytest.mark.parametrize("form", ["formI.cif", "formIV"])
def test_urea_order_is_the_symmetry_image_of_the_template(reference_dir, urea, form):
    """N1/N2 (and H) convention: each molecule = template carried by the operation that made it."""
    crystal = C.read_crystal(reference_dir / "urea/formI.cif") if form == "formI.cif" else \
        C.symmetrise(C.read_crystal(reference_dir / "urea/formIV_approx_P1.cif"), 0.3)
    cell = C.cell_molecules(crystal, urea)
    inv = np.linalg.inv(crystal.vectors)
    template = cell.positions[0] @ inv
    assert cell.op_index[0] == 0
    for mol, k in zip(cell.positions, cell.op_index):
        image = np.array([crystal.ops[k].apply_to_xyz(list(f)) for f in template])
        shift = np.round((mol @ inv - image)[0])
        assert np.allclose(mol @ inv, image + shift, atol=1e-6)


def test_urea_form_IV_convention_and_symmetrisation(reference_dir, urea):
    raw = C.read_crystal(reference_dir / "urea/formIV_approx_P1.cif")
    assert raw.spacegroup == "P 1"
    sym = C.symmetrise(raw, 0.3)
    assert sym.spacegroup.startswith("P2_12_12") and len(sym.ops) == 4
    assert sym.dimensions[:3] == pytest.approx([3.6419, 7.1398, 4.6094], abs=1e-3)
    cell = C.cell_molecules(sym, urea)
    v2 = cell.positions[:, 5] - cell.positions[:, 2]
    v2 /= np.linalg.norm(v2, axis=1)[:, None]
    # carried by symmetry, the two molecules' N1->N2 vectors make an obtuse angle (the 2-fold
    # axes swap N1 and N2); the system builders relabel one of them (tests/test_labelling.py).
    # C->O vectors are antiparallel
    assert v2[0] @ v2[1] == pytest.approx(-0.675, abs=0.01)
    v1 = cell.positions[:, 1] - cell.positions[:, 0]
    assert v1[0] @ v1[1] / np.linalg.norm(v1[0]) / np.linalg.norm(v1[1]) == pytest.approx(-1.0, abs=1e-6)
    # translation copies in a supercell keep the order: every v2 is parallel to one of the cell's
    sc = C.supercell(cell, min_height=20.0)
    w = sc.positions[:, 5] - sc.positions[:, 2]
    w /= np.linalg.norm(w, axis=1)[:, None]
    assert np.allclose(np.max(w @ v2.T, axis=1), 1.0)
    assert sc.repeats == (6, 3, 5) and sc.n_molecules == 180


def test_symmetrisation_moves_atoms_little(reference_dir):
    raw = C.read_crystal(reference_dir / "urea/formIV_approx_P1.cif")
    sym = C.symmetrise(raw, 0.3)
    # best origin shift, then largest displacement of an atom
    best = np.inf
    for j in range(len(raw.elements)):
        shifted = sym.fractional + (raw.fractional[j] - sym.fractional[0])
        d = raw.fractional[None] - shifted[:, None]
        d -= np.round(d)
        best = min(best, np.linalg.norm(d @ raw.vectors, axis=2).min(axis=1).max())
    assert best < 0.1


def test_symmetrise_refuses_p1_only(reference_dir):
    raw = C.read_crystal(reference_dir / "urea/formIV_approx_P1.cif")
    # the file is P2(1) within 0.001 A and P2(1)2(1)2 within 0.3 A ...
    assert C.symmetrise(raw, 0.001).spacegroup.startswith("P2_1 ")
    # ... but randomly displaced by up to ~0.1 A it has no symmetry at 0.01 A
    raw.fractional = raw.fractional + np.random.default_rng(1).uniform(-0.015, 0.015, raw.fractional.shape)
    with pytest.raises(C.CrystalError, match="no symmetry above P1"):
        C.symmetrise(raw, 0.01)


@pytest.mark.parametrize("code", sorted(NICOTINAMIDE_Z))
def test_nicotinamide_forms(reference_dir, nicotinamide, code):
    crystal = C.read_crystal(reference_dir / f"nicotinamide/{code}.pdb")
    cell = C.cell_molecules(crystal, nicotinamide)
    assert cell.n_molecules == NICOTINAMIDE_Z[code]
    assert_whole_in_spec_order(cell.positions, nicotinamide)
    # spec C7 (amide C) carries O7 and N7; spec C3 is the ring C bearing it; C6 is next to N1
    d = np.linalg.norm(cell.positions[:, 6] - cell.positions[:, 0], axis=1)
    assert np.all(d < 1.6)
    sc = C.supercell(cell, min_height=20.0)
    assert np.all(perpendicular_heights(C.box_vectors(sc.dimensions)) >= 20.0)


def test_nicotinamide_names_differ_from_spec(reference_dir, nicotinamide):
    """In NICOAM13.pdb the amide C is 'C3' and the ring C bearing it 'C5': graph matching,
    not names, decides the order."""
    crystal = C.read_crystal(reference_dir / "nicotinamide/NICOAM13.pdb")
    cell = C.cell_molecules(crystal, nicotinamide)
    cart = crystal.fractional @ crystal.vectors
    file_c5 = cart[crystal.labels.index("C5")]
    file_c3 = cart[crystal.labels.index("C3")]
    inv = np.linalg.inv(crystal.vectors)

    def same(a, b):
        d = (a - b) @ inv
        return np.allclose((d - np.round(d)) @ crystal.vectors, 0, atol=1e-3)

    assert same(cell.positions[0, nicotinamide.position("C3") - 1], file_c5)
    assert same(cell.positions[0, nicotinamide.position("C7") - 1], file_c3)


def test_structure_of_another_molecule_is_refused(reference_dir, nicotinamide):
    with pytest.raises(C.CrystalError, match=r"formI.cif.*CH4N2O.*'nicotinamide'"):
        C.cell_molecules(C.read_crystal(reference_dir / "urea/formI.cif"), nicotinamide)


def test_match_to_spec(urea):
    # urea atoms shuffled: H first, then N, C, O
    elements = ["H", "N", "H", "C", "O", "N", "H", "H"]
    bonds = [(0, 1), (2, 1), (1, 3), (3, 4), (3, 5), (5, 6), (5, 7)]
    order = C.match_to_spec(elements, bonds, urea)
    assert order == [3, 4, 1, 0, 2, 5, 6, 7]  # graph-equivalent atoms: lowest index first
    with pytest.raises(C.CrystalError, match="different bond graph"):
        C.match_to_spec(elements, [(0, 1), (2, 1), (1, 3), (3, 4), (4, 5), (5, 6), (5, 7)], urea)
    with pytest.raises(C.CrystalError, match="CH3N2O"):
        C.match_to_spec(elements[:-1], bonds[:-1], urea)


def test_unsupported_or_missing_file(tmp_path):
    with pytest.raises(C.CrystalError, match="not found"):
        C.read_crystal(tmp_path / "none.cif")
    (tmp_path / "x.xyz").write_text("1\n\nC 0 0 0\n")
    with pytest.raises(C.CrystalError, match="unsupported structure format"):
        C.read_crystal(tmp_path / "x.xyz")
