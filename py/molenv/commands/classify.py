"""Classify every molecule of every frame of a trajectory (any MDAnalysis format) with a model.

  molenv classify --model urea.molenv --trajectory run.xtc --topology run.pdb --out classified
  molenv classify --model gnn.ckpt --spec urea --trajectory run.xtc --topology run.pdb --xyz
  molenv classify --model urea.molenv --trajectory interface.data --name-map 4:N1,5:N2 --region z:135:10

The molecule (--spec) is the one the model file carries (every file of `molenv export`),
else the shipped spec the model names or fits; --spec wins, checked against the model's.

The model is a molenv model file (SF or GNN, evaluated in numpy: the numbers MOLENV_CLASSIFY
computes), a checkpoint of `molenv train sf` or `molenv train gnn` (or the training output
directory) or a GNN's TorchScript export, told apart by content (`molenv.models`). Writes into --out: populations.dat (per frame: class counts,
uncertain molecules, soft populations, core/surface split), molecules.npz (per-molecule
probabilities), populations.png (time series) and, with --xyz, classes.extxyz for OVITO.
Frames run in parallel with --backend multiprocessing --workers N. Full documentation:
docs/analysis.md."""
from __future__ import annotations

from molenv.commands._options import add_analysis_arguments, add_backend_arguments, add_trajectory_arguments


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="molenv model file (.molenv), checkpoint (.ckpt) or training output directory, or GNN TorchScript export (.pt)")
    parser.add_argument("--trajectory", "-t", required=True, help="trajectory or single structure (any format MDAnalysis reads)")
    parser.add_argument("--topology", help="topology for coordinate-only trajectories (XTC, TRR, DCD): GRO, PDB, TPR, PSF, LAMMPS data")
    add_trajectory_arguments(parser)
    add_analysis_arguments(parser, "classified")
    run = parser.add_argument_group("run")
    add_backend_arguments(run, "classify")
    run.add_argument("--ood", action="store_true", help="also the out-of-distribution score other of every molecule (a model file, SF or GNN, or an SF checkpoint, with an ood block): "
                     "populations.dat columns n_other (other > 0.5) and soft_other (sum of other, MOLENV_CLASSIFY's n_other)")
    run.add_argument("--device", default="cpu", help="torch device of a GNN (default cpu)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args):
    from molenv.analysis import AnalysisError, summarise
    from molenv.classification import classify_trajectory
    from molenv.cli import CommandError
    from molenv.commands._options import open_trajectory, report, summary_options
    from molenv.modelfile import ModelFileError
    from molenv.models import ClassifierError, infer_spec, open_model
    from molenv.spec import SpecError
    from molenv.trajectory import TrajectoryError

    from molenv.paths import output_directory_problem

    if problem := output_directory_problem(args.out):  # before the frames are classified
        raise CommandError(problem)
    try:
        options = summary_options(args)
        classifier = open_model(args.model, device=args.device)
        # the rule of the Python API: --spec, checked against the spec the model carries, else the model's
        spec = infer_spec(classifier, args.spec, option="--spec")
        classifier.check(spec)
        trajectory = open_trajectory(args, spec, args.trajectory, args.topology)
        workers = args.workers if args.backend != "serial" else 1
        result = classify_trajectory(
            trajectory, classifier, backend=args.backend, n_workers=workers, progress=not args.no_progress,
            with_coordination=not args.no_surface, scheduler=args.dask_scheduler, ood=args.ood,
        )
        written = summarise(result, args.out, options, frames=trajectory if options.xyz else None)
    except (ClassifierError, ModelFileError, SpecError, TrajectoryError, AnalysisError) as err:
        raise CommandError(str(err)) from None
    report(result, written, options.threshold)
