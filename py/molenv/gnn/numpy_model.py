"""Reference evaluator of a GNN model file, in plain numpy (float64, no torch).

This is the executable specification of what ``MOLENV_CLASSIFY`` computes from a model
file of kind ``gnn`` (docs/model_format.md): the C++ port follows `classify_frame` step by
step, and its outputs are compared with this module's. It is written for clarity, not
speed (whole (n_edges, channels) arrays, no fused projections); it equals
`molenv.gnn.model.MolecularGNN` in float64 to rounding (tests/test_gnn_modelfile.py).

The steps, in order (numbers refer to the comments in `classify_frame`):

1. nodes: every atom of every molecule, molecule by molecule (molecule-major order); its
   atom type = the row of the embedding for its atomic number (unknown element: error).
2. edges: every ordered pair (target i, source j) of distinct atoms closer than the graph
   cutoff, j at its minimum image; periodic cells must be thicker than twice the cutoff
   (each pair then has at most one image within the cutoff). No self loops.
3. radial basis of each edge length (Bessel functions times DimeNet's envelope).
4. atom features: Linear(embedding row).
5. per graph convolution: TransformerConv attention over the incoming edges of every atom,
   gated skip, projection back to the atom features, pre-norm residual block.
6. per molecule: the maximum of each feature over the molecule's atoms.
7. head: pre-norm residual blocks, then the bias-free output layer; softmax over the
   polymorph logits and, separately, over the topology logits.
8. with an ood block: the out-of-distribution score (`molenv.ood`) of one molecule's
   features: the radial basis summed over each atom's incoming edges (the molecule's atoms
   concatenated), or the inputs of one of the head's layers (the pooled embedding, a head
   block's input or the output layer's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from molenv.frames import MolecularFrame, box_matrix, neighbour_pairs, perpendicular_heights, reduced_basis
from molenv.gnn.modelfile import GNNModel, LayerNorm, Linear, ResidualBlock

__all__ = ["GNNInputError", "GNNProbabilities", "classify_frame", "graph_edges", "radial_basis"]


class GNNInputError(ValueError):
    """A frame the GNN model cannot classify (unknown element, wrong molecule, small box)."""


@dataclass
class GNNProbabilities:
    """Per-molecule outputs; rows follow ``frame.molecules``."""

    polymorph: np.ndarray  # (n_molecules, n_forms), rows sum to 1
    topology: np.ndarray  # (n_molecules, n_topology), rows sum to 1
    # the features an ood score may take (GNNModel.ood_layer_inputs): [0] the radial basis
    # summed over each atom's incoming edges, the molecule's atoms concatenated; [1] the pooled
    # molecule embedding, then the input of each further head block, [-1] that of the output layer
    ood_features: list[np.ndarray]
    other: np.ndarray | None = None  # (n_molecules,) the ood score, for a model with an ood block


# ----------------------------------------------------------------------------- building blocks


def linear(x: np.ndarray, layer: Linear) -> np.ndarray:
    """x W^T + b (no b for a bias-free layer)."""
    y = x @ layer.weight.T
    return y if layer.bias is None else y + layer.bias


def layer_norm(x: np.ndarray, norm: LayerNorm) -> np.ndarray:
    """torch.nn.LayerNorm over the last axis: biased variance, eps inside the square root."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.eps) * norm.weight + norm.bias


def gelu(x: np.ndarray) -> np.ndarray:
    """torch.nn.GELU() (approximate='none'): x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), written without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (shifted by the row maximum, as torch does)."""
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def residual_block(x: np.ndarray, block: ResidualBlock) -> np.ndarray:
    """x + GELU(Linear(LayerNorm(x))); dropout is the identity at inference."""
    return x + gelu(linear(layer_norm(x, block.norm), block.linear))


def radial_basis(distance: np.ndarray, model: GNNModel) -> np.ndarray:
    """(n_edges, num_radial) DimeNet Bessel basis (torch_geometric BesselBasisLayer).

    With x = r / cutoff and p = envelope_exponent + 1:
    envelope(x) = 1/x - (p+1)(p+2)/2 x^(p-1) + p(p+2) x^p - p(p+1)/2 x^(p+1) for x < 1, else 0;
    basis_k(r) = envelope(x) sin(f_k x), f_k the trained frequencies (initially k pi).
    The envelope and its first two derivatives vanish at x = 1, so edges enter and leave
    the graph smoothly.
    """
    x = np.asarray(distance, dtype=np.float64)[:, None] / model.cutoff
    p = model.envelope_exponent + 1
    a, b, c = -(p + 1) * (p + 2) / 2, p * (p + 2), -p * (p + 1) / 2
    envelope = (1.0 / x + a * x ** (p - 1) + b * x**p + c * x ** (p + 1)) * (x < 1.0)
    return envelope * np.sin(model.radial_frequencies * x)


