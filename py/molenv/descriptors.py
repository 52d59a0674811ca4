"""Point-vector molecular symmetry functions: THE Python definition (float64, vectorised).

Each molecule I is a point r_I (its centre atom, or the centroid of several atoms) plus
intramolecular vectors v_I,s: r(b) - r(a) (minimum image), or a plane normal
(r(b) - r(a)) x (r(d) - r(c)). With r_IJ the minimum-image centre-centre distance,
cos θ_IJ,s = v_I,s · v_J,s / (|v_I,s| |v_J,s|) and the sum over all other molecules J:

    S1 = Σ_J exp(-eta (r_IJ - Rs)^2) fc(r_IJ)          params (Rs, eta)
    S2 = Σ_J cos(kappa r_IJ) fc(r_IJ)                  params (kappa,)
    S3 = Σ_J exp(-eta (cos θ_IJ,s - cos_theta_s)^2) fc(r_IJ)   params (cos_theta_s, eta)
    S4 = Σ_J cos(kappa cos θ_IJ,s) fc(r_IJ)            params (kappa,)

fc(r) = 1 for r <= rmin, ½(cos(π (r - rmin)/(rmax - rmin)) + 1) for rmin < r <= rmax, 0 beyond
(see docs/model_format.md, "Symmetry functions"). A *sign-invariant* vector (its direction a
labelling convention, e.g. urea's N1 -> N2 between equivalent atoms) enters S3 and S4
through cos² θ_IJ,s in place of cos θ_IJ,s, so that swapping the labels changes nothing. The C++ action `MOLENV_CLASSIFY` computes
the same numbers; the two are compared to a relative 1e-9. To that end every term is computed
in float64 and each molecule's sum is a compensated (Neumaier) sum, so that the result is
the correctly rounded sum of the terms up to a few ulps, independent of neighbour order.

A `DescriptorSet` is the definition of one molecule's symmetry functions (the spec's
``[descriptors]``, a dataset's manifest, the descriptor records of a model file).
Coordination numbers (the bulk/surface label) are in `molenv.topology`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from molenv.frames import Centre, FrameError, MolecularFrame, NeighbourPairs, neighbour_pairs

__all__ = ["DescriptorError", "SymmetryFunction", "DescriptorSet", "SF_KINDS", "ANGULAR_KINDS", "descriptor_set_to_dict",
           "descriptor_set_from_dict", "compute_descriptors", "cutoff_function"]

SF_KINDS = {"S1": 2, "S2": 1, "S3": 2, "S4": 1}  # kind -> number of parameters
ANGULAR_KINDS = {"S3", "S4"}


class DescriptorError(ValueError):
    """A descriptor set that is not valid, or descriptors that cannot be computed for a
    frame; the message names the problem."""


@dataclass
class SymmetryFunction:
    kind: str  # S1, S2, S3, S4
    vector: int | None  # 1-based vector index for S3/S4, None for S1/S2
    params: tuple[float, ...]  # S1: (Rs, eta); S2: (kappa,); S3: (cos_theta_s, eta); S4: (kappa,)


@dataclass
class DescriptorSet:
    """Point-vector molecular symmetry functions of one kind of molecule."""

    atoms_per_molecule: int
    centre_atom: Centre  # 1-based position within the molecule; a tuple: the centroid of those atoms
    vectors: list[tuple[int, ...]]  # 1-based positions: (a, b) is r(b) - r(a); (a, b, c, d) the normal (r(b) - r(a)) x (r(d) - r(c))
    rmin: float  # Angstrom
    rmax: float
    functions: list[SymmetryFunction]
    sign_invariant: tuple[int, ...] = ()  # 1-based indices of the vectors whose S3/S4 take cos^2

    @property
    def n_features(self) -> int:
        return len(self.functions)

    @property
    def centre_atoms(self) -> tuple[int, ...]:
        """The atoms whose centroid is the centre (one atom: that atom)."""
        return tuple(self.centre_atom) if isinstance(self.centre_atom, (tuple, list)) else (self.centre_atom,)

    @property
    def uses_richer_geometry(self) -> bool:
        """Whether the set uses geometry beyond format version 1's (a centroid centre, a
        plane normal, a sign-invariant vector): such a set needs a version 3 model file."""
        return isinstance(self.centre_atom, (tuple, list)) or any(len(v) != 2 for v in self.vectors) or bool(self.sign_invariant)

    def validate(self) -> None:
        """DescriptorError naming the first problem (the rules of the model file's reader)."""
        n = self.atoms_per_molecule
        if n < 1:
            raise DescriptorError(f"atoms_per_molecule must be >= 1, got {n}")
        if isinstance(self.centre_atom, (tuple, list)):
            for atom in self.centre_atom:
                if not 1 <= atom <= n:
                    raise DescriptorError(f"centre atom {atom} is outside the molecule (1..{n})")
            if len(self.centre_atom) < 2 or len(set(self.centre_atom)) != len(self.centre_atom):
                raise DescriptorError(f"a centroid centre needs two or more distinct atoms, got {' '.join(map(str, self.centre_atom))}")
        elif not 1 <= self.centre_atom <= n:
            raise DescriptorError(f"centre atom {self.centre_atom} is outside the molecule (1..{n})")
        for k, atoms in enumerate(self.vectors, 1):
            if len(atoms) not in (2, 4):
                raise DescriptorError(f"vector {k} needs 2 atoms (a -> b) or 4 (a plane normal), got {len(atoms)}")
            for atom in atoms:
                if not 1 <= atom <= n:
                    raise DescriptorError(f"vector {k} atom {atom} is outside the molecule (1..{n})")
            for a, b in zip(atoms[::2], atoms[1::2]):
                if a == b:
                    raise DescriptorError(f"vector {k} starts and ends on atom {a}")
        for k in self.sign_invariant:
            if not 1 <= k <= len(self.vectors):
                raise DescriptorError(f"sign-invariant vector {k} is not a vector (1..{len(self.vectors)})")
        if len(set(self.sign_invariant)) != len(self.sign_invariant):
            raise DescriptorError(f"sign-invariant vectors {' '.join(map(str, self.sign_invariant))} repeat a vector")
        if not (0 <= self.rmin < self.rmax) or not all(map(math.isfinite, (self.rmin, self.rmax))):
            raise DescriptorError(f"cutoff needs 0 <= rmin < rmax, got rmin={self.rmin} rmax={self.rmax}")
        if not self.functions:
            raise DescriptorError("no symmetry functions")
        for i, sf in enumerate(self.functions, 1):
            if sf.kind not in SF_KINDS:
                raise DescriptorError(f"descriptor {i}: unknown kind '{sf.kind}' (expected one of {', '.join(SF_KINDS)})")
            if len(sf.params) != SF_KINDS[sf.kind]:
                raise DescriptorError(f"descriptor {i}: {sf.kind} takes {SF_KINDS[sf.kind]} parameters, got {len(sf.params)}")
            if sf.kind in ANGULAR_KINDS:
                if sf.vector is None or not 1 <= sf.vector <= len(self.vectors):
                    raise DescriptorError(f"descriptor {i}: {sf.kind} needs a vector index in 1..{len(self.vectors)}, got {sf.vector}")
            elif sf.vector is not None:
                raise DescriptorError(f"descriptor {i}: {sf.kind} is radial and takes no vector ('-'), got {sf.vector}")
            if not all(map(math.isfinite, sf.params)):
                raise DescriptorError(f"descriptor {i}: non-finite parameter {sf.params}")


def descriptor_set_to_dict(d: DescriptorSet) -> dict:
    """JSON-able form of a `DescriptorSet` (a dataset's manifest, SF checkpoints); without
    ``sign_invariant`` when no vector is, as written before that field existed."""
    data = asdict(d)
    if not d.sign_invariant:
        del data["sign_invariant"]
    return data


def descriptor_set_from_dict(data: dict) -> DescriptorSet:
    functions = [SymmetryFunction(f["kind"], f["vector"], tuple(f["params"])) for f in data["functions"]]
    centre = data["centre_atom"]
    centre = tuple(int(a) for a in centre) if isinstance(centre, (list, tuple)) else int(centre)
    return DescriptorSet(
        int(data["atoms_per_molecule"]), centre, [tuple(v) for v in data["vectors"]], float(data["rmin"]), float(data["rmax"]), functions,
        tuple(int(k) for k in data.get("sign_invariant", ())),
    )


def cutoff_function(r: np.ndarray, rmin: float, rmax: float) -> np.ndarray:
    """fc(r): 1 up to rmin, cosine switch to 0 at rmax, 0 beyond (PLUMED's COSINUS, D_0=rmin, R_0=rmax-rmin)."""
    r = np.asarray(r, dtype=np.float64)
    x = np.clip((r - rmin) / (rmax - rmin), 0.0, 1.0)
    return np.where(r <= rmin, 1.0, np.where(r > rmax, 0.0, 0.5 * (np.cos(np.pi * x) + 1.0)))


def _neumaier_rows(terms: np.ndarray, rows: np.ndarray, n_rows: int) -> np.ndarray:
    """Per-row compensated sums of `terms` (n_terms, n_columns) grouped by sorted `rows`.

    Vectorised over rows and columns: the k-th term of every row is added in step k.
    """
    n_cols = terms.shape[1]
    total = np.zeros((n_rows, n_cols))
    if not len(rows):
        return total
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(len(rows)) - starts[rows]
    compensation = np.zeros((n_rows, n_cols))
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(rank))))
    for k in range(len(bounds) - 1):
        at = by_rank[bounds[k]:bounds[k + 1]]
        r, x = rows[at], terms[at]
        s = total[r]
        t = s + x
        compensation[r] += np.where(np.abs(s) >= np.abs(x), (s - t) + x, (x - t) + s)
        total[r] = t
    return total + compensation


