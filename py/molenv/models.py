"""The trained models molenv reads, and `open_model(path)`: the one place that tells their
kinds apart, by content (never by the file's name):

- an SF model file (``molenv_model 1``): `SFFrameClassifier`, kind sf, form model-file;
- a checkpoint of `molenv train sf`: `SFFrameClassifier`, kind sf, form checkpoint;
- a GNN model file (``molenv_model 2``, ``kind gnn``): `GNNModelFileClassifier`, kind gnn,
  form model-file;
- a checkpoint of `molenv train gnn`: `GNNFrameClassifier`, kind gnn, form checkpoint;
- a TorchScript export of one (`molenv.gnn.export`): `GNNFrameClassifier`, kind gnn, form
  torchscript.

A training output directory stands for its ``checkpoints/best.ckpt``. `model_form(path)`
tells the form without loading anything. The two kinds of model file are told apart as
`MOLENV_CLASSIFY` does (`molenv.modelfile.model_file_kind`).

Every opened model has one interface: ``path``, ``kind``, ``form``, ``classes``,
``output_activation``, ``centre_atom``, ``check(spec)`` (a ClassifierError where the model is
for another molecule), ``predict(frame)`` -> class probabilities (n_molecules, n_classes)
and bulk/surface probabilities or None, ``describe()``. Beyond it, what each kind holds:
``model``, the numpy `molenv.modelfile.Model` of an SF model (the network `MOLENV_CLASSIFY`
computes, 1e-9) or the `molenv.gnn.modelfile.GNNModel` of a GNN model file (evaluated by the
numpy specification `molenv.gnn.numpy_model`); ``network()``, the torch module of a GNN
checkpoint (`molenv.gnn.lightning.GNNClassifier`) or export. `infer_spec(model)` finds the
molecule spec a model was made for, where it tells.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from molenv.frames import Centre, MolecularFrame

__all__ = ["ClassifierError", "SFFrameClassifier", "GNNModelFileClassifier", "GNNFrameClassifier", "model_form", "open_model", "infer_spec"]


class ClassifierError(ValueError):
    """A model that cannot be opened or used, or a classification that cannot run; the
    message names the file and the problem."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class SFFrameClassifier:
    """The SF network of a molenv model file or of an SF checkpoint, evaluated in numpy
    (identical to PLUMED's). A checkpoint's network is read when it is first used: `molenv
    export` only asks what the file is."""

    kind = "sf"

    def __init__(self, path: str | Path, form: str = "model-file"):
        self.path = Path(path)
        self.form = form  # "model-file" or "checkpoint"
        self._model = None
        if form == "model-file":
            from molenv.modelfile import read_model

            self._model = read_model(self.path)

    @classmethod
    def from_model(cls, model, name: str = "<in-memory model>") -> "SFFrameClassifier":
        """A classifier of a `molenv.modelfile.Model` held in memory (e.g. `read_model`'s, or
        the authors' network from `molenv.reference.shipped_reference_model`)."""
        classifier = cls.__new__(cls)
        classifier.path, classifier.form, classifier._model = Path(name), "model", model
        return classifier

    @property
    def model(self):
        """The numpy `molenv.modelfile.Model`: the file's, or the checkpoint's network
        (`molenv.sf.model.SFClassifier.to_model`)."""
        if self._model is None:
            from molenv.sf.train import load_sf

            self._model = load_sf(self.path).to_model()
        return self._model

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes)

    @property
    def output_activation(self) -> str:
        return self.model.network.output_activation

    @property
    def centre_atom(self) -> Centre:
        return self.model.descriptors.centre_atom

    @property
    def atoms_per_molecule(self) -> int:
        return self.model.descriptors.atoms_per_molecule

    def describe(self) -> str:
        return f"SF model {self.path.name} ({self.model.name})"

    def check(self, spec) -> None:
        if spec.atoms_per_molecule != self.atoms_per_molecule:
            raise ClassifierError(f"{self.path}: the model is for {self.atoms_per_molecule}-atom molecules, spec {spec.name} has {spec.atoms_per_molecule} atoms")

    def predict(self, frame: MolecularFrame) -> tuple[np.ndarray, None]:
        from molenv.descriptors import compute_descriptors

        return self.model.network.forward(compute_descriptors(frame, self.model.descriptors)), None

    def predict_ood(self, frame: MolecularFrame) -> tuple[np.ndarray, None, np.ndarray]:
        """`predict` and the out-of-distribution score of every molecule (`molenv.ood`)."""
        from molenv.descriptors import compute_descriptors

        if self.model.ood is None:
            raise ClassifierError(f"{self.path}: the model has no ood block (no calibrated out-of-distribution score)")
        layers = self.model.network.layer_outputs(compute_descriptors(frame, self.model.descriptors))
        return layers[-1], None, self.model.ood.other(layers[self.model.ood.layer - 1])


