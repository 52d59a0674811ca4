"""The in-memory frame of a molecular system, and the periodic geometry the toolkit needs.

`MolecularFrame` is what every part of molenv works on: atom positions (Angstrom, float64),
the periodic box (MDAnalysis ``dimensions`` convention ``[a, b, c, alpha, beta, gamma]``, or
``None`` for a non-periodic cluster), the molecules as rows of atom indices in the atom order
of the molecule spec / model, and the atomic numbers. Trajectory readers
(`molenv.trajectory`) produce frames; descriptors, datasets and the GNN consume them.

Atom positions *within a molecule* in this module's helpers are **1-based**, as in molecule
specs and model files (``DescriptorSet.centre_atom``, ``DescriptorSet.vectors``). A molecule's
centre (`Centre`) is one such position, or a tuple of them whose centroid is the centre.

Geometry helpers, exact for any triclinic cell and computed in float64:

- `box_matrix(box)`: cell vectors as rows (MDAnalysis ``triclinic_vectors`` in float64);
- `perpendicular_heights(matrix)`: distances between opposite faces of the cell;
- `reduced_basis(matrix)`: short, near-orthogonal cell vectors of the same lattice;
- `minimum_image(vectors, box)`: the shortest periodic image of each vector. MDAnalysis'
  ``minimize_vectors`` only tries the 27 images next to a diagonal-based wrap, which is not
  the shortest image in strongly skewed cells (and its distance kernels hold the box in
  float32), so molenv enumerates every image that can be shorter;
- `wrap_into_cell(points, cell)`: points moved by whole cell vectors into the cell;
- `neighbour_pairs(points, box, cutoff)`: all pairs of points closer than a cutoff, with
  their lattice shifts and separation vectors: candidates from vesin's cell list (O(N),
  every periodic image within the cutoff, in any cell), vectors and the cutoff test in
  float64 by molenv (so that the pairs and every bit of their vectors do not depend on
  the search library).
"""
from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Centre",
    "FrameError",
    "MolecularFrame",
    "MIN_BOX_HEIGHT",
    "box_from_file",
    "check_finite_positions",
    "NeighbourPairs",
    "box_matrix",
    "reduced_basis",
    "perpendicular_heights",
    "minimum_image",
    "neighbour_pairs",
    "wrap_into_cell",
]


class FrameError(ValueError):
    """A frame, box or geometric request that cannot be used; the message names the problem."""


MIN_BOX_HEIGHT = 0.1  # Angstrom: a cell thinner than this (between any two faces) is degenerate

# A molecule's centre as specs and model files give it: the 1-based position of one atom, or
# a tuple of positions whose centroid is the centre (`MolecularFrame.centres`).
Centre = int | tuple[int, ...]


