"""Make MD data: parametrise a molecule and simulate crystals, melts, clusters, interfaces,
or a whole system read from a file.

  molenv simulate crystal   --molecule urea --structure formI.cif --temperature 100 --out runs/urea-I-100K
  molenv simulate melt      --molecule urea --structure formI.cif --temperature 350 --out runs/urea-melt-350K
  molenv simulate cluster   --molecule urea --structure formI.cif --diameter 30 --temperature 100 --out runs/urea-I-cluster
  molenv simulate interface --molecule urea --structure formI.cif --structure2 formIV.cif --symmetrise2 0.3 --axis y --out runs/urea-I-IV
  molenv simulate coexistence --molecule urea --structure formI.cif --repeats 4 4 16 --temperature 400 --out runs/urea-I-melt-400K
  molenv simulate system    --molecule urea --structure interface.data --name-map 4:N1,5:N2 --barostat z --out runs/urea-file
  molenv simulate parametrise --molecule nicotinamide --atom-types gaff2
  molenv simulate crystal   ... --plumed plumed.dat      # PLUMED bias (e.g. METAD on MOLENV_CLASSIFY's path CV) in production

GAFF/GAFF2 + AM1-BCC with AmberTools (cached per molecule) or your own mol2/frcmod; OpenMM
on the CPU; frames in <out>/trajectory.xtc with <out>/topology.pdb (residue = molecule,
atoms in spec order). Running the same command again resumes an interrupted run from its
last checkpoint. `--plumed` biases the production (or `--plumed-stages`) with a PLUMED input
through an openmm.PythonForce; PLUMED's files are in <out>/plumed/.

The run directory is a source of `molenv featurize` as it is (`--source <out>`): run.json
records the molecule, the label (`--label`, melt for a melt), the temperature and the
system. Crystal supercells are built 5 % above twice the cutoff (a barostat shrinks them),
and a run whose box falls below twice the descriptor cutoff stops, naming the run. A melt is
checked to have melted when it ends (molenv.order; `--no-melt-check`). Full documentation:
docs/simulate.md."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from molenv.commands._options import finite_float, non_negative_float, number, positive_float, positive_int, thread_count
from molenv.constants import file_sha256
from molenv.simulate import DEFAULT_MIN_HEIGHT, MAX_TIMESTEP_FS

MODES = ("crystal", "melt", "cluster", "interface", "coexistence", "system", "parametrise")
DEFAULT_FRAME_INTERVAL_PS = 1.0


def _add_forcefield(p):
    g = p.add_argument_group("molecule and force field")
    g.add_argument("--molecule", required=True, help="molecule spec: a shipped name (urea, nicotinamide) or a path to a spec .toml")
    g.add_argument("--smiles", help="SMILES to parametrise (default: the spec's smiles)")
    g.add_argument("--molecule-file", help="parametrise from this 3D structure of one molecule (.sdf, .mol, .mol2, .pdb) instead of SMILES")
    g.add_argument("--atom-types", choices=("gaff", "gaff2"), default="gaff2", help="GAFF atom types (default gaff2)")
    g.add_argument("--charges", default="bcc", metavar="{bcc,gas,SET}",
                   help="bcc = AM1-BCC (default), gas = Gasteiger (quick tests only), or the name of a charge set of the spec "
                        "(published charges, [charges.<name>] in the spec .toml; urea: kuroshima2024, the original authors' GAFF urea)")
    g.add_argument("--lennard-jones", metavar="SET",
                   help="replace the atom types' Lennard-Jones parameters by a set of the spec ([lennard_jones.<name>] in the spec .toml; "
                        "nicotinamide: kuroshima2024, the original authors' values, which are GAFF's, not GAFF2.2's)")
    g.add_argument("--ff-mol2", help="use this mol2 (GAFF/GAFF2 atom types and charges, any atom order) instead of parametrising")
    g.add_argument("--ff-frcmod", action="append", default=[], help="extra frcmod file for --ff-mol2 (repeatable)")
    g.add_argument("--ff-cache", help="force-field cache directory (default $MOLENV_CACHE/forcefields or ~/.cache/molenv/forcefields)")


def _add_structure(p, suffix="", required=True, what="crystal structure (.cif or .pdb)"):
    p.add_argument(f"--structure{suffix}", required=required, help=what)
    p.add_argument(f"--symmetrise{suffix}", type=positive_float, metavar="TOL", help="symmetrise the structure first (spglib, distance tolerance in A, e.g. 0.3)")
    p.add_argument(f"--repeats{suffix}", type=positive_int, nargs=3, metavar="N",
                   help="supercell repeats along a, b, c (interface: along x, y, z of the box, after --orient; default: from --min-height)")


def _add_file_system(p):
    g = p.add_argument_group("system (read from a file; see docs/simulate.md)")
    g.add_argument("--structure", required=True, help="the whole system: a file molenv.trajectory reads (LAMMPS data, PDB, GRO, ...); "
                   "its box is the periodic box")
    g.add_argument("--frame", type=int, default=0, help="frame of a file with several (0-based, -1 = last; default 0)")
    g.add_argument("--name-map", help="file atom name or LAMMPS type -> spec atom name, e.g. 4:N1,5:N2 (pins urea's N1/N2)")
    g.add_argument("--type-elements", help="LAMMPS numeric type -> element, e.g. 1:H,2:O,3:C,4:N,5:N (default: from the masses or names in the file)")
    g.add_argument("--no-pbc", action="store_true", help="no periodic boundaries (a gas-phase system; NVT, no cutoff)")


def _add_md(p, mode):
    g = p.add_argument_group("molecular dynamics")
    defaults = {"melt": 350.0, "coexistence": 400.0}.get(mode, 100.0)
    g.add_argument("--temperature", type=positive_float, default=defaults, help=f"temperature of equilibration and production, K (default {defaults:g})")
    g.add_argument("--equilibrate", type=non_negative_float, default=20.0, metavar="PS", help="equilibration time, ps (default 20)")
    g.add_argument("--production", type=non_negative_float, default=50.0, metavar="PS",
                   help="production time (frames recorded), ps (default 50; 0: no production and no frames, e.g. only the minimised state)")
    g.add_argument("--frame-interval", type=positive_float, metavar="PS",
                   help=f"a frame every this many ps of production, a multiple of the time step (default {DEFAULT_FRAME_INTERVAL_PS:g})")
    g.add_argument("--timestep", type=number(float, above=0, maximum=MAX_TIMESTEP_FS, unit="fs"), default=2.0, metavar="FS",
                   help=f"time step, fs (default 2, with H-bond constraints; at most {MAX_TIMESTEP_FS:g})")
    g.add_argument("--constraints", choices=("hbonds", "none"), default="hbonds", help="bond constraints (default hbonds; use none with --timestep 1)")
    g.add_argument("--thermostat", choices=("langevin", "nose-hoover"), default="langevin", help="default langevin (LangevinMiddleIntegrator)")
    g.add_argument("--friction", type=non_negative_float, default=1.0, metavar="PER_PS", help="Langevin friction / Nose-Hoover collision frequency, 1/ps (default 1)")
    if mode != "cluster":
        g.add_argument("--barostat", choices=("auto", "iso", "xy", "aniso", "flexible", "z", "none"), default="auto",
                       help="pressure coupling in equilibration and production (default auto: see docs/simulate.md); "
                            "z = NPzT: x and y fixed, z coupled to the pressure (an interface stacked along z in a fixed lateral box)")
        g.add_argument("--pressure", type=finite_float, default=1.0, metavar="BAR", help="pressure, bar (default 1)")
        g.add_argument("--cutoff", type=positive_float, default=9.0, metavar="A", help="nonbonded cutoff with PME, A (default 9)")
    g.add_argument("--no-minimise", action="store_true", help="skip the energy minimisation at the start")
    g.add_argument("--seed", type=int, default=2024, help="random seed (velocities, thermostat, barostat)")
    g.add_argument("--checkpoint-interval", type=positive_float, default=10.0, metavar="PS", help="checkpoint every this many ps (default 10)")
    g.add_argument("--report-interval", type=positive_float, default=2.0, metavar="PS", help="log line every this many ps (default 2)")
    b = p.add_argument_group("enhanced sampling (PLUMED bias; docs/simulate.md)")
    b.add_argument("--plumed", metavar="FILE", help="PLUMED input biasing the MD (e.g. METAD/OPES on a MOLENV_CLASSIFY component); "
                   "PLUMED runs in <out>/plumed, where its output files land")
    b.add_argument("--plumed-stages", default="production", metavar="NAMES",
                   help="comma-separated stages the bias acts in, consecutive and at one temperature (default production; e.g. equilibrate,production)")
    r = p.add_argument_group("run")
    r.add_argument("--out", required=True, help="run directory (created; rerunning with the same options resumes)")
    r.add_argument("--overwrite", action="store_true", help="discard a run in --out made with other options")
    r.add_argument("--threads", type=thread_count("--threads"), help="OpenMM CPU threads (default: OPENMM_CPU_THREADS or all cores)")
    r.add_argument("--platform", default="CPU", help="OpenMM platform (default CPU)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    if mode in ("crystal", "cluster", "system"):
        r.add_argument("--label", metavar="NAME", help="polymorph label of the frames for `molenv featurize --source <out>`, e.g. I "
                       "(recorded in run.json; not part of the run's settings, so it may be given or changed when the command is run again)")
    if mode == "melt":
        r.add_argument("--no-melt-check", action="store_true", help="do not check at the end that the melt has melted (orientational order "
                       "and mobility, docs/simulate.md 'The melt check'; e.g. for a deliberately short test run)")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    help_ = {"crystal": "periodic crystal supercell at one temperature",
             "melt": "melt a crystal supercell at high temperature, quench, equilibrate and sample at --temperature",
             "cluster": "gas-phase spherical cluster cut from a crystal (no periodic boundaries)",
             "interface": "two crystals stacked along an axis in one periodic box",
             "coexistence": "a crystal/melt two-phase system along z: part of a supercell melted while the rest is held, then NPzT",
             "system": "a whole system read from a file (LAMMPS data, PDB, GRO, ...): its molecules and box as they are",
             "parametrise": "only build (or show) the cached force field of the molecule"}
    for mode in MODES:
        p = sub.add_parser(mode, help=help_[mode], description=help_[mode])
        p.set_defaults(_actions=p._actions)  # for command_line()
        _add_forcefield(p)
        if mode == "parametrise":
            continue
        if mode == "system":
            _add_file_system(p)
            _add_md(p, mode)
            continue
        _add_structure(p)
        g = p.add_argument_group("system")
        g.add_argument("--min-height", type=positive_float, default=DEFAULT_MIN_HEIGHT, metavar="A",
                       help="minimum perpendicular height of the supercell, A (default 20; crystal and melt: raised to 5 %% above twice the "
                            "spec's descriptor cutoff rmax, e.g. 21 for urea, so that the barostat does not shrink the box below twice rmax)")
        if mode == "coexistence":
            g.add_argument("--orient", metavar="AXES", help="which cell axes lie along x,y,z, e.g. b,c,a (as for interface; default a,b,c): "
                           "the crystal face along z is the interface")
            g.add_argument("--lattice", type=positive_float, nargs=3, metavar="A",
                           help="cell lengths along x, y, z at --temperature, A (e.g. from an NPT crystal run at it): the crystal is scaled to "
                                "them, so that the fixed lateral box of NPzT does not strain it (default: the cell as read)")
            g.add_argument("--melt-fraction", type=positive_float, default=0.5, metavar="F",
                           help="fraction of the cell layers along z (the upper ones) that is melted (default 0.5)")
            g.add_argument("--melt-density", type=positive_float, default=1.2, metavar="G_CM3",
                           help="the part to melt is first stretched along z to this density, g/cm3 (default 1.2): room to melt at constant volume")
            g.add_argument("--hold-force-constant", type=positive_float, default=5000.0, metavar="KJ_MOL_NM2",
                           help="restraints that hold the crystal's heavy atoms while the rest melts and is quenched, kJ/mol/nm2 (default 5000)")
        if mode in ("melt", "coexistence"):
            g.add_argument("--melt-temperature", type=positive_float, default=800.0, metavar="K", help="melting temperature, K (default 800)")
        if mode == "melt":
            g.add_argument("--melt-ensemble", choices=("npt", "nvt"), default="npt",
                           help="ensemble of the melting stage (default npt, isotropic: a crystal at its own density superheats far above the melting point)")
        if mode in ("melt", "coexistence"):
            hold = "" if mode == "melt" else "; NVT, the crystal held"
            g.add_argument("--melt-time", type=non_negative_float, default=20.0, metavar="PS", help=f"time at the melting temperature, ps (default 20{hold})")
        if mode == "melt":
            g.add_argument("--density", type=positive_float, metavar="G_CM3",
                           help="expand the crystal supercell isotropically to this density (g/cm3) before melting; with "
                                "--barostat none and --melt-ensemble nvt the whole run stays at it (a melt at the experimental "
                                "liquid density where the force field's at 1 bar is off)")
        if mode in ("melt", "coexistence"):
            quench = "NPT unless --barostat none" if mode == "melt" else "NVT, the crystal still held"
            g.add_argument("--quench-time", type=non_negative_float, default=20.0, metavar="PS", help=f"linear quench to --temperature, ps (default 20; {quench})")
        if mode == "cluster":
            g.add_argument("--diameter", type=positive_float, default=30.0, metavar="A", help="cluster diameter, A (default 30)")
        if mode == "interface":
            _add_structure(g, suffix="2", what="second crystal structure, stacked on the first")
            g.add_argument("--axis", choices=("x", "y", "z"), default="z", help="stacking axis (default z)")
            g.add_argument("--gap", type=non_negative_float, default=1.5, metavar="A", help="extra space at each interface, A (default 1.5; the minimisation and barostat close it)")
            g.add_argument("--orient", metavar="AXES", help="which cell axes of --structure lie along x,y,z, e.g. b,c,a (default a,b,c; a '-' reverses one: "
                           "a,c,-b); a mirror-image orientation (a,c,b) is built as a proper rotation, the axis along --axis reversed")
            g.add_argument("--orient2", metavar="AXES", help="the same for --structure2")
            g.add_argument("--lateral-box", type=positive_float, nargs=2, metavar="A",
                           help="the two lateral box lengths (x y for --axis z), A: both slabs strained to them (refused above 5 %%; "
                                "default: the lateral size of the first slab)")
        _add_md(p, mode)


# ---------------------------------------------------------------------------------------


def _sha(path) -> str | None:
    """The first 16 hex digits of a file's SHA-256, the key a run's request records it by."""
    return file_sha256(path)[:16] if path and Path(path).is_file() else None


def _forcefield(args, spec):
    from molenv.simulate.parametrise import parametrise, user_forcefield

    if args.ff_mol2 and args.lennard_jones:
        raise ValueError("--lennard-jones applies to molenv's own parametrisation, not to --ff-mol2 (put the parameters in an --ff-frcmod)")
    if args.ff_mol2:
        return user_forcefield(spec, args.ff_mol2, args.ff_frcmod, atom_types=args.atom_types, cache_dir=args.ff_cache)
    if args.ff_frcmod:
        raise ValueError("--ff-frcmod needs --ff-mol2")
    return parametrise(spec, atom_types=args.atom_types, charges=args.charges, smiles=args.smiles, structure=args.molecule_file, cache_dir=args.ff_cache,
                       lennard_jones=args.lennard_jones)


def _build(args, spec):
    from molenv.simulate.systems import cluster_system, crystal_system, file_system, interface_system

    if args.mode == "system":
        from molenv.commands._options import parse_pairs

        return file_system(spec, args.structure, name_map=parse_pairs(args.name_map, "--name-map") or None,
                           type_elements=args.type_elements, periodic=not args.no_pbc, frame=args.frame)
    if args.mode in ("crystal", "melt"):
        from molenv.simulate.systems import supercell_height

        height = supercell_height(spec, args.min_height)
        if args.repeats is None and height > args.min_height:
            print(f"molenv: note: supercell built to a perpendicular height of {height:g} A, not --min-height {args.min_height:g}: "
                  f"5 % above twice the descriptor cutoff rmax {spec.rmax:g} A, room for the barostat (docs/simulate.md)")
        system = crystal_system(spec, args.structure, height, args.repeats, args.symmetrise)
        if args.repeats is None:
            system.info["min_height_built"] = height
        if getattr(args, "density", None) is not None:
            from molenv.simulate.systems import at_density

            system = at_density(system, args.density)
        return system
    if args.mode == "cluster":
        return cluster_system(spec, args.structure, args.diameter, args.symmetrise)
    if args.mode == "coexistence":
        from molenv.simulate import SimulationError
        from molenv.simulate.systems import coexistence_system

        if args.repeats is None:
            raise SimulationError("coexistence needs --repeats NX NY NZ (cells along x, y, z of the box; NZ layers stacked along z, "
                                  "the upper --melt-fraction of them melted), e.g. 4 4 16 for urea form I")
        return coexistence_system(spec, args.structure, args.repeats, args.lattice, args.melt_fraction, args.melt_density,
                                  orient=args.orient, symmetrise_tolerance=args.symmetrise)
    return interface_system(spec, args.structure, args.structure2, args.axis, args.min_height, args.repeats, args.repeats2,
                            args.symmetrise, args.symmetrise2, args.gap, orient_a=args.orient, orient_b=args.orient2, lateral_box=args.lateral_box)


def _barostat(args, system) -> str | None:
    """Resolve --barostat auto: melt iso; interface aniso; crystal by cell shape (tetragonal
    / hexagonal: x and y coupled (xy); orthorhombic: aniso; monoclinic / triclinic: flexible);
    system (from a file) by its box: rectangular aniso, else flexible; none without a box.
    ``z`` (NPzT) on an interface needs it stacked along z."""
    if args.mode == "system" and system.dimensions is None:
        if args.barostat not in ("auto", "none"):
            from molenv.simulate import SimulationError

            raise SimulationError(f"--barostat {args.barostat} needs a periodic box, but the system has none (--no-pbc): it runs NVT")
        return None
    if args.mode == "cluster" or args.barostat == "none":
        return None
    if args.barostat == "z" and args.mode == "interface" and args.axis != "z":
        from molenv.simulate import SimulationError

        raise SimulationError(f"--barostat z (NPzT) couples only z to the pressure, but this interface is stacked along "
                              f"{args.axis} (--axis {args.axis}): stack it along z (--axis z), or use --barostat aniso")
    if args.barostat != "auto":
        return args.barostat
    if args.mode == "melt":
        return "iso"
    if args.mode == "coexistence":
        return "z"
    if args.mode == "interface":
        return "aniso"
    import numpy as np

    if args.mode == "system":
        return "aniso" if np.all(np.abs(system.dimensions[3:] - 90) < 0.01) else "flexible"
    cell = np.array(system.info["cell"])
    if np.all(np.abs(cell[3:5] - 90) < 0.01) and abs(cell[0] - cell[1]) < 1e-3 * cell[0]:
        return "xy"  # a = b, alpha = beta = 90: tetragonal or hexagonal, c unique
    if np.all(np.abs(cell[3:] - 90) < 0.01):
        return "aniso"
    return "flexible"


def _frame_interval(args) -> float:
    """--frame-interval, or its default. A production of 0 records no frames: a frame
    interval given with it is refused rather than ignored."""
    if args.frame_interval is None:
        return DEFAULT_FRAME_INTERVAL_PS
    if args.production == 0:
        from molenv.simulate import SimulationError

        raise SimulationError(f"--frame-interval {args.frame_interval:g} asks for frames, but --production 0 records none: "
                              "give a production time, or leave --frame-interval out")
    return args.frame_interval


def _md_settings(args, barostat: str | None):
    from molenv.simulate import md

    return md.MDSettings(timestep_fs=args.timestep, thermostat=args.thermostat, friction_ps=args.friction,
                         barostat=barostat or "iso", pressure_bar=getattr(args, "pressure", 1.0), cutoff=getattr(args, "cutoff", 9.0),
                         constraints=args.constraints, minimise=not args.no_minimise, seed=args.seed,
                         checkpoint_ps=args.checkpoint_interval, report_ps=args.report_interval)


def _check_schedule(args) -> None:
    """The stages and MD settings of the options, checked before any structure is read or
    force field made (`molenv.simulate.md` checks them again when the run starts)."""
    settings = _md_settings(args, None)
    for stage in _stages(args, npt=False):
        settings.check_frame_interval(stage)


def _stages(args, npt: bool):
    from molenv.simulate.md import Stage

    ens = "npt" if npt else "nvt"
    stages = []
    if args.mode == "melt":
        melt_ens = ens if args.melt_ensemble == "npt" else "nvt"
        stages += [Stage("melt", args.melt_time, args.melt_temperature, melt_ens),
                   Stage("quench", args.quench_time, args.melt_temperature, ens, temperature_end=args.temperature)]
    if args.mode == "coexistence":
        # the crystal (the system's first group, named after the file) is held while the rest
        # melts and cools, at constant volume: its lattice stays the one asked for
        held = Path(args.structure).stem
        stages += [Stage("melt", args.melt_time, args.melt_temperature, "nvt", hold=held, hold_force_constant=args.hold_force_constant),
                   Stage("quench", args.quench_time, args.melt_temperature, "nvt", temperature_end=args.temperature, hold=held,
                         hold_force_constant=args.hold_force_constant)]
    stages += [Stage("equilibrate", args.equilibrate, args.temperature, ens),
               Stage("production", args.production, args.temperature, ens, frame_interval_ps=_frame_interval(args))]
    return stages


def command_line(args) -> str:
    """The command as a shell line, from the parsed options (non-default ones only)."""
    words = ["molenv", "simulate", args.mode]
    for action in args._actions:
        if not action.option_strings or action.dest in ("help",):
            continue
        value = getattr(args, action.dest, None)
        if value == action.default or value is None:
            continue
        opt = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            words.append(opt)
        elif isinstance(value, list) and (action.nargs in ("+", "*") or isinstance(action.nargs, int)):
            words += [opt, *map(str, value)]
        elif isinstance(value, list):
            for v in value:
                words += [opt, str(v)]
        else:
            words += [opt, str(value)]
    return shlex.join(words)


def _request(args, spec) -> dict:
    keys = ["mode", "smiles", "atom_types", "charges", "structure", "symmetrise", "repeats", "min_height", "diameter",
            "structure2", "symmetrise2", "repeats2", "axis", "gap", "orient", "orient2", "lateral_box", "melt_temperature", "melt_ensemble",
            "melt_time", "quench_time", "density", "frame", "name_map", "type_elements", "no_pbc",
            "lattice", "melt_fraction", "melt_density", "hold_force_constant"]
    req = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    req["molecule"] = spec.name
    req["spec_sha"] = _sha(spec.path)
    for k in ("structure", "structure2", "molecule_file", "ff_mol2"):
        if getattr(args, k, None):
            req[f"{k}_sha"] = _sha(getattr(args, k))
    req["ff_frcmod_sha"] = [_sha(f) for f in args.ff_frcmod]
    if not args.ff_mol2 and args.charges in spec.charge_sets:  # only then: earlier run directories keep their request
        req["charge_set"] = spec.charge_sets[args.charges].by_atom(spec)
    if not args.ff_mol2 and args.lennard_jones:  # absent otherwise: earlier run directories keep their request
        req["lennard_jones_set"] = spec.lennard_jones_sets[args.lennard_jones].by_atom(spec)
    return req


def run(args):
    from molenv.simulate import md
    from molenv.spec import load_spec

    spec = load_spec(args.molecule)
    if not args.ff_mol2:
        from molenv.simulate.parametrise import charge_set, lennard_jones_set

        charge_set(spec, args.charges)  # an unknown --charges or --lennard-jones fails before anything is built
        lennard_jones_set(spec, args.lennard_jones)
    plumed = None
    if args.mode != "parametrise":
        _check_schedule(args)  # nonsense times and frame intervals fail before anything is read or built
    if args.mode != "parametrise" and args.plumed:
        from molenv.plumed.openmm_bridge import PlumedOptions, check_input

        check_input(args.plumed)  # before anything is built
        plumed = PlumedOptions(Path(args.plumed), tuple(x.strip() for x in args.plumed_stages.split(",") if x.strip()))
    if args.mode == "parametrise":
        ff = _forcefield(args, spec)
        print(f"{spec.name}: {ff.describe()}{' (cached)' if ff.info.get('cached') else ''}")
        print(f"  mol2:   {ff.mol2}")
        for f in ff.frcmods:
            print(f"  frcmod: {f}")
        return 0
    system = _build(args, spec)  # fails early on bad structures
    cutoff = getattr(args, "cutoff", 9.0)
    warning = system.check_box(cutoff)
    if warning:
        import sys

        print(f"molenv: warning: {warning}", file=sys.stderr)
    barostat = _barostat(args, system)
    settings = _md_settings(args, barostat)
    stages = _stages(args, npt=barostat is not None)

    def setup(directory: Path) -> dict:
        ff = _forcefield(args, spec)
        system.prepare(ff, directory)
        vectors = system.box_vectors()
        return {"description": system.description, "molecule_spec": _spec_reference(args.molecule, spec), "n_molecules": system.n_molecules,
                "n_atoms": system.n_atoms,
                "groups": system.groups, "dimensions": None if system.dimensions is None else system.dimensions.round(4).tolist(),
                "box_vectors": None if vectors is None else vectors.tolist(), "info": system.info,
                "forcefield": {"description": ff.describe(), "atom_types": ff.atom_types, "resname": ff.resname} | {
                    k: v for k, v in ff.info.items() if k in ("source", "charges", "method", "key", "net_charge", "charge_set", "lennard_jones", "lennard_jones_set")},
                "barostat": barostat}

    runtime = md.Runtime(platform=args.platform, threads=args.threads or 0, progress=not args.no_progress)  # 0: OpenMM's default
    box_check = None
    if system.dimensions is not None:
        box_check = md.BoxCheck(2 * spec.rmax, f"twice the {spec.name} descriptor cutoff rmax ({spec.rmax:g} A)")
    label = "melt" if args.mode == "melt" else getattr(args, "label", None)
    summary = md.run(args.out, _request(args, spec), setup, stages, settings, runtime, overwrite=args.overwrite, command=command_line(args),
                     plumed=plumed, box_check=box_check, metadata={"label": label} if label else None)
    print(f"{args.out}: {summary['n_frames']} frames in {Path(args.out) / 'trajectory.xtc'} (MD wall time {summary['wall_s']:.0f} s)")
    if plumed is not None:
        print(f"{args.out}: PLUMED files in {Path(args.out) / 'plumed'}: {', '.join(summary['plumed']['files'])}")
    if args.mode == "melt" and not args.no_melt_check:
        _check_melt(Path(args.out), spec, system)
    return 0


def _spec_reference(given: str, spec) -> str:
    """How `molenv featurize` finds the run's spec again: a spec file's absolute path, else
    the shipped spec's name."""
    path = Path(given)
    return str(path.resolve()) if path.suffix == ".toml" and path.is_file() else spec.name


