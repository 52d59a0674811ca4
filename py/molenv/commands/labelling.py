"""Report the labelling of graph-equivalent atoms (urea's N1/N2) in a structure or trajectory.

  molenv labelling --spec urea --trajectory data/urea/urea-IV-100K.xtc --topology data/urea/urea-IV-100K.pdb.gz
  molenv labelling --spec urea --crystal formIV.cif --symmetrise 0.3
  molenv labelling --spec urea --trajectory interface.data --name-map 4:N1,5:N2

A descriptor vector between two atoms the molecular graph cannot tell apart (urea's
v2 = N1 -> N2) depends on which is called which. molenv's convention: the vectors of all
molecules lie in one hemisphere, around the direction d of their best alignment
(molenv.labelling, docs/simulate.md). Every `molenv simulate` system follows it. This command
says, per frame (or for the unit cell of a crystal structure), how many molecules point
against d (`molenv simulate` relabels such input when it builds a system).

Exit status 0 when every frame follows the convention, 1 when some do not, 2 on errors.
"""
from __future__ import annotations

from molenv.commands._options import add_trajectory_arguments, positive_float


def add_arguments(parser):
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--trajectory", "-t", help="trajectory or single structure (any format MDAnalysis reads)")
    src.add_argument("--crystal", help="crystal structure (CIF, or PDB with a space group): the unit cell expanded by symmetry")
    parser.add_argument("--topology", help="topology for coordinate-only trajectories (XTC, TRR, DCD)")
    parser.add_argument("--symmetrise", type=positive_float, metavar="TOL", help="with --crystal: symmetrise first (spglib tolerance, A)")
    add_trajectory_arguments(parser)


def run(args):
    from molenv.cli import CommandError
    from molenv.crystals import CrystalError
    from molenv.labelling import check_labelling, equivalent_vectors
    from molenv.spec import SpecError, load_spec
    from molenv.trajectory import TrajectoryError

    if not args.spec:
        raise CommandError("give --spec (the molecule: urea, nicotinamide or a spec .toml)")
    try:
        spec = load_spec(args.spec)
        if not equivalent_vectors(spec):
            print(f"spec {spec.name}: no descriptor vector joins graph-equivalent atoms; the labelling does not change the descriptors")
            return 0
        if args.crystal:
            frames = [_crystal_frame(args.crystal, spec, args.symmetrise)]
            names = [f"{args.crystal} (unit cell)"]
        else:
            from molenv.commands._options import open_trajectory

            trajectory = open_trajectory(args, spec, args.trajectory, args.topology)
            frames = [(frame.molecule_positions(), frame.box) for frame in trajectory]
            names = [f"frame {k}" for k in range(len(frames))]
    except (SpecError, TrajectoryError, CrystalError) as err:
        raise CommandError(str(err)) from None
    broken = disordered = 0
    for name, (molecules, box) in zip(names, frames):
        reports = check_labelling(spec, molecules, box)
        broken += any(not r.follows for r in reports)
        disordered += any(not r.ordered for r in reports)
        if len(frames) <= 10 or not all(r.follows for r in reports) and broken <= 5:
            for r in reports:
                print(f"{name}: {r.describe()}")
    print(f"{len(frames) - broken} of {len(frames)} frames follow the labelling convention"
          + (f" ({disordered} of them without orientational order, where it does not apply)" if disordered else "")
          + ("" if not broken else " (molenv simulate labels a system when it builds it; in a trajectory, molecules that have "
                                   "turned by more than 90 degrees since, e.g. at a cluster's surface, count as against it; docs/simulate.md)"))
    return 1 if broken else 0


def _crystal_frame(path, spec, tolerance):
    from molenv.crystals import cell_molecules, read_crystal, symmetrise

    crystal = read_crystal(path)
    if tolerance:
        crystal = symmetrise(crystal, tolerance)
    cell = cell_molecules(crystal, spec)
    return cell.positions, cell.dimensions