class GNNFrameClassifier:
    """A graph network from a Lightning checkpoint or a TorchScript export.

    The network is loaded when the object is made and again on first use in each process
    (it is dropped when pickled), so that the object can be sent to worker processes.
    ``centre_atom`` (for centres and coordination numbers) comes from the molecule spec
    (`check`).
    """

    kind = "gnn"

    def __init__(self, path: str | Path, form: str, device: str = "cpu"):
        self.path = Path(path)
        self.form = form  # "checkpoint" or "torchscript"
        self.device = device
        self.centre_atom = 1
        self._loaded = None
        self.network()
        self.output_activation = "softmax"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_loaded"] = None
        return state

    def network(self):
        """The torch module: a `molenv.gnn.lightning.GNNClassifier` (checkpoint) or the
        scripted `molenv.gnn.export.ExportedClassifier`, in eval mode on ``device``."""
        if self._loaded is not None:
            return self._loaded
        try:
            if self.form == "checkpoint":
                from molenv.gnn.lightning import load_classifier as load_checkpoint

                net = load_checkpoint(self.path, map_location=self.device)
                self.classes, self.cutoff = list(net.form_names), float(net.model.cutoff)
            else:
                from molenv.gnn.export import load_exported

                net, metadata = load_exported(self.path, map_location=self.device)
                self.classes, self.cutoff = list(metadata["form_names"]), float(metadata["cutoff"])
        except (OSError, RuntimeError, KeyError, ValueError) as err:
            raise ClassifierError(f"{self.path}: cannot load the graph network ({_first_line(err)})") from None
        self._loaded = net
        return net

    def describe(self) -> str:
        return f"GNN {self.form} {self.path.name}"

    def check(self, spec) -> None:
        self.centre_atom = spec.centre

    def predict(self, frame: MolecularFrame) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from molenv.gnn.graph import frame_to_graph

        net = self.network()
        graph = frame_to_graph(frame, cutoff=self.cutoff)
        if self.form == "checkpoint":
            from molenv.gnn.lightning import predict_graphs

            out = predict_graphs(net, [graph], batch_size=1, embeddings=False)
            return out.polymorph_probabilities.astype(np.float64), out.topology_probabilities.astype(np.float64)
        g = graph.to(self.device)
        # the profiling JIT re-optimises for every new graph size (slow first calls, no gain here)
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            poly, topo = net(g.z, g.pos, g.edge_index, g.edge_shift, g.molecule, int(g.num_molecules))
        return poly.cpu().numpy().astype(np.float64), topo.cpu().numpy().astype(np.float64)