def check_finite_positions(positions, atom_numbers=None) -> None:
    """FrameError where `positions` (n, 3) hold NaN or inf: a damaged file, or an MD run that
    blew up. Named as such, not left to fail later as something else (two atoms that seem to
    coincide, an empty neighbour list). ``atom_numbers``: the 1-based number of each row in
    its file, for the message (default: row + 1)."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(positions, dtype=np.float64)).all(axis=1))
    if len(bad):
        first = int(bad[0]) + 1 if atom_numbers is None else int(atom_numbers[bad[0]])
        raise FrameError(f"non-finite coordinates (NaN or inf) for {len(bad)} of {len(positions)} atoms, the first atom {first}")


# ----------------------------------------------------------------------------- cell geometry


def box_matrix(box) -> np.ndarray:
    """Cell vectors a, b, c as the rows of a (3, 3) float64 matrix (a along x, b in the xy plane).

    `box` is ``[a, b, c, alpha, beta, gamma]`` (Angstrom, degrees), the MDAnalysis
    ``dimensions`` convention. Raises FrameError for a degenerate box: a length <= 0,
    angles that make no cell, or a cell of (near) zero volume, thinner than
    `MIN_BOX_HEIGHT` between two faces.
    """
    from MDAnalysis.lib.mdamath import triclinic_vectors

    dims = np.asarray(box, dtype=np.float64)
    if dims.shape != (6,) or not np.all(np.isfinite(dims)):
        raise FrameError(f"a box is [a, b, c, alpha, beta, gamma], got {box!r}")
    matrix = triclinic_vectors(dims, dtype=np.float64)
    shown = "[" + ", ".join(f"{x:.6g}" for x in dims) + "]"
    if not np.any(matrix):
        degenerate = " (degenerate: a length <= 0, zero volume)" if np.any(dims[:3] <= 0) else ""
        raise FrameError(f"box {shown} is not a valid cell{degenerate} (lengths must be > 0, angles in (0, 180) and compatible)")
    heights = perpendicular_heights(matrix)
    if not heights.min() >= MIN_BOX_HEIGHT:
        raise FrameError(f"box {shown} is not a valid cell: it is degenerate, of (near) zero volume {abs(np.linalg.det(matrix)):.3g} A^3 "
                         f"(its faces are {heights.min():.3g} A apart, below {MIN_BOX_HEIGHT:g} A)")
    return matrix


def box_from_file(dimensions) -> np.ndarray | None:
    """The periodic box of a frame as a file gives it (MDAnalysis ``ts.dimensions``): None
    where the file has none (no dimensions, or all three lengths zero, how XTC, DCD and
    other formats write "no box"); else the box as float64 ``[a, b, c, alpha, beta,
    gamma]``, checked: a degenerate box (a zero or negative length beside others, angles
    that make no cell, a cell of near-zero volume) raises FrameError instead of passing
    for "no box"."""
    if dimensions is None:
        return None
    dims = np.asarray(dimensions, dtype=np.float64)
    if dims.shape == (6,) and np.all(dims[:3] == 0):
        return None
    box_matrix(dims)
    return dims.copy()


def perpendicular_heights(matrix: np.ndarray) -> np.ndarray:
    """Distances between opposite faces of the cell with cell vectors as rows: h_i = V / |b_j x b_k|."""
    volume = abs(np.linalg.det(matrix))
    return volume / np.linalg.norm(np.cross(matrix[[1, 2, 0]], matrix[[2, 0, 1]]), axis=1)


def reduced_basis(matrix: np.ndarray) -> np.ndarray:
    """Cell vectors (rows) of the same lattice, made short and near-orthogonal.

    Greedy pairwise (Lagrange-Gauss) reduction: subtract integer multiples of one vector
    from another while that shortens it. A skewed description of a lattice (e.g. b leaning
    over several a) has thin perpendicular heights; the reduced one has the largest heights
    this finds, which is what image searches and the 'cell too small' check should use.
    """
    basis = np.array(matrix, dtype=np.float64)
    for _ in range(1000):
        changed = False
        for i, j in itertools.permutations(range(3), 2):
            m = np.round(basis[i] @ basis[j] / (basis[j] @ basis[j]))
            if m:
                candidate = basis[i] - m * basis[j]
                if candidate @ candidate < (basis[i] @ basis[i]) * (1 - 1e-12):
                    basis[i] = candidate
                    changed = True
        if not changed:
            break
    if np.linalg.det(basis) < 0:
        basis[2] = -basis[2]
    return basis


def _as_matrix(box) -> np.ndarray:
    box = np.asarray(box, dtype=np.float64)
    return reduced_basis(box if box.shape == (3, 3) else box_matrix(box))


def minimum_image(vectors: np.ndarray, box) -> np.ndarray:
    """The shortest periodic image of each vector, exactly, for any (triclinic) cell.

    `vectors` has shape (..., 3); `box` is ``[a, b, c, alpha, beta, gamma]``, a (3, 3)
    matrix of cell vectors as rows, or None (no periodicity: vectors returned as float64).
    vesin (`neighbour_pairs`) answers which pairs lie within a cutoff, not which image of a
    given vector is the shortest (a molecule split over the boundary, at any size), so this
    one stays molenv's.
    The cell is first reduced (`reduced_basis`); each vector is wrapped to fractional
    coordinates in [-0.5, 0.5] of the reduced cell; the shortest image
    r = r0 + n.H then has |n_i + s_i| <= |r0| / h_i along each face normal (h_i the
    perpendicular heights), so all lattice shifts n within those bounds are compared. Of
    two images of exactly equal length the first in enumeration order is kept.
    """
    d = np.array(vectors, dtype=np.float64)
    if box is None:
        return d
    if d.shape[-1:] != (3,):
        raise FrameError(f"vectors must have shape (..., 3), got {d.shape}")
    matrix = _as_matrix(box)
    flat = d.reshape(-1, 3)
    frac = flat @ np.linalg.inv(matrix)
    wrapped = (frac - np.round(frac)) @ matrix
    if not len(flat):
        return wrapped.reshape(d.shape)
    longest = np.sqrt(np.max(np.einsum("ij,ij->i", wrapped, wrapped)))
    bounds = np.floor(longest / perpendicular_heights(matrix) + 0.5).astype(int)
    shifts = np.array(list(itertools.product(*(range(-m, m + 1) for m in bounds))), dtype=np.float64) @ matrix
    best = wrapped.copy()
    best_sq = np.einsum("ij,ij->i", wrapped, wrapped)
    for shift in shifts:  # a handful of shifts (27 for a cell whose heights exceed the vectors)
        candidate = wrapped + shift
        sq = np.einsum("ij,ij->i", candidate, candidate)
        better = sq < best_sq
        best[better] = candidate[better]
        best_sq[better] = sq[better]
    return best.reshape(d.shape)


# ----------------------------------------------------------------------------- neighbour search


def wrap_into_cell(points: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """`points` (n, 3) moved by whole cell vectors into the cell spanned by the rows of
    `cell` (fractional coordinates in [0, 1), to rounding): the positions a periodic graph
    is built on, and that `NeighbourPairs.shifts` count from."""
    frac = np.asarray(points, dtype=np.float64) @ np.linalg.inv(cell)
    return (frac - np.floor(frac)) @ cell


@dataclass(frozen=True)
class NeighbourPairs:
    """Directed pairs (i, j) of points within a cutoff: every unordered pair appears twice.

    ``vectors[k]`` = position of (the image of) point ``j[k]`` minus point ``i[k]``;
    ``distances`` their lengths. ``shifts[k]``: that image's lattice translation in whole
    cell vectors of the box as given (rows of `box_matrix`), from the points wrapped into
    it, ``wrapped = wrap_into_cell(points, cell)``:
    ``vectors[k] = wrapped[j] + shifts[k] @ cell - wrapped[i]`` to rounding (zeros without
    a box). Sorted by ``i``, then ``j``, then (several images of one point, only where the
    cutoff reaches half the cell) ``shifts``.
    """

    i: np.ndarray  # (n_pairs,) int64
    j: np.ndarray  # (n_pairs,) int64
    vectors: np.ndarray  # (n_pairs, 3) float64
    distances: np.ndarray  # (n_pairs,) float64
    shifts: np.ndarray  # (n_pairs, 3) int64

    def __len__(self) -> int:
        return len(self.i)

    def counts(self, n_points: int) -> np.ndarray:
        """Number of pairs starting at each point."""
        return np.bincount(self.i, minlength=n_points)


def neighbour_pairs(points: np.ndarray, box, cutoff: float, *, single_image: bool = True) -> NeighbourPairs:
    """All directed pairs of distinct points with separation <= `cutoff` (Angstrom).

    `box` None: plain distances. Periodic `box` (``[a, b, c, alpha, beta, gamma]`` or a
    3x3 row matrix): separations are taken between each point and the periodic images of
    the others. With ``single_image=True`` (what symmetry functions need) the cutoff must be
    smaller than half of every perpendicular height of the (reduced, `reduced_basis`) cell, so
    that at most one image
    of each point is within the cutoff, and that image is the minimum image; FrameError
    otherwise. With ``single_image=False`` every image within the cutoff is its own pair
    (including images of the point itself), as when counting sites in a sphere larger than
    the cell.
    """
    # one BLAS thread: the per-pair products are (n_pairs x 3) @ (3 x 3), which a threaded BLAS
    # splits into many tiny tasks (20x slower on a loaded machine); results are the same
    with _blas_controller().limit(limits=1, user_api="blas"):
        return _neighbour_pairs(points, box, cutoff, single_image)


@functools.cache
def _blas_controller():
    """numpy's BLAS, found once: a fresh `threadpool_limits` scans the loaded libraries at
    every call (milliseconds, more than a small search takes)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _neighbour_pairs(points: np.ndarray, box, cutoff: float, single_image: bool) -> NeighbourPairs:
    import vesin

    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise FrameError(f"points must have shape (n, 3), got {points.shape}")
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise FrameError(f"the cutoff must be a positive number, got {cutoff}")
    # vesin proposes the pairs, a little beyond the cutoff; molenv computes each vector in
    # float64 from the pair's integer shift and keeps the pair by that distance, so that
    # the pairs and every bit of their vectors are molenv's arithmetic, not the rounding of
    # vesin's own distances. One thread: molenv runs frames in parallel (DataLoader
    # workers, --workers), where threads within each process would compete for the cores.
    reach = cutoff * (1 + 1e-9) + 1e-9
    search = vesin.NeighborList(cutoff=reach, full_list=True, n_threads=1)
    # copy=False: views into `search`, alive until this function returns; what is kept is
    # made from them below (np.take, astype, arithmetic all copy)
    if box is None:
        i, j = search.compute(points, np.zeros((3, 3)), False, "ij", copy=False)
        i, j = _pair_order(len(points), i, j)
        vectors = np.take(points, j, axis=0) - np.take(points, i, axis=0)
        shifts = np.zeros((len(i), 3), dtype=np.int64)
    else:
        box = np.asarray(box, dtype=np.float64)
        cell = box if box.shape == (3, 3) else box_matrix(box)
        matrix = reduced_basis(cell)
        heights = perpendicular_heights(matrix)
        if single_image and cutoff >= 0.5 * heights.min():
            raise FrameError(
                f"the cell is too small for a cutoff of {cutoff:g} A: its perpendicular heights (of the reduced cell) are "
                f"{', '.join(f'{h:.4g}' for h in heights)} A, and each must exceed twice the cutoff "
                f"({2 * cutoff:g} A) for a unique minimum image; use a larger supercell"
            )
        # the search and the vectors in the reduced cell (short, near-orthogonal vectors: the
        # fewest candidate cells), the points wrapped into it
        frac = points @ np.linalg.inv(matrix)
        whole_cells = np.floor(frac)
        frac -= whole_cells
        primary = frac @ matrix
        i, j, reduced_shifts = search.compute(primary, matrix, True, "ijS", copy=False)
        # the same translations in the given cell vectors, counted from the points as
        # `wrap_into_cell` wraps them: the reduced shift plus what each point's two wraps
        # differ by (nothing where the given cell is already reduced)
        to_given = np.rint(matrix @ np.linalg.inv(cell)).astype(np.int64)
        offsets = whole_cells.astype(np.int64) @ to_given - np.floor(points @ np.linalg.inv(cell)).astype(np.int64)
        if 2 * reach < heights.min():  # two images of one point are the smallest height apart or more
            i, j, reduced_shifts = _pair_order(len(points), i, j, reduced_shifts)
            shifts = _given_cell_shifts(i, j, reduced_shifts, to_given, offsets)
        else:  # (i, j) repeats: its images in the order of their shifts, not vesin's traversal
            i, j = i.astype(np.int64), j.astype(np.int64)
            shifts = _given_cell_shifts(i, j, reduced_shifts, to_given, offsets)
            order = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, i))
            i, j, reduced_shifts, shifts = i[order], j[order], reduced_shifts[order], shifts[order]
        vectors = (np.take(frac, j, axis=0) + reduced_shifts) @ matrix - np.take(primary, i, axis=0)
    distances = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
    keep = distances <= cutoff
    if not keep.all():
        i, j, vectors, distances, shifts = i[keep], j[keep], vectors[keep], distances[keep], shifts[keep]
    return NeighbourPairs(i, j, vectors, distances, shifts)


