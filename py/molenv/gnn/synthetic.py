"""Small toy urea solids for tests, examples and benchmarks of the graph classifier.

These are not real urea polymorphs: two simple molecular packings of a rigid, planar
urea molecule (parallel and antiparallel stacks), a disordered "melt" of randomly oriented
molecules, and spherical clusters cut from any of them. They are physically sensible
(no overlapping atoms, near-crystal densities, thermal-like disorder) and distinct enough
for a network to tell apart within a few epochs, which is what a fast test needs.

`random_model` makes a small untrained GNN model (the in-memory model file, no torch) for
tests of the model file and of MOLENV_CLASSIFY's GNN kind.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from molenv.frames import MolecularFrame
from molenv.gnn.modelfile import GNNModel, GraphConv, LayerNorm, Linear, ResidualBlock
from molenv.topology import TOPOLOGY_NAMES, coordination_numbers

# Planar urea in spec order C, O, N1, H11, H12, N2, H21, H22 (C=O 1.26, C-N 1.35, N-H 1.0 A,
# 120 degree angles), in the xy plane with C=O along +y.
UREA_Z = np.array([6, 8, 7, 1, 1, 7, 1, 1])
UREA_XYZ = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 1.26, 0.0],
        [-1.169, -0.675, 0.0],
        [-2.035, -0.175, 0.0],
        [-1.169, -1.675, 0.0],
        [1.169, -0.675, 0.0],
        [2.035, -0.175, 0.0],
        [1.169, -1.675, 0.0],
    ]
)
FLIP = Rotation.from_euler("z", 180, degrees=True).as_matrix()  # C=O along -y

# name -> (orthorhombic cell edges in A, [(fractional site, orientation)] per cell)
PACKINGS = {
    "parallel": (np.array([6.0, 4.5, 3.5]), [((0.0, 0.0, 0.0), np.eye(3))]),
    "antiparallel": (np.array([6.5, 10.0, 3.5]), [((0.0, 0.0, 0.0), np.eye(3)), ((0.5, 0.5, 0.0), FLIP)]),
}


def _frame(centres: np.ndarray, rotations: np.ndarray, box: np.ndarray | None) -> MolecularFrame:
    """Whole (unwrapped) rigid urea molecules at ``centres`` with ``rotations`` (n, 3, 3)."""
    positions = centres[:, None, :] + np.einsum("nij,aj->nai", rotations, UREA_XYZ)
    n = len(centres)
    return MolecularFrame(
        positions=positions.reshape(-1, 3),
        box=box,
        molecules=np.arange(n * len(UREA_Z), dtype=np.int64).reshape(n, len(UREA_Z)),
        atomic_numbers=np.tile(UREA_Z, n),
    )


def crystal(packing: str, repeats: tuple[int, int, int], rng: np.random.Generator, shake: float = 0.15, tilt_deg: float = 6.0) -> MolecularFrame:
    """A periodic supercell of one of the `PACKINGS`, each molecule displaced by a Gaussian
    of ``shake`` A per axis and rotated by a random angle of about ``tilt_deg``."""
    edges, sites = PACKINGS[packing]
    cells = np.stack(np.meshgrid(*(np.arange(r) for r in repeats), indexing="ij"), -1).reshape(-1, 3)
    centres = np.concatenate([(cells + np.array(site)) * edges for site, _ in sites])
    base = np.concatenate([np.repeat(orient[None], len(cells), 0) for _, orient in sites])
    n = len(centres)
    wobble = Rotation.from_rotvec(rng.normal(scale=np.radians(tilt_deg), size=(n, 3))).as_matrix()
    centres = centres + rng.normal(scale=shake, size=(n, 3))
    box = np.r_[edges * np.array(repeats), 90.0, 90.0, 90.0]
    return _frame(centres, wobble @ base, box)


def melt(per_side: int, spacing: float, rng: np.random.Generator) -> MolecularFrame:
    """A disordered periodic box: molecules on a jittered cubic grid, random orientations."""
    grid = np.stack(np.meshgrid(*[np.arange(per_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing
    centres = grid + rng.uniform(-0.4, 0.4, size=grid.shape)
    rotations = Rotation.random(len(grid), random_state=rng).as_matrix()
    return _frame(centres, rotations, np.r_[[per_side * spacing] * 3, 90.0, 90.0, 90.0])


def cluster(frame: MolecularFrame, radius: float) -> tuple[MolecularFrame, np.ndarray]:
    """The molecules of a periodic toy frame whose C atom lies within ``radius`` of the box
    centre, as a non-periodic frame, and their molecule indices in ``frame``."""
    centres = frame.positions[frame.molecules[:, 0]]
    keep = np.nonzero(np.linalg.norm(centres - np.asarray(frame.box[:3]) / 2, axis=1) < radius)[0]
    atoms = frame.molecules[keep].reshape(-1)
    n, per = len(keep), frame.molecules.shape[1]
    return (
        MolecularFrame(
            positions=frame.positions[atoms],
            box=None,
            molecules=np.arange(n * per, dtype=np.int64).reshape(n, per),
            atomic_numbers=np.asarray(frame.atomic_numbers)[atoms],
            time=frame.time,
        ),
        keep,
    )


def surface_labels(frame: MolecularFrame, radius: float = 8.0, min_neighbours: int = 12) -> np.ndarray:
    """Toy topology labels of a cluster: 1 (surface) where fewer than ``min_neighbours``
    other C atoms lie within ``radius``, else 0 (bulk). The published rule
    (`molenv.topology.TopologyRule`: fewer than 20 centres within the molecule radius + 6 A)
    suits real-size clusters; this smaller one suits the toy clusters."""
    return (coordination_numbers(frame, 1, radius) - 1 < min_neighbours).astype(np.int64)


def random_model(
    rng: np.random.Generator,
    classes=("I", "IV", "melt"),
    molecule_atoms=tuple(UREA_Z),
    cutoff: float = 4.5,
    hidden: int = 8,
    channels: int = 6,
    num_radial: int = 4,
    type_dim: int = 3,
    convs: int = 2,
    head: int = 2,
    name: str = "random toy GNN",
) -> GNNModel:
    """A small untrained `GNNModel` (float64 numpy, no torch) for urea-like molecules, with
    every parameter random: LayerNorm weights away from 1 and biases away from 0,
    frequencies away from k pi, so that every number of the file matters. The weight
    scales keep the probabilities away from 0 and 1 on the toy frames (a test of their
    derivatives needs them unsaturated). Atom types: the elements of ``molecule_atoms``."""

    def linear(n_in, n_out, bias, scale=0.6):
        return Linear(rng.normal(scale=scale, size=(n_out, n_in)), rng.normal(scale=0.3, size=n_out) if bias else None)

    def block():
        norm = LayerNorm(1.0 + 0.3 * rng.normal(size=hidden), 0.2 * rng.normal(size=hidden), 1e-5)
        return ResidualBlock(norm, linear(hidden, hidden, True))

    def conv():
        c = channels
        return GraphConv(
            node_in=linear(hidden, c, False), edge_in=linear(num_radial, c, False), query=linear(c, c, True), key=linear(c, c, True),
            value=linear(c, c, True), edge=linear(c, c, False), skip=linear(c, c, True), beta=linear(3 * c, 1, False),
            node_out=linear(c, hidden, True), block=block(),
        )

    types = sorted(set(int(z) for z in molecule_atoms))
    model = GNNModel(
        name=name,
        classes=list(classes),
        topology_classes=list(TOPOLOGY_NAMES),
        molecule_atoms=[int(z) for z in molecule_atoms],
        cutoff=float(cutoff),
        atom_types=types,
        embedding=rng.normal(size=(len(types), type_dim)),
        type_in=linear(type_dim, hidden, True),
        radial_frequencies=np.pi * np.arange(1, num_radial + 1) + 0.1 * rng.normal(size=num_radial),
        envelope_exponent=5,
        convs=[conv() for _ in range(convs)],
        head=[block() for _ in range(head)],
        output=linear(hidden, len(classes) + 2, False, scale=0.04),
        meta={"purpose": "molenv tests (random weights)"},
    )
    model.validate()
    return model