def _check(frame: MolecularFrame, descriptors: DescriptorSet) -> None:
    try:
        descriptors.validate()
    except ValueError as err:
        raise DescriptorError(f"invalid descriptor set: {err}") from None
    if frame.atoms_per_molecule != descriptors.atoms_per_molecule:
        raise DescriptorError(
            f"the frame has molecules of {frame.atoms_per_molecule} atoms, the descriptors are defined for "
            f"{descriptors.atoms_per_molecule}-atom molecules"
        )


def centre_pairs(frame: MolecularFrame, centre: Centre, cutoff: float, *, single_image: bool = True) -> NeighbourPairs:
    """Directed pairs of molecules whose centres (`centre`: a 1-based atom position, or a
    tuple of them whose centroid is the centre) are within `cutoff`."""
    try:
        return neighbour_pairs(frame.centres(centre), frame.box, cutoff, single_image=single_image)
    except FrameError as err:
        raise DescriptorError(str(err)) from None


def compute_descriptors(frame: MolecularFrame, descriptors: DescriptorSet) -> np.ndarray:
    """Symmetry functions of every molecule: (n_molecules, n_features) float64.

    Feature order is ``descriptors.functions``. Periodic frames need every perpendicular
    height of the (reduced) cell to exceed 2*rmax (DescriptorError otherwise); frames with
    box None are clusters (no images). Memory is bounded by working through the molecules
    in chunks of about `PAIRS_PER_CHUNK` neighbour pairs.
    """
    _check(frame, descriptors)
    d = descriptors
    pairs = centre_pairs(frame, d.centre_atom, d.rmax)
    inside = pairs.distances < d.rmax  # fc(rmax) = 0
    i, j, r = pairs.i[inside], pairs.j[inside], pairs.distances[inside]

    unit = None
    if d.vectors:
        v = frame.vectors(d.vectors)  # (n_mol, n_vec, 3)
        norms = np.linalg.norm(v, axis=2)
        if np.any(norms == 0):
            mol, vec = np.argwhere(norms == 0)[0]
            why = "atoms on top of each other" if len(d.vectors[vec]) == 2 else "a plane normal of parallel vectors"
            raise DescriptorError(f"vector {vec + 1} {d.vectors[vec]} of molecule {mol} has zero length ({why})")
        unit = (v, norms)

    out = np.zeros((frame.n_molecules, d.n_features))
    # chunks of whole molecules (pairs are sorted by i)
    first_pair = np.searchsorted(i, np.arange(frame.n_molecules + 1))
    start = 0
    while start < frame.n_molecules:
        stop = int(np.searchsorted(first_pair, first_pair[start] + PAIRS_PER_CHUNK, side="right")) - 1
        stop = min(max(stop, start + 1), frame.n_molecules)
        sel = slice(first_pair[start], first_pair[stop])
        terms = _terms(d, i[sel], j[sel], r[sel], unit)
        out[start:stop] = _neumaier_rows(terms, i[sel] - start, stop - start)
        start = stop
    return out


