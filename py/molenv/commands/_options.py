"""Command-line options shared by the commands (not a command itself): argparse types that
refuse numbers out of range (`number`, `thread_count`, used by every command), how to read
a trajectory as molecules of a spec and what analysis to write (`molenv classify`,
`molenv reanalyse`, `molenv plumed-input`). Heavy imports stay inside the functions."""
from __future__ import annotations

import argparse
import math
import os
import sys


# ----------------------------------------------------------------------------- numbers in range
#
# An option's range is checked where argparse reads it (``type=``), so nonsense (a time step
# of 0, NaN kelvin, a stride of -1) is refused before a command reads a file or builds
# anything, with argparse's usage line and ``molenv <command>: error: argument --x: ...``.


def number(kind: type = float, *, minimum=None, maximum=None, above=None, below=None, unit: str = ""):
    """An argparse ``type=``: `kind` (int or float) parsed from the text and refused unless
    finite (NaN and inf are never a valid setting) and within the bounds: ``minimum`` /
    ``maximum`` inclusive, ``above`` / ``below`` exclusive."""
    bounds = [f"{op} {b:g}" for op, b in ((">=", minimum), (">", above), ("<=", maximum), ("<", below)) if b is not None]
    wanted = ("an integer" if kind is int else "a finite number") + (" " + " and ".join(bounds) if bounds else "") + (f" ({unit})" if unit else "")

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not math.isfinite(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum) \
                or (above is not None and value <= above) or (below is not None and value >= below):
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text}")
        return value

    parse.__name__ = wanted  # argparse names the type in some messages
    return parse


positive_int = number(int, minimum=1)  # counts, strides, steps, batch sizes
non_negative_int = number(int, minimum=0)  # patience, thresholds on counts
positive_float = number(float, above=0)
non_negative_float = number(float, minimum=0)
finite_float = number(float)
probability = number(float, minimum=0, maximum=1)

# More threads or processes than this many per CPU are a typo (e.g. 80 for 8), and oversubscribing
# a machine makes every thread wait: clamped, with a warning, not refused (the run is still valid).
THREADS_PER_CPU = 4


