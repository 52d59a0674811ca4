"""Labelling convention for graph-equivalent atoms that a descriptor vector joins.

A point-vector descriptor may use a vector between two atoms that the molecular graph does
not tell apart: urea's v2 = N1 -> N2 (a graph automorphism swaps N1 with N2 and their H).
Which N is "N1" is then a labelling choice, and it changes the descriptor: the symmetry
functions S3/S4 use cos(v_I, v_J) without absolute value, so relabelling one molecule turns
+cos into -cos for all its pairs. A model trained on one labelling misreads another: urea
form IV built with its two sublattices labelled "by symmetry" (cos -0.675 between them) is
not form IV at all for the original authors' model, which was trained on files where every
N1 -> N2 points the same way (cos +0.675; Kuroshima et al. 2024, reference dumps and
interface file).

The convention (applied by every system builder of `molenv simulate`, checked by
`molenv labelling`):

    The vectors between graph-equivalent atoms of all molecules lie in one hemisphere:
    v_I . d > 0 for every molecule I, where d is the direction of the best alignment,
    the d that maximises |sum_I s_I v_I| over the signs s_I = +-1.

d is found by sign iteration: s_I = sign(v_I . d), then d = sum_I s_I v_I / |...|, until the
signs no longer change, started from the nematic director (the leading eigenvector of
sum_I v_I v_I^T) and from the sum of the vectors as labelled; the labelled start is kept
where it reaches an optimum as good as the director's (within 0.1 of alignment), because
the optimum can be degenerate: in urea form I, d along a and d along b are equally good
(the two sublattices' N-N axes are the cell diagonals), and a labelling at either follows
the convention. Its overall sign is free (a global flip changes no cosine): d points to the
side of the majority of the molecules as labelled (so that relabelling moves the fewest),
and to the side of its largest Cartesian component on a tie. For urea this puts every
N1 -> N2 along a (or b: equivalent in the tetragonal cell) in form I, whose two
sublattices' N-N axes are the cell diagonals, and along b in form IV, as in the authors'
files (they point along -b in the form I dump and along -x, which is form I a = form IV b,
in the interface file).

The convention is about ordered systems: in a melt the directions are random and the
labels are whatever the crystal it was melted from had. `LabellingReport.alignment`
(|sum_I s_I v_I| / N with unit vectors: 1 = all parallel; form I 0.71, form IV 0.92,
random directions 0.5-0.6; below ORDER_MIN a report says the convention does not apply)
says how much order there is to label against.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from molenv.frames import minimum_image
from molenv.spec import MoleculeSpec

AMBIGUOUS_COS = 0.05  # molecules whose vector is this close to perpendicular to d are not counted against it
MAX_ITERATIONS = 100
ORDER_MIN = 0.64  # below this alignment the vectors have no common direction to label against (random: ~0.5-0.6 for 100-200 molecules)
ALIGNMENT_TOLERANCE = 0.1  # optima of |sum s_I v_I| / N closer than this are equally good (see alignment_direction): thermal noise at 100 K moves form I's two degenerate optima apart by up to ~0.03


@dataclass(frozen=True)
class EquivalentVector:
    """A spec vector whose two atoms are graph-equivalent."""

    index: int  # 0-based index among the spec's vectors
    atoms: tuple[int, int]  # 1-based spec positions (a, b): v = r(b) - r(a)
    names: tuple[str, str]
    permutation: np.ndarray  # spec positions (0-based) of the relabelled molecule: new[k] = old[permutation[k]]

    @property
    def label(self) -> str:
        return f"{self.names[0]}->{self.names[1]}"


@dataclass
class LabellingReport:
    """How one vector of a set of molecules is labelled against the convention."""

    vector: str  # e.g. "N1->N2"
    direction: np.ndarray  # unit d
    n_molecules: int
    n_against: int  # molecules on the minority side of d (0 = the convention holds)
    n_ambiguous: int  # molecules with |cos(v, d)| < AMBIGUOUS_COS (not counted in n_against)
    alignment: float  # |sum s_I v_I| / N for unit v_I
    n_relabelled: int = 0  # molecules relabelled by `apply_convention`

    @property
    def ordered(self) -> bool:
        return self.alignment >= ORDER_MIN

    @property
    def follows(self) -> bool:
        """The convention holds, or does not apply (no orientational order, e.g. a melt)."""
        return self.n_against == 0 or not self.ordered

    def describe(self) -> str:
        d = ", ".join(f"{x:+.3f}" for x in self.direction)
        if not self.ordered:
            state = f"no orientational order (alignment below {ORDER_MIN}): the convention does not apply"
        elif self.follows:
            state = "follows the convention"
        else:
            state = f"{self.n_against} of {self.n_molecules} molecules against the convention"
        extra = f", {self.n_ambiguous} nearly perpendicular to d" if self.n_ambiguous else ""
        relabelled = f"; relabelled {self.n_relabelled} molecules" if self.n_relabelled else ""
        return f"{self.vector}: {state} (d = ({d}), alignment {self.alignment:.3f}{extra}){relabelled}"


def equivalent_vectors(spec: MoleculeSpec) -> list[EquivalentVector]:
    """The spec's vectors whose two atoms a graph automorphism swaps (elements kept), each with
    the atom permutation of one such automorphism (the one networkx finds first)."""
    graph = nx.Graph()
    graph.add_nodes_from((i, {"element": e}) for i, e in enumerate(spec.elements))
    graph.add_edges_from(spec.bonds)
    same_element = nx.algorithms.isomorphism.categorical_node_match("element", None)
    found = []
    for index, atoms in enumerate(spec.vectors):
        if len(atoms) != 2:  # a plane normal joins no two atoms
            continue
        a, b = atoms
        for mapping in nx.algorithms.isomorphism.GraphMatcher(graph, graph, node_match=same_element).isomorphisms_iter():
            if mapping[a - 1] == b - 1 and mapping[b - 1] == a - 1:
                # relabelled atom k is the old atom that the automorphism sends to k
                inverse = np.empty(len(spec.elements), dtype=int)
                for old, new in mapping.items():
                    inverse[new] = old
                found.append(EquivalentVector(index, (a, b), (spec.atom_names[a - 1], spec.atom_names[b - 1]), inverse))
                break
    return found


def _sign_iteration(unit: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, float]:
    """Local maximum of |sum_I s_I u_I| over signs, from direction d: (unit d, alignment)."""
    signs = None
    for _ in range(MAX_ITERATIONS):
        new_signs = np.where(unit @ d >= 0, 1.0, -1.0)
        if signs is not None and np.array_equal(new_signs, signs):
            break
        signs = new_signs
        total = signs @ unit
        norm = np.linalg.norm(total)
        if norm == 0.0:  # perfectly cancelling (e.g. two molecules): keep d
            break
        d = total / norm
    return d, float(np.linalg.norm(np.where(unit @ d >= 0, 1.0, -1.0) @ unit) / len(unit))


def alignment_direction(vectors: np.ndarray) -> np.ndarray:
    """Unit d maximising |sum_I s_I v_I| over signs. Sign iteration from two starts, the
    labelled sum (sum_I v_I as the labels stand) and the nematic director; the labelled start
    wins unless the director's optimum is better by more than ALIGNMENT_TOLERANCE, so that a
    labelling at one of several equally good optima (urea form I: d along a or along b) is
    kept, and thermal noise does not move d from one to the other between frames.
    `vectors`: (n, 3)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    _, eigenvectors = np.linalg.eigh(unit.T @ unit)
    director, best = _sign_iteration(unit, eigenvectors[:, -1])
    labelled = unit.sum(axis=0)
    if np.linalg.norm(labelled) > 0:
        d, alignment = _sign_iteration(unit, labelled / np.linalg.norm(labelled))
        if alignment >= best - ALIGNMENT_TOLERANCE:
            return d
    return director


