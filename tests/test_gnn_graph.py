"""Graphs of molecular frames: edges against brute-force image enumeration, batching offsets."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from MDAnalysis.lib.mdamath import triclinic_box
from torch_geometric.data import Batch

from molenv.frames import MolecularFrame, box_matrix, minimum_image, perpendicular_heights, reduced_basis
from molenv.gnn.graph import NO_LABEL, frame_to_graph, graph_edges, graphs_from_dataset, molecule_graph_index

CUTOFF = 6.0


def brute_force_edges(positions: np.ndarray, box, cutoff: float) -> np.ndarray:
    """Rows (source, target, vx, vy, vz) for every image of every atom within the cutoff of
    every atom, by enumerating all lattice translations that can reach it."""
    if box is None:
        shifts = np.zeros((1, 3))
    else:
        cell = box_matrix(box)
        reach = np.ceil(cutoff / perpendicular_heights(cell)).astype(int) + 1
        shifts = np.array(list(itertools.product(*(range(-k, k + 1) for k in reach)))) @ cell
    rows = []
    for shift in shifts:
        vectors = positions[:, None, :] + shift - positions[None, :, :]  # [source, target]
        length = np.linalg.norm(vectors, axis=-1)
        source, target = np.nonzero((length < cutoff) & (length > 1e-9))
        rows.append(np.column_stack([source, target, vectors[source, target]]))
    return _sorted(np.concatenate(rows))


def _sorted(rows: np.ndarray) -> np.ndarray:
    rounded = np.round(rows, 6)
    return rows[np.lexsort(rounded.T[::-1])]


def graph_edge_rows(positions, box, cutoff=CUTOFF) -> np.ndarray:
    edge_index, shift, wrapped = graph_edges(positions, box, cutoff)
    source, target = edge_index
    return _sorted(np.column_stack([source, target, wrapped[source] + shift - wrapped[target]]))


def random_points(n: int, box, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if box is None:
        return rng.uniform(0, 14, size=(n, 3))
    # fractional coordinates a little outside [0, 1): the graph must wrap them
    return rng.uniform(-0.2, 1.2, size=(n, 3)) @ box_matrix(box)


@pytest.mark.parametrize(
    "box",
    [
        pytest.param([15.0, 16.0, 14.0, 90, 90, 90], id="orthorhombic"),
        pytest.param([17.0, 18.0, 16.0, 72.0, 105.0, 62.0], id="triclinic"),
        pytest.param(None, id="cluster"),
    ],
)
def test_edges_match_brute_force(box):
    points = random_points(160, box, seed=1)
    expected = brute_force_edges(points, box, CUTOFF)
    got = graph_edge_rows(points, box)
    assert len(expected) > 1000  # the test sees real neighbourhoods
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got[:, :2], expected[:, :2])
    # brute force used the unwrapped points: same vectors means the same images
    np.testing.assert_allclose(got[:, 2:], expected[:, 2:], atol=1e-9)


def test_large_cell_edges_are_the_unique_minimum_image():
    box = [17.0, 18.0, 16.0, 72.0, 105.0, 62.0]
    assert perpendicular_heights(box_matrix(box)).min() > 2 * CUTOFF
    points = random_points(120, box, seed=2)
    rows = graph_edge_rows(points, box)
    pairs = rows[:, :2].astype(int)
    assert len(np.unique(pairs, axis=0)) == len(pairs)  # one image per pair
    direct = points[pairs[:, 0]] - points[pairs[:, 1]]
    np.testing.assert_allclose(rows[:, 2:], minimum_image(direct, box), atol=1e-9)


def test_small_cell_sees_several_images():
    # heights ~5-7 A < 2 x cutoff: pairs have several images within 6 A, atoms see themselves
    box = [5.5, 7.0, 7.5, 80.0, 95.0, 100.0]
    points = random_points(6, box, seed=3)
    expected = brute_force_edges(points, box, CUTOFF)
    got = graph_edge_rows(points, box)
    np.testing.assert_array_equal(got[:, :2], expected[:, :2])
    np.testing.assert_allclose(got[:, 2:], expected[:, 2:], atol=1e-9)
    pairs = got[:, :2].astype(int)
    assert len(np.unique(pairs, axis=0)) < len(pairs)
    assert np.any(pairs[:, 0] == pairs[:, 1])


def two_atom_frame(n_molecules: int, box, seed: int, **kw) -> MolecularFrame:
    points = random_points(2 * n_molecules, box, seed)
    return MolecularFrame(points, box, np.arange(2 * n_molecules).reshape(-1, 2), np.tile([6, 8], n_molecules), **kw)


def test_frame_graph_fields_and_node_order():
    box = [15.0, 16.0, 14.0, 90, 90, 90]
    frame = two_atom_frame(40, box, seed=4, time=2.5)
    graph = frame_to_graph(frame, polymorph=3, topology=np.arange(40) % 2)
    assert graph.num_nodes == 80 and graph.num_molecules == 40 and graph.time == 2.5
    assert graph.y_polymorph.tolist() == [3] * 40
    assert graph.y_topology.tolist() == [0, 1] * 20
    assert graph.molecule.tolist() == np.repeat(np.arange(40), 2).tolist()
    source, target = graph.edge_index
    lengths = (graph.pos[source] + graph.edge_shift - graph.pos[target]).norm(dim=1)
    assert float(lengths.max()) < CUTOFF
    # target-grouped edge order
    assert torch.all(target[1:] >= target[:-1])

    # nodes follow frame.molecules, not the file's atom order: shuffle the atoms of the file
    perm = np.random.default_rng(0).permutation(80)
    inverse = np.argsort(perm)
    shuffled = MolecularFrame(frame.positions[perm], box, inverse[frame.molecules], frame.atomic_numbers[perm])
    again = frame_to_graph(shuffled, polymorph=3, topology=np.arange(40) % 2)
    for key in ("z", "pos", "edge_index", "edge_shift", "molecule"):
        assert torch.equal(graph[key], again[key]), key


def test_labels_default_and_shape_errors():
    frame = two_atom_frame(5, None, seed=5)
    graph = frame_to_graph(frame)
    assert graph.y_polymorph.tolist() == [NO_LABEL] * 5
    assert torch.all(graph.edge_shift == 0)
    with pytest.raises(ValueError, match="one per molecule"):
        frame_to_graph(frame, polymorph=[0, 1])


def test_batching_offsets_molecule_index():
    a = frame_to_graph(two_atom_frame(30, [15.0, 16.0, 14.0, 90, 90, 90], seed=6), polymorph=0)
    b = frame_to_graph(two_atom_frame(7, None, seed=7), polymorph=1)
    batch = Batch.from_data_list([a, b, a])
    assert batch.molecule.tolist() == a.molecule.tolist() + (b.molecule + 30).tolist() + (a.molecule + 37).tolist()
    assert batch.num_molecules.tolist() == [30, 7, 30]
    assert batch.y_polymorph.tolist() == [0] * 30 + [1] * 7 + [0] * 30
    assert torch.equal(batch.edge_index[:, a.num_edges : a.num_edges + b.num_edges], b.edge_index + a.num_nodes)
    assert molecule_graph_index(batch).tolist() == [0] * 30 + [1] * 7 + [2] * 30
    assert molecule_graph_index(a).tolist() == [0] * 30


def test_graphs_from_dataset_frame_step(urea_md_dataset):
    per_source = [s["frames"]["train"] for s in urea_md_dataset.sources if s["frames"].get("train")]
    graphs = graphs_from_dataset(urea_md_dataset, "train", step=2)
    assert len(graphs) == sum((n + 1) // 2 for n in per_source) < sum(per_source)
    every = graphs_from_dataset(urea_md_dataset, "train")
    assert len(every) == sum(per_source)
    assert torch.equal(graphs[1].pos, every[2].pos)  # first source: frames 0, 2, ...


@pytest.mark.parametrize("skewed", [False, True], ids=["triclinic", "skewed"])
@pytest.mark.parametrize("size", [2.5, 1.2, 0.6], ids=["large-cell", "cutoff-beyond-half-cell", "cutoff-beyond-cell"])
def test_edges_are_every_image_of_brute_force(skewed, size):
    """The exact edge set (source, target, whole-cell shift from the wrapped positions) of an
    explicit enumeration, lengths to 1e-12, on random triclinic cells whose smallest height
    is `size` x the cutoff (below 2: several images of an atom; below 1: its own images);
    atoms placed outside the cell as in a file with molecules split over the boundary."""
    from test_frames import brute_shift_pairs, random_cell

    rng = np.random.default_rng(int(10 * size) + 100 * skewed)
    for _ in range(3):
        matrix = random_cell(rng, skewed)
        matrix *= size * CUTOFF / perpendicular_heights(reduced_basis(matrix)).min()
        box = triclinic_box(*matrix).astype(np.float64)
        cell = box_matrix(box)
        points = rng.uniform(-0.3, 1.3, size=(int(rng.integers(10, 40)), 3)) @ cell
        edge_index, shift, wrapped = graph_edges(points, box, CUTOFF)
        source, target = edge_index
        cells = np.rint(shift @ np.linalg.inv(cell)).astype(int)
        np.testing.assert_allclose(cells @ cell, shift, rtol=0, atol=1e-12)  # whole cells
        expected = {k: r for k, r in brute_shift_pairs(wrapped, cell, CUTOFF).items() if r < CUTOFF}
        got = np.column_stack([target, source, cells])
        assert len(expected) > 0 and sorted(map(tuple, got.tolist())) == sorted(expected)
        lengths = np.linalg.norm(wrapped[source] + shift - wrapped[target], axis=1)
        np.testing.assert_allclose(lengths, [expected[tuple(row)] for row in got.tolist()], rtol=0, atol=1e-12)
        # grouped by target, then source, then shift: an order of its own, not the search's
        assert np.array_equal(np.lexsort(got.T[::-1]), np.arange(len(got)))
        frac = wrapped @ np.linalg.inv(cell)
        assert np.all((frac >= 0) & (frac < 1 + 1e-12))


def test_network_output_depends_on_edge_order_only_by_rounding():
    """Where an atom sees several images of another (cells under twice the cutoff), their
    order is molenv's (by lattice shift), no longer a KD-tree's: the network sums over edges,
    so another order moves its outputs by float32 rounding only."""
    from molenv.gnn.lightning import GNNClassifier

    torch.manual_seed(0)
    net = GNNClassifier(["I", "IV", "melt"], hidden=16, conv_channels=8, num_radial=4, dropout=0.0).eval()
    graph = frame_to_graph(two_atom_frame(4, [5.5, 7.0, 7.5, 80.0, 95.0, 100.0], seed=8))
    shuffled = graph.clone()
    perm = torch.randperm(graph.num_edges, generator=torch.Generator().manual_seed(1))
    shuffled.edge_index, shuffled.edge_shift = graph.edge_index[:, perm], graph.edge_shift[perm]
    with torch.inference_mode():
        a, b = net(graph), net(shuffled)
    for x, y in ((a.polymorph_logits, b.polymorph_logits), (a.topology_logits, b.topology_logits)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)
