"""Point-vector symmetry functions against a brute-force implementation with explicit image enumeration."""
import itertools
import math

import numpy as np
import pytest
from MDAnalysis.lib.mdamath import triclinic_box

from molenv.descriptors import (
    DescriptorError,
    DescriptorSet,
    SymmetryFunction,
    _neumaier_rows,
    centre_pairs,
    compute_descriptors,
    cutoff_function,
)
from molenv.frames import MolecularFrame, box_matrix, perpendicular_heights, reduced_basis
from molenv.spec import load_spec

# a 3-atom molecule, all four kinds, a Gaussian centred outside [-1, 1]
DESCRIPTORS = DescriptorSet(
    atoms_per_molecule=3,
    centre_atom=2,
    vectors=[(1, 2), (2, 3)],
    rmin=4.5,
    rmax=6.0,
    functions=[
        SymmetryFunction("S1", None, (5.0, 0.5)),
        SymmetryFunction("S1", None, (3.0, 2.0)),
        SymmetryFunction("S3", 1, (0.3, 1.5)),
        SymmetryFunction("S3", 2, (-0.5, 3.0)),
        SymmetryFunction("S3", 1, (1.5, 0.8)),
        SymmetryFunction("S2", None, (1.3,)),
        SymmetryFunction("S4", 1, (2.2,)),
        SymmetryFunction("S4", 2, (7.0,)),
    ],
)
CELLS = {
    "ortho": np.array([13.0, 14.0, 15.0, 90.0, 90.0, 90.0]),
    "triclinic": np.array([14.0, 15.0, 16.0, 70.0, 80.0, 100.0]),
    # the triclinic lattice described by a strongly skewed cell: b' = b + 2a, c' = c + a - 2b
    "skewed": triclinic_box(*(np.array([[1, 0, 0], [2, 1, 0], [1, -2, 1]]) @ box_matrix([14.0, 15.0, 16.0, 70.0, 80.0, 100.0]))).astype(np.float64),
}


def random_system(box, n_molecules=30, seed=0):
    """Whole molecules (atoms near their centre atom 2) at random places, then every atom
    wrapped into the cell on its own, so that molecules straddle the boundary."""
    rng = np.random.default_rng(seed)
    matrix = box_matrix(box)
    centres = rng.uniform(0, 1, size=(n_molecules, 3)) @ matrix
    whole = centres[:, None, :] + rng.normal(scale=1.0, size=(n_molecules, 3, 3))
    whole[:, 1] = centres  # atom 2 is the centre
    flat = whole.reshape(-1, 3)
    frac = flat @ np.linalg.inv(matrix)
    wrapped = (frac - np.floor(frac)) @ matrix
    molecules = np.arange(3 * n_molecules).reshape(n_molecules, 3)
    frame = MolecularFrame(wrapped, box, molecules, np.tile([6, 6, 8], n_molecules))
    return frame, whole


def brute_force(whole: np.ndarray, box, d: DescriptorSet, reach: int = 2) -> np.ndarray:
    """Descriptors by the textbook formulas: every image (lattice shifts up to `reach` cells of
    the cell as given) of every other molecule, math.fsum sums.

    `whole` holds whole (unwrapped) molecules, so vectors need no minimum image."""
    centres = whole[:, d.centre_atom - 1]
    vectors = np.stack([whole[:, b - 1] - whole[:, a - 1] for a, b in d.vectors], axis=1)
    shifts = np.zeros((1, 3)) if box is None else np.array(list(itertools.product(range(-reach, reach + 1), repeat=3))) @ box_matrix(box)
    n = len(whole)
    out = np.zeros((n, d.n_features))
    for i in range(n):
        terms = [[] for _ in d.functions]
        images = centres[:, None, :] + shifts[None, :, :]  # (n, n_shifts, 3)
        near = np.linalg.norm(images - centres[i], axis=2) <= d.rmax + 1e-6  # candidates only
        for j, s in zip(*np.nonzero(near)):
            if j == i and not shifts[s].any():
                continue
            r = math.dist(centres[i], images[j, s])
            if r > d.rmax:
                continue
            fc = 1.0 if r <= d.rmin else 0.5 * (math.cos(math.pi * (r - d.rmin) / (d.rmax - d.rmin)) + 1.0)
            for k, sf in enumerate(d.functions):
                if sf.vector is not None:
                    u, v = vectors[i, sf.vector - 1], vectors[j, sf.vector - 1]
                    cos = float(np.dot(u, v)) / (math.sqrt(np.dot(u, u)) * math.sqrt(np.dot(v, v)))
                if sf.kind == "S1":
                    terms[k].append(math.exp(-sf.params[1] * (r - sf.params[0]) ** 2) * fc)
                elif sf.kind == "S2":
                    terms[k].append(math.cos(sf.params[0] * r) * fc)
                elif sf.kind == "S3":
                    terms[k].append(math.exp(-sf.params[1] * (cos - sf.params[0]) ** 2) * fc)
                else:
                    terms[k].append(math.cos(sf.params[0] * cos) * fc)
        out[i] = [math.fsum(t) for t in terms]
    return out


