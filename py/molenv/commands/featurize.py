"""Build a training dataset: label MD frames, split them, cache their symmetry functions.

From the manifest of `molenv simulate` (data/manifest.json), the method's split (train on
cold crystals and the melt, test on warmer crystals and held-out melt frames):

  molenv featurize --manifest data/manifest.json --molecule urea --out datasets/urea

or from the run directories of `molenv simulate` (each run's record gives its trajectory,
topology, molecule, label, temperature and system kind; the source is named after the
directory):

  molenv featurize --source runs/urea-I-100K --source runs/urea-IV-100K --source runs/urea-melt-350K --out ds

or from trajectories given one by one (--label/--temperature/--split/--topology/--system/
--name once for all, or once per --trajectory, in the same order; for a run directory
they override its record):

  molenv featurize --molecule urea --out ds \\
      --trajectory I.xtc --topology I.pdb --label I --temperature 100 \\
      --trajectory melt.xtc --topology melt.pdb --label melt --temperature 350

A source labelled melt must have melted (molenv.order.check_melt; --no-melt-check skips
it), and every periodic frame must be wider than twice the descriptor cutoff.

Every molecule gets a polymorph label (its source's) and a topology label (surface if
fewer than --cn-threshold molecule centres lie within the frame's molecule radius +
--cn-offset, itself counted: the rule of molenv.topology, which classify's core/surface
split uses too). The dataset directory holds manifest.json (provenance, classes, splits,
counts) and one .npz per source; see docs/training.md.

--augment-temperature T adds warmed copies of the training crystals' training frames: the
extra rigid-molecule motion that takes each crystal from its temperature to T in the
harmonic approximation (molenv.augment), for a model used at T but trained colder:

  molenv featurize --manifest data/manifest.json --molecule nicotinamide --out ds --augment-temperature 350

--augment-clusters warms the training clusters in vacuum as well, core and surface molecules
each by their own measured widths (for test clusters at T, as urea's at 200 K).
--augment-expansion STRAIN also stretches the warmed crystals' cells and molecule centroids by
that linear strain (molecules rigid): their thermal expansion from their temperature to T
(nicotinamide 100 -> 350 K: 1.6 %), which warming alone leaves out (docs/results_notes.md).

--relabel-turned labels melt, frame by frame, the molecules of a crystalline cluster that have
turned by more than 35 degrees since the cluster's first frame (training and test clusters
alike; each source's share in its manifest entry, `relabelled`).
"""
from __future__ import annotations

from molenv.commands._options import (add_backend_arguments, add_frame_arguments, non_negative_float, non_negative_int, number, positive_float, positive_int,
                                      thread_count)


