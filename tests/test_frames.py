"""MolecularFrame and periodic geometry: exact minimum image and neighbour search against brute force."""
import itertools

import numpy as np
import pytest

from molenv.frames import (FrameError, MolecularFrame, box_matrix, minimum_image, neighbour_pairs, perpendicular_heights, reduced_basis,
                           wrap_into_cell)
from MDAnalysis.lib.mdamath import triclinic_box

ORTHO = np.array([11.0, 12.5, 13.0, 90.0, 90.0, 90.0])
TRICLINIC = np.array([18.7625, 24.6458, 26.1236, 71.5, 85.68, 85.2])  # nicotinamide form VII 5x2x2
# strongly skewed, not reduced (b leans 2.3 a along x): where a 27-image search fails
SKEWED = triclinic_box(*np.array([[10.0, 0, 0], [23.0, 10.0, 0], [4.0, 17.0, 10.0]])).astype(np.float64)
CELLS = {"ortho": ORTHO, "triclinic": TRICLINIC, "skewed": SKEWED}


def brute_images(box, reach):
    return np.array(list(itertools.product(range(-reach, reach + 1), repeat=3)), dtype=float) @ box_matrix(box)


def sufficient_reach(max_frac, box, longest):
    """Lattice shifts m that can bring a vector with fractional coordinates |c_i| <= `max_frac`
    within `longest`: |m_i| <= |c_i| + longest / h_i (h_i the perpendicular heights)."""
    return int(np.ceil(max_frac + longest / perpendicular_heights(box_matrix(box)).min()))


def test_box_matrix_and_heights():
    m = box_matrix(ORTHO)
    assert np.array_equal(m, np.diag(ORTHO[:3]))
    assert np.allclose(perpendicular_heights(m), ORTHO[:3])
    m = box_matrix(TRICLINIC)
    assert np.allclose(np.linalg.norm(m, axis=1), TRICLINIC[:3])
    # heights: volume over face area
    assert np.allclose(perpendicular_heights(m), abs(np.linalg.det(m)) / np.linalg.norm(np.cross(m[[1, 2, 0]], m[[2, 0, 1]]), axis=1))
    assert np.all(perpendicular_heights(m) < TRICLINIC[:3])
    with pytest.raises(FrameError, match="not a valid cell"):
        box_matrix([10, 10, 10, 90, 90, 200])
    with pytest.raises(FrameError, match=r"\[a, b, c, alpha, beta, gamma\]"):
        box_matrix([10, 10, 10])


@pytest.mark.parametrize("cell", CELLS)
def test_reduced_basis_spans_the_same_lattice(cell):
    matrix = box_matrix(CELLS[cell])
    reduced = reduced_basis(matrix)
    change = reduced @ np.linalg.inv(matrix)  # integer, unimodular
    assert np.allclose(change, np.round(change), atol=1e-9) and round(abs(np.linalg.det(np.round(change)))) == 1
    assert np.all(perpendicular_heights(reduced).min() >= perpendicular_heights(matrix).min() - 1e-9)
    assert np.linalg.det(reduced) > 0
    if cell != "skewed":
        assert np.allclose(np.sort(np.linalg.norm(reduced, axis=1)), np.sort(np.linalg.norm(matrix, axis=1)))
    else:
        assert perpendicular_heights(reduced).min() > 2 * perpendicular_heights(matrix).min()


