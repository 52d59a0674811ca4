"""Convert a model trained with the original authors' SF-classifier code into a molenv model file.

Reads the reference weight file (sf_mlp_weights_molstruc.txt) and SF input file
(sf_input_molstruc.dat). The molecule geometry is given in molenv's atom order (1-based
positions within the molecule, as in the molecule spec); vector i replaces the i-th
distinct `vec_id` pair of the SF file. Example (the urea reference model):

  molenv import-reference --weights sf_mlp_weights_molstruc.txt --sf-input sf_input_molstruc.dat \\
      --atoms-per-molecule 8 --centre 1 --vectors 1:2,3:6 --classes I,IV,Melt,A,B,C,III --out urea_ref.molenv

`--spec urea` takes atoms per molecule, centre and vectors from a molecule spec instead; the
SF input must then define the spec's symmetry functions (cutoff, kinds, vectors and
parameters), which catches the files of another molecule. Files of your own descriptor set
for a shipped molecule: give the geometry with --atoms-per-molecule, --centre, --vectors.
"""
from pathlib import Path

from molenv.commands._options import positive_int


def add_arguments(parser):
    parser.add_argument("--weights", required=True, help="reference weight file (sf_mlp_weights_molstruc.txt)")
    parser.add_argument("--sf-input", required=True, help="reference SF input file (sf_input_molstruc.dat)")
    parser.add_argument("--spec", help="molecule spec (name or .toml) giving atoms per molecule, centre and vectors")
    parser.add_argument("--atoms-per-molecule", type=positive_int, help="atoms in one molecule")
    parser.add_argument("--centre", type=positive_int, help="1-based position of the centre atom within the molecule")
    parser.add_argument("--vectors", help="vectors a:b (v = r(b) - r(a), 1-based positions), comma separated, e.g. 1:2,3:6")
    parser.add_argument("--classes", required=True, help="class names in network-output order, comma separated")
    parser.add_argument("--name", help="model name (default: derived from the weight file name)")
    parser.add_argument("--out", required=True, help="molenv model file to write")


def parse_vectors(text: str) -> list[tuple[int, int]]:
    """'1:2,3:6' -> [(1, 2), (3, 6)]."""
    vectors = []
    for item in text.replace(" ", "").split(","):
        parts = item.split(":")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"--vectors: expected a:b pairs of atom positions separated by commas (e.g. 1:2,3:6), got {item!r}")
        vectors.append((int(parts[0]), int(parts[1])))
    return vectors


def _same_descriptors(a, b) -> bool:
    """Two `DescriptorSet`s define the same symmetry functions: cutoff, kind, vector and
    parameters of each, in order (parameters to 1e-6: the reference files print 6 digits)."""
    import numpy as np

    return (np.allclose([a.rmin, a.rmax], [b.rmin, b.rmax], rtol=1e-6) and len(a.functions) == len(b.functions)
            and all(f.kind == g.kind and f.vector == g.vector and np.allclose(f.params, g.params, rtol=1e-6, atol=1e-9)
                    for f, g in zip(a.functions, b.functions)))


def run(args):
    from molenv.cli import CommandError
    from molenv.modelfile import write_model
    from molenv.reference import import_reference

    atoms, centre, vectors = args.atoms_per_molecule, args.centre, None
    if args.vectors is not None:
        vectors = parse_vectors(args.vectors)
    if args.spec:
        from molenv.spec import load_spec

        spec = load_spec(args.spec)
        atoms = spec.atoms_per_molecule if atoms is None else atoms
        centre = spec.centre if centre is None else centre
        vectors = list(spec.vectors) if vectors is None else vectors
    missing = [flag for flag, value in (("--atoms-per-molecule", atoms), ("--centre", centre), ("--vectors", vectors)) if value is None]
    if missing:
        raise CommandError(f"give {', '.join(missing)} (or --spec)")
    classes = [c for c in args.classes.replace(" ", "").split(",") if c]
    model = import_reference(
        args.weights, args.sf_input, atoms_per_molecule=atoms, centre_atom=centre, vectors=vectors, classes=classes, name=args.name
    )
    if args.spec:
        expected, found = spec.descriptor_set(), model.descriptors
        if not _same_descriptors(expected, found):
            raise CommandError(
                f"{args.sf_input}: its {len(found.functions)} symmetry functions (cutoff {found.rmin:g}-{found.rmax:g} A) are not those of "
                f"spec {spec.name} ({len(expected.functions)}, cutoff {expected.rmin:g}-{expected.rmax:g} A): the weights and SF input are of "
                "another molecule or descriptor set; to import them for this molecule anyway, give --atoms-per-molecule, --centre and "
                "--vectors instead of --spec")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    path = write_model(model, args.out)
    d = model.descriptors
    print(
        f"wrote {path}: {len(model.classes)} classes ({', '.join(model.classes)}), {d.n_features} symmetry functions, "
        f"network {'-'.join(map(str, model.network.sizes))} ({model.network.output_activation} outputs), "
        f"centre atom {d.centre_atom}, vectors {', '.join(f'{a}:{b}' for a, b in d.vectors)}"
    )
    return 0
