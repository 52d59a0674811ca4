"""Export of a trained graph classifier for use outside Python: TorchScript (libtorch) or
the molenv model file of kind ``gnn`` (MOLENV_CLASSIFY, `molenv.gnn.numpy_model`).

TorchScript (`export_torchscript`, `load_exported`):

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

Model file (`gnn_model_file`, `export_model_file`, `export_gnn_checkpoint`): every weight
of the network in float64 text (docs/model_format.md, "The GNN kind"), with the molecule's
elements, which fix the atom types the file keeps from the embedding over atomic numbers.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from molenv.gnn.model import MolecularGNN, edge_lengths
from molenv.topology import TOPOLOGY_NAMES

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


# ----------------------------------------------------------------------------- model file


def _numpy(tensor: Tensor):
    """A parameter as a float64 numpy array (float32 -> float64 is exact)."""
    return tensor.detach().cpu().to(torch.float64).numpy().copy()


def _linear(layer: nn.Linear):
    from molenv.gnn.modelfile import Linear

    return Linear(_numpy(layer.weight), None if layer.bias is None else _numpy(layer.bias))


def _block(block):
    from molenv.gnn.modelfile import LayerNorm, ResidualBlock

    norm = block.norm
    return ResidualBlock(LayerNorm(_numpy(norm.weight), _numpy(norm.bias), float(norm.eps)), _linear(block.linear))


def gnn_model_file(model: MolecularGNN, form_names: list[str], molecule_atoms, name: str = "molenv GNN", meta: dict | None = None, atom_types=None):
    """The `molenv.gnn.modelfile.GNNModel` of ``model`` (its weights, float64).

    Args:
        molecule_atoms: atomic number of every atom of one molecule, in molecule order.
        atom_types: atomic numbers whose embedding rows the file keeps (default: the
            elements of the molecule, sorted). The torch embedding has a row for every
            atomic number below ``num_atom_types``, but only those of the training
            molecules were trained; a frame with any other element is refused.
    """
    from molenv.gnn.modelfile import GNNModel, GraphConv

    if len(form_names) != model.n_forms:
        raise ValueError(f"{len(form_names)} form names for a model with {model.n_forms} polymorph classes")
    molecule_atoms = [int(z) for z in molecule_atoms]
    atom_types = sorted(set(molecule_atoms)) if atom_types is None else [int(z) for z in atom_types]
    if any(not 0 <= z < model.num_atom_types for z in atom_types):
        raise ValueError(f"atom types {atom_types}: the model's embedding covers atomic numbers 0..{model.num_atom_types - 1}")
    if float(model.basis.cutoff) != float(model.cutoff):
        raise ValueError(f"the radial basis cutoff ({model.basis.cutoff}) differs from the graph cutoff ({model.cutoff}); the model file has one cutoff")
    # the file describes the network in eval mode: dropout (the identity then) is not in it
    convs = []
    for block in model.convs:
        conv = block.conv
        if conv.heads != 1 or not conv.concat or not conv.root_weight or conv.lin_beta is None or conv.lin_edge is None:
            raise ValueError("the model file describes TransformerConv(heads=1, concat=True, root_weight=True, beta=True, edge_dim=...) only")
        convs.append(
            GraphConv(
                node_in=_linear(block.node_in), edge_in=_linear(block.edge_in),
                query=_linear(conv.lin_query), key=_linear(conv.lin_key), value=_linear(conv.lin_value),
                edge=_linear(conv.lin_edge), skip=_linear(conv.lin_skip), beta=_linear(conv.lin_beta),
                node_out=_linear(block.node_out), block=_block(block.block),
            )
        )
    embedding = _numpy(model.type_embedding.weight)[atom_types]
    result = GNNModel(
        name=name,
        classes=list(form_names),
        topology_classes=list(TOPOLOGY_NAMES),
        molecule_atoms=molecule_atoms,
        cutoff=float(model.cutoff),
        atom_types=atom_types,
        embedding=embedding,
        type_in=_linear(model.type_linear),
        radial_frequencies=_numpy(model.basis.freq),
        envelope_exponent=int(model.basis.envelope.p) - 1,  # torch_geometric's Envelope keeps p = exponent + 1
        convs=convs,
        head=[_block(b) for b in model.head],
        output=_linear(model.output),
        meta=dict(meta or {}),
    )
    result.validate()
    return result


def export_model_file(model: MolecularGNN, path: str | os.PathLike, form_names: list[str], molecule_atoms, name: str = "molenv GNN", meta: dict | None = None, atom_types=None) -> Path:
    """Write ``model`` as a molenv model file of kind ``gnn`` (see `gnn_model_file`)."""
    from molenv.gnn.modelfile import write_gnn_model

    return write_gnn_model(gnn_model_file(model, form_names, molecule_atoms, name, meta, atom_types), path)


def molecule_elements(spec) -> list[int]:
    """Atomic numbers of the atoms of a `molenv.spec.MoleculeSpec` (or a spec name / path)."""
    from molenv.spec import MoleculeSpec, load_spec
    from molenv.trajectory import symbol_tables

    spec = spec if isinstance(spec, MoleculeSpec) else load_spec(spec)
    symbols, _ = symbol_tables()
    return [symbols[e.strip().capitalize()] for e in spec.elements]


def training_spec(checkpoint: Path, state: dict):
    """The molecule spec of the dataset a `molenv train gnn` checkpoint was trained on (its
    ``molenv_fit`` record, else the run's train_config.json), or None where none is known
    (graphs from files, a moved dataset)."""
    from molenv.modelspec import dataset_spec

    dataset = (state.get("molenv_fit") or {}).get("dataset")
    config = checkpoint.parent.parent / "train_config.json"
    if dataset is None and config.is_file():
        dataset = json.loads(config.read_text()).get("dataset")
    return dataset_spec(dataset)


def export_gnn_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, name: str | None = None, command: str | None = None, molecule=None, *,
                          dataset=None, ood: bool = True, log=print):
    """Write the model file of a `molenv train gnn` checkpoint, with provenance in ``meta``
    records; ``molecule`` (a spec, its name or path) defaults to the training dataset's.

    With ``ood`` (default) the file carries the out-of-distribution score (`molenv.ood`,
    `calibrate_gnn`), fitted on the training frames and calibrated on the validation frames
    of `dataset` (default: the training dataset the checkpoint records; where that is gone
    or has changed since the training, the file is written without it, and `log` says so).
    Returns the `GNNModel` written."""
    import time

    from molenv.gnn.lightning import load_classifier
    from molenv.gnn.modelfile import write_gnn_model
    from molenv.modelspec import spec_meta
    from molenv.spec import load_spec

    checkpoint = Path(checkpoint)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    spec = load_spec(molecule) if isinstance(molecule, (str, os.PathLike)) else molecule
    if spec is None:
        spec = training_spec(checkpoint, state)
    if spec is None:
        raise ValueError(f"{checkpoint}: cannot tell which molecule the model was trained on (no dataset recorded or found); give the molecule (--molecule urea, nicotinamide or a spec .toml)")
    classifier = load_classifier(checkpoint)
    fit = state.get("molenv_fit") or {}
    meta = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "trained_with": f"molenv {__import__('molenv').__version__} (molenv train gnn, GNNClassifier)",
        "checkpoint": str(checkpoint.resolve()),
        "epoch": str(state.get("epoch")),
        "molecule": spec.name,
    }
    scores = [v.get("best_model_score") for k, v in state.get("callbacks", {}).items() if k.startswith("ModelCheckpoint") and isinstance(v, dict)]
    if scores and scores[0] is not None:
        meta["best_val_loss"] = repr(float(scores[0]))
    for key in ("dataset", "dataset_manifest_sha256", "hardware"):
        if fit.get(key):
            meta[key] = str(fit[key])
    hparams = {k: v for k, v in dict(classifier.hparams).items() if k != "form_names"}
    meta["config"] = json.dumps(hparams, separators=(",", ":"), default=str)
    if command:
        meta["command"] = command
    meta.update(spec_meta(spec, geometry=True))  # the molecule spec, so that readers need no --spec (molenv.modelspec)
    model = gnn_model_file(classifier.model, classifier.form_names, molecule_elements(spec), name=name or f"{spec.name} GNN ({', '.join(classifier.form_names)})", meta=meta)
    if ood:
        from molenv.ood import calibrate_gnn, describe, training_dataset

        if dataset is None:
            dataset = training_dataset(fit.get("dataset"), fit.get("dataset_manifest_sha256"), log)
        if dataset is not None:
            model.ood = calibrate_gnn(model, dataset)
            log(describe(model.ood, "gnn"))
    write_gnn_model(model, out)
    return model
