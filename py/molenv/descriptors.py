"""Point-vector molecular symmetry functions: THE Python definition (float64, vectorised).

Each molecule I is a point r_I (its centre atom) plus intramolecular vectors
v_I,s = r(b) - r(a) (minimum image). With r_IJ the minimum-image centre-centre distance,
cos θ_IJ,s = v_I,s · v_J,s / (|v_I,s| |v_J,s|) and the sum over all other molecules J:

    S1 = Σ_J exp(-eta (r_IJ - Rs)^2) fc(r_IJ)          params (Rs, eta)
    S2 = Σ_J cos(kappa r_IJ) fc(r_IJ)                  params (kappa,)
    S3 = Σ_J exp(-eta (cos θ_IJ,s - cos_theta_s)^2) fc(r_IJ)   params (cos_theta_s, eta)
    S4 = Σ_J cos(kappa cos θ_IJ,s) fc(r_IJ)            params (kappa,)

fc(r) = 1 for r <= rmin, ½(cos(π (r - rmin)/(rmax - rmin)) + 1) for rmin < r <= rmax, 0 beyond
(see docs/model_format.md, "Symmetry functions"). The C++ action `MOLENV_CLASSIFY` computes
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

from molenv.frames import FrameError, MolecularFrame, NeighbourPairs, neighbour_pairs

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
    centre_atom: int  # 1-based position within the molecule
    vectors: list[tuple[int, int]]  # (a, b) 1-based positions: v = r(b) - r(a)
    rmin: float  # Angstrom
    rmax: float
    functions: list[SymmetryFunction]

    @property
    def n_features(self) -> int:
        return len(self.functions)

    def validate(self) -> None:
        """DescriptorError naming the first problem (the rules of the model file's reader)."""
        n = self.atoms_per_molecule
        if n < 1:
            raise DescriptorError(f"atoms_per_molecule must be >= 1, got {n}")
        if not 1 <= self.centre_atom <= n:
            raise DescriptorError(f"centre atom {self.centre_atom} is outside the molecule (1..{n})")
        for k, (a, b) in enumerate(self.vectors, 1):
            for atom in (a, b):
                if not 1 <= atom <= n:
                    raise DescriptorError(f"vector {k} atom {atom} is outside the molecule (1..{n})")
            if a == b:
                raise DescriptorError(f"vector {k} starts and ends on atom {a}")
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
    """JSON-able form of a `DescriptorSet` (a dataset's manifest, SF checkpoints)."""
    return asdict(d)


def descriptor_set_from_dict(data: dict) -> DescriptorSet:
    functions = [SymmetryFunction(f["kind"], f["vector"], tuple(f["params"])) for f in data["functions"]]
    return DescriptorSet(
        int(data["atoms_per_molecule"]), int(data["centre_atom"]), [tuple(v) for v in data["vectors"]], float(data["rmin"]), float(data["rmax"]), functions
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


def centre_pairs(frame: MolecularFrame, centre_atom: int, cutoff: float, *, single_image: bool = True) -> NeighbourPairs:
    """Directed pairs of molecules whose centres (1-based `centre_atom`) are within `cutoff`."""
    try:
        return neighbour_pairs(frame.centres(centre_atom), frame.box, cutoff, single_image=single_image)
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
            raise DescriptorError(f"vector {vec + 1} {d.vectors[vec]} of molecule {mol} has zero length (atoms on top of each other)")
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
    cosines = {}
    if unit is not None:
        v, norms = unit
        for s in {sf.vector for sf in d.functions if sf.vector is not None}:
            cosines[s] = np.einsum("ij,ij->i", v[i, s - 1], v[j, s - 1]) / (norms[i, s - 1] * norms[j, s - 1])
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
            terms[:, col] = np.exp(-eta * (cosines[sf.vector] - cs) ** 2) * fc
        elif sf.kind == "S4":
            (kappa,) = sf.params
            terms[:, col] = np.cos(kappa * cosines[sf.vector]) * fc
        else:  # validate() rejects unknown kinds
            raise DescriptorError(f"unknown symmetry function kind {sf.kind!r}")
    return terms