class GNNModelFileClassifier:
    """The graph network of a GNN model file (kind gnn, `molenv export RUN --out x.molenv`),
    evaluated by the float64 numpy specification (`molenv.gnn.numpy_model`): the numbers
    `MOLENV_CLASSIFY` computes from the same file, without torch. ``centre_atom`` (for centres
    and coordination numbers) comes from the molecule spec (`check`)."""

    kind = "gnn"
    form = "model-file"
    output_activation = "softmax"

    def __init__(self, path: str | Path):
        from molenv.gnn.modelfile import read_gnn_model

        self.path = Path(path)
        self.model = read_gnn_model(self.path)
        self.classes = list(self.model.classes)
        self.centre_atom = 1

    def describe(self) -> str:
        return f"GNN model file {self.path.name} ({self.model.name})"

    def check(self, spec) -> None:
        from molenv.trajectory import symbol_tables

        numbers = symbol_tables()[0]
        if [numbers[e] for e in spec.elements] != list(self.model.molecule_atoms):
            raise ClassifierError(f"{self.path}: the model's molecule has the atomic numbers {list(self.model.molecule_atoms)} in this order; "
                                  f"spec {spec.name} has the elements {', '.join(spec.elements)}")
        self.centre_atom = spec.centre

    def predict(self, frame: MolecularFrame) -> tuple[np.ndarray, np.ndarray]:
        out = self._classify(frame)
        return out.polymorph, out.topology

    def predict_ood(self, frame: MolecularFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict` and the out-of-distribution score of every molecule (`molenv.ood`)."""
        if self.model.ood is None:
            raise ClassifierError(f"{self.path}: the model has no ood block (no calibrated out-of-distribution score)")
        out = self._classify(frame)
        return out.polymorph, out.topology, out.other

    def _classify(self, frame: MolecularFrame):
        from molenv.gnn.numpy_model import GNNInputError, classify_frame

        try:
            return classify_frame(self.model, frame)
        except GNNInputError as err:
            raise ClassifierError(f"{self.path}: {err}") from None


def _checkpoint_kind(path: Path) -> str:
    """'sf' or 'gnn': which `molenv train` wrote the checkpoint at `path`."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ClassifierError(f"{path}: cannot read the checkpoint ({_first_line(err)})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ClassifierError(f"{path}: a torch file, but not a Lightning checkpoint (no state_dict)")
    if state.get("molenv_kind") == "sf":  # written by `molenv.sf.model.SFClassifier`
        return "sf"
    if "form_names" in state.get("hyper_parameters", {}):
        return "gnn"
    raise ClassifierError(f"{path}: a checkpoint, but neither of an SF classifier nor of a graph classifier")


def model_form(path: str | Path) -> tuple[Path, str]:
    """(the file, its form) of the model at `path`, told by content without loading it:
    ``'model-file'`` (a molenv model file, either kind), ``'torchscript'`` (a TorchScript
    export of a GNN) or ``'checkpoint'`` (a Lightning checkpoint of either `molenv train`; a
    training output directory stands for its checkpoints/best.ckpt). ClassifierError naming
    the file where it is none of them."""
    import zipfile

    from molenv.paths import file_problem

    path = Path(path)
    if path.is_dir():
        best = path / "checkpoints" / "best.ckpt"
        if not best.is_file():
            raise ClassifierError(f"{path}: is a directory, not a model file, nor a training output (no checkpoints/best.ckpt)")
        path = best
    if problem := file_problem(path, "model file"):
        raise ClassifierError(problem)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"molenv_model" in head:
        return path, "model-file"
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("extra/molenv.json") for n in names):
            return path, "torchscript"
        if any(n.endswith("/data.pkl") for n in names):
            return path, "checkpoint"
    raise ClassifierError(
        f"{path}: not a molenv model file (first record 'molenv_model'), a checkpoint of `molenv train sf` or `molenv train gnn` "
        "(.ckpt) or a TorchScript export of a GNN"
    )


def open_model(path: str | Path, device: str = "cpu"):
    """The model at `path`, opened as the module docstring's table says (by content,
    `model_form`); `device` is the torch device of a GNN checkpoint or export. ClassifierError
    (or, for a model file that its reader refuses, `molenv.modelfile.ModelFileError`) naming
    the file and the problem where it is none of them."""
    path, form = model_form(path)
    if form == "model-file":
        from molenv.modelfile import model_file_kind

        return GNNModelFileClassifier(path) if model_file_kind(path) == "gnn" else SFFrameClassifier(path)
    if form == "torchscript":
        return GNNFrameClassifier(path, "torchscript", device)
    if _checkpoint_kind(path) == "sf":
        return SFFrameClassifier(path, "checkpoint")
    return GNNFrameClassifier(path, "checkpoint", device)


def infer_spec(classifier, given=None, *, option: str = "spec="):
    """The `molenv.spec.MoleculeSpec` `classifier` was made for, where the model tells it:

    - a model file that carries its spec (``meta spec_atoms`` ..., written by `molenv
      export`: `molenv.modelspec`): that spec, rebuilt from the file, after a check that it
      is the same molecule as the shipped spec of its name, where there is one;
    - an SF model: the spec its ``meta molecule`` record names, else the one shipped spec
      with its atom count, centre atom and vectors (`molenv.spec.spec_for_model`; the model
      has no elements);
    - a GNN model file: the spec its ``meta molecule`` names, else the one shipped spec
      with its elements;
    - a GNN checkpoint: the spec of the dataset it was trained on (recorded with the fit,
      `molenv.gnn.export.training_spec`), where that dataset is still there.

    Otherwise (a TorchScript export, which records no molecule; no shipped spec fits; several
    do) a SpecError that asks for ``spec=`` (or the `option` named).

    `given` (a spec, a shipped name or a spec path: the user's ``spec=`` or `option`) wins;
    it is checked against the spec the model carries, if any (a SpecError naming both where
    they are not the same molecule)."""
    from molenv.modelspec import check_same_molecule, model_spec, shipped_spec
    from molenv.spec import MoleculeSpec, SpecError, load_spec, spec_for_model

    where = str(getattr(classifier, "path", type(classifier).__name__))
    carried = None
    if isinstance(classifier, (SFFrameClassifier, GNNModelFileClassifier)):
        carried = model_spec(classifier.model, where)
    if given is not None:
        spec = given if isinstance(given, MoleculeSpec) else load_spec(given)
        if carried is not None:
            check_same_molecule(spec, carried, f"{option.rstrip('=')} {spec.name}" + (f" ({spec.path})" if spec.path else ""),
                                f"the spec {carried.name} that {where} carries")
        return spec
    if carried is not None:
        shipped = shipped_spec(carried.name)
        if shipped is not None:
            check_same_molecule(carried, shipped, f"the spec {carried.name} that {where} carries", f"the shipped spec {shipped.name} ({shipped.path})")
        return carried
    ask = f"; give {option} (the molecule: urea, nicotinamide or a spec .toml)"
    if isinstance(classifier, SFFrameClassifier):
        d = classifier.model.descriptors
        try:
            return spec_for_model(d.atoms_per_molecule, d.centre_atom, d.vectors, molecule=classifier.model.meta.get("molecule"), where=where)
        except SpecError as err:
            raise SpecError(f"{err}{ask}") from None
    if isinstance(classifier, GNNModelFileClassifier):
        m = classifier.model
        try:
            return spec_for_model(len(m.molecule_atoms), elements=m.molecule_atoms, molecule=m.meta.get("molecule"), where=where)
        except SpecError as err:
            raise SpecError(f"{err}{ask}") from None
    if isinstance(classifier, GNNFrameClassifier) and classifier.form == "checkpoint":
        import torch

        from molenv.gnn.export import training_spec

        spec = training_spec(classifier.path, torch.load(classifier.path, map_location="cpu", weights_only=False))
        if spec is not None:
            return spec
        raise SpecError(f"{where}: the GNN checkpoint records no training dataset whose spec can be read (moved or deleted){ask}")
    if isinstance(classifier, GNNFrameClassifier):
        raise SpecError(f"{where}: a TorchScript export of a GNN does not record its molecule{ask}")
    raise SpecError(f"{where}: cannot tell which molecule this classifier is for{ask}")