PAIRS_PER_CHUNK = 200_000


def _terms(d: DescriptorSet, i: np.ndarray, j: np.ndarray, r: np.ndarray, unit) -> np.ndarray:
    """(n_pairs, n_features) contributions of molecule j to the symmetry functions of molecule i."""
    fc = cutoff_function(r, d.rmin, d.rmax)
    angular = {}  # per vector: cos θ_IJ,s, or cos² θ_IJ,s for a sign-invariant vector
    if unit is not None:
        v, norms = unit
        for s in {sf.vector for sf in d.functions if sf.vector is not None}:
            cosine = np.einsum("ij,ij->i", v[i, s - 1], v[j, s - 1]) / (norms[i, s - 1] * norms[j, s - 1])
            angular[s] = cosine**2 if s in d.sign_invariant else cosine
    terms = np.empty((len(i), d.n_features))
    for col, sf in enumerate(d.functions):
        if sf.kind == "S1":
            rs, eta = sf.params
            terms[:, col] = np.exp(-eta * (r - rs) ** 2) * fc
        elif sf.kind == "S2":
            (kappa,) = sf.params
            terms[:, col] = np.cos(kappa * r) * fc
        elif sf.kind == "S3":
            cs, eta = sf.params
            terms[:, col] = np.exp(-eta * (angular[sf.vector] - cs) ** 2) * fc
        elif sf.kind == "S4":
            (kappa,) = sf.params
            terms[:, col] = np.cos(kappa * angular[sf.vector]) * fc
        else:  # validate() rejects unknown kinds
            raise DescriptorError(f"unknown symmetry function kind {sf.kind!r}")
    return terms