def thread_count(option: str):
    """An argparse ``type=`` for a number of threads or processes run on this machine: < 1 is
    refused (leave the option out for the default); more than `THREADS_PER_CPU` x the CPUs
    is clamped to that, with a warning on stderr."""
    def parse(text: str) -> int:
        try:
            value = positive_int(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected a number of threads >= 1 (leave {option} out for the default), got {text}") from None
        limit = THREADS_PER_CPU * (os.cpu_count() or 1)
        if value > limit:
            print(f"molenv: warning: {option} {value} is more than {THREADS_PER_CPU} x the {os.cpu_count() or 1} CPUs of this machine; "
                  f"using {limit}", file=sys.stderr)
            return limit
        return value

    parse.__name__ = "thread count"
    return parse


# ----------------------------------------------------------------------------- reading trajectories


def add_trajectory_arguments(parser: argparse.ArgumentParser, *, frames: bool = True, what: str = "trajectory") -> None:
    """Options of `molenv.trajectory.Trajectory` (molecules, elements, atom order, box, frames)."""
    g = parser.add_argument_group("reading molecules (see docs/analysis.md, 'Reading trajectories')")
    g.add_argument("--spec", help="molecule spec: shipped name (urea, nicotinamide) or .toml (default: the spec the model file carries, "
                   "else the shipped spec that matches the model; a spec given is checked against the model's)")
    g.add_argument("--format", help=f"MDAnalysis format of the {what} where the extension does not tell (e.g. LAMMPSDUMP, XYZ)")
    g.add_argument("--topology-format", help="MDAnalysis format of --topology")
    g.add_argument("--selection", help="MDAnalysis selection of the molecules' atoms (e.g. 'resname URE')")
    g.add_argument("--molecules", choices=("auto", "residues", "blocks"), default="auto", help="molecules from residues or contiguous blocks (default auto)")
    g.add_argument("--atom-order", choices=("auto", "name", "position", "bonds"), default="auto", help="how atoms map onto the spec (default auto)")
    g.add_argument("--name-map", help="file atom name or LAMMPS type -> spec atom name, e.g. 4:N1,5:N2 (pins urea's N1/N2)")
    g.add_argument("--type-elements", help="LAMMPS numeric type -> element, e.g. 1:H,2:O,3:C,4:N, or a LAMMPS data file with Masses")
    g.add_argument("--dimensions", help="box a,b,c,alpha,beta,gamma for every frame (files without a box, e.g. XYZ)")
    g.add_argument("--no-pbc", action="store_true", help="ignore the box (a cluster)")
    if frames:
        f = parser.add_argument_group("frames")
        add_frame_arguments(f)


def add_frame_arguments(group) -> None:
    """--start, --stop (Python slice bounds: negative counts from the end) and --step (>= 1: a
    step of 0 or a negative one, which would read the frames backwards, is refused)."""
    group.add_argument("--start", type=int, help="first frame (0-based index in the file; negative: from the end)")
    group.add_argument("--stop", type=int, help="stop before this frame")
    group.add_argument("--step", type=positive_int, help="every this many frames (>= 1)")


def add_backend_arguments(group, what: str, *, workers: bool = True) -> None:
    """``--backend``, ``--workers``, ``--dask-scheduler``: frames in blocks on worker
    processes (`molenv.frameblocks`), for the commands that are parallel over frames."""
    from molenv.frameblocks import BACKENDS

    group.add_argument("--backend", choices=BACKENDS, default="serial" if workers else None,
                       help="parallel over blocks of frames (default serial" + ("" if workers else ", multiprocessing with --workers > 1") +
                            "; dask must be installed)")
    if workers:
        # not clamped to this machine's CPUs: with --dask-scheduler the workers are elsewhere
        group.add_argument("--workers", type=positive_int, default=2, help="worker processes for multiprocessing/dask (default 2)")
    group.add_argument("--dask-scheduler", metavar="ADDRESS",
                       help=f"with --backend dask: a dask.distributed scheduler (e.g. tcp://head:8786) whose workers {what} the frames")


def parse_pairs(text: str | None, option: str) -> dict[str, str]:
    """'4:N1,5:N2' -> {'4': 'N1', '5': 'N2'}."""
    from molenv.cli import CommandError

    out = {}
    for item in (text or "").replace(" ", "").split(","):
        if not item:
            continue
        if item.count(":") != 1:
            raise CommandError(f"{option}: expected key:value pairs separated by commas, got {item!r}")
        key, value = item.split(":")
        out[key] = value
    return out


def parse_dimensions(text: str | None):
    from molenv.cli import CommandError

    if text is None:
        return None
    try:
        values = [float(x) for x in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        raise CommandError(f"--dimensions: expected a,b,c,alpha,beta,gamma (6 numbers), got {text!r}")
    return values


def open_trajectory(args, spec, path, topology=None):
    """A `molenv.trajectory.Trajectory` of `path` with the options of `add_trajectory_arguments`."""
    from molenv.trajectory import Trajectory

    return Trajectory(
        path, spec, topology=topology, format=args.format, topology_format=args.topology_format,
        selection=args.selection, molecules=args.molecules, atom_order=args.atom_order,
        name_map=parse_pairs(args.name_map, "--name-map") or None, type_elements=args.type_elements,
        dimensions=parse_dimensions(args.dimensions), periodic=not args.no_pbc,
        start=getattr(args, "start", None), stop=getattr(args, "stop", None), step=getattr(args, "step", None),
    )


def add_analysis_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """Options of `molenv.analysis.summarise`."""
    from molenv.topology import CN_THRESHOLD

    g = parser.add_argument_group("analysis output (see docs/analysis.md)")
    g.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    g.add_argument("--threshold", type=probability, default=0.5, help="a molecule whose top probability is below this is 'uncertain' (0 to 1; default 0.5; 0: never)")
    g.add_argument("--cn-threshold", type=non_negative_int, default=CN_THRESHOLD,
                   help=f"surface if the coordination number is below this (default {CN_THRESHOLD}; the rule of molenv.topology, as featurize's labels)")
    g.add_argument("--no-surface", action="store_true", help="no core/surface split (and no coordination numbers)")
    g.add_argument("--region", help="count only molecules in a slab: axis:center:halfwidth[:smoothing] in A, e.g. z:135:10")
    g.add_argument("--table-format", choices=("dat", "csv"), default="dat", help="populations table format (default dat, PLUMED-style)")
    g.add_argument("--per-molecule", choices=("npz", "dat", "csv", "none"), default="npz", help="per-molecule probabilities file (default npz)")
    g.add_argument("--no-plot", action="store_true", help="no time-series PNG")
    g.add_argument("--xyz", action="store_true", help="also write classes.extxyz (extended XYZ with per-molecule classes, for OVITO)")
    g.add_argument("--xyz-probabilities", action="store_true", help="with --xyz: add a p_<class> column per class")


def summary_options(args):
    from molenv.analysis import Region, SummaryOptions

    return SummaryOptions(
        threshold=args.threshold, cn_threshold=args.cn_threshold, split_surface=not args.no_surface,
        region=Region.parse(args.region) if args.region else None, table_format=args.table_format,
        per_molecule=None if args.per_molecule == "none" else args.per_molecule, plot=not args.no_plot,
        xyz=args.xyz, xyz_probabilities=args.xyz_probabilities,
    )


def report(result, written: dict, threshold: float) -> None:
    """Print a short summary of a result and the files written."""
    from molenv.analysis import populations

    counts = populations(result, threshold).mean(axis=0)
    print(f"{result.n_frames} frames, {result.n_molecules} molecules; mean molecules per class:")
    print("  " + "  ".join(f"{name} {c:.1f}" for name, c in zip(result.label_names, counts) if c > 0 or name != "uncertain"))
    if result.other is not None:
        print(f"  out-of-distribution (other > 0.5, none of the classes): {(result.other > 0.5).sum(axis=1).mean():.1f} molecules per frame "
              f"({(result.other > 0.5).mean():.1%}); mean other {result.other.mean():.4f}")
    for what, path in written.items():
        print(f"  {what}: {path}")
