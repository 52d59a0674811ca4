"""Candidate point-vector representations and how well each separates the forms.

The point of a molecule is one atom (its centre) and its vectors are atom -> atom vectors
(the geometry kinds the spec format and MOLENV_CLASSIFY know). Candidates are the heavy
atoms as centres and every pair of heavy atoms as a vector (a -> b with a before b in the
spec: b -> a gives the same cosines, cos(-u, -w) = cos(u, w)).

Geometry kinds beyond atoms (ring centroids, plane normals) come with another change; their
candidates are to be added to `CENTRE_KINDS` / `VECTOR_KINDS` (a name -> generator of
`Candidate`s from a spec), and the rest of the design takes them as they come, since it only
needs their positions / vectors in a frame (`Candidate.points` / `Candidate.vectors`).

Separating power is measured on distributions pooled over every held-in frame of a form:

- a centre: the distribution of centre-centre distances up to the probe radius;
- a vector: the distribution of cos(theta_IJ) (the angle between the vector of molecule I
  and that of J) over the pairs of centres within the probe radius, the quantity S3/S4 see.

The score is the Jensen-Shannon distance (base 2, 0 = same distribution, 1 = disjoint) of
the two forms' histograms, averaged over every pair of forms (`separability`); the worst
pair is reported too.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from molenv.descriptors import centre_pairs
from molenv.frames import MolecularFrame
from molenv.spec import MoleculeSpec

__all__ = ["Candidate", "CENTRE_KINDS", "VECTOR_KINDS", "candidate_centres", "candidate_vectors", "centre_distances", "pair_cosines",
           "separability", "joint_separability", "equivalent_atoms", "rdf", "DISTANCE_BIN", "COSINE_BINS"]

DISTANCE_BIN = 0.1  # Angstrom, histograms of centre-centre distances
COSINE_BINS = 40  # on [-1, 1]


@dataclass(frozen=True)
class Candidate:
    """A centre (one atom) or a vector (atom a -> atom b), 1-based spec positions."""

    kind: str  # "atom" (centre) or "atoms" (vector a -> b)
    atoms: tuple[int, ...]
    label: str

    def points(self, frame: MolecularFrame) -> np.ndarray:
        return frame.centres(self.atoms[0])

    def vectors(self, frame: MolecularFrame) -> np.ndarray:
        return frame.vectors([self.atoms])[:, 0]


def _heavy(spec: MoleculeSpec) -> list[int]:
    return [k + 1 for k, e in enumerate(spec.elements) if e.upper() != "H"]


def _atom_centres(spec: MoleculeSpec) -> list[Candidate]:
    return [Candidate("atom", (p,), spec.atom_names[p - 1]) for p in _heavy(spec)]


def _atom_vectors(spec: MoleculeSpec) -> list[Candidate]:
    return [Candidate("atoms", (a, b), f"{spec.atom_names[a - 1]}->{spec.atom_names[b - 1]}") for a, b in itertools.combinations(_heavy(spec), 2)]


# geometry kind -> candidates of a spec (the hook for centroid / plane-normal kinds)
CENTRE_KINDS = {"atom": _atom_centres}
VECTOR_KINDS = {"atoms": _atom_vectors}


def candidate_centres(spec: MoleculeSpec) -> list[Candidate]:
    return [c for make in CENTRE_KINDS.values() for c in make(spec)]


def candidate_vectors(spec: MoleculeSpec) -> list[Candidate]:
    return [c for make in VECTOR_KINDS.values() for c in make(spec)]


def centre_distances(frames: list[MolecularFrame], centre: Candidate, radius: float) -> np.ndarray:
    """Centre-centre distances below `radius` of every (directed) pair in `frames`."""
    return np.concatenate([centre_pairs(f, centre.atoms[0], radius).distances for f in frames]) if frames else np.zeros(0)


def pair_cosines(frames: list[MolecularFrame], centre: Candidate, vector: Candidate, radius: float) -> np.ndarray:
    """cos(theta_IJ) of `vector` over the pairs of centres closer than `radius`."""
    out = []
    for f in frames:
        pairs = centre_pairs(f, centre.atoms[0], radius)
        v = vector.vectors(f)
        u = v / np.linalg.norm(v, axis=1, keepdims=True)
        out.append(np.einsum("ij,ij->i", u[pairs.i], u[pairs.j]))
    return np.concatenate(out) if out else np.zeros(0)


def rdf(distances: np.ndarray, frames: list[MolecularFrame], radius: float, bin_width: float = DISTANCE_BIN) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, g(r)) of centre-centre distances pooled over `frames`."""
    edges = np.arange(0.0, radius + bin_width / 2, bin_width)
    counts, _ = np.histogram(distances, bins=edges)
    n_centres = sum(f.n_molecules for f in frames)
    density = np.mean([f.n_molecules / abs(np.linalg.det(f.box_matrix())) for f in frames])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (n_centres * density * shell)


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    h, _ = np.histogram(values, bins=edges)
    return h / max(h.sum(), 1)


