"""TorchScript export: the scripted file reproduces the eager model, values and forces."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from molenv.gnn import synthetic
from molenv.gnn.export import export_torchscript, load_exported
from molenv.gnn.graph import frame_to_graph
from molenv.gnn.model import MolecularGNN, edge_lengths

FORMS = ["parallel", "antiparallel", "melt"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(1)
    model = MolecularGNN(n_forms=3, dropout=0.5).train()  # export must switch dropout off itself
    path = export_torchscript(model, tmp_path_factory.mktemp("export") / "urea_gnn.pt", FORMS)
    assert model.training  # ... without changing the caller's model
    return model.eval(), *load_exported(path)


def graphs():
    rng = np.random.default_rng(4)
    periodic = frame_to_graph(synthetic.crystal("antiparallel", (2, 2, 4), rng))
    cluster = frame_to_graph(synthetic.cluster(synthetic.crystal("parallel", (3, 4, 6), rng), 7.0)[0])
    return [periodic, cluster]


def eager_probabilities(model, g, pos):
    out = model(g.z, g.edge_index, edge_lengths(pos, g.edge_index, g.edge_shift), g.molecule, g.num_molecules)
    return out.polymorph_logits.softmax(-1), out.topology_logits.softmax(-1)


@pytest.mark.parametrize("index", [0, 1], ids=["periodic", "cluster"])
def test_exported_equals_eager(exported, index):
    model, module, _ = exported
    g = graphs()[index]
    pos_eager = g.pos.clone().requires_grad_()
    pos_script = g.pos.clone().requires_grad_()
    expected = eager_probabilities(model, g, pos_eager)
    got = module(g.z, pos_script, g.edge_index, g.edge_shift, g.molecule, g.num_molecules)
    for e, s in zip(expected, got):
        torch.testing.assert_close(s, e, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(s.sum(-1), torch.ones(g.num_molecules))
    # forces on atoms from a class fraction (what a collective variable would use)
    (grad_eager,) = torch.autograd.grad(expected[0][:, 1].sum(), pos_eager)
    (grad_script,) = torch.autograd.grad(got[0][:, 1].sum(), pos_script)
    assert grad_eager.abs().max() > 0
    torch.testing.assert_close(grad_script, grad_eager, rtol=1e-4, atol=1e-6)


def test_export_metadata(exported, tmp_path):
    model, _, metadata = exported
    assert metadata["form_names"] == FORMS
    assert metadata["topology_names"] == ["bulk", "surface"]
    assert metadata["cutoff"] == 6.0
    with pytest.raises(ValueError, match="form names"):
        export_torchscript(model, tmp_path / "x.pt", FORMS[:2])
    torch.jit.save(torch.jit.script(torch.nn.Identity()), str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="not a molenv GNN export"):
        load_exported(tmp_path / "other.pt")
