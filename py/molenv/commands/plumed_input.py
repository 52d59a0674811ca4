"""Write a ready PLUMED input (plumed.dat) classifying every molecule of a topology with a model.

  molenv plumed-input --model urea.molenv --topology run.pdb --out plumed.dat
  molenv plumed-input --model urea.molenv --topology interface.data --name-map 4:N1,5:N2 \\
      --region z:135:10:1 --prob-file prob.dat --path I,IV:0.9,0.1:0.27,0.73:10:200
  molenv plumed-input --model urea_gnn.molenv --topology run.pdb --prob-file prob.dat
  molenv plumed-input --model urea.molenv --topology run.pdb --ood

The model is a molenv model file of either kind (SF or GNN, as MOLENV_CLASSIFY reads it); a
checkpoint or a TorchScript export (.pt) is refused with the `molenv export` command that
makes the model file. The input loads the compiled module (LOAD FILE=, the path of `molenv
plumed-lib`), defines MOLENV_CLASSIFY with MOLECULES=a-b where the molecules are consecutive
blocks of atoms in the model's order, else MOLECULE1=..., MOLECULE2=... lists derived from the
topology's molecules (atom numbers = the file's atom order, 1-based), and PRINTs every
component. Lengths (UNITS LENGTH=A, --region) are in Angstrom. The molecule (--spec) is the
one the model file carries (every file of `molenv export`), else the shipped spec the model
names or fits; --spec wins, checked against the model's. A GNN model gives the components of
its polymorph classes, and its topology probabilities (bulk, surface) as extra PROB_FILE
columns; it has no molecule centre, so no --region. --ood adds OOD (components n_other,
f_other: the out-of-distribution score) for a model file, SF or GNN, with an ood block
(`molenv export`, or `molenv ood-calibrate` for an older file). Run it with `molenv reanalyse` or your
MD code. Full documentation: docs/analysis.md."""
from __future__ import annotations

from molenv.commands._options import add_trajectory_arguments, positive_int


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="molenv model file, SF or GNN kind (.molenv)")
    parser.add_argument("--topology", required=True, help="structure or topology with the system's atoms in the MD code's order (PDB, GRO, LAMMPS data, ...)")
    add_trajectory_arguments(parser, frames=False, what="topology")
    o = parser.add_argument_group("PLUMED input")
    o.add_argument("--out", "-o", default="plumed.dat", help="file to write (default plumed.dat; '-' for standard output)")
    o.add_argument("--label", default="cls", help="action label (default cls)")
    o.add_argument("--colvar", default="COLVAR", help="PRINT file (default COLVAR)")
    o.add_argument("--stride", type=positive_int, default=1, help="PRINT stride (>= 1; default 1)")
    o.add_argument("--prob-file", help="also write per-molecule probabilities to this file (PROB_FILE)")
    o.add_argument("--file-stride", type=positive_int, default=1, help="PROB_FILE stride (>= 1; default 1)")
    # not clamped to this machine's CPUs: the input may run on another machine
    o.add_argument("--num-threads", type=positive_int, help="NUM_THREADS of the action (>= 1)")
    o.add_argument("--region", help="REGION_*: axis:center:halfwidth[:smoothing] in A (e.g. z:135:10:1)")
    o.add_argument("--path", help="path CV: CLASSES:START:END:NIMAGES:LAMBDA, e.g. I,IV:0.9,0.1:0.27,0.73:10:200")
    o.add_argument("--nopbc", action="store_true", help="NOPBC (a cluster)")
    o.add_argument("--ood", action="store_true", help="OOD: the out-of-distribution score as the class other (components n_other, f_other; "
                   "SF or GNN model files with an ood block)")


def parse_path(text: str):
    from molenv.cli import CommandError
    from molenv.plumed.inputs import PathOptions

    parts = text.split(":")
    try:
        if len(parts) != 5:
            raise ValueError
        return PathOptions(parts[0].split(","), [float(x) for x in parts[1].split(",")], [float(x) for x in parts[2].split(",")], int(parts[3]), float(parts[4]))
    except ValueError:
        raise CommandError(f"--path {text!r}: expected CLASSES:START:END:NIMAGES:LAMBDA, e.g. I,IV:0.9,0.1:0.27,0.73:10:200") from None