def add_arguments(parser):
    from molenv.topology import CN_OFFSET, CN_THRESHOLD

    src = parser.add_argument_group("sources")
    src.add_argument("--manifest", help="manifest of `molenv simulate` trajectories (data/manifest.json)")
    src.add_argument("--only", nargs="+", metavar="PATTERN", help="with --manifest: only trajectories whose names match these shell patterns")
    src.add_argument("--trajectory", "--source", dest="trajectory", action="append", default=[], metavar="FILE|RUNDIR",
                     help="a trajectory file, or a `molenv simulate` run directory (its record gives trajectory, topology, molecule, label, "
                          "temperature and system); repeat for several sources")
    src.add_argument("--topology", action="append", default=[], help="its topology (PDB, GRO, LAMMPS data...), if the trajectory has none")
    src.add_argument("--label", action="append", default=[], help="its polymorph label (class name, e.g. I, IV, melt; a run directory: "
                     "default the run's --label, melt for a melt)")
    src.add_argument("--temperature", action="append", default=[], type=positive_float, help="its temperature in K (decides the split when "
                     "--split is not given; a run directory: default its production temperature)")
    src.add_argument("--split", action="append", default=[], choices=["train", "val", "test"], help="its split (default: from the temperature)")
    src.add_argument("--system", action="append", default=[], choices=["crystal", "melt", "cluster"], help="its system kind (default: the run's; "
                     "cluster without a box, melt for label melt, else crystal)")
    src.add_argument("--name", action="append", default=[], help="its source name (default: the run directory's name for a run directory "
                     "or its trajectory.xtc, else the file name without extension); names must differ")
    src.add_argument("--no-melt-check", action="store_true", help="do not check that sources labelled melt have melted (docs/simulate.md, "
                     "'The melt check')")
    src.add_argument("--type-elements", help="LAMMPS numeric types to elements, e.g. 1:H,2:O,3:C,4:N (or a LAMMPS data file)")
    parser.add_argument("--molecule", help="molecule spec: a shipped name (urea, nicotinamide) or a .toml file (default: the spec of the "
                        "run directories, when every source is one)")
    parser.add_argument("--out", required=True, help="dataset directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset in --out")
    add_frame_arguments(parser.add_argument_group("frames (of each trajectory)"))
    labels = parser.add_argument_group("labels and splits")
    labels.add_argument("--classes", help="class names in network-output order, comma separated (default: labels in order of first appearance)")
    labels.add_argument("--split-mode", choices=["method", "random"], default="method", help="method: by source/temperature with held-out trailing frames (default); random: seeded random frames of every source")
    labels.add_argument("--val-fraction", type=float, default=0.2, help="fraction of training frames kept for validation (default 0.2)")
    labels.add_argument("--test-fraction", type=float, default=0.2, help="method: fraction of frames held out for testing in classes without a test trajectory (the melt); random: of every source (default 0.2)")
    labels.add_argument("--train-temperature", type=positive_float, help="crystals at this temperature train, others test, when a source has no split (default: the lowest)")
    labels.add_argument("--seed", type=int, default=0, help="seed of the random split (and of the augmentation's motion)")
    warm = parser.add_argument_group("thermal augmentation (molenv.augment)")
    warm.add_argument("--augment-temperature", type=positive_float, metavar="K",
                      help="add warmed copies of the training frames of every periodic crystal colder than K: each crystal's own "
                           "rigid-molecule fluctuations, scaled by sqrt(K / T - 1) (harmonic); for a model used at K (default: none)")
    warm.add_argument("--augment-copies", type=positive_int, default=1, help="warmed copies of each training frame (default 1)")
    warm.add_argument("--augment-clusters", action="store_true",
                      help="warm the training clusters in vacuum too (widths of their core and surface molecules, measured robustly)")
    warm.add_argument("--augment-expansion", type=number(float, minimum=0, below=1), metavar="STRAIN",
                      help="stretch the warmed copies of periodic crystals by this linear strain (0.016: cell and centroid "
                           "distances 1.6 %% longer, molecules rigid): the thermal expansion from their temperature to K (default: none)")
    labels.add_argument("--relabel-turned", action="store_true",
                        help="label melt the molecules of crystalline clusters in vacuum that have turned by more than 35 degrees "
                             "from their orientation in the cluster's first frame (a warm cluster premelts from its surface)")
    labels.add_argument("--cn-offset", type=non_negative_float, default=CN_OFFSET, help=f"coordination radius = molecule radius + this, in A (default {CN_OFFSET:g})")
    labels.add_argument("--cn-radius", type=positive_float, help="fixed molecule radius in A instead of the frame's largest atom-centre distance")
    labels.add_argument("--cn-threshold", type=non_negative_int, default=CN_THRESHOLD, help=f"surface if the coordination number (self counted) is below this (default {CN_THRESHOLD})")
    run = parser.add_argument_group("run")
    run.add_argument("--workers", type=thread_count("--workers"), default=1, help="processes computing descriptors in parallel (default 1)")
    add_backend_arguments(run, "featurize", workers=False)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _per_source(values: list, n: int, flag: str) -> list:
    """One value per trajectory from a flag given 0, 1 or n times."""
    from molenv.cli import CommandError

    if not values:
        return [None] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise CommandError(f"{flag} was given {len(values)} times for {n} trajectories (give it once, or once per --trajectory)")
    return values


