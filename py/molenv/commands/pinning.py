"""Chemical-potential differences from interface-pinning runs, and a melting point from them.

  molenv pinning analyse pin-109/COLVAR pin-141/COLVAR --plumed pin-109.dat pin-141.dat \\
      --alpha 0.859 --temperature 400 --out pinning-400K
  molenv pinning analyse run/COLVAR --column cls.n_I --at 109 --kappa 0.05 --out pinning-400K
  molenv pinning melting-point pinning-360K pinning-400K --experiment 406 --out melting-point

`analyse`: each COLVAR is one window, a run of a two-phase system with a flat interface at
fixed area (NPzT) under a harmonic bias KAPPA/2 (Q - AT)^2 on a count Q of molecules of one
phase (e.g. `cls.n_I` of MOLENV_CLASSIFY). Then dmu = mu_other - mu_phase = KAPPA alpha
(<Q> - AT) per molecule (Pedersen et al., PRB 88, 094101 (2013); alpha: the soft count of a
molecule of the phase less that of one of the other, measured on bulk runs; 1 for an exact
count). The bias is read from each window's PLUMED input (its one RESTRAINT: ARG, AT, KAPPA)
or given with --column, --at and --kappa. The analysis of each window starts where its series
becomes stationary (--discard auto, the default: Chodera's rule, as pymbar implements it) or
after --discard ps; the error is the plateau of the block-averaging curve; each window's halves
are compared ("still drifting" beyond 3 of their errors). Writes to --out: summary.json (every
window and their mean at --temperature: windows at different AT sample the front at different
depths of a crystal layer, and their plain mean is dmu; docs/analysis.md) and windows.png (the series and the
block curves).

`analyse --layer MOLECULES` (the molecules of one crystal layer of the face): where the front
moves layer by layer, the mean force of a window depends on where in a layer the front sits;
dmu is then the constant of a fit of the windows' mean forces against their <Q>/alpha,
periodic in the layer (molenv.pinning.layer_periodic_fit; 4 windows or more across the layer).

`analyse --bulk CRYSTAL MELT` (two `molenv simulate` run directories, bulk crystal and bulk
melt at --temperature) adds the enthalpy of melting dh from their logged potential energies and
T_m from this one temperature, T / (1 - dmu/dh) (Gibbs-Helmholtz with dh constant).

`melting-point`: a straight line through dmu(T) of two or more `analyse` outputs (their
summary.json or directories; each needs --temperature, and Q the crystal's count, so that dmu
= mu_melt - mu_crystal): T_m is its zero, with its first-order error and the chi2 of the fit;
and the inverse-variance mean of the single-temperature T_m of the outputs analysed with
--bulk (one is enough), with the chi2 of their scatter. Writes melting_point.json and
melting_point.png (the line) to --out. Full documentation: docs/analysis.md
("Interface pinning"); the method: molenv.pinning.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from molenv.commands._options import positive_float


def discard_time(text: str) -> float | None:
    """--discard: ps >= 0, or 'auto' (None: the start of each window's stationary part)."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a time in ps or 'auto', got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a time in ps >= 0 or 'auto', got {text}")
    return value


def add_arguments(parser):
    sub = parser.add_subparsers(dest="step", metavar="STEP", required=True)
    a = sub.add_parser("analyse", help="dmu from pinning windows at one temperature",
                       description="dmu = kappa alpha (<Q> - a) per window, with block errors, and their mean (see molenv pinning --help)")
    a.add_argument("colvars", nargs="+", metavar="COLVAR", help="PLUMED COLVAR of each window (a time column and the biased count)")
    bias = a.add_argument_group("the bias of each window: its PLUMED input, or --column, --at and --kappa")
    bias.add_argument("--plumed", nargs="+", metavar="INPUT", help="each window's PLUMED input (one per COLVAR), with one RESTRAINT")
    bias.add_argument("--column", help="the biased count's column in the COLVARs (e.g. cls.n_I)")
    bias.add_argument("--at", type=float, nargs="+", metavar="A", help="each window's bias centre (one per COLVAR)")
    bias.add_argument("--kappa", type=positive_float, help="bias stiffness, energy per count^2 (PLUMED's unit: kJ/mol)")
    a.add_argument("--alpha", type=positive_float, default=1.0,
                   help="soft count of a molecule of the phase less that of a molecule of the other, from bulk runs (default 1: exact)")
    a.add_argument("--discard", type=discard_time, default=None, metavar="PS|auto",
                   help="ps left out at the start of each window, or auto (default): where its series becomes stationary")
    a.add_argument("--temperature", type=positive_float, help="K, recorded for `melting-point`")
    a.add_argument("--bulk", nargs=2, metavar=("CRYSTAL", "MELT"),
                   help="`molenv simulate` run directories of a bulk crystal and a bulk melt at --temperature: the enthalpy of melting "
                        "from their logged energies, and T_m from this temperature (Q the crystal's count)")
    a.add_argument("--layer", type=positive_float, metavar="MOLECULES",
                   help="molecules of one crystal layer of the face: dmu from a fit of the windows' mean forces periodic in the layer "
                        "(4 windows or more spread across it), not their plain mean; also writes layer_fit.png")
    a.add_argument("--out", default="pinning", help="output directory (default ./pinning)")
    a.add_argument("--no-plot", action="store_true", help="summary.json only")
    m = sub.add_parser("melting-point", help="T_m from dmu(T) of `analyse` outputs",
                       description="A straight line through dmu(T) of `molenv pinning analyse` outputs: its zero is T_m; and the mean of "
                                   "the T_m of each output analysed with --bulk")
    m.add_argument("summaries", nargs="+", metavar="SUMMARY", help="summary.json of `analyse` (or its directory), one per temperature")
    m.add_argument("--experiment", type=positive_float, help="a measured melting point (K) to mark in the figure")
    m.add_argument("--label", default="", help="the force field, for the figure's legend")
    m.add_argument("--out", default="melting-point", help="output directory (default ./melting-point)")
    m.add_argument("--no-plot", action="store_true", help="melting_point.json only")


def _biases(args) -> list[tuple[str, float, float]]:
    """(column, a, kappa) of each COLVAR, from --plumed or --column/--at/--kappa."""
    from molenv.cli import CommandError
    from molenv.plumed.inputs import restraints

    n = len(args.colvars)
    if args.plumed:
        if args.column or args.at or args.kappa:
            raise CommandError("give the bias either with --plumed or with --column, --at and --kappa, not both")
        if len(args.plumed) != n:
            raise CommandError(f"--plumed names {len(args.plumed)} input(s) for {n} COLVAR(s): one per window")
        out = []
        for path in args.plumed:
            found = restraints(path)
            if len(found) != 1:
                raise CommandError(f"{path}: {len(found)} RESTRAINT actions; a pinning window has one")
            out.append((found[0].arg, found[0].at, found[0].kappa))
        return out
    missing = [name for name, value in (("--column", args.column), ("--at", args.at), ("--kappa", args.kappa)) if not value]
    if missing:
        raise CommandError(f"give each window's bias with --plumed, or {', '.join(missing)}")
    if len(args.at) != n:
        raise CommandError(f"--at gives {len(args.at)} centre(s) for {n} COLVAR(s): one per window")
    return [(args.column, at, args.kappa) for at in args.at]


def _analyse(args) -> int:
    from molenv.cli import CommandError
    from molenv.paths import output_directory_problem
    from molenv.pinning import describe, describe_summary, plot_summary_layer_fit, plot_windows, read_window, summary

    if problem := output_directory_problem(args.out):
        raise CommandError(problem)
    windows = []
    for colvar, (column, at, kappa) in zip(args.colvars, _biases(args)):
        if not Path(colvar).is_file():
            raise CommandError(f"{colvar}: COLVAR not found")
        windows.append(read_window(colvar, column, kappa, at, args.discard, args.alpha))
        print(describe(windows[-1]))
    enthalpy = None
    if args.bulk:
        from molenv.pinning import bulk_enthalpy_of_melting

        if not args.temperature:
            raise CommandError("--bulk needs --temperature (the temperature of the windows and of the bulk runs)")
        try:
            enthalpy = bulk_enthalpy_of_melting(*args.bulk)
        except (FileNotFoundError, ValueError) as err:
            raise CommandError(f"--bulk: {err}") from None
    try:
        result = summary(windows, args.temperature, args.discard, enthalpy, args.layer, command=" ".join(getattr(args, "command_line", [])))
    except ValueError as err:  # too few windows for --layer's fit, or a dmu beyond --bulk's enthalpy
        raise CommandError(str(err)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    at = f" at {args.temperature:g} K" if args.temperature else ""
    print(describe_summary(result))
    print(f"wrote {out / 'summary.json'}")
    if not args.no_plot:
        print(f"wrote {plot_windows(out / 'windows.png', windows, f'interface pinning{at}')}")
        if "layer_fit" in result:
            print(f"wrote {plot_summary_layer_fit(out / 'layer_fit.png', windows, result, f'the mean force across a layer{at}')}")
    return 0


def _melting_point(args) -> int:
    from molenv.cli import CommandError
    from molenv.paths import output_directory_problem
    from molenv.pinning import melting_point_estimates, plot_melting_point

    if problem := output_directory_problem(args.out):
        raise CommandError(problem)
    summaries = []
    for name in args.summaries:
        path = Path(name) / "summary.json" if Path(name).is_dir() else Path(name)
        try:
            summaries.append(json.loads(path.read_text()))
            float(summaries[-1]["temperature"]), float(summaries[-1]["delta_mu_kJ_mol"])
        except FileNotFoundError:
            raise CommandError(f"{path}: not found") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise CommandError(f"{path}: not a summary of `molenv pinning analyse` with a temperature (analyse with --temperature)") from None
    try:
        fit, result, report = melting_point_estimates(summaries)
    except ValueError as err:
        raise CommandError(str(err)) from None
    print(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "melting_point.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out / 'melting_point.json'}")
    if not args.no_plot and fit is not None:
        print(f"wrote {plot_melting_point(out / 'melting_point.png', fit, args.label, args.experiment, result.get('from_enthalpy'))}")
    return 0


def run(args):
    return _analyse(args) if args.step == "analyse" else _melting_point(args)