def _check_melt(out: Path, spec, system) -> None:
    """`molenv.order.check_melt` on the finished melt's production frames: recorded in
    summary.json (``melt_check``) and run.log; SimulationError if it has not melted."""
    import json
    import time

    from molenv.order import check_melt
    from molenv.simulate import SimulationError
    from molenv.simulate.md import _write_json
    from molenv.simulate.systems import density
    from molenv.trajectory import Trajectory

    traj = Trajectory(out / "trajectory.xtc", spec, topology=out / "topology.pdb")
    if len(traj) < 2:
        raise SimulationError(f"{out}: the melt check needs two production frames or more, the run has {len(traj)}: record more "
                              "(--production, --frame-interval) or skip the check (--no-melt-check)")
    crystal = density(system) * system.info.get("expanded_by", 1.0) ** 3  # the crystal before any --density expansion
    check = check_melt(traj, spec.vectors, spec.centre, crystal_density=crystal)
    summary_path = out / "summary.json"
    _write_json(summary_path, json.loads(summary_path.read_text()) | {"melt_check": check.as_dict()})
    with open(out / "run.log", "a") as log:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} melt check: {check.describe()}\n")
    print(f"{out}: melt check: {check.describe()}")
    if not check.melted:
        raise SimulationError(f"{out}: the melt has not melted: {'; '.join(check.failures())}. Its frames are kept, but `molenv featurize` "
                              "refuses them as melt: melt longer or hotter (--melt-time, --melt-temperature; with --overwrite), or skip the "
                              "check (--no-melt-check) for a run that is not meant to melt (docs/simulate.md, 'The melt check')")
