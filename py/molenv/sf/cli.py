"""Train the symmetry-function classifier (``molenv train sf DATASET --out DIR``).

Trains an MLP (2 hidden layers of 25 sigmoid units by default, softmax outputs, input
scaling from the training set) on the periodic bulk molecules of the dataset's train
split, with early stopping on the validation loss. Outputs in --out:
checkpoints/best.ckpt, checkpoints/last.ckpt (the last epoch), logs/metrics.csv,
train_config.json and model.molenv (the best checkpoint as a molenv model file for
MOLENV_CLASSIFY, see `molenv export`, with the out-of-distribution score fitted on the
training molecules and calibrated on the validation molecules; its numbers also go into
train_config.json under "ood"). A stopped fit continues with --resume
OLD/checkpoints/last.ckpt --out NEW and the earlier fit's options.
"""
from __future__ import annotations

import argparse

from molenv.commands._options import non_negative_float, non_negative_int, positive_float, positive_int, thread_count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="dataset directory of `molenv featurize`")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--name", help="model name written into model.molenv")
    parser.add_argument("--no-export", action="store_true", help="do not write model.molenv")
    group = parser.add_argument_group("SF training")
    group.add_argument("--hidden", default="25,25", help="hidden layer sizes, comma separated (default 25,25)")
    # molenv.modelfile.HIDDEN_ACTIVATIONS spelled out (tests/test_sf.py checks they agree): importing
    # the model file module would load numpy every time the command line is parsed
    group.add_argument("--activation", default="sigmoid", choices=["sigmoid", "tanh", "softplus", "identity"], help="hidden activation (default sigmoid)")
    group.add_argument("--lr", type=positive_float, default=1e-2, help="Adam learning rate (default 1e-2)")
    group.add_argument("--weight-decay", type=non_negative_float, default=0.0, help="Adam weight decay (default 0)")
    group.add_argument("--input-noise", type=non_negative_float, default=0.0, metavar="SIGMA",
                       help="add Gaussian noise of this width to the scaled descriptors (range ~2 per feature) of each training "
                            "step, e.g. 0.2 when the model must classify crystals hotter than its training crystals (default 0: none)")
    group.add_argument("--batch-size", type=non_negative_int, default=256, help="molecules per step; 0 = full batch (default 256)")
    group.add_argument("--max-epochs", type=positive_int, default=500, help="at most this many epochs (>= 1; default 500)")
    group.add_argument("--patience", type=non_negative_int, default=30, help="epochs without a better validation loss before stopping (default 30)")
    group.add_argument("--min-delta", type=non_negative_float, default=1e-4, help="smaller validation-loss improvements do not count (default 1e-4)")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--include-clusters", action="store_true", help="also train on clusters and surface molecules (default: periodic bulk only)")
    group.add_argument("--resume", metavar="CKPT", help="continue the fit saved in this checkpoint (checkpoints/last.ckpt of a stopped fit, "
                       "with its best.ckpt beside it) into a new --out: weights, optimiser, epoch count, early-stopping record, best "
                       "checkpoint so far and random state; give the earlier fit's options (--max-epochs and --patience may change)")
    group.add_argument("--threads", type=thread_count("--threads"), default=1, help="torch threads (default 1)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace):
    from molenv.cli import CommandError
    from molenv.sf.train import SFTrainConfig

    try:
        hidden = [int(x) for x in args.hidden.replace(" ", "").split(",") if x]
    except ValueError:
        raise CommandError(f"--hidden: expected layer sizes separated by commas, e.g. 25,25, got {args.hidden!r}") from None
    if not hidden or min(hidden) < 1:
        raise CommandError(f"--hidden: need one or more positive layer sizes, got {args.hidden!r}")
    return SFTrainConfig(
        hidden=hidden,
        activation=args.activation,
        lr=args.lr,
        weight_decay=args.weight_decay,
        input_noise=args.input_noise,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        patience=args.patience,
        min_delta=args.min_delta,
        seed=args.seed,
        include_clusters=args.include_clusters,
        threads=args.threads,
        progress_bar=not args.no_progress,
    )


def run(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from molenv.dataset import open_dataset
    from molenv.sf.train import load_sf, train_sf, training_molecules

    config = config_from_args(args)
    dataset = open_dataset(args.dataset)
    out = Path(args.out)
    checkpoint = train_sf(dataset, config, out, resume_from=args.resume)
    print(f"best checkpoint: {checkpoint}")
    model = load_sf(checkpoint).to_model()
    val = training_molecules(dataset, "val", config.include_clusters)
    accuracy = (model.predict_proba(val.features).argmax(1) == val.labels).mean()
    print(f"validation micro F1: {accuracy:.4f} ({len(val)} molecules)")
    if not args.no_export:
        from molenv.sf.export import export_sf

        exported = export_sf(checkpoint, out / "model.molenv", name=args.name, command=shlex.join(getattr(args, "command_line", None) or []) or None,
                             dataset=dataset)
        print(f"model file: {out / 'model.molenv'}")
        if exported.ood is not None:  # the calibration in the training report too
            import json

            from molenv.ood import calibration_record

            report = json.loads((out / "train_config.json").read_text())
            report["ood"] = calibration_record(exported.ood, exported.other(val.features))
            (out / "train_config.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0
