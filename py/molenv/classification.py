"""Classify every molecule of every frame of a trajectory, in parallel over frames.

The classifier is any model `molenv.models.open_model` opens (an SF model file or
checkpoint, a GNN model file, checkpoint or TorchScript export), through the interface the
models share (``predict(frame)``, ``classes``, ``centre_atom``, ``check(spec)``, ...).
`ClassifyFrames` is an MDAnalysis ``AnalysisBase`` over an MDAnalysis Universe or AtomGroup,
ASE Atoms, a file or a `molenv.trajectory.Trajectory`: ``run(backend="serial" |
"multiprocessing" | "dask", n_workers=...)`` splits the frames over processes (each loads
the classifier itself) and returns the same result whatever the backend.
`classify_trajectory` wraps it and returns a `molenv.analysis.ClassificationResult`.

`classify(obj, model, spec=None, **options)` is the entry point of the Python API
(docs/api.md): any of those inputs, a model path or an opened model, the options of
`molenv classify`; the package exports it as ``molenv.classify``.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np
from MDAnalysis.analysis.base import AnalysisBase
from MDAnalysis.analysis.results import ResultsGroup

from molenv.analysis import ClassificationResult, frame_record
from molenv.frameblocks import BACKENDS, BLOCKS_PER_WORKER, DaskDistributedBackend, MultiprocessingWithProgress, check_backend
from molenv.models import ClassifierError, SFFrameClassifier, infer_spec, open_model

__all__ = ["check_finite", "ClassifyFrames", "DaskDistributedBackend", "classify_trajectory", "classify", "BACKENDS"]


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


def _classifier(model, device: str = "cpu"):
    """An opened model: `model` itself, `open_model` of a path, or the classifier of an SF
    `molenv.modelfile.Model` in memory."""
    from molenv.modelfile import Model

    if isinstance(model, (str, os.PathLike)):
        return open_model(model, device=device)
    return SFFrameClassifier.from_model(model) if isinstance(model, Model) else model


class ClassifyFrames(AnalysisBase):
    """Classify the molecules of every frame, as an MDAnalysis analysis.

    ``ClassifyFrames(atoms, model, spec=None, *, with_coordination=True, verbose=False,
    device="cpu", **options)``: `atoms` an MDAnalysis ``Universe`` or ``AtomGroup``, ASE
    ``Atoms`` or a list of them, a file path, or a `molenv.trajectory.Trajectory` (which
    already has its spec and options); `model` a model path or an opened model
    (`molenv.models.open_model`); `spec` the molecule (default: `infer_spec` of the model);
    ``options`` those of `molenv.trajectory.Trajectory` (``selection``, ``name_map``,
    ``periodic``, ...) except the frames, which ``run`` takes.

    After ``run(...)`` (the `AnalysisBase` arguments: ``start``/``stop``/``step`` or
    ``frames`` in the trajectory's frame numbers, default those of the `Trajectory`;
    ``backend``, ``n_workers``),
    ``results.classification`` is a `ClassificationResult`. Frame order, and so the result,
    is the same for every backend.
    """

    _analysis_algorithm_is_parallelizable = True
    KEYS = ("records",)

    @classmethod
    def get_supported_backends(cls):
        return BACKENDS

    def __init__(self, trajectory, classifier, spec=None, *, with_coordination: bool = True, verbose: bool = False, device: str = "cpu",
                 ood: bool = False, **options):
        from molenv.trajectory import Trajectory

        classifier = _classifier(classifier, device)
        if ood:
            check_ood(classifier)
        if isinstance(trajectory, Trajectory):
            if spec is not None or options:
                raise TypeError("a molenv Trajectory has its spec and reading options already: give spec= and "
                                f"{', '.join(sorted(options)) or 'options'} to Trajectory, or pass the atoms instead")
            classifier.check(infer_spec(classifier, trajectory.spec))  # the Trajectory's spec, checked against the model's
        else:
            frames = sorted({"start", "stop", "step"} & set(options))
            if frames:
                raise TypeError(f"ClassifyFrames takes the frames in run(): run({', '.join(f'{k}=...' for k in frames)})")
            spec = infer_spec(classifier, spec)
            classifier.check(spec)  # before reading the atoms: a model for another molecule is the clearer error
            trajectory = Trajectory(trajectory, spec, **options)
        super().__init__(trajectory.universe.trajectory, verbose=verbose)
        self.molenv_trajectory = trajectory
        self.classifier = classifier
        self.with_coordination = with_coordination
        self.ood = ood

    def run(self, start=None, stop=None, step=None, frames=None, **kwargs):
        """`AnalysisBase.run`; with no ``start``/``stop``/``step``/``frames``, the frames of the
        trajectory (a `Trajectory`'s slice; the whole frames of a truncated file)."""
        if start is None and stop is None and step is None and frames is None:
            frames = np.asarray(self.molenv_trajectory.frame_indices, dtype=np.int64)
        return super().run(start, stop, step, frames, **kwargs)

    def _prepare(self):
        self.results.records = []

    def _single_frame(self):
        frame = self.molenv_trajectory.frame_at(self._ts)  # the trajectory's own frame builder (box, selection, atom order)
        if self.ood:
            probabilities, topology, other = self.classifier.predict_ood(frame)
        else:
            (probabilities, topology), other = self.classifier.predict(frame), None
        check_finite(self.classifier, self._ts.frame, frame.time, probabilities, topology)
        self.results.records.append(
            frame_record(frame, self._ts.frame, probabilities, self.classifier.centre_atom,
                         with_coordination=self.with_coordination, topology_probabilities=topology, other=other)
        )

    def _get_aggregator(self):
        return ResultsGroup(lookup={"records": ResultsGroup.flatten_sequence})

    def _conclude(self):
        self.results.classification = ClassificationResult.stack(
            self.results.records, self.classifier.classes, output_activation=self.classifier.output_activation,
            source=self.classifier.describe(),
        )


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


def check_ood(classifier) -> None:
    """ClassifierError unless `classifier` has a calibrated out-of-distribution score (a
    model file, SF or GNN, or an SF checkpoint, with an ood block, `molenv.ood`)."""
    kind, form = getattr(classifier, "kind", None), getattr(classifier, "form", None)
    model = getattr(classifier, "model", None) if kind == "sf" or form == "model-file" else None
    if model is None or getattr(model, "ood", None) is None:
        what = ("a GNN model file (.molenv) with an ood block: a checkpoint or TorchScript export has none" if kind == "gnn" and form != "model-file"
                else "an SF model with an ood block" if kind == "sf" else "a GNN model with an ood block")
        raise ClassifierError(f"{classifier.path}: the out-of-distribution score (other) needs {what}, the calibrated score of "
                              "`molenv export` or `molenv ood-calibrate` (docs/training.md)")


def classify_trajectory(trajectory, classifier, *, backend: str = "serial", n_workers: int = 1, progress: bool = True,
                        with_coordination: bool = True, scheduler: str | None = None, ood: bool = False) -> ClassificationResult:
    """Classify every frame of `trajectory` (its ``start``/``stop``/``step`` slice) with
    `classifier`; ``backend`` as in MDAnalysis (``dask`` needs the optional dask package:
    local worker processes, or with ``scheduler`` the workers of a dask.distributed cluster,
    the frames split into 4 x `n_workers` parts)."""
    check_backend(backend, n_workers, scheduler, ClassifierError)
    analysis = ClassifyFrames(trajectory, classifier, with_coordination=with_coordination, ood=ood)
    frames = np.asarray(trajectory.frame_indices, dtype=np.int64)
    with warnings.catch_warnings(), _frames_read_errors(trajectory, backend):
        warnings.filterwarnings("ignore", message="Reader has no dt information")
        warnings.filterwarnings("ignore", message="Set `n_parts` to")
        if backend == "serial":
            analysis.run(frames=frames, verbose=progress, progressbar_kwargs={"desc": "classify", "unit": "frame"} if progress else None)
        elif backend == "multiprocessing" and progress:
            parts = int(min(len(frames), BLOCKS_PER_WORKER * n_workers))
            analysis.run(frames=frames, backend=MultiprocessingWithProgress(n_workers, "classify"), n_parts=parts, unsupported_backend=True)
        elif scheduler is not None:
            parts = int(min(len(frames), BLOCKS_PER_WORKER * n_workers))
            analysis.run(frames=frames, backend=DaskDistributedBackend(scheduler, n_workers), n_parts=parts, unsupported_backend=True)
        else:
            analysis.run(frames=frames, backend=backend, n_workers=n_workers)
    return analysis.results.classification


# ----------------------------------------------------------------------------- the Python API

RUN_OPTIONS = ("backend", "n_workers", "progress", "with_coordination", "scheduler", "device", "out", "ood")


def _split_options(options: dict) -> tuple[dict, dict]:
    """(options of `molenv.trajectory.Trajectory`, options of `molenv.analysis.SummaryOptions`);
    TypeError naming every keyword `classify` takes for one it does not."""
    import dataclasses
    import inspect

    from molenv.analysis import SummaryOptions
    from molenv.trajectory import Trajectory

    reading = [name for name in inspect.signature(Trajectory.__init__).parameters if name not in ("self", "path", "spec")]
    summary = [f.name for f in dataclasses.fields(SummaryOptions)]
    unknown = sorted(set(options) - set(reading) - set(summary))
    if unknown:
        raise TypeError(f"classify() got unexpected keyword argument(s) {', '.join(unknown)}; it takes the reading options "
                        f"{', '.join(reading)}, the run options {', '.join(RUN_OPTIONS)} and, with out=, the analysis options "
                        f"{', '.join(summary)}")
    return {k: v for k, v in options.items() if k in reading}, {k: v for k, v in options.items() if k in summary}


def classify(obj, model, spec=None, *, backend: str = "serial", n_workers: int = 1, progress: bool = False, with_coordination: bool = True,
             scheduler: str | None = None, device: str = "cpu", out: str | Path | None = None, ood: bool = False, **options) -> ClassificationResult:
    """Classify every molecule of every frame of `obj` with `model`: the Python side of
    `molenv classify` (docs/api.md).

    obj:     an MDAnalysis ``Universe`` or ``AtomGroup`` (its atoms, in its order), ASE
             ``Atoms`` or a list of them (the frames of one system; ASE has no residues, so
             molecules are contiguous blocks, their atoms ordered by name, position or
             bonds), or a trajectory file (with ``topology=`` etc., as the command).
    model:   a model path (SF or GNN model file ``.molenv``, SF or GNN checkpoint ``.ckpt``
             or training output directory, TorchScript ``.pt``; told apart by content) or a
             model from `molenv.models.open_model`.
    spec:    the molecule: ``"urea"``, ``"nicotinamide"``, a spec ``.toml`` or a
             `molenv.spec.MoleculeSpec`; default `infer_spec` of the model: the spec a model
             file carries, else the shipped one it names or fits (a SpecError asks for it
             where the model does not tell). A spec given is checked against the one the
             model carries.
    options: reading options of `molenv.trajectory.Trajectory` (``selection``,
             ``molecules``, ``atom_order``, ``name_map``, ``type_elements``, ``dimensions``,
             ``periodic=False`` for a cluster, ``start``/``stop``/``step``, and for files
             ``topology``/``format``/``topology_format``); run options ``backend``
             ("serial", "multiprocessing", "dask"), ``n_workers``, ``scheduler`` (a
             dask.distributed address), ``device`` (of a GNN), ``progress`` (a progress
             bar), ``with_coordination`` (coordination numbers, for the core/surface split),
             ``ood`` (also the out-of-distribution score ``result.other`` of a model with an
             ood block, SF or a GNN model file: > 0.5 flags a molecule as none of the model's classes).
    out:     a folder: also write the files of `molenv classify` there (populations table,
             ``molecules.npz``, plot, with ``xyz=True`` the extended XYZ); the analysis
             options of `molenv.analysis.SummaryOptions` (``threshold``, ``cn_threshold``,
             ``region`` (a `Region` or ``"z:118:8"``), ``table_format``, ``per_molecule``,
             ``plot``, ``xyz``, ``xyz_probabilities``) apply to those files only.

    Returns a `molenv.analysis.ClassificationResult`: ``probabilities`` (frames, molecules,
    classes), ``classes``, ``times``, ``frames``, ``centres``, ``boxes``, ``coordination``;
    ``labels(threshold)``, ``populations(threshold)``. Molecules are numbered in the order
    of their atoms in `obj`. Errors (a model or spec that does not fit, atoms that are no
    whole molecules, ...) are ValueErrors whose message names the input and the problem.
    """
    from molenv.analysis import Region, SummaryOptions, summarise
    from molenv.trajectory import Trajectory

    reading, analysis = _split_options(options)
    if analysis and out is None:
        raise TypeError(f"{', '.join(sorted(analysis))}: analysis options of the files written with out=; the result keeps every "
                        "probability (use result.labels(threshold), result.populations(threshold), molenv.analysis.population_table)")
    if out is not None:
        from molenv.paths import output_directory_problem

        if problem := output_directory_problem(Path(out)):  # before the frames are classified
            raise ClassifierError(problem)
        if isinstance(analysis.get("region"), str):
            analysis["region"] = Region.parse(analysis["region"])
        analysis.setdefault("split_surface", with_coordination)
        summary = SummaryOptions(**analysis)
    classifier = _classifier(model, device)
    spec = infer_spec(classifier, spec)
    classifier.check(spec)
    trajectory = Trajectory(obj, spec, **reading)
    result = classify_trajectory(trajectory, classifier, backend=backend, n_workers=n_workers if backend != "serial" else 1,
                                 progress=progress, with_coordination=with_coordination, scheduler=scheduler, ood=ood)
    if out is not None:
        summarise(result, out, summary, frames=trajectory if summary.xyz else None)
    return result
