"""Candidate point-vector representations and how well each separates the forms.

Candidates (`candidate_centres`, `candidate_vectors`), in the geometry kinds the spec format
and MOLENV_CLASSIFY know (docs/spec.md, "Geometry"):

- centres: every heavy atom; the centroid of every ring; the heavy-atom centroid;
- vectors: every pair of heavy atoms a -> b (a before b in the spec: b -> a gives the same
  cosines, cos(-u, -w) = cos(u, w)); the plane normal of every ring, and of every heavy atom
  outside a ring with exactly three heavy neighbours (a trigonal centre: urea's C, an amide
  C; the plane of the atom and its neighbours where it is sp2).

Rings are the chordless cycles of the heavy-atom bond graph (`rings`, networkx): for fused
rings the individual rings, not their perimeter. A ring's normal is the cross product of two
chords across it, (r0 -> r[n/2]) x (r1 -> r[n-1]), at right angles in a regular ring, so
that it stays well defined as the ring flexes.

The bond graph's symmetry (`graph_automorphisms`: the permutations of heavy atoms that keep
elements, hydrogen counts and bonds) decides what a candidate's value depends on
(`symmetry_of`): a relabelling the graph allows either leaves a vector as it is, or only
reverses it (urea's N1 -> N2 and the normal of its plane when N1 and N2 swap), or turns it
into another vector (urea's O -> N1 into O -> N2). A vector that only a reversal touches is
proposed **sign-invariant** (S3/S4 on cos^2 theta, docs/spec.md): then its descriptors do
not depend on which equivalent atom is which. One that relabelling moves elsewhere relies on
the input files' labelling convention, and the report says so.

Separating power is measured on distributions pooled over every held-in frame of a form:

- a centre: the distribution of centre-centre distances up to the probe radius;
- a vector: the distribution of cos(theta_IJ) (the angle between the vector of molecule I
  and that of J; cos^2 for a sign-invariant vector) over the pairs of centres within the
  probe radius, the quantity S3/S4 see.

The score is the Jensen-Shannon distance (base 2, 0 = same distribution, 1 = disjoint) of
the two forms' histograms, averaged over every pair of forms (`separability`); the worst
pair is reported too.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import numpy as np

from molenv.descriptors import centre_pairs
from molenv.frames import MolecularFrame
from molenv.spec import MoleculeSpec

__all__ = ["Candidate", "CENTRE_KINDS", "VECTOR_KINDS", "candidate_centres", "candidate_vectors", "centre_distances", "pair_cosines",
           "separability", "joint_separability", "equivalent_atoms", "graph_automorphisms", "rings", "symmetry_of", "rdf", "DISTANCE_BIN",
           "COSINE_BINS", "RING_SIZES"]

DISTANCE_BIN = 0.1  # Angstrom, histograms of centre-centre distances
COSINE_BINS = 40  # on [-1, 1] (cos), or [0, 1] (cos^2 of a sign-invariant vector)
RING_SIZES = (3, 8)  # smallest and largest ring proposed (a larger cycle is a macrocycle, not a plane)
SAME_DIRECTION = 0.9  # mean |cos| above which two vectors of a molecule count as parallel
AUTOMORPHISM_LIMIT = 10000  # graph symmetries looked at (a large symmetric molecule has many)


@dataclass(frozen=True)
class Candidate:
    """A candidate centre or vector; atoms are 1-based spec positions.

    Centres: kind "atom" (atoms = (a,)) or "centroid" (the unweighted mean of the atoms).
    Vectors: kind "atoms" (a -> b) or "normal" (atoms (a, b, c, d): (r(b) - r(a)) x (r(d) - r(c))).
    """

    kind: str
    atoms: tuple[int, ...]
    label: str
    origin: str = ""  # what the candidate is, for the report ("normal of ring C3 C2 N1 C6 C5 C4")
    sign_invariant: bool = False  # a vector that S3/S4 see through cos^2
    symmetry: str = "invariant"  # under the graph's relabellings: "invariant", "reversed" or "convention" (`symmetry_of`)
    relabelling: str = ""  # the atoms a relabelling that reverses or moves it exchanges ("N1 <-> N2")

    @property
    def explained(self) -> str:
        """What it is and what the labelling of equivalent atoms does to it (the report's words)."""
        if self.symmetry == "reversed":
            return f"{self.origin}; **sign-invariant** (cos^2): relabelling {self.relabelling} reverses it"
        if self.symmetry == "convention":
            return f"{self.origin}; relabelling {self.relabelling} makes it another: relies on the labelling convention"
        return self.origin

    @property
    def centre(self) -> int | tuple[int, ...]:
        """The spec's / DescriptorSet's centre: the atom, or the tuple of atoms of a centroid."""
        return self.atoms[0] if self.kind == "atom" else self.atoms

    @property
    def value_range(self) -> tuple[float, float]:
        """Range of what S3/S4 see of this vector: cos, or cos^2 when sign-invariant."""
        return (0.0, 1.0) if self.sign_invariant else (-1.0, 1.0)

    def points(self, frame: MolecularFrame) -> np.ndarray:
        return frame.centres(self.centre)

    def vectors(self, frame: MolecularFrame) -> np.ndarray:
        return frame.vectors([self.atoms])[:, 0]


def _heavy(spec: MoleculeSpec) -> list[int]:
    return [k + 1 for k, e in enumerate(spec.elements) if e.upper() != "H"]


def _heavy_graph(spec: MoleculeSpec):
    """The bond graph of the heavy atoms (1-based), each tagged with (element, hydrogens bonded)."""
    import networkx as nx

    heavy = set(_heavy(spec))
    hydrogens = {p: 0 for p in heavy}
    g = nx.Graph()
    g.add_nodes_from(sorted(heavy))
    for a, b in spec.bonds:
        a, b = a + 1, b + 1
        if a in heavy and b in heavy:
            g.add_edge(a, b)
        elif a in heavy or b in heavy:
            hydrogens[a if a in heavy else b] += 1
    for p in heavy:
        g.nodes[p]["tag"] = (spec.elements[p - 1], hydrogens[p])
    return g


def _names(spec: MoleculeSpec, atoms) -> str:
    return " ".join(spec.atom_names[p - 1] for p in atoms)


def rings(spec: MoleculeSpec) -> list[tuple[int, ...]]:
    """The rings of the molecule: chordless cycles of the heavy-atom bond graph with
    `RING_SIZES` atoms, each as 1-based positions in ring order, starting from its first atom
    in the spec and going on towards the lower-numbered of that atom's two ring neighbours."""
    import networkx as nx

    out = set()
    for cycle in nx.chordless_cycles(_heavy_graph(spec), length_bound=RING_SIZES[1]):
        if len(cycle) < RING_SIZES[0]:
            continue
        k = cycle.index(min(cycle))
        ring = cycle[k:] + cycle[:k]
        if ring[-1] < ring[1]:
            ring = [ring[0]] + ring[:0:-1]
        out.add(tuple(ring))
    return sorted(out)


def _atom_centres(spec: MoleculeSpec) -> list[Candidate]:
    return [Candidate("atom", (p,), spec.atom_names[p - 1], "atom") for p in _heavy(spec)]


def _centroid_centres(spec: MoleculeSpec) -> list[Candidate]:
    out = [Candidate("centroid", ring, f"ring({_names(spec, ring)})", f"centroid of ring {_names(spec, ring)}") for ring in rings(spec)]
    heavy = tuple(_heavy(spec))
    if len(heavy) >= 3 and all(set(c.atoms) != set(heavy) for c in out):
        out.append(Candidate("centroid", heavy, "heavy-atom centroid", f"centroid of the {len(heavy)} heavy atoms"))
    return out


def _atom_vectors(spec: MoleculeSpec) -> list[Candidate]:
    return [Candidate("atoms", (a, b), f"{spec.atom_names[a - 1]}->{spec.atom_names[b - 1]}", "atom pair")
            for a, b in itertools.combinations(_heavy(spec), 2)]


def _normal(spec: MoleculeSpec, a: int, b: int, c: int, d: int, origin: str) -> Candidate:
    n = spec.atom_names
    return Candidate("normal", (a, b, c, d), f"({n[a - 1]}->{n[b - 1]})x({n[c - 1]}->{n[d - 1]})", origin)


def _plane_normals(spec: MoleculeSpec) -> list[Candidate]:
    out = []
    ring_atoms = set()
    for ring in rings(spec):
        ring_atoms |= set(ring)
        m = len(ring)
        # two chords at right angles in a regular ring (for a triangle, two of its sides)
        arms = (ring[0], ring[m // 2], ring[1], ring[m - 1]) if m > 3 else (ring[0], ring[1], ring[0], ring[2])
        out.append(_normal(spec, *arms, f"normal of ring {_names(spec, ring)}"))
    g = _heavy_graph(spec)
    for p in g.nodes:
        neighbours = sorted(g.neighbors(p))
        if p not in ring_atoms and len(neighbours) == 3:
            n1, n2, n3 = neighbours
            out.append(_normal(spec, p, n1, n2, n3, f"normal of the plane of {spec.atom_names[p - 1]} and its neighbours {_names(spec, neighbours)}"))
    return out


# geometry kind -> candidates of a spec
CENTRE_KINDS = {"atom": _atom_centres, "centroid": _centroid_centres}
VECTOR_KINDS = {"atoms": _atom_vectors, "normal": _plane_normals}


def graph_automorphisms(spec: MoleculeSpec, limit: int = AUTOMORPHISM_LIMIT) -> list[dict[int, int]]:
    """The relabellings of the heavy atoms (1-based -> 1-based) that the bond graph cannot
    tell from the identity: its automorphisms keeping elements and hydrogen counts, the
    identity left out (at most `limit` looked at)."""
    from networkx.algorithms import isomorphism

    g = _heavy_graph(spec)
    matcher = isomorphism.GraphMatcher(g, g, node_match=lambda x, y: x["tag"] == y["tag"])
    out = []
    for mapping in itertools.islice(matcher.isomorphisms_iter(), limit):
        if any(a != b for a, b in mapping.items()):
            out.append(dict(mapping))
    return out


def equivalent_atoms(spec: MoleculeSpec, limit: int = AUTOMORPHISM_LIMIT) -> dict[int, set[int]]:
    """1-based heavy atoms -> the other heavy atoms the bond graph cannot tell from them
    (their orbit under `graph_automorphisms`). Which of two such atoms is which (urea's N1
    and N2) is a labelling convention of the input files."""
    orbits = {}
    for mapping in graph_automorphisms(spec, limit):
        for a, b in mapping.items():
            if a != b:
                orbits.setdefault(a, set()).add(b)
    return orbits


def symmetry_of(candidate: Candidate, automorphisms: list[dict[int, int]], frame: MolecularFrame | None = None) -> tuple[str, dict[int, int] | None]:
    """How the graph's relabellings act on a candidate, and one relabelling that shows it:

    - "invariant": none changes it (a centroid of a set of atoms the relabelling keeps as a
      set; a vector whose relabelled atoms give the same direction in `frame`, mean cos over its
      molecules above `SAME_DIRECTION`);
    - "reversed" (vectors): those that change it only reverse it (mean cos below
      -`SAME_DIRECTION`): sign-invariant descriptors do not depend on the labelling;
    - "convention": some relabelling makes it another centre or vector: its value relies on
      the input files naming equivalent atoms the same way in every molecule.

    Vectors need `frame` (a normal's sign under a relabelling is a matter of geometry)."""
    reversed_by = None
    for mapping in automorphisms:
        moved = tuple(mapping.get(p, p) for p in candidate.atoms)
        if moved == candidate.atoms:
            continue
        if candidate.kind in ("atom", "centroid"):
            if candidate.kind == "atom" or set(moved) != set(candidate.atoms):
                return "convention", mapping
            continue
        v, w = frame.vectors([candidate.atoms, moved]).transpose(1, 0, 2)
        cos = float(np.mean(np.einsum("ij,ij->i", v, w) / (np.linalg.norm(v, axis=1) * np.linalg.norm(w, axis=1))))
        if cos < -SAME_DIRECTION:
            reversed_by = reversed_by or mapping
        elif cos <= SAME_DIRECTION:
            return "convention", mapping
    return ("reversed", reversed_by) if reversed_by else ("invariant", None)


def _swapped(spec: MoleculeSpec, mapping: dict[int, int], atoms) -> str:
    pairs = sorted({tuple(sorted((p, mapping[p]))) for p in atoms if mapping.get(p, p) != p})
    return ", ".join(f"{spec.atom_names[a - 1]} <-> {spec.atom_names[b - 1]}" for a, b in pairs)


def _with_symmetry(spec: MoleculeSpec, candidates: list[Candidate], automorphisms, frame) -> list[Candidate]:
    out = []
    for c in candidates:
        symmetry, mapping = symmetry_of(c, automorphisms, frame)
        out.append(replace(c, symmetry=symmetry, sign_invariant=symmetry == "reversed", relabelling=_swapped(spec, mapping, c.atoms) if mapping else ""))
    return out


def candidate_centres(spec: MoleculeSpec) -> list[Candidate]:
    """Every candidate centre (`CENTRE_KINDS`), with its `symmetry_of`."""
    autos = graph_automorphisms(spec)
    return _with_symmetry(spec, [c for make in CENTRE_KINDS.values() for c in make(spec)], autos, None)


def candidate_vectors(spec: MoleculeSpec, frame: MolecularFrame) -> list[Candidate]:
    """Every candidate vector (`VECTOR_KINDS`), with its `symmetry_of` judged on the molecules
    of `frame`: a vector the graph's symmetry only reverses comes sign-invariant."""
    autos = graph_automorphisms(spec)
    return _with_symmetry(spec, [c for make in VECTOR_KINDS.values() for c in make(spec)], autos, frame)


def centre_distances(frames: list[MolecularFrame], centre: Candidate, radius: float) -> np.ndarray:
    """Centre-centre distances below `radius` of every (directed) pair in `frames`."""
    return np.concatenate([centre_pairs(f, centre.centre, radius).distances for f in frames]) if frames else np.zeros(0)


def pair_cosines(frames: list[MolecularFrame], centre: Candidate, vector: Candidate, radius: float, pairs: list | None = None) -> np.ndarray:
    """cos(theta_IJ) of `vector` (cos^2 when it is sign-invariant) over the pairs of centres
    closer than `radius` (`pairs`: those pairs of each frame, when already found)."""
    out = []
    for k, f in enumerate(frames):
        pairs_k = pairs[k] if pairs is not None else centre_pairs(f, centre.centre, radius)
        v = vector.vectors(f)
        u = v / np.linalg.norm(v, axis=1, keepdims=True)
        cos = np.einsum("ij,ij->i", u[pairs_k.i], u[pairs_k.j])
        out.append(cos**2 if vector.sign_invariant else cos)
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


def joint_separability(samples: dict[str, np.ndarray], ranges: list[tuple[float, float]] | None = None,
                       bins: int = 12) -> tuple[float, float, tuple[str, str] | None]:
    """`separability` of joint distributions: samples (n, d) per form, a d-dimensional
    histogram on `ranges` (default [-1, 1] each) with `bins` per dimension (cosines of
    several vectors of the same pairs: how well the vectors together separate the forms)."""
    from scipy.spatial.distance import jensenshannon

    hist = {}
    for k, v in samples.items():
        h, _ = np.histogramdd(v, bins=bins, range=ranges or [(-1.0, 1.0)] * v.shape[1])
        hist[k] = h.ravel() / max(h.sum(), 1)
    scores = {(a, b): float(jensenshannon(hist[a], hist[b], base=2)) for a, b in itertools.combinations(hist, 2)}
    if not scores:
        return 0.0, 0.0, None
    worst = min(scores, key=scores.get)
    return float(np.mean(list(scores.values()))), scores[worst], worst


def distance_edges(radius: float) -> np.ndarray:
    return np.arange(0.0, radius + DISTANCE_BIN / 2, 2 * DISTANCE_BIN)


def cosine_edges(value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """Histogram edges of what S3/S4 see of a vector (`Candidate.value_range`)."""
    return np.linspace(*value_range, COSINE_BINS + 1)


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