@pytest.mark.parametrize("cell", CELLS)
def test_minimum_image_is_the_shortest_image(cell):
    box = CELLS[cell]
    rng = np.random.default_rng(1)
    d = rng.uniform(-20, 20, size=(400, 3))
    got = minimum_image(d, box)
    # any image bounds the shortest one, so this enumeration provably contains it
    max_frac = np.abs(d @ np.linalg.inv(box_matrix(box))).max()
    images = brute_images(box, sufficient_reach(max_frac, box, np.linalg.norm(got, axis=1).max()))
    shortest = np.array([np.linalg.norm(x + images, axis=1).min() for x in d])
    assert np.allclose(np.linalg.norm(got, axis=1), shortest, rtol=0, atol=1e-10)
    if cell == "skewed":  # the case is hard: rounding fractional coordinates is often not the shortest image
        frac = d @ np.linalg.inv(box_matrix(box))
        naive = np.linalg.norm((frac - np.round(frac)) @ box_matrix(box), axis=1)
        assert np.count_nonzero(naive > shortest + 1e-6) > 50
    # still an image of the input: the difference is a lattice vector
    frac = (got - d) @ np.linalg.inv(box_matrix(box))
    assert np.allclose(frac, np.round(frac), atol=1e-9)
    assert minimum_image(d.reshape(40, 10, 3), box).shape == (40, 10, 3)
    assert np.array_equal(minimum_image(d, None), d)


def brute_pairs(points, box, cutoff):
    """{(i, j): [vectors]} by explicit enumeration of every image that can lie within the cutoff."""
    out = {}
    if box is None:
        shifts = np.zeros((1, 3))
    else:
        frac = points @ np.linalg.inv(box_matrix(box))
        spread = (frac.max(axis=0) - frac.min(axis=0)).max()
        shifts = brute_images(box, sufficient_reach(spread, box, cutoff))
    for i, j in itertools.product(range(len(points)), repeat=2):
        v = points[j] + shifts - points[i]
        r = np.linalg.norm(v, axis=1)
        hits = v[(r > 0) & (r <= cutoff)]
        if len(hits):
            out[i, j] = list(hits)
    return out


@pytest.mark.parametrize("cell", CELLS)
def test_neighbour_pairs_match_brute_force(cell):
    box = CELLS[cell]
    rng = np.random.default_rng(2)
    matrix = box_matrix(box)
    points = rng.uniform(-1.5, 2.5, size=(40, 3)) @ matrix  # many outside the primary cell
    cutoff = 0.49 * perpendicular_heights(matrix).min()
    pairs = neighbour_pairs(points, box, cutoff)
    expected = brute_pairs(points, box, cutoff)
    assert all(len(v) == 1 for v in expected.values())  # unique image below half the height
    assert len(pairs) == len(expected) > 0
    for i, j, v, r in zip(pairs.i, pairs.j, pairs.vectors, pairs.distances):
        assert np.allclose(v, expected[i, j][0], atol=1e-10)
        assert r == pytest.approx(np.linalg.norm(v), rel=1e-15)
    assert np.all(np.diff(pairs.i) >= 0)


def test_neighbour_pairs_every_image_beyond_half_the_cell():
    box = SKEWED
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 1, size=(12, 3)) @ box_matrix(box)
    cutoff = 1.3 * perpendicular_heights(box_matrix(box)).max()
    with pytest.raises(FrameError, match="too small for a cutoff"):
        neighbour_pairs(points, box, cutoff)
    pairs = neighbour_pairs(points, box, cutoff, single_image=False)
    expected = brute_pairs(points, box, cutoff)
    assert len(pairs) == sum(len(v) for v in expected.values())
    assert np.array_equal(pairs.counts(12), [sum(len(v) for (i, _), v in expected.items() if i == k) for k in range(12)])


def test_neighbour_pairs_cluster():
    rng = np.random.default_rng(4)
    points = rng.uniform(0, 20, size=(60, 3))
    pairs = neighbour_pairs(points, None, 5.0)
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    assert len(pairs) == np.count_nonzero((d <= 5.0) & (d > 0))
    assert np.allclose(pairs.vectors, points[pairs.j] - points[pairs.i])
    with pytest.raises(FrameError, match="positive"):
        neighbour_pairs(points, None, 0.0)


