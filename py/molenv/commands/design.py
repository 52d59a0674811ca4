"""Choose the point-vector descriptors of a molecule from samples of its forms.

  molenv design --molecule urea --out design/urea --stop 32 --warm-held-out 0.2 8 \\
      --trajectory I=data/urea/urea-I-100K.xtc:data/urea/urea-I-100K.pdb.gz \\
      --trajectory IV=data/urea/urea-IV-100K.xtc:data/urea/urea-IV-100K.pdb.gz \\
      --trajectory melt=data/urea/urea-melt-350K.xtc:data/urea/urea-melt-350K.pdb.gz

--molecule is a spec (its atoms and bonds are kept, its descriptors ignored) or a SMILES.
Each LABEL is a class: --trajectory LABEL=TRAJECTORY[:TOPOLOGY] (short MD of a form, the
real use) and/or --structure LABEL=FILE (a crystal structure, sampled by random
rigid-molecule motion: a cheap stand-in for MD, reported as such). Chooses the centre (an
atom, a ring centroid or the heavy-atom centroid) and the vectors (atom pairs, plane normals
of rings and trigonal centres; sign-invariant where the molecule's symmetry only reverses
one) by how well their distance and angle distributions separate the forms, the cutoff
from the RDF's shell boundaries and held-out accuracy, and the symmetry functions by greedy
forward selection from a candidate pool on held-out accuracy of a fast linear classifier
(--warm-held-out, --expand-held-out: scored on held-out frames made hotter and longer, as
warmer test crystals are).
Writes DIR/spec.toml (for featurize/train/classify --molecule), DIR/report.md with plots
and DIR/design.json. See docs/design.md.
"""
from __future__ import annotations

from molenv.commands._options import add_frame_arguments, non_negative_float, number, positive_float, positive_int


def add_arguments(parser):
    parser.add_argument("--molecule", required=True, help="molecule: a spec (shipped name or .toml) or a SMILES string")
    parser.add_argument("--name", help="molecule name in the spec written (default: the spec's; 'molecule' for a SMILES)")
    parser.add_argument("--structure", action="append", default=[], metavar="LABEL=FILE", help="a crystal structure (CIF/PDB) of form LABEL (repeatable)")
    parser.add_argument("--trajectory", action="append", default=[], metavar="LABEL=TRAJECTORY[:TOPOLOGY]",
                        help="a periodic MD trajectory of form LABEL (e.g. melt), with its topology where the trajectory has none (repeatable)")
    parser.add_argument("--out", required=True, help="directory for spec.toml, report.md, design.json and the plots")
    add_frame_arguments(parser.add_argument_group("frames (of each --trajectory, before --max-frames thins them)"))
    g = parser.add_argument_group("samples")
    g.add_argument("--max-frames", type=number(int, minimum=2), default=20, help="at most this many frames per trajectory, evenly spaced (default 20)")
    g.add_argument("--held-out-fraction", type=number(float, above=0, below=1), default=0.3, help="trailing fraction of each input's frames used for scoring (default 0.3)")
    g.add_argument("--frames", type=number(int, minimum=2), default=12, help="frames made per --structure (default 12)")
    g.add_argument("--translation", type=non_negative_float, default=0.15, help="--structure samples: Gaussian translation per component, A (default 0.15)")
    g.add_argument("--rotation", type=non_negative_float, default=6.0, help="--structure samples: Gaussian rotation per component, degrees (default 6)")
    g.add_argument("--warm-held-out", nargs=2, type=non_negative_float, metavar=("TRANSLATION", "ROTATION"),
                   help="add random rigid-molecule motion (A, degrees per component) to the held-out frames: score the choices on "
                        "samples hotter than the fitting ones, as test crystals at a higher temperature are (default: none)")
    g.add_argument("--expand-held-out", type=number(float, minimum=0, below=1), metavar="STRAIN",
                   help="stretch the periodic held-out frames by this linear strain (0.016: every cell edge and centroid "
                        "distance 1.6 %% longer, molecules rigid): score the choices on a lattice as expanded as the test "
                        "crystals' (thermal expansion; default: none)")
    g.add_argument("--symmetrise", action="append", default=[], metavar="LABEL=TOL",
                   help="symmetrise the approximate structure of form LABEL with this tolerance in A (spglib), e.g. IV=0.3 (repeatable)")
    d = parser.add_argument_group("design")
    d.add_argument("--vectors", type=positive_int, default=2, help="number of vectors (default 2)")
    d.add_argument("--max-cutoff", type=number(float, minimum=4), default=10.0, help="largest cutoff considered, A (default 10)")
    d.add_argument("--max-functions", type=positive_int, default=24, help="at most this many symmetry functions (default 24)")
    d.add_argument("--min-functions", type=positive_int, default=8, help="select at least this many before the gain test may stop (default 8)")
    d.add_argument("--min-gain", type=non_negative_float, default=0.002, help="stop when an addition gains less macro F1 than this ... (default 0.002)")
    d.add_argument("--min-loss-gain", type=non_negative_float, default=0.05, help="... and lowers the log loss by less than this fraction (default 0.05)")
    d.add_argument("--max-samples", type=number(int, minimum=10), default=3000, help="molecules per part (fitting, held-out) in the scores (default 3000)")
    d.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    parser.add_argument("--cache-dir", help="cache the candidate pools' descriptors here (reused by a later design of the same samples)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args):
    import shlex

    from molenv.cli import CommandError
    from molenv.design import DesignError, SelectionSettings, ThermalNoise, design_descriptors

    symmetrise = {}
    for item in args.symmetrise:
        label, sep, tol = item.partition("=")
        try:
            symmetrise[label] = positive_float(tol)
        except Exception:  # argparse.ArgumentTypeError
            raise CommandError(f"--symmetrise {item!r}: expected LABEL=TOL with a tolerance > 0 in A, e.g. IV=0.3") from None
        if not sep or not label:
            raise CommandError(f"--symmetrise {item!r}: expected LABEL=TOL, e.g. IV=0.3")
    if args.min_functions > args.max_functions:
        raise CommandError(f"--min-functions {args.min_functions} exceeds --max-functions {args.max_functions}")
    try:
        result = design_descriptors(
            args.molecule, args.structure, args.trajectory, name=args.name, n_vectors=args.vectors, max_cutoff=args.max_cutoff,
            max_frames=args.max_frames, reader={k: getattr(args, k) for k in ("start", "stop", "step") if getattr(args, k) is not None},
            held_out_fraction=args.held_out_fraction,
            noise=ThermalNoise(args.translation, args.rotation, args.frames), symmetrise=symmetrise, warm_held_out=tuple(args.warm_held_out) if args.warm_held_out else None,
            expand_held_out=args.expand_held_out,
            selection=SelectionSettings(max_functions=args.max_functions, min_functions=args.min_functions, min_gain=args.min_gain,
                                        min_loss_gain=args.min_loss_gain, max_samples=args.max_samples),
            seed=args.seed, cache_dir=args.cache_dir, progress=not args.no_progress,
        )
    except DesignError as err:
        raise CommandError(str(err)) from None
    result.write(args.out, command=shlex.join(getattr(args, "command_line", None) or []) or None)
    e = result.expected["mlp_25_25"]
    print(f"{len(result.spec.functions)} functions, rmax {result.rc:g} A; expected held-out macro F1 {e['macro_f1']:.4f}, micro F1 {e['micro_f1']:.4f} (MLP 25-25)")
    return 0
