"""Write a ready PLUMED input (plumed.dat) classifying every molecule of a topology with a model.

  molenv plumed-input --model urea.molenv --topology run.pdb --out plumed.dat
  molenv plumed-input --model urea.molenv --topology interface.data --name-map 4:N1,5:N2 \\
      --region z:135:10:1 --prob-file prob.dat --path I,IV:0.9,0.1:0.27,0.73:10:200

The input loads the compiled module (LOAD FILE=, the path of `molenv plumed-lib`), defines
MOLENV_CLASSIFY with MOLECULES=a-b where the molecules are consecutive blocks of atoms in the
model's order, else MOLECULE1=..., MOLECULE2=... lists derived from the topology's molecules
(atom numbers = the file's atom order, 1-based), and PRINTs every component. Lengths
(UNITS LENGTH=A, --region) are in Angstrom. The molecule (--spec) is the one the model file
carries (every file of `molenv export`), else the shipped spec the model names or fits; --spec
wins, checked against the model's. Run it with `molenv reanalyse` or your MD code.
Full documentation: docs/analysis.md."""
from __future__ import annotations

from molenv.commands._options import add_trajectory_arguments, positive_int


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="molenv model file")
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


def run(args):
    import sys
    import warnings

    import numpy as np

    from molenv.analysis import Region
    from molenv.cli import CommandError
    from molenv.commands._options import open_trajectory
    from molenv.modelfile import read_model
    from molenv.models import SFFrameClassifier, infer_spec
    from molenv.plumed.kernel import module_path
    from molenv.plumed.inputs import PlumedInputOptions, plumed_input

    model = read_model(args.model)
    d = model.descriptors
    # --spec (checked against the spec the model carries), else the model's: molenv.models.infer_spec
    spec = infer_spec(SFFrameClassifier.from_model(model, args.model), args.spec, option="--spec")
    if spec.atoms_per_molecule != d.atoms_per_molecule:
        raise CommandError(f"{args.model}: the model is for {d.atoms_per_molecule}-atom molecules, spec {spec.name} has {spec.atoms_per_molecule}")
    traj = open_trajectory(args, spec, args.topology)
    atoms = traj.atoms.indices[traj.molecules]  # file order, model atom order within each molecule
    ids = getattr(traj.universe.atoms, "ids", None)
    lammps = str(getattr(traj.universe.trajectory, "format", "")).upper() in ("DATA", "LAMMPSDUMP", "LAMMPS")
    if lammps and ids is not None and not np.array_equal(ids, np.arange(1, len(ids) + 1)):
        warnings.warn(f"{args.topology}: LAMMPS atom ids do not run 1..N; atom numbers written are the file order (as for molenv reanalyse), not ids")
    options = PlumedInputOptions(
        label=args.label, colvar=args.colvar, stride=args.stride, prob_file=args.prob_file, file_stride=args.file_stride,
        num_threads=args.num_threads, region=Region.parse(args.region) if args.region else None,
        path=parse_path(args.path) if args.path else None, nopbc=args.nopbc,
    )
    text = plumed_input(args.model, atoms, model.classes, options, module_path(),
                        comment=f"{len(atoms)} {spec.name} molecules of {args.topology}, atoms ordered by {traj.atom_order}")
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as fh:
            fh.write(text)
        print(f"wrote {args.out}: {len(atoms)} {spec.name} molecules ({'MOLECULES range' if 'MOLECULES=' in text else 'MOLECULEn lists'}), "
              f"components {', '.join(f'{args.label}.n_{c}' for c in model.classes[:3])}, ... to {args.colvar}")