def split_dimer_frame(box=TRICLINIC):
    """Two 3-atom molecules, the first straddling the periodic boundary (atoms wrapped)."""
    matrix = box_matrix(box)
    whole = np.array([[0.2, 0.3, 0.4], [-1.0, 0.3, 0.4], [0.2, -1.1, 0.5], [5.0, 5.0, 5.0], [6.0, 5.0, 5.0], [5.0, 6.2, 5.0]])
    frac = whole @ np.linalg.inv(matrix)
    wrapped = (frac - np.floor(frac)) @ matrix
    frame = MolecularFrame(wrapped, box, np.array([[0, 1, 2], [3, 4, 5]]), np.array([6, 8, 1, 6, 8, 1]), time=2.5)
    return frame, whole


def test_frame_helpers_on_molecules_split_across_the_boundary():
    frame, whole = split_dimer_frame()
    assert not np.allclose(frame.positions[1] - frame.positions[0], whole[1] - whole[0])  # really split
    assert frame.n_atoms == 6 and frame.n_molecules == 2 and frame.atoms_per_molecule == 3 and frame.periodic
    assert np.allclose(frame.vectors([(1, 2), (1, 3)]), np.stack([whole[[1, 2]] - whole[0], whole[[4, 5]] - whole[3]]))
    assert np.allclose(frame.centres(1), frame.positions[[0, 3]])
    mol = frame.molecule_positions(1)
    assert np.allclose(mol[0] - mol[0, 0], whole[:3] - whole[0])
    assert np.array_equal(mol[:, 0], frame.positions[[0, 3]])
    with pytest.raises(FrameError, match="1-based, 1..3"):
        frame.centres(0)
    with pytest.raises(FrameError, match="outside the molecule"):
        frame.vectors([(1, 4)])
    copy = frame.replace(time=3.0)
    assert copy.time == 3.0 and np.array_equal(copy.positions, frame.positions) and copy.positions is not frame.positions


@pytest.mark.parametrize(
    "change, message",
    [
        ({"positions": np.zeros((6, 2))}, "positions must have shape"),
        ({"positions": np.full((6, 3), np.nan)}, "non-finite"),
        ({"molecules": np.array([[0, 1, 2], [3, 4, 6]])}, "must lie in 0..5"),
        ({"molecules": np.array([[0, 1, 2], [2, 4, 5]])}, "more than one molecule"),
        ({"molecules": np.array([0, 1, 2])}, "2-d integer array"),
        ({"molecules": np.array([[0.0, 1, 2], [3, 4, 5]])}, "2-d integer array"),
        ({"atomic_numbers": np.array([6, 8, 1])}, "atomic_numbers must be an integer array of shape"),
        ({"box": np.array([10.0, 10, 10, 90, 90])}, "a box is"),
    ],
)
def test_frame_rejects_bad_input(change, message):
    frame, _ = split_dimer_frame()
    with pytest.raises(FrameError, match=message):
        frame.replace(**change)


def test_cluster_frame():
    frame, whole = split_dimer_frame()
    cluster = frame.replace(box=None, positions=whole)
    assert not cluster.periodic and cluster.box_matrix() is None
    assert np.array_equal(cluster.minimum_image(whole), whole)


def random_cell(rng, skewed: bool) -> np.ndarray:
    """Cell vectors as rows: a triclinic cell of 5-20 A edges, or the same kind of lattice
    described by long, leaning vectors (not reduced)."""
    matrix = np.tril(rng.uniform(-6, 6, (3, 3)), -1) + np.diag(rng.uniform(5, 20, 3))
    if skewed:
        matrix = np.array([[1, 0, 0], [2, 1, 0], [-1, 2, 1]]) @ matrix
    return matrix


