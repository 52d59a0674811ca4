"""Export a trained classifier for use outside the training code.

An SF checkpoint (or `molenv train sf` output directory) becomes a molenv model file for
MOLENV_CLASSIFY (docs/model_format.md), with provenance (dataset, its SHA-256, training
sources and configuration, best validation loss, command) in `meta` records, and the
out-of-distribution score (`molenv.ood`: the ood block, fitted on the training dataset's
training molecules and calibrated on its validation molecules; --dataset another one,
--no-ood none; a graph classifier's .molenv file too):

  molenv export runs/urea-sf --out urea.molenv

Both kinds of model file carry the molecule spec they were trained with (atoms, bonds,
SMILES; a GNN file also the centre, vectors and descriptors: docs/model_format.md, "The
molecule spec in a model file"), so `molenv classify`, `plumed-input`, ... need no --spec
for them, whatever the molecule. The spec is the training dataset's, or --molecule.

A graph-classifier checkpoint becomes, by the suffix of --out, a molenv model file of kind
gnn (`.molenv`, docs/model_format.md; read by MOLENV_CLASSIFY and `molenv classify`) or a
TorchScript module (`.pt`, see molenv.gnn.export):

  molenv export runs/urea-gnn --out urea_gnn.molenv [--molecule urea]
  molenv export runs/urea-gnn --out urea_gnn.pt
"""
from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("checkpoint", help="checkpoint (.ckpt) or training output directory")
    parser.add_argument("--out", required=True, help="file to write: .molenv (SF or graph model: molenv model file) or .pt (graph model: TorchScript)")
    parser.add_argument("--name", help="model name written into a .molenv file")
    parser.add_argument("--dataset", help="to .molenv: the dataset whose training and validation molecules fit and calibrate the ood score "
                        "(default: the training dataset the checkpoint records)")
    parser.add_argument("--no-ood", action="store_true", help="to .molenv: write no ood block (out-of-distribution score)")
    parser.add_argument("--molecule", help="to .molenv: the molecule spec (urea, nicotinamide or a spec .toml) the file carries (its atoms, bonds, "
                        "SMILES; a graph model's elements); default: the training dataset's. For an SF model its descriptors must be the model's")


def run(args):
    import shlex
    from pathlib import Path

    from molenv.cli import CommandError
    from molenv.models import open_model

    model = open_model(args.checkpoint)
    if model.form == "model-file":
        raise CommandError(f"{model.path} is already a molenv model file")
    if model.form == "torchscript":
        raise CommandError(f"{model.path} is a TorchScript export already; export the checkpoint it was made from")
    # the suffix says what the file is, and the readers go by it: a model file named .pt
    # would be taken for TorchScript, TorchScript named .molenv for a model file
    suffix = Path(args.out).suffix
    if model.kind == "sf" and suffix != ".molenv":
        raise CommandError(f"--out {args.out}: an SF classifier is written as a molenv model file, which takes the extension .molenv "
                           "(.pt is TorchScript, written for graph classifiers only)")
    if model.kind == "gnn" and suffix not in (".molenv", ".pt"):
        raise CommandError(f"--out {args.out}: a graph classifier is written as a molenv model file (.molenv) or as TorchScript (.pt); "
                           "the extension says which")
    command = shlex.join(getattr(args, "command_line", None) or []) or None
    if suffix == ".pt" and (getattr(args, "dataset", None) or getattr(args, "no_ood", False)):
        raise CommandError("--dataset and --no-ood concern the ood score (out-of-distribution), which model files (.molenv) carry; a TorchScript export has none")
    dataset = None
    if getattr(args, "dataset", None):
        from molenv.dataset import open_dataset

        dataset = open_dataset(args.dataset)
    if model.kind == "sf":
        from molenv.sf.export import export_sf

        try:
            written = export_sf(model.path, args.out, name=args.name, command=command, dataset=dataset, ood=not getattr(args, "no_ood", False),
                                molecule=getattr(args, "molecule", None))
        except ValueError as err:  # SpecError included
            raise CommandError(str(err)) from None
        print(f"wrote {args.out}: {written.name}; classes {', '.join(written.classes)}; network {'-'.join(map(str, written.network.sizes))}")
        return 0
    if suffix == ".molenv":
        from molenv.gnn.export import export_gnn_checkpoint

        try:
            written = export_gnn_checkpoint(model.path, args.out, name=args.name, command=command, molecule=getattr(args, "molecule", None),
                                            dataset=dataset, ood=not getattr(args, "no_ood", False))
        except ValueError as err:  # OODError included
            raise CommandError(str(err)) from None
        sizes = f"hidden {written.hidden}, {len(written.convs)} conv(s) of {written.channels} channels, {written.num_radial} radial functions"
        print(f"wrote {args.out}: {written.name}; classes {', '.join(written.classes)}; topology {', '.join(written.topology_classes)}; {sizes}; atom types {written.atom_types}")
        return 0
    from molenv.gnn.export import export_torchscript

    network = model.network()
    print(f"wrote {export_torchscript(network.model, args.out, network.form_names)} (TorchScript)")
    return 0