def assert_descriptors_equal(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_matches_brute_force_in_periodic_cells(cell):
    box = CELLS[cell]
    assert perpendicular_heights(reduced_basis(box_matrix(box))).min() > 2 * DESCRIPTORS.rmax
    # the skewed description is thinner than the cutoff needs: only its reduced cell is not
    assert (perpendicular_heights(box_matrix(box)).min() < 2 * DESCRIPTORS.rmax) == (cell == "skewed")
    frame, whole = random_system(box, seed=1)
    got = compute_descriptors(frame, DESCRIPTORS)
    assert got.shape == (30, DESCRIPTORS.n_features) and got.dtype == np.float64
    assert np.count_nonzero(got[:, 0]) == 30  # every molecule has neighbours
    assert_descriptors_equal(got, brute_force(whole, box, DESCRIPTORS, reach=4 if cell == "skewed" else 2))


def test_matches_brute_force_for_a_cluster():
    frame, whole = random_system(CELLS["ortho"], seed=2)
    cluster = MolecularFrame(whole.reshape(-1, 3), None, frame.molecules, frame.atomic_numbers)
    got = compute_descriptors(cluster, DESCRIPTORS)
    assert_descriptors_equal(got, brute_force(whole, None, DESCRIPTORS))
    # fewer neighbours than with periodic images
    assert np.all(got[:, 0] <= compute_descriptors(frame.replace(positions=whole.reshape(-1, 3)), DESCRIPTORS)[:, 0] + 1e-12)
    assert np.any(got[:, 0] < compute_descriptors(frame, DESCRIPTORS)[:, 0] - 1e-3)


def test_invariant_to_translation_wrapping_and_storage_order():
    box = CELLS["skewed"]
    frame, whole = random_system(box, seed=3)
    reference = compute_descriptors(frame, DESCRIPTORS)
    rng = np.random.default_rng(4)
    matrix = box_matrix(box)
    # translate everything, and move single atoms by random lattice vectors
    moved = frame.positions + rng.normal(size=3) * 7 + rng.integers(-2, 3, size=(frame.n_atoms, 3)) @ matrix
    np.testing.assert_allclose(compute_descriptors(frame.replace(positions=moved), DESCRIPTORS), reference, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(compute_descriptors(frame.replace(positions=whole.reshape(-1, 3)), DESCRIPTORS), reference, rtol=1e-10, atol=1e-10)
    # store atoms in another order and molecules in another order
    atom_perm = rng.permutation(frame.n_atoms)
    inverse = np.argsort(atom_perm)
    mol_perm = rng.permutation(frame.n_molecules)
    shuffled = MolecularFrame(frame.positions[atom_perm], box, inverse[frame.molecules][mol_perm], frame.atomic_numbers[atom_perm])
    np.testing.assert_allclose(compute_descriptors(shuffled, DESCRIPTORS), reference[mol_perm], rtol=1e-12, atol=1e-12)


def test_vector_direction_and_atom_choice_matter():
    frame, _ = random_system(CELLS["triclinic"], seed=5)
    reference = compute_descriptors(frame, DESCRIPTORS)
    flip = frame.molecules.copy()
    flip[::2, [0, 1]] = flip[::2, [1, 0]]  # reverse v1 in every other molecule; centres move too
    assert not np.allclose(compute_descriptors(frame.replace(molecules=flip), DESCRIPTORS), reference)


def test_cutoff_function():
    r = np.array([0.0, 4.5, 5.25, 6.0, 6.5])
    assert np.array_equal(cutoff_function(r, 4.5, 6.0), [1.0, 1.0, 0.5 * (math.cos(math.pi / 2) + 1), 0.0, 0.0])
    x = np.linspace(4.5, 6.0, 1001)
    assert np.all(np.diff(cutoff_function(x, 4.5, 6.0)) <= 0)


def test_compensated_sums_are_exact_where_naive_sums_are_not():
    rng = np.random.default_rng(6)
    rows = np.sort(rng.integers(0, 5, size=400))
    terms = rng.normal(size=(400, 2)) * 10.0 ** rng.integers(-8, 9, size=(400, 2))
    got = _neumaier_rows(terms, rows, 6)
    exact = np.array([[math.fsum(terms[rows == r, c]) for c in range(2)] for r in range(6)])
    np.testing.assert_allclose(got, exact, rtol=1e-15, atol=0)
    assert np.array_equal(_neumaier_rows(np.array([[1e16], [1.0], [-1e16]]), np.zeros(3, dtype=int), 1), [[1.0]])


def test_errors():
    frame, _ = random_system(CELLS["ortho"], seed=7)
    with pytest.raises(DescriptorError, match=r"too small for a cutoff of 10 A.*perpendicular heights \(of the reduced cell\) are 13, 14, 15 A"):
        compute_descriptors(frame, DescriptorSet(3, 1, [(1, 2)], 9.0, 10.0, [SymmetryFunction("S1", None, (5.0, 1.0))]))
    with pytest.raises(DescriptorError, match="molecules of 3 atoms, the descriptors are defined for 8-atom molecules"):
        compute_descriptors(frame, load_spec("urea").descriptor_set())
    with pytest.raises(DescriptorError, match="invalid descriptor set: descriptor 1: S3 needs a vector index"):
        compute_descriptors(frame, DescriptorSet(3, 1, [(1, 2)], 4.0, 5.0, [SymmetryFunction("S3", 2, (0.0, 1.0))]))
    squashed = frame.positions.copy()
    squashed[frame.molecules[4, 0]] = squashed[frame.molecules[4, 1]]
    with pytest.raises(DescriptorError, match=r"vector 1 \(1, 2\) of molecule 4 has zero length"):
        compute_descriptors(frame.replace(positions=squashed), DESCRIPTORS)


@pytest.mark.reference
def test_urea_form_I_reference_dump(reference_dir):
    """60 neighbours within the cutoff in form I (METHOD.md); all 432 molecules match brute force."""
    from molenv.trajectory import read_frame

    frame = read_frame(reference_dir / "urea" / "formI_6x6x6_molstruc.dump", "urea", type_elements="1:H,2:O,3:C,4:N")
    d = load_spec("urea").descriptor_set()
    pairs = centre_pairs(frame, d.centre_atom, d.rmax)
    assert np.array_equal(pairs.counts(frame.n_molecules), np.full(432, 60))
    got = compute_descriptors(frame, d)
    whole = frame.molecule_positions(d.centre_atom)
    assert_descriptors_equal(got, brute_force(whole, frame.box, d, reach=1))
    # a perfect crystal: every molecule has (nearly) the same environment
    assert np.ptp(got, axis=0).max() < 0.01 * np.abs(got).max()


@pytest.mark.reference
def test_nicotinamide_triclinic_reference_dump(reference_dir):
    from molenv.trajectory import read_frame

    ref = reference_dir / "nicotinamide"
    frame = read_frame(ref / "formVII_5x2x2_molstruc.dump", "nicotinamide", type_elements=ref / "formVII_cell_gaff.data")
    d = load_spec("nicotinamide").descriptor_set()
    whole = frame.molecule_positions(d.centre_atom)
    assert_descriptors_equal(compute_descriptors(frame, d), brute_force(whole, frame.box, d, reach=1))


def test_chunked_evaluation_is_identical(monkeypatch):
    import molenv.descriptors as descriptors_module

    frame, _ = random_system(CELLS["triclinic"], seed=9)
    whole = compute_descriptors(frame, DESCRIPTORS)
    monkeypatch.setattr(descriptors_module, "PAIRS_PER_CHUNK", 7)  # chunks of one or two molecules
    assert np.array_equal(compute_descriptors(frame, DESCRIPTORS), whole)
