"""Molecular frames as graphs: atoms are nodes, atom pairs within the cutoff are edges.

A whole frame (all molecules of a snapshot) is one graph, so every molecule of a frame is
classified at once (METHOD.md §4). Periodic frames get the edges of the infinite crystal:
every image of an atom within the cutoff, from `molenv.frames.neighbour_pairs` (vesin's
cell list, O(N), no N x N array; bench/neighbour_lists.py times it). When every
perpendicular height of the cell is at least twice the cutoff, each pair has at most one
image within the cutoff and that image is the exact minimum image, in any triclinic cell;
smaller cells are handled too (an atom then sees several images of a neighbour, and its
own images), as the crystal they represent has those neighbours.

Nodes are ordered molecule by molecule in the order of ``frame.molecules`` (atoms in spec
order), so a graph does not depend on the atom order of the input file. Edges are grouped
by target atom, then sorted by source atom (then, several images of one source in a small
cell, by lattice shift).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from molenv.frames import MolecularFrame, box_matrix, neighbour_pairs, wrap_into_cell

DEFAULT_CUTOFF = 6.0  # Angstrom
NO_LABEL = -1  # label of molecules without a known class; ignored by the loss


class MolecularGraph(Data):
    """A frame as a torch_geometric graph.

    Attributes:
        z: (n_atoms,) atomic numbers.
        pos: (n_atoms, 3) float32 positions in Angstrom (wrapped into the cell if periodic).
        edge_index: (2, n_edges) source, target atom; both directions of every pair.
        edge_shift: (n_edges, 3) lattice translation of the source atom, so that the edge
            vector is ``pos[source] + edge_shift - pos[target]`` (zero without a cell).
        molecule: (n_atoms,) molecule index of each atom.
        num_molecules: number of molecules (an int; a (n_graphs,) tensor in a batch).
        y_polymorph, y_topology: (n_molecules,) class labels, `NO_LABEL` where unknown.
        time: frame time in ps.

    Batching (``Batch.from_data_list`` or torch_geometric's ``DataLoader``) offsets
    ``molecule`` by the number of molecules of the graphs before, as it offsets
    ``edge_index`` by their atoms, so molecules of different frames stay distinct.
    """

    def __inc__(self, key, value, *args, **kwargs):
        if key == "molecule":
            return self.num_molecules
        return super().__inc__(key, value, *args, **kwargs)


def graph_edges(positions: np.ndarray, box, cutoff: float = DEFAULT_CUTOFF):
    """Edges of the atom graph: every pair closer than ``cutoff``, both directions.

    Args:
        positions: (n, 3) Angstrom.
        box: MDAnalysis dimensions, or None for a non-periodic cluster.

    Returns:
        ``(edge_index, shift, wrapped)``: (2, n_edges) int64 source/target atoms;
        (n_edges, 3) float64 lattice translations (exact integer combinations of the cell
        vectors) such that the edge vector is ``wrapped[source] + shift - wrapped[target]``;
        the positions wrapped into the cell (unchanged without a box).
    """
    positions = np.asarray(positions, dtype=np.float64)
    pairs = neighbour_pairs(positions, box, cutoff, single_image=False)
    inside = pairs.distances < cutoff  # strict: an edge on the cutoff sphere would still take attention
    target, source, cells = pairs.i[inside], pairs.j[inside], pairs.shifts[inside]
    if box is None:
        return np.stack([source, target]), np.zeros((len(source), 3)), positions
    cell = box_matrix(box)
    return np.stack([source, target]), cells.astype(np.float64) @ cell, wrap_into_cell(positions, cell)


def _per_molecule_labels(labels, n_molecules: int, what: str) -> torch.Tensor:
    if labels is None:
        return torch.full((n_molecules,), NO_LABEL, dtype=torch.long)
    array = np.asarray(labels, dtype=np.int64)
    if array.ndim == 0:
        array = np.full(n_molecules, int(array))
    if array.shape != (n_molecules,):
        raise ValueError(f"{what} labels: expected one per molecule ({n_molecules}), got shape {array.shape}")
    return torch.from_numpy(array.copy())


def frame_to_graph(
    frame: MolecularFrame,
    polymorph: int | Sequence[int] | np.ndarray | None = None,
    topology: int | Sequence[int] | np.ndarray | None = None,
    cutoff: float = DEFAULT_CUTOFF,
) -> MolecularGraph:
    """Build the graph of one frame.

    Args:
        frame: a `molenv.frames.MolecularFrame` (positions, box, molecules, atomic_numbers).
        polymorph: class index of every molecule, or one index for all, or None (unknown).
        topology: 0 bulk / 1 surface per molecule, or one value for all, or None.
        cutoff: edge cutoff in Angstrom (the model's cutoff).
    """
    molecules = frame.molecules
    if molecules.size == 0:
        raise ValueError("frame has no molecules")
    n_molecules, per_molecule = molecules.shape
    atoms = molecules.reshape(-1)
    edge_index, shift, wrapped = graph_edges(frame.positions[atoms], frame.box, cutoff)
    return MolecularGraph(
        z=torch.as_tensor(np.asarray(frame.atomic_numbers)[atoms], dtype=torch.long),
        pos=torch.as_tensor(wrapped, dtype=torch.float32),
        edge_index=torch.as_tensor(edge_index, dtype=torch.long),
        edge_shift=torch.as_tensor(shift, dtype=torch.float32),
        molecule=torch.arange(n_molecules).repeat_interleave(per_molecule),
        num_molecules=n_molecules,
        y_polymorph=_per_molecule_labels(polymorph, n_molecules, "polymorph"),
        y_topology=_per_molecule_labels(topology, n_molecules, "topology"),
        time=frame.time,
    )


def graphs_from_dataset(dataset, splits, cutoff: float = DEFAULT_CUTOFF, step: int = 1) -> list[MolecularGraph]:
    """Graphs of the frames of `splits` of a `molenv.dataset.Dataset`, labelled with its
    polymorph classes (indices into ``dataset.classes``) and topology (0 bulk, 1 surface).

    ``step`` > 1 keeps every step-th of each source's selected frames (the first, then
    every step-th after it): neighbouring MD frames are strongly correlated, so a stride
    loses little information and saves graph memory and training time."""
    if step < 1:
        raise ValueError(f"frame step must be >= 1, got {step}")
    graphs, seen = [], {}
    for item in dataset.frames(splits):
        k = seen[item.source] = seen.get(item.source, -1) + 1
        if k % step == 0:
            graphs.append(frame_to_graph(item.frame, item.polymorph, item.topology, cutoff=cutoff))
    return graphs


class FrameGraphs(torch.utils.data.Dataset):
    """Frames (any sequence: a list, a `molenv.trajectory.Trajectory`) as graphs without
    labels, each built when it is read, so that DataLoader workers can build graphs while
    the network runs."""

    def __init__(self, frames: Sequence[MolecularFrame], cutoff: float = DEFAULT_CUTOFF):
        self.frames = frames
        self.cutoff = cutoff

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> MolecularGraph:
        return frame_to_graph(self.frames[index], cutoff=self.cutoff)


def molecule_graph_index(batch: Batch) -> torch.Tensor:
    """(n_molecules,) index of the graph (frame) each molecule of a batch belongs to."""
    counts = torch.as_tensor(batch.num_molecules).reshape(-1)
    return torch.arange(len(counts), device=counts.device).repeat_interleave(counts)


GRAPH_FILE_FORMAT = 1


def save_graphs(path, graphs: Sequence[MolecularGraph], form_names: Sequence[str]) -> None:
    """Write graphs and the polymorph class names their labels index into (a torch file of
    plain tensors and numbers, loadable with ``weights_only=True``)."""
    torch.save({"format": GRAPH_FILE_FORMAT, "form_names": list(form_names), "graphs": [g.to_dict() for g in graphs]}, path)


def load_graphs(path) -> tuple[list[MolecularGraph], list[str]]:
    """Graphs and class names written by `save_graphs`."""
    content = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(content, dict) or content.get("format") != GRAPH_FILE_FORMAT:
        raise ValueError(f"{path}: not a molenv graph file (format {GRAPH_FILE_FORMAT})")
    return [MolecularGraph(**fields) for fields in content["graphs"]], list(content["form_names"])