def open_model_file(path):
    """The classifier of the molenv model file at `path`, SF or GNN kind (what MOLENV_CLASSIFY
    reads); a CommandError with the `molenv export` that makes one for a checkpoint or a
    TorchScript export (told by content, without loading them)."""
    from molenv.cli import CommandError
    from molenv.models import model_form, open_model

    path, form = model_form(path)
    if form == "torchscript":
        raise CommandError(f"{path}: a TorchScript export of a graph classifier; MOLENV_CLASSIFY reads molenv model files: export one from "
                           "the training run with `molenv export RUN --out NAME.molenv` (RUN: the `molenv train gnn` output)")
    if form == "checkpoint":
        raise CommandError(f"{path}: a training checkpoint; MOLENV_CLASSIFY reads molenv model files: export one with "
                           f"`molenv export {path} --out NAME.molenv`")
    return open_model(path)


def run(args):
    import sys
    import warnings

    import numpy as np

    from molenv.analysis import Region
    from molenv.cli import CommandError
    from molenv.commands._options import open_trajectory
    from molenv.models import infer_spec
    from molenv.ood import OTHER
    from molenv.plumed.kernel import module_path
    from molenv.plumed.inputs import PlumedInputOptions, plumed_input

    classifier = open_model_file(args.model)
    model, gnn = classifier.model, classifier.kind == "gnn"
    if args.region and gnn:
        raise CommandError(f"--region: {args.model} is a GNN model, which has no molecule centre (MOLENV_CLASSIFY refuses REGION_* with it)")
    if args.ood and model.ood is None:
        raise CommandError(f"--ood: {args.model} has no ood block (the calibrated out-of-distribution score): export the model again with "
                           f"`molenv export`, or add the block with `molenv ood-calibrate {args.model} DATASET --out NEW.molenv`")
    # --spec (checked against the spec the model carries), else the model's: molenv.models.infer_spec
    spec = infer_spec(classifier, args.spec, option="--spec")
    classifier.check(spec)  # SF: the atom count; GNN: the spec's elements are the model's, in its order
    traj = open_trajectory(args, spec, args.topology)
    atoms = traj.atoms.indices[traj.molecules]  # file order, model atom order within each molecule
    ids = getattr(traj.universe.atoms, "ids", None)
    lammps = str(getattr(traj.universe.trajectory, "format", "")).upper() in ("DATA", "LAMMPSDUMP", "LAMMPS")
    if lammps and ids is not None and not np.array_equal(ids, np.arange(1, len(ids) + 1)):
        warnings.warn(f"{args.topology}: LAMMPS atom ids do not run 1..N; atom numbers written are the file order (as for molenv reanalyse), not ids")
    options = PlumedInputOptions(
        label=args.label, colvar=args.colvar, stride=args.stride, prob_file=args.prob_file, file_stride=args.file_stride,
        num_threads=args.num_threads, region=Region.parse(args.region) if args.region else None,
        path=parse_path(args.path) if args.path else None, nopbc=args.nopbc, ood=args.ood,
    )
    text = plumed_input(args.model, atoms, model.classes, options, module_path(),
                        comment=f"{len(atoms)} {spec.name} molecules of {args.topology}, atoms ordered by {traj.atom_order}"
                                + (f", GNN model (topology probabilities {', '.join(model.topology_classes)} in PROB_FILE)" if gnn else ""))
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)
        shown = [f"{args.label}.n_{c}" for c in model.classes[:3]] + (["..."] if len(model.classes) > 3 else [])
        if args.ood:
            shown += [f"{args.label}.n_{OTHER}", f"{args.label}.f_{OTHER}"]
        print(f"wrote {args.out}: {len(atoms)} {spec.name} molecules ({'MOLECULES range' if 'MOLECULES=' in text else 'MOLECULEn lists'}), "
              f"{'GNN' if gnn else 'SF'} model, components {', '.join(shown)} to {args.colvar}"
              + (f"; topology probabilities ({', '.join(model.topology_classes)}) in {args.prob_file}" if gnn and args.prob_file else ""))