def _report(label: str, vectors: np.ndarray) -> tuple[LabellingReport, np.ndarray]:
    """Report of unit-normalisable `vectors` (n, 3) and the per-molecule cos(v, d)."""
    d = alignment_direction(vectors)
    cos = (vectors @ d) / np.linalg.norm(vectors, axis=1)
    clear = np.abs(cos) >= AMBIGUOUS_COS
    n_plus, n_minus = int(np.sum(cos[clear] > 0)), int(np.sum(cos[clear] < 0))
    if n_minus > n_plus or (n_minus == n_plus and d[np.argmax(np.abs(d))] < 0):
        d, cos = -d, -cos  # d on the side of the majority, so that relabelling moves the fewest molecules
    alignment = float(np.linalg.norm(np.where(cos >= 0, 1.0, -1.0) @ (vectors / np.linalg.norm(vectors, axis=1, keepdims=True))) / len(vectors))
    return LabellingReport(label, d, len(vectors), min(n_plus, n_minus), int(np.sum(~clear)), alignment), cos


def check_labelling(spec: MoleculeSpec, molecules: np.ndarray, box=None) -> list[LabellingReport]:
    """Reports for every equivalent-atom vector of ``spec`` in ``molecules`` ((n_molecules,
    atoms_per_molecule, 3) in spec order; vectors taken with the minimum image of ``box``)."""
    return [_report(ev.label, _vectors(molecules, ev, box))[0] for ev in equivalent_vectors(spec)]


def apply_convention(spec: MoleculeSpec, molecules: np.ndarray, box=None) -> tuple[np.ndarray, list[LabellingReport]]:
    """``molecules`` relabelled to the convention (a copy), and a report per vector. A
    molecule whose vector points against d gets the atoms of the swapping automorphism.
    Molecules nearly perpendicular to d (|cos| < AMBIGUOUS_COS) are left as they are."""
    out = np.array(molecules, dtype=np.float64, copy=True)
    reports = []
    for ev in equivalent_vectors(spec):
        report, cos = _report(ev.label, _vectors(out, ev, box))
        flip = cos <= -AMBIGUOUS_COS
        out[flip] = out[flip][:, ev.permutation]
        report.n_relabelled = int(flip.sum())
        report.n_against = 0
        reports.append(report)
    return out, reports


def _vectors(molecules: np.ndarray, ev: EquivalentVector, box) -> np.ndarray:
    a, b = ev.atoms
    return minimum_image(molecules[:, b - 1] - molecules[:, a - 1], box)
