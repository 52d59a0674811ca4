"""The graph network: published size, per-molecule max pooling, symmetries, batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from torch_geometric.data import Batch

from molenv.gnn import synthetic
from molenv.gnn.graph import frame_to_graph
from molenv.gnn.model import MolecularGNN, _gathered_attention_terms, _sparse_attention_terms, count_parameters, csr_pointer, edge_lengths

UREA_FORMS = ["I", "IV", "Melt", "A", "B", "C", "III"]  # class order of the reference urea models


def test_parameter_count_of_published_urea_model():
    # METHOD.md §4: ~356k parameters with one convolution, ~575k with two
    assert count_parameters(MolecularGNN(n_forms=len(UREA_FORMS))) == 355_988
    assert count_parameters(MolecularGNN(n_forms=len(UREA_FORMS), num_convs=2)) == 574_996
    # each class adds one 256-wide row of the bias-free output layer
    assert count_parameters(MolecularGNN(n_forms=8)) - count_parameters(MolecularGNN(n_forms=7)) == 256


def run(model: MolecularGNN, graph):
    length = edge_lengths(graph.pos, graph.edge_index, graph.edge_shift)
    return model(graph.z, graph.edge_index, length, graph.molecule, int(torch.as_tensor(graph.num_molecules).sum()))


@pytest.fixture(scope="module")
def model() -> MolecularGNN:
    torch.manual_seed(0)
    return MolecularGNN(n_forms=3, num_convs=2).eval()


@pytest.fixture(scope="module")
def crystal_frame():
    return synthetic.crystal("antiparallel", (2, 2, 4), np.random.default_rng(0))


def test_max_pooling_per_molecule(model, crystal_frame):
    graph = frame_to_graph(crystal_frame)
    atoms = {}
    hook = model.convs[-1].register_forward_hook(lambda module, args, out: atoms.setdefault("x", out))
    try:
        out = run(model, graph)
    finally:
        hook.remove()
    x = atoms["x"]
    per_molecule = x.view(graph.num_molecules, -1, x.size(1))  # nodes are molecule-major
    torch.testing.assert_close(out.embedding, per_molecule.max(dim=1).values, rtol=0, atol=0)
    assert out.polymorph_logits.shape == (graph.num_molecules, 3)
    assert out.topology_logits.shape == (graph.num_molecules, 2)
    assert out.hidden.shape == out.embedding.shape == (graph.num_molecules, 256)


def test_outputs_invariant_under_periodic_translation(model, crystal_frame):
    reference = run(model, frame_to_graph(crystal_frame))
    # a translation that moves atoms across the periodic boundary: same crystal, same outputs
    moved = crystal_frame.replace(positions=crystal_frame.positions + np.array([7.3, -2.1, 30.4]))
    torch.testing.assert_close(run(model, frame_to_graph(moved)), reference, atol=2e-5, rtol=1e-4)


def test_cluster_outputs_invariant_under_rotation(model, crystal_frame):
    cluster, _ = synthetic.cluster(synthetic.crystal("parallel", (3, 4, 6), np.random.default_rng(1)), 7.0)
    reference = run(model, frame_to_graph(cluster))
    rotation = Rotation.from_euler("xyz", [30, -50, 110], degrees=True).as_matrix()
    rotated = cluster.replace(positions=cluster.positions @ rotation.T + 5.0)
    torch.testing.assert_close(run(model, frame_to_graph(rotated)), reference, atol=2e-5, rtol=1e-4)


def test_molecule_permutation_permutes_rows(model, crystal_frame):
    reference = run(model, frame_to_graph(crystal_frame))
    perm = np.random.default_rng(2).permutation(crystal_frame.n_molecules)
    shuffled = crystal_frame.replace(molecules=crystal_frame.molecules[perm])
    out = run(model, frame_to_graph(shuffled))
    torch.testing.assert_close(out.polymorph_logits, reference.polymorph_logits[perm], atol=2e-5, rtol=1e-4)


def test_batch_equals_separate_graphs(model, crystal_frame):
    graphs = [frame_to_graph(crystal_frame), frame_to_graph(synthetic.melt(3, 5.5, np.random.default_rng(3)))]
    batched = run(model, Batch.from_data_list(graphs))
    separate = [run(model, g) for g in graphs]
    for field in range(4):
        torch.testing.assert_close(batched[field], torch.cat([s[field] for s in separate]), atol=2e-5, rtol=1e-4)


def test_environment_changes_outputs(model, crystal_frame):
    # the classifier must see neighbours: a different packing of the same molecules differs
    a = run(model, frame_to_graph(crystal_frame)).embedding
    b = run(model, frame_to_graph(synthetic.crystal("parallel", (2, 3, 4), np.random.default_rng(0)))).embedding
    assert (a.mean(0) - b.mean(0)).abs().max() > 1e-3


@pytest.mark.parametrize("case", ["sparse", "gather"])
def test_fast_attention_equals_transformer_conv(crystal_frame, case):
    torch.manual_seed(5)
    model = MolecularGNN(n_forms=3, num_convs=2).eval()
    # random non-zero biases and edge weights, so that every term of the rewrite is exercised
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    if case == "sparse":  # CSR kernels: unique, sorted atom pairs
        graph = frame_to_graph(crystal_frame)
        assert csr_pointer(graph.edge_index, graph.num_nodes) is not None
    else:  # a cell thinner than twice the cutoff repeats pairs: gather path
        graph = frame_to_graph(synthetic.crystal("antiparallel", (1, 1, 3), np.random.default_rng(6)))
        assert csr_pointer(graph.edge_index, graph.num_nodes) is None
    pos = {k: graph.pos.clone().requires_grad_() for k in ("fast", "reference")}
    outputs = {}
    for key, reference in (("fast", False), ("reference", True)):
        length = edge_lengths(pos[key], graph.edge_index, graph.edge_shift)
        outputs[key] = model(graph.z, graph.edge_index, length, graph.molecule, graph.num_molecules, reference)
    for fast, ref in zip(outputs["fast"], outputs["reference"]):
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    grads = {k: torch.autograd.grad(outputs[k].polymorph_logits[:, 0].sum(), pos[k])[0] for k in pos}
    torch.testing.assert_close(grads["fast"], grads["reference"], atol=1e-5, rtol=1e-4)


def test_csr_pointer_only_for_sorted_unique_edges():
    edges = torch.tensor([[1, 2, 0, 2], [0, 0, 1, 1]])  # (source; target), sorted by target, source
    assert csr_pointer(edges, 3).tolist() == [0, 2, 4, 4]
    assert csr_pointer(edges[:, [1, 0, 2, 3]], 3) is None  # unsorted sources
    assert csr_pointer(torch.tensor([[1, 1], [0, 0]]), 3) is None  # repeated pair
    assert csr_pointer(edges, 2) is None  # atom 2 out of range


def test_chunked_gather_equals_sparse_kernels(crystal_frame):
    graph = frame_to_graph(crystal_frame)
    source, target = graph.edge_index
    n, n_edges = graph.num_nodes, graph.num_edges
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(n, 16, generator=generator) for _ in range(3))
    basis_score = torch.randn(n_edges, generator=generator)
    sparse = _sparse_attention_terms(query, key, value, source, csr_pointer(graph.edge_index, n), basis_score, 0.25)
    gathered = _gathered_attention_terms(query, key, value, source, target, basis_score, 0.25, chunk=1000)
    assert n_edges > 3 * 1000  # several blocks, the last one partial
    for g, s in zip(gathered, sparse):
        torch.testing.assert_close(g, s, atol=1e-5, rtol=1e-5)