def _explicit_sources(args):
    """The sources of --trajectory (files or run directories), each with the per-source
    options given for it; an option overrides what a run directory records."""
    from pathlib import Path

    from molenv.cli import CommandError
    from molenv.featurize import Source, source_from_run, source_name

    n = len(args.trajectory)
    columns = {
        "label": _per_source(args.label, n, "--label"),
        "temperature": _per_source(args.temperature, n, "--temperature"),
        "topology": [Path(t) if t else None for t in _per_source(args.topology, n, "--topology")],
        "system": _per_source(args.system, n, "--system"),
        "split": _per_source(args.split, n, "--split"),
        "name": _per_source(args.name, n, "--name"),
    }
    sources = []
    for k, given in enumerate(args.trajectory):
        path = Path(given)
        source = source_from_run(path) if path.is_dir() else Source(source_name(path), path, None)
        for key, values in columns.items():
            if values[k] is not None:
                setattr(source, key, values[k])
        if source.label is None:
            where = f"the run {path} records none (molenv simulate ... --label NAME)" if path.is_dir() else "e.g. I or melt"
            raise CommandError(f"--trajectory {given} needs a --label (its polymorph; {where})")
        sources.append(source)
    return sources


def _molecule(args, sources) -> str:
    """--molecule, or the spec every run directory was made with."""
    from molenv.cli import CommandError

    recorded = {s.molecule for s in sources}
    if args.molecule:
        return args.molecule
    if None in recorded:
        raise CommandError("give --molecule (the molecule spec): not every source is a `molenv simulate` run directory")
    if len(recorded) > 1:
        raise CommandError(f"the run directories hold different molecules ({', '.join(sorted(recorded))}): featurize one molecule at a time")
    return recorded.pop()


def run(args):
    import shlex

    from molenv.cli import CommandError
    from molenv.featurize import featurize, sources_from_manifest
    from molenv.spec import load_spec
    from molenv.topology import TopologyRule

    if bool(args.manifest) == bool(args.trajectory):
        raise CommandError("give either --manifest or one or more --trajectory/--source")
    if args.manifest:
        for flag in ("topology", "label", "temperature", "split", "system", "name"):
            if getattr(args, flag):
                raise CommandError(f"--{flag} describes a --trajectory; with --manifest the manifest gives it")
        if not args.molecule:
            raise CommandError("--manifest needs --molecule (the molecule spec)")
        spec = load_spec(args.molecule)
        sources = sources_from_manifest(args.manifest, spec.name, args.only)
    else:
        if args.only:
            raise CommandError("--only selects manifest trajectories; use it with --manifest")
        sources = _explicit_sources(args)
        spec = load_spec(_molecule(args, sources))
        for s in sources:
            if s.molecule and not s.molecule.endswith(".toml") and s.molecule != spec.name:
                raise CommandError(f"{s.origin.get('run')}: the run simulated {s.molecule}, but --molecule is {spec.name}")
    reader = {k: getattr(args, k) for k in ("start", "stop", "step") if getattr(args, k) is not None}
    if args.type_elements:
        reader["type_elements"] = args.type_elements
    for s in sources:
        s.reader.update(reader)
    classes = [c for c in args.classes.replace(" ", "").split(",") if c] if args.classes else None
    dataset = featurize(
        sources,
        spec,
        args.out,
        classes=classes,
        split_mode=args.split_mode,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        train_temperature=args.train_temperature,
        topology_rule=TopologyRule(args.cn_offset, args.cn_threshold, args.cn_radius),
        workers=args.workers,
        backend=args.backend,
        scheduler=args.dask_scheduler,
        progress=not args.no_progress,
        overwrite=args.overwrite,
        melt_check=not args.no_melt_check,
        command=shlex.join(getattr(args, "command_line", None) or []) or None,
        augment_temperature=args.augment_temperature,
        augment_copies=args.augment_copies,
        augment_clusters=args.augment_clusters,
        augment_expansion=args.augment_expansion,
        relabel_turned=args.relabel_turned,
    )
    print(dataset.summary())
    return 0
