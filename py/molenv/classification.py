"""Classify every molecule of every frame of a trajectory, in parallel over frames.

Two kinds of classifier, one interface (``predict(frame)`` -> class probabilities
(n_molecules, n_classes), and bulk/surface probabilities or None; ``classes``,
``output_activation``, ``centre_atom``, ``check(spec)``, ``describe()``):

- `SFFrameClassifier`: a molenv model file (docs/model_format.md): `molenv.descriptors` +
  `Network.forward` in numpy, the same numbers `MOLENV_CLASSIFY` computes (1e-9);
- `GNNFrameClassifier`: a graph network, either a Lightning checkpoint (``.ckpt``, through
  `molenv.gnn.lightning.load_classifier` + `predict_graphs`) or a TorchScript export
  (`molenv.gnn.export.load_exported`); the graph of a frame is `frame_to_graph`.

`load_classifier(path)` tells them apart by content. `ClassifyFrames` is an MDAnalysis
``AnalysisBase`` over a `molenv.trajectory.Trajectory`: ``run(backend="serial" |
"multiprocessing" | "dask", n_workers=...)`` splits the frames over processes (each loads the
classifier itself) and returns the same result whatever the backend. `classify_trajectory`
wraps it and returns a `molenv.analysis.ClassificationResult`.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from MDAnalysis.analysis.backends import BackendBase, BackendMultiprocessing
from MDAnalysis.analysis.base import AnalysisBase
from MDAnalysis.analysis.results import ResultsGroup

from molenv.analysis import ClassificationResult, frame_record
from molenv.frames import MolecularFrame

__all__ = ["ClassifierError", "check_finite", "SFFrameClassifier", "GNNFrameClassifier", "load_classifier", "ClassifyFrames", "DaskDistributedBackend", "classify_trajectory", "BACKENDS"]

BACKENDS = ("serial", "multiprocessing", "dask")


class ClassifierError(ValueError):
    """A classifier file that cannot be used; the message names the file and problem."""


class SFFrameClassifier:
    """The SF network of a molenv model file, evaluated in numpy (identical to PLUMED's)."""

    kind = "sf"

    def __init__(self, path: str | Path):
        from molenv.modelfile import read_model

        self.path = Path(path)
        self.model = read_model(self.path)
        self.classes = list(self.model.classes)
        self.output_activation = self.model.network.output_activation
        self.centre_atom = self.model.descriptors.centre_atom
        self.atoms_per_molecule = self.model.descriptors.atoms_per_molecule

    def describe(self) -> str:
        return f"SF model {self.path.name} ({self.model.name})"

    def check(self, spec) -> None:
        if spec.atoms_per_molecule != self.atoms_per_molecule:
            raise ClassifierError(f"{self.path}: the model is for {self.atoms_per_molecule}-atom molecules, spec {spec.name} has {spec.atoms_per_molecule} atoms")

    def predict(self, frame: MolecularFrame) -> tuple[np.ndarray, None]:
        from molenv.descriptors import compute_descriptors

        return self.model.network.forward(compute_descriptors(frame, self.model.descriptors)), None


class GNNFrameClassifier:
    """A graph network from a Lightning checkpoint or a TorchScript export.

    The network is loaded on first use in each process (and dropped when pickled), so that
    the object can be sent to worker processes. ``centre_atom`` (for centres and
    coordination numbers) comes from the molecule spec (`check`).
    """

    kind = "gnn"

    def __init__(self, path: str | Path, form: str, device: str = "cpu"):
        self.path = Path(path)
        self.form = form  # "checkpoint" or "torchscript"
        self.device = device
        self.centre_atom = 1
        self._loaded = None
        self._load()
        self.output_activation = "softmax"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_loaded"] = None
        return state

    def _load(self):
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
            raise ClassifierError(f"{self.path}: cannot load the graph network ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})") from None
        self._loaded = net
        return net

    def describe(self) -> str:
        return f"GNN {self.form} {self.path.name}"

    def check(self, spec) -> None:
        self.centre_atom = spec.centre

    def predict(self, frame: MolecularFrame) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from molenv.gnn.graph import frame_to_graph

        net = self._load()
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


def load_classifier(path: str | Path, device: str = "cpu"):
    """`SFFrameClassifier` for a molenv model file, `GNNFrameClassifier` for a Lightning checkpoint
    or a TorchScript export (told apart by content, not by name)."""
    import zipfile

    from molenv.paths import file_problem

    path = Path(path)
    if problem := file_problem(path, "model file"):
        raise ClassifierError(problem)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"molenv_model" in head:
        return SFFrameClassifier(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("extra/molenv.json") for n in names):
            return GNNFrameClassifier(path, "torchscript", device)
        if any(n.endswith("/data.pkl") for n in names):
            return GNNFrameClassifier(path, "checkpoint", device)
    raise ClassifierError(
        f"{path}: not a molenv model file (first record 'molenv_model'), a GNN checkpoint (.ckpt from `molenv train gnn`) "
        "or a TorchScript export of one"
    )


def check_finite(classifier, frame: int, time: float, probabilities: np.ndarray, topology: np.ndarray | None = None) -> None:
    """ClassifierError, naming the model file, the frame and the number of molecules, where
    the classifier gave a molecule non-finite probabilities (NaN or inf: a model whose
    parameters make the network overflow, e.g. a negative eta or huge weights). Such a
    molecule would otherwise count as class 0."""
    for what, values in (("class", probabilities), ("bulk/surface", topology)):
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise ClassifierError(f"{classifier.path}: the model gives non-finite {what} probabilities (NaN or inf) for {int(bad.sum())} of "
                                  f"{len(values)} molecules in frame {int(frame)} (t = {time:g} ps); its parameters make the network "
                                  "overflow (e.g. a negative eta or huge weights): nothing is counted")


class ClassifyFrames(AnalysisBase):
    """Classify the molecules of every frame of a `molenv.trajectory.Trajectory`.

    After ``run(...)`` (the `AnalysisBase` arguments: ``start``/``stop``/``step`` or
    ``frames`` in the trajectory file's frame numbers, ``backend``, ``n_workers``),
    ``results.classification`` is a `ClassificationResult`. Frame order, and so the result,
    is the same for every backend.
    """

    _analysis_algorithm_is_parallelizable = True
    KEYS = ("records",)

    @classmethod
    def get_supported_backends(cls):
        return BACKENDS

    def __init__(self, trajectory, classifier, *, with_coordination: bool = True, verbose: bool = False):
        super().__init__(trajectory.universe.trajectory, verbose=verbose)
        self.molenv_trajectory = trajectory
        self.classifier = classifier
        self.with_coordination = with_coordination
        classifier.check(trajectory.spec)

    def _prepare(self):
        self.results.records = []

    def _single_frame(self):
        frame = self.molenv_trajectory.frame_at(self._ts)  # the trajectory's own frame builder (box, selection, atom order)
        probabilities, topology = self.classifier.predict(frame)
        check_finite(self.classifier, self._ts.frame, frame.time, probabilities, topology)
        self.results.records.append(
            frame_record(frame, self._ts.frame, probabilities, self.classifier.centre_atom,
                         with_coordination=self.with_coordination, topology_probabilities=topology)
        )

    def _get_aggregator(self):
        return ResultsGroup(lookup={"records": ResultsGroup.flatten_sequence})

    def _conclude(self):
        self.results.classification = ClassificationResult.stack(
            self.results.records, self.classifier.classes, output_activation=self.classifier.output_activation,
            source=self.classifier.describe(),
        )


class _MultiprocessingWithProgress(BackendMultiprocessing):
    """`BackendMultiprocessing` that shows a progress bar over the parts as they finish."""

    def apply(self, func, computations):
        from multiprocessing import Pool

        from tqdm.auto import tqdm

        with Pool(processes=self.n_workers) as pool:
            return list(tqdm(pool.imap(func, computations), total=len(computations), unit="part", desc="classify"))


class DaskDistributedBackend(BackendBase):
    """Frames on a dask.distributed cluster: the parts go to the scheduler at `address`
    (``tcp://host:8786``, as printed by ``dask scheduler``) with ``Client.map`` and come back
    in order. MDAnalysis' own dask backend runs local processes only."""

    def __init__(self, address: str, n_workers: int):
        self.address = address
        super().__init__(n_workers=n_workers)

    def apply(self, func, computations):
        from dask.distributed import Client

        with Client(self.address) as client:
            return client.gather(client.map(func, computations, pure=False))


@contextlib.contextmanager
def _frames_read_errors(trajectory, backend: str):
    """MDAnalysis iterates the frames here: a frame its reader cannot read (a file damaged,
    or changed since it was opened: a truncated one is refused when it is opened) raises
    OSError or EOFError from inside the reader; reported as a TrajectoryError naming the
    file. Not with dask, where OSError is also a lost connection to the scheduler."""
    from molenv.trajectory import TrajectoryError

    try:
        yield
    except (OSError, EOFError) as err:
        if backend == "dask":
            raise
        raise TrajectoryError(f"{trajectory._where()}: cannot read a frame ({str(err).strip() or type(err).__name__}): the file is damaged or "
                              "truncated") from None


def classify_trajectory(trajectory, classifier, *, backend: str = "serial", n_workers: int = 1, progress: bool = True,
                        with_coordination: bool = True, scheduler: str | None = None) -> ClassificationResult:
    """Classify every frame of `trajectory` (its ``start``/``stop``/``step`` slice) with
    `classifier`; ``backend`` as in MDAnalysis (``dask`` needs the optional dask package:
    local worker processes, or with ``scheduler`` the workers of a dask.distributed cluster,
    the frames split into 4 x `n_workers` parts)."""
    if backend not in BACKENDS:
        raise ClassifierError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if scheduler is not None and backend != "dask":
        raise ClassifierError(f"a dask scheduler address needs backend 'dask', not {backend!r}")
    if backend == "dask":
        try:
            import dask  # noqa: F401

            if scheduler is not None:
                import dask.distributed  # noqa: F401
        except ImportError:
            raise ClassifierError("the dask backend needs dask: pip install 'dask[distributed]' (or use --backend multiprocessing)") from None
    if n_workers < 1:
        raise ClassifierError(f"n_workers must be >= 1, got {n_workers}")
    analysis = ClassifyFrames(trajectory, classifier, with_coordination=with_coordination)
    frames = np.asarray(trajectory.frame_indices, dtype=np.int64)
    with warnings.catch_warnings(), _frames_read_errors(trajectory, backend):
        warnings.filterwarnings("ignore", message="Reader has no dt information")
        warnings.filterwarnings("ignore", message="Set `n_parts` to")
        if backend == "serial":
            analysis.run(frames=frames, verbose=progress, progressbar_kwargs={"desc": "classify", "unit": "frame"} if progress else None)
        elif backend == "multiprocessing" and progress:
            parts = int(min(len(frames), 4 * n_workers))
            analysis.run(frames=frames, backend=_MultiprocessingWithProgress(n_workers=n_workers), n_parts=parts, unsupported_backend=True)
        elif scheduler is not None:
            parts = int(min(len(frames), 4 * n_workers))
            analysis.run(frames=frames, backend=DaskDistributedBackend(scheduler, n_workers), n_parts=parts, unsupported_backend=True)
        else:
            analysis.run(frames=frames, backend=backend, n_workers=n_workers)
    return analysis.results.classification