def _pair_order(n_points: int, i, j, *more):
    """Pairs sorted by (i, j), each (i, j) once: one integer key (a lexsort is slower)."""
    i, j = i.astype(np.int64, copy=False), j.astype(np.int64, copy=False)  # vesin's uint64: a copy
    order = np.argsort(i * n_points + j, kind="stable")
    return tuple(np.take(x, order, axis=0) for x in (i, j, *more))


def _given_cell_shifts(i, j, reduced_shifts, to_given, offsets) -> np.ndarray:
    shifts = reduced_shifts.astype(np.int64)
    if not np.array_equal(to_given, np.eye(3)):
        shifts = shifts @ to_given
    if offsets.any():
        shifts += np.take(offsets, i, axis=0) - np.take(offsets, j, axis=0)
    return shifts


# ----------------------------------------------------------------------------- the frame


@dataclass
class MolecularFrame:
    """One configuration of a system of identical molecules.

    positions:      (n_atoms, 3) float64, Angstrom.
    box:            ``[a, b, c, alpha, beta, gamma]`` (Angstrom, degrees), the MDAnalysis
                    ``dimensions`` convention; None = not periodic (a cluster).
    molecules:      (n_molecules, atoms_per_molecule) int64 atom indices (0-based rows of
                    `positions`); columns in spec / model atom order.
    atomic_numbers: (n_atoms,) int.
    time:           ps.

    Molecules may be split across the periodic boundary (wrapped coordinates); every
    helper below uses the minimum-image convention. Arrays are converted and checked on
    construction (FrameError on bad shapes, indices out of range, an atom in two molecules).
    """

    positions: np.ndarray
    box: np.ndarray | None
    molecules: np.ndarray
    atomic_numbers: np.ndarray
    time: float = 0.0

    def __post_init__(self):
        self.positions = np.ascontiguousarray(self.positions, dtype=np.float64)
        if self.positions.ndim != 2 or self.positions.shape[1] != 3:
            raise FrameError(f"positions must have shape (n_atoms, 3), got {self.positions.shape}")
        check_finite_positions(self.positions)
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float64).copy()
            box_matrix(self.box)  # validates
        self.molecules = np.asarray(self.molecules)
        if self.molecules.ndim != 2 or self.molecules.shape[1] < 1 or not np.issubdtype(self.molecules.dtype, np.integer):
            raise FrameError(f"molecules must be a 2-d integer array (n_molecules, atoms_per_molecule), got shape {self.molecules.shape} dtype {self.molecules.dtype}")
        self.molecules = self.molecules.astype(np.int64)
        n = len(self.positions)
        if self.molecules.size and (self.molecules.min() < 0 or self.molecules.max() >= n):
            raise FrameError(f"molecule atom indices must lie in 0..{n - 1}")
        if len(np.unique(self.molecules)) != self.molecules.size:
            raise FrameError("an atom belongs to more than one molecule (or twice to one)")
        self.atomic_numbers = np.asarray(self.atomic_numbers)
        if self.atomic_numbers.shape != (n,) or not np.issubdtype(self.atomic_numbers.dtype, np.integer):
            raise FrameError(f"atomic_numbers must be an integer array of shape ({n},), got {self.atomic_numbers.shape} {self.atomic_numbers.dtype}")
        self.time = float(self.time)

    # -- sizes
    @property
    def n_atoms(self) -> int:
        return len(self.positions)

    @property
    def n_molecules(self) -> int:
        return len(self.molecules)

    @property
    def atoms_per_molecule(self) -> int:
        return self.molecules.shape[1]

    @property
    def periodic(self) -> bool:
        return self.box is not None

    # -- geometry
    def box_matrix(self) -> np.ndarray | None:
        """Cell vectors as rows (float64), or None for a cluster."""
        return None if self.box is None else box_matrix(self.box)

    def minimum_image(self, vectors: np.ndarray) -> np.ndarray:
        """`minimum_image` with this frame's box (unchanged for a cluster)."""
        return minimum_image(vectors, self.box)

    def _column(self, atom: int) -> int:
        if isinstance(atom, (bool, np.bool_)) or not isinstance(atom, (int, np.integer)) or not 1 <= atom <= self.atoms_per_molecule:
            raise FrameError(f"atom position {atom!r} is outside the molecule (1-based, 1..{self.atoms_per_molecule})")
        return int(atom) - 1

    def centres(self, centre: Centre) -> np.ndarray:
        """(n_molecules, 3) molecule centres: the atom at 1-based position `centre`, or for a
        tuple of positions their centroid (unweighted mean), each atom taken at its minimum
        image from the first one (molecules may be split across the boundary)."""
        if isinstance(centre, (tuple, list)):
            first = self.positions[self.molecules[:, self._column(centre[0])]]
            offsets = [self.positions[self.molecules[:, self._column(a)]] - first for a in centre[1:]]
            return first + self.minimum_image(np.stack(offsets, axis=1)).sum(axis=1) / len(centre)
        return self.positions[self.molecules[:, self._column(centre)]]

    def vectors(self, pairs) -> np.ndarray:
        """(n_molecules, n_pairs, 3) intramolecular vectors for the 1-based atom tuples in
        `pairs`: (a, b) gives the minimum-image r(b) - r(a); (a, b, c, d) the plane normal
        (r(b) - r(a)) x (r(d) - r(c)) of two such vectors (not normalised)."""
        pairs = [tuple(p) for p in pairs]
        for p in pairs:
            if len(p) not in (2, 4):
                raise FrameError(f"a vector is given by 2 atoms (a, b) or 4 (a plane normal), got {p!r}")
        arms = [p for q in pairs for p in ((q,) if len(q) == 2 else (q[:2], q[2:]))]
        raw = np.empty((self.n_molecules, len(arms), 3))
        for s, (a, b) in enumerate(arms):
            raw[:, s] = self.positions[self.molecules[:, self._column(b)]] - self.positions[self.molecules[:, self._column(a)]]
        raw = self.minimum_image(raw)
        out = np.empty((self.n_molecules, len(pairs), 3))
        k = 0
        for s, q in enumerate(pairs):
            if len(q) == 2:
                out[:, s] = raw[:, k]
                k += 1
            else:
                out[:, s] = np.cross(raw[:, k], raw[:, k + 1])
                k += 2
        return out

    def molecule_positions(self, reference_atom: int = 1) -> np.ndarray:
        """(n_molecules, atoms_per_molecule, 3) whole molecules: each atom at its minimum image
        from the molecule's atom at 1-based position `reference_atom` (which keeps its position)."""
        ref = self.centres(reference_atom)
        rel = self.minimum_image(self.positions[self.molecules] - ref[:, None, :])
        return ref[:, None, :] + rel

    def replace(self, **changes) -> MolecularFrame:
        """A copy with some fields replaced (arrays not replaced are copied)."""
        fields = {k: getattr(self, k) for k in ("positions", "box", "molecules", "atomic_numbers", "time")}
        fields = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in fields.items()}
        fields.update(changes)
        return MolecularFrame(**fields)