def brute_shift_pairs(points, matrix, cutoff) -> dict:
    """{(i, j, n_a, n_b, n_c): distance} for every image j + n @ matrix within the cutoff of
    i (i == j with n = 0 left out), every lattice shift that can reach the cutoff enumerated:
    along face normal k, |f_j - f_i + n_k| h_k <= cutoff (f fractional coordinates)."""
    if matrix is None:
        reach, matrix = np.zeros(3, dtype=int), np.zeros((3, 3))
    else:
        frac = points @ np.linalg.inv(matrix)
        reach = np.ceil(np.ptp(frac, axis=0) + cutoff / perpendicular_heights(matrix)).astype(int)
    shifts = np.array(list(itertools.product(*(range(-k, k + 1) for k in reach))))
    n = len(points)
    v = points[None, :, None, :] + (shifts @ matrix)[None, None] - points[:, None, None, :]  # [i, j, shift]
    r = np.sqrt(np.einsum("ijsk,ijsk->ijs", v, v))
    hits = r <= cutoff
    hits[np.arange(n), np.arange(n), np.flatnonzero(~shifts.any(axis=1))[0]] = False
    return {(i, j, *shifts[s]): r[i, j, s] for i, j, s in zip(*np.nonzero(hits))}


@pytest.mark.parametrize("skewed", [False, True], ids=["triclinic", "skewed"])
@pytest.mark.parametrize("reach", [0.45, 0.9, 1.6], ids=["below-half-cell", "beyond-half-cell", "beyond-cell"])
def test_neighbour_pairs_shifts_and_distances_equal_brute_force(skewed, reach):
    """vesin's candidates, molenv's float64 vectors: the same (i, j, shift) set as an explicit
    enumeration and the same distances to 1e-12, on random triclinic cells, with points far
    outside the cell, cutoffs up to 1.6 heights (many images, atoms seeing themselves);
    the cell given as [a, b, c, alpha, beta, gamma] and as cell vectors. Shifts count from
    the points wrapped into the cell as given."""
    rng = np.random.default_rng(int(10 * reach) + 100 * skewed)
    for _ in range(4):
        matrix = random_cell(rng, skewed)
        box = triclinic_box(*matrix).astype(np.float64)
        given = box_matrix(box)
        points = rng.uniform(-1.5, 2.5, size=(int(rng.integers(8, 24)), 3)) @ given
        cutoff = reach * perpendicular_heights(reduced_basis(given)).min()
        single = reach < 0.5
        for cell, vectors in ((box, given), (matrix, matrix)):
            pairs = neighbour_pairs(points, cell, cutoff, single_image=single)
            wrapped = wrap_into_cell(points, vectors)
            expected = brute_shift_pairs(wrapped, vectors, cutoff)
            got = np.column_stack([pairs.i, pairs.j, pairs.shifts])
            assert len(expected) > 0 and sorted(map(tuple, got.tolist())) == sorted(expected)
            np.testing.assert_allclose(pairs.distances, [expected[tuple(row)] for row in got.tolist()], rtol=0, atol=1e-12)
            np.testing.assert_allclose(pairs.vectors, wrapped[pairs.j] + pairs.shifts @ vectors - wrapped[pairs.i], rtol=0, atol=1e-10)
            assert np.array_equal(np.lexsort(got.T[::-1]), np.arange(len(got)))  # sorted by i, j, shift
            if not single:  # several images of a point; beyond one height, a point's own images
                assert len(np.unique(got[:, :2], axis=0)) < len(got) and np.any(got[:, 0] == got[:, 1]) == (reach > 1)
    with pytest.raises(FrameError, match="too small for a cutoff"):
        neighbour_pairs(points, box, 0.5 * perpendicular_heights(reduced_basis(given)).min())


def test_neighbour_pairs_cluster_equal_brute_force():
    rng = np.random.default_rng(6)
    points = rng.uniform(-10, 10, size=(80, 3))
    pairs = neighbour_pairs(points, None, 6.0)
    expected = brute_shift_pairs(points, None, 6.0)
    got = np.column_stack([pairs.i, pairs.j, pairs.shifts])
    assert sorted(map(tuple, got.tolist())) == sorted(expected) and not pairs.shifts.any()
    np.testing.assert_allclose(pairs.distances, [expected[tuple(row)] for row in got.tolist()], rtol=0, atol=1e-12)
    assert len(neighbour_pairs(np.zeros((0, 3)), None, 6.0)) == 0 == len(neighbour_pairs(np.zeros((0, 3)), TRICLINIC, 6.0))
