"""Export a trained classifier for use outside the training code.

An SF checkpoint (or `molenv train sf` output directory) becomes a molenv model file for
MOLENV_CLASSIFY (docs/model_format.md), with provenance (dataset, its SHA-256, training
sources and configuration, best validation loss, command) in `meta` records:

  molenv export runs/urea-sf --out urea.molenv

A graph-classifier checkpoint becomes a TorchScript module (see molenv.gnn.export).
"""
from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("checkpoint", help="checkpoint (.ckpt) or training output directory")
    parser.add_argument("--out", required=True, help="file to write (.molenv for SF models, .pt for graph models)")
    parser.add_argument("--name", help="SF: model name written into the file")


def run(args):
    import shlex

    from molenv.cli import CommandError
    from molenv.evaluate import model_kind

    kind, path = model_kind(args.checkpoint)
    if kind == "model-file":
        raise CommandError(f"{path} is already a molenv model file")
    if kind == "sf":
        from molenv.sf.export import export_sf

        model = export_sf(path, args.out, name=args.name, command=shlex.join(getattr(args, "command_line", None) or []) or None)
        print(f"wrote {args.out}: {model.name}; classes {', '.join(model.classes)}; network {'-'.join(map(str, model.network.sizes))}")
        return 0
    from molenv.gnn.export import export_torchscript
    from molenv.gnn.lightning import load_classifier

    classifier = load_classifier(path)
    print(f"wrote {export_torchscript(classifier.model, args.out, classifier.form_names)} (TorchScript)")
    return 0