def separability(samples: dict[str, np.ndarray], edges: np.ndarray) -> tuple[float, float, tuple[str, str] | None]:
    """(mean, min) over pairs of forms of the Jensen-Shannon distance of their histograms
    on `edges`, and the pair with the smallest one."""
    from scipy.spatial.distance import jensenshannon

    hist = {k: _histogram(v, edges) for k, v in samples.items()}
    scores = {(a, b): float(jensenshannon(hist[a], hist[b], base=2)) for a, b in itertools.combinations(hist, 2)}
    if not scores:
        return 0.0, 0.0, None
    worst = min(scores, key=scores.get)
    return float(np.mean(list(scores.values()))), scores[worst], worst


def joint_separability(samples: dict[str, np.ndarray], bins: int = 12) -> tuple[float, float, tuple[str, str] | None]:
    """`separability` of joint distributions: samples (n, d) per form, a d-dimensional
    histogram on [-1, 1]^d with `bins` per dimension (cosines of several vectors of the same
    pairs: how well the vectors together separate the forms)."""
    from scipy.spatial.distance import jensenshannon

    hist = {}
    for k, v in samples.items():
        h, _ = np.histogramdd(v, bins=bins, range=[(-1.0, 1.0)] * v.shape[1])
        hist[k] = h.ravel() / max(h.sum(), 1)
    scores = {(a, b): float(jensenshannon(hist[a], hist[b], base=2)) for a, b in itertools.combinations(hist, 2)}
    if not scores:
        return 0.0, 0.0, None
    worst = min(scores, key=scores.get)
    return float(np.mean(list(scores.values()))), scores[worst], worst


def equivalent_atoms(spec: MoleculeSpec, limit: int = 10000) -> dict[int, set[int]]:
    """1-based heavy atoms -> the other heavy atoms the bond graph cannot tell from them
    (their orbit under the graph's automorphisms, elements and hydrogen counts kept; at most
    `limit` automorphisms looked at). Which of two such atoms is which (urea's N1 and N2) is
    a labelling convention of the input files, and so is any vector that involves one."""
    import networkx as nx
    from networkx.algorithms import isomorphism

    heavy = set(_heavy(spec))
    hydrogens = {p: 0 for p in heavy}
    g = nx.Graph()
    for a, b in spec.bonds:
        a, b = a + 1, b + 1
        if a in heavy and b in heavy:
            g.add_edge(a, b)
        elif a in heavy or b in heavy:
            hydrogens[a if a in heavy else b] += 1
    g.add_nodes_from(heavy)
    for p in heavy:
        g.nodes[p]["tag"] = (spec.elements[p - 1], hydrogens[p])
    orbits = {p: {p} for p in heavy}
    matcher = isomorphism.GraphMatcher(g, g, node_match=lambda x, y: x["tag"] == y["tag"])
    for k, mapping in enumerate(matcher.isomorphisms_iter()):
        if k >= limit:
            break
        for a, b in mapping.items():
            orbits[a].add(b)
    return {p: o - {p} for p, o in orbits.items() if len(o) > 1}


def distance_edges(radius: float) -> np.ndarray:
    return np.arange(0.0, radius + DISTANCE_BIN / 2, 2 * DISTANCE_BIN)


def cosine_edges() -> np.ndarray:
    return np.linspace(-1.0, 1.0, COSINE_BINS + 1)


def cutoff_candidates(r: np.ndarray, g: np.ndarray, lowest: float, highest: float, at_most: int = 5, smoothing: float = 0.2) -> list[float]:
    """Shell boundaries of a (pooled) RDF: its local minima (after Gaussian smoothing over
    `smoothing` A) between `lowest` and `highest`, at most `at_most` of them (spread
    evenly), and `highest` itself."""
    from scipy.ndimage import gaussian_filter1d

    step = r[1] - r[0]
    s = gaussian_filter1d(g.astype(float), smoothing / step)
    minima = [float(r[k]) for k in range(1, len(s) - 1) if s[k] < s[k - 1] and s[k] <= s[k + 1] and lowest <= r[k] <= highest - 0.5]
    if len(minima) > at_most - 1:
        keep = np.unique(np.round(np.linspace(0, len(minima) - 1, at_most - 1)).astype(int))
        minima = [minima[k] for k in keep]
    return sorted({round(x, 1) for x in minima} | {round(highest, 1)})