def graph_edges(positions: np.ndarray, box, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 2: (target, source, distance) of every ordered atom pair closer than ``cutoff``.

    ``positions`` (n, 3) Angstrom, ``box`` MDAnalysis dimensions or None (a cluster: plain
    distances). A periodic cell must have all perpendicular heights (of its reduced basis,
    `molenv.frames.reduced_basis`) above twice the cutoff: then each pair has at most one
    periodic image within the cutoff, the minimum image, and an atom never sees its own
    images. Edges are sorted by target, then source. The cutoff is strict (r < cutoff):
    an edge exactly on the cutoff sphere would have a zero basis but still take attention.
    """
    if box is not None:
        heights = perpendicular_heights(reduced_basis(box_matrix(box)))
        if not np.all(heights > 2 * cutoff):
            raise GNNInputError(
                f"the box is too small for the GNN's graph cutoff of {cutoff:g} A: its perpendicular heights are "
                f"{', '.join(f'{h:.4g}' for h in heights)} A, and each must exceed twice the cutoff ({2 * cutoff:g} A); use a larger supercell"
            )
    pairs = neighbour_pairs(positions, box, cutoff, single_image=True)  # vectors j - i, sorted by (i, j)
    inside = pairs.distances < cutoff
    return pairs.i[inside], pairs.j[inside], pairs.distances[inside]


# ----------------------------------------------------------------------------- the network


def classify_frame(model: GNNModel, frame: MolecularFrame) -> GNNProbabilities:
    """Polymorph and topology probabilities of every molecule of ``frame``."""
    # 1. nodes: the atoms of all molecules, molecule-major (atom a of molecule m is node
    #    m * atoms_per_molecule + a). Atoms outside any molecule are not part of the graph.
    n_molecules, per_molecule = frame.molecules.shape
    atoms = frame.molecules.reshape(-1)
    elements = np.asarray(frame.atomic_numbers)[atoms]
    type_row = {z: k for k, z in enumerate(model.atom_types)}
    unknown = sorted(set(int(z) for z in elements) - set(type_row))
    if unknown:
        raise GNNInputError(f"the frame has elements (atomic numbers) {unknown} that the GNN's atom-type embedding does not know (it knows {model.atom_types})")
    if per_molecule != len(model.molecule_atoms) or not np.array_equal(elements.reshape(n_molecules, per_molecule), np.broadcast_to(model.molecule_atoms, (n_molecules, per_molecule))):
        raise GNNInputError(f"the frame's molecules (elements {frame.atomic_numbers[frame.molecules[0]].tolist()}, ...) are not the model's molecule (molecule_atoms {model.molecule_atoms}) in the same atom order")
    types = np.array([type_row[int(z)] for z in elements])

    # 2. edges (target i <- source j), both directions of every pair, sorted by target
    target, source, distance = graph_edges(frame.positions[atoms], frame.box, model.cutoff)
    n_nodes = len(atoms)

    # 3. radial basis of every edge: (n_edges, num_radial); its sum over the incoming edges
    #    of each atom, the molecule's atoms concatenated (the ood score's layer 1)
    basis = radial_basis(distance, model)
    radial_sums = np.zeros((n_nodes, model.num_radial))
    np.add.at(radial_sums, target, basis)

    # 4. atom features: (n_nodes, hidden)
    x = linear(model.embedding[types], model.type_in)

    # 5. graph convolutions
    for conv in model.convs:
        h = linear(x, conv.node_in)  # (n_nodes, channels), no bias
        e = linear(linear(basis, conv.edge_in), conv.edge)  # (n_edges, channels): lin_edge(edge_in(basis)), both bias-free
        query = linear(h, conv.query)[target]  # of the receiving atom
        key = linear(h, conv.key)[source] + e  # of the sending atom, plus the edge feature
        value = linear(h, conv.value)[source] + e
        channels = conv.query.n_out
        score = (query * key).sum(axis=1) / np.sqrt(channels)
        # softmax of the scores over the incoming edges of each target atom
        top = np.full(n_nodes, -np.inf)
        np.maximum.at(top, target, score)
        weight = np.exp(score - top[target])
        total = np.zeros(n_nodes)
        np.add.at(total, target, weight)
        alpha = weight / total[target]
        # attention output: sum over incoming edges of alpha * value (zero for an atom without edges)
        out = np.zeros((n_nodes, channels))
        np.add.at(out, target, alpha[:, None] * value)
        # gated skip connection (TransformerConv beta=True, root_weight=True)
        skip = linear(h, conv.skip)
        beta = sigmoid(linear(np.concatenate([out, skip, out - skip], axis=1), conv.beta))  # (n_nodes, 1)
        h = beta * skip + (1.0 - beta) * out
        # back to the atom features, then the pre-norm residual block
        x = residual_block(linear(h, conv.node_out), conv.block)

    # 6. max pooling over the atoms of each molecule: (n_molecules, hidden)
    y = x.reshape(n_molecules, per_molecule, -1).max(axis=1)

    # 7. head and outputs; 8. the ood score of the inputs of head layer model.ood.layer
    features = [radial_sums.reshape(n_molecules, -1), y]
    for block in model.head:
        y = residual_block(y, block)
        features.append(y)
    logits = linear(y, model.output)
    other = None if model.ood is None else model.ood.other(features[model.ood.layer - 1])
    return GNNProbabilities(polymorph=softmax(logits[:, : model.n_forms]), topology=softmax(logits[:, model.n_forms :]), ood_features=features, other=other)
