"""Run a PLUMED input over any trajectory MDAnalysis reads (LAMMPS dumps included).

Frames go to PLUMED through its Python interface, with the kernel MOLENV_CLASSIFY was
compiled against, and a progress bar.

  molenv reanalyse --plumed plumed.dat --trajectory dump.lammpstrj
  molenv reanalyse --plumed plumed.dat --trajectory run.xtc --topology run.pdb --analyse --xyz

Outputs (COLVAR, PROB_FILE, ...) are written where plumed.dat says, relative to the current
directory, as with `plumed driver`; PLUMED atom k is the k-th atom of the file, the step is
the frame index and PLUMED's time is step x --timestep (default: the time between the first
two frames). --analyse turns the per-molecule probabilities of a MOLENV_CLASSIFY action
(taken from PLUMED at the steps that are multiples of its FILE_STRIDE) into the same
populations table, core/surface split, region filter, plots and extended XYZ as `molenv
classify`. Full documentation: docs/analysis.md."""
from __future__ import annotations

from molenv.commands._options import add_analysis_arguments, add_backend_arguments, add_frame_arguments, positive_float


def add_arguments(parser):
    parser.add_argument("--plumed", required=True, help="PLUMED input file")
    parser.add_argument("--trajectory", "-t", required=True, help="trajectory (any format MDAnalysis reads)")
    parser.add_argument("--topology", help="topology for coordinate-only trajectories (XTC, TRR, DCD)")
    parser.add_argument("--format", help="MDAnalysis format of the trajectory where the extension does not tell")
    parser.add_argument("--topology-format", help="MDAnalysis format of --topology")
    parser.add_argument("--timestep", type=positive_float, help="ps per frame for PLUMED's time (default: time between the first two frames)")
    add_frame_arguments(parser)
    parser.add_argument("--log", default="plumed.log", help="PLUMED log file (default plumed.log)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_backend_arguments(parser.add_argument_group("run"), "reanalyse")
    a = parser.add_argument_group("analysis of MOLENV_CLASSIFY probabilities")
    a.add_argument("--analyse", nargs="?", const="", metavar="LABEL",
                   help="analyse the per-molecule probabilities of the MOLENV_CLASSIFY action LABEL (default: the only one) at the "
                        "steps that are multiples of its FILE_STRIDE")
    a.add_argument("--type-elements", help="LAMMPS type -> element (e.g. 1:H,2:O,3:C,4:N or a data file), for the extended XYZ species")
    add_analysis_arguments(parser, "reanalysed")


def _atomic_numbers(universe, type_elements):
    """Atomic numbers of the file's atoms, 0 where unknown (species X in the extended XYZ)."""
    import numpy as np

    from molenv.trajectory import symbol_tables, type_key, parse_type_elements, type_elements_from_data

    symbols, _ = symbol_tables()
    atoms = universe.atoms
    if type_elements:
        from pathlib import Path

        mapping = type_elements_from_data(type_elements) if Path(type_elements).is_file() else parse_type_elements(type_elements)
        data = universe.trajectory.ts.data
        # the reference dumps keep the numeric type in an 'element' column (read as an extra column)
        types = data["element"] if "element" in data else (atoms.types if hasattr(atoms, "types") else [])
        return np.array([symbols.get(mapping.get(type_key(t), ""), 0) for t in types], dtype=np.int64)
    if hasattr(atoms, "elements"):
        return np.array([symbols.get(str(e).strip().capitalize(), 0) for e in atoms.elements], dtype=np.int64)
    return np.zeros(atoms.n_atoms, dtype=np.int64)


def run(args):
    from molenv.analysis import summarise
    from molenv.cli import CommandError
    from molenv.commands._options import report, summary_options
    from molenv.plumed.engine import PlumedError
    from molenv.plumed.inputs import classify_actions
    from molenv.plumed.reanalysis import ProbabilityCollector, open_universe, reanalyse
    from molenv.trajectory import read_timestep

    from molenv.paths import output_directory_problem

    if args.analyse is not None and (problem := output_directory_problem(args.out)):  # before PLUMED runs
        raise CommandError(problem)
    try:
        universe = open_universe(args.trajectory, args.topology, format=args.format, topology_format=args.topology_format)
        collect = model = None
        if args.analyse is not None:
            from molenv.modelfile import read_model

            options = summary_options(args)
            actions = classify_actions(args.plumed)
            chosen = [a for a in actions if not args.analyse or a.label == args.analyse]
            if len(chosen) != 1:
                have = ", ".join(a.label for a in actions) or "none"
                raise CommandError(f"--analyse {args.analyse or ''}: {args.plumed} has MOLENV_CLASSIFY actions {have}; name one".replace("  ", " "))
            action = chosen[0]
            model = read_model(action.model_path)
            d = model.descriptors
            molecules = action.molecules(universe.atoms.n_atoms, d.atoms_per_molecule)
            collect = ProbabilityCollector(action, molecules, d.centre_atom, _atomic_numbers(universe, args.type_elements), model.classes,
                                           with_coordination=not args.no_surface)
        done = reanalyse(args.plumed, args.trajectory, args.topology, format=args.format, topology_format=args.topology_format, universe=universe,
                         timestep=args.timestep, start=args.start, stop=args.stop, step=args.step, log=args.log, progress=not args.no_progress,
                         collect=collect, backend=args.backend, n_workers=args.workers, scheduler=args.dask_scheduler)
        print(f"{len(done.frames)} frames of {done.n_atoms} atoms through PLUMED (timestep {done.timestep:g} ps); log: {args.log}")
        if collect is not None:
            result = collect.result(done.records, model.network.output_activation)

            def frames():
                for record in done.records:
                    ts = read_timestep(universe.trajectory, record.frame, args.trajectory)
                    yield collect.frame(universe.atoms.positions, ts.dimensions, ts.time)

            written = summarise(result, args.out, options, frames=frames() if options.xyz else None)
            report(result, written, options.threshold)
    except PlumedError as err:
        raise CommandError(str(err)) from None
