"""TorchScript export of a trained graph classifier, for use outside Python (libtorch, C++).

The exported module takes a frame's graph, as built by `molenv.gnn.graph.frame_to_graph`
(or by any code that finds the same edges), and returns probabilities::

    polymorph_p, topology_p = module(z, pos, edge_index, edge_shift, molecule, num_molecules)

    z           (n_atoms,) int64 atomic numbers
    pos         (n_atoms, 3) float32 positions, Angstrom
    edge_index  (2, n_edges) int64 [source; target]: every atom pair closer than the cutoff,
                both directions (all periodic images within the cutoff)
    edge_shift  (n_edges, 3) float32 lattice translation of the source atom: the edge
                vector is pos[source] + edge_shift - pos[target] (zeros for a cluster)
    molecule    (n_atoms,) int64 molecule index of each atom, 0..num_molecules-1
    polymorph_p (num_molecules, n_forms) and topology_p (num_molecules, 2) float32, rows
                summing to one (softmax of each head)

The outputs are differentiable with respect to ``pos`` (a collective variable can take
forces from them). The file carries ``molenv.json`` (class names, cutoff, input
description) as a TorchScript extra file; `load_exported` returns it with the module.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from molenv.gnn.model import TOPOLOGY_NAMES, MolecularGNN, edge_lengths

METADATA_NAME = "molenv.json"
EXPORT_FORMAT = 1


@contextlib.contextmanager
def _quiet_jit():
    """Recent torch marks torch.jit deprecated in favour of torch.export, but TorchScript is
    what libtorch (C++ MD codes, PLUMED) loads today: keep the warnings out of user output."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=DeprecationWarning)
        yield


class ExportedClassifier(nn.Module):
    """Positions in, per-molecule class probabilities out (the scripted interface)."""

    def __init__(self, model: MolecularGNN):
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, pos: Tensor, edge_index: Tensor, edge_shift: Tensor, molecule: Tensor, num_molecules: int) -> tuple[Tensor, Tensor]:
        out = self.model(z, edge_index, edge_lengths(pos, edge_index, edge_shift), molecule, num_molecules)
        return out.polymorph_logits.softmax(-1), out.topology_logits.softmax(-1)


def export_torchscript(model: MolecularGNN, path: str | os.PathLike, form_names: list[str]) -> Path:
    """Script ``model`` (in eval mode: no dropout) and save it with its metadata."""
    if len(form_names) != model.n_forms:
        raise ValueError(f"{len(form_names)} form names for a model with {model.n_forms} polymorph classes")
    was_training = model.training
    with _quiet_jit():
        scripted = torch.jit.script(ExportedClassifier(model).eval())
    model.train(was_training)
    metadata = {
        "format": EXPORT_FORMAT,
        "kind": "molenv-gnn",
        "form_names": list(form_names),
        "topology_names": list(TOPOLOGY_NAMES),
        "cutoff": model.cutoff,
        "num_atom_types": model.num_atom_types,
        "inputs": ["z", "pos", "edge_index", "edge_shift", "molecule", "num_molecules"],
        "outputs": ["polymorph_probabilities", "topology_probabilities"],
    }
    path = Path(path)
    with _quiet_jit():
        torch.jit.save(scripted, str(path), _extra_files={METADATA_NAME: json.dumps(metadata, indent=2)})
    return path


def load_exported(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[torch.jit.ScriptModule, dict]:
    """An exported classifier and its metadata."""
    extra = {METADATA_NAME: ""}
    with _quiet_jit():
        module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    if not extra[METADATA_NAME]:
        raise ValueError(f"{path}: not a molenv GNN export (no {METADATA_NAME} inside)")
    metadata = json.loads(extra[METADATA_NAME])
    if metadata.get("kind") != "molenv-gnn" or metadata.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path}: unsupported export (kind {metadata.get('kind')!r}, format {metadata.get('format')!r})")
    return module.eval(), metadata
