"""Train the graph classifier (``molenv train gnn``).

Reads training and validation graphs (files written by `molenv.gnn.graph.save_graphs`),
or builds them from the train and val frames of a dataset of `molenv featurize`
(``molenv train gnn DATASET --out DIR``), trains with Adam and early stopping on the
validation loss, keeps the best checkpoint and exports it as TorchScript. Outputs in
--out: checkpoints/best.ckpt, checkpoints/last.ckpt, logs/metrics.csv, train_config.json and model.pt
(TorchScript, see `molenv.gnn.export`).
"""
from __future__ import annotations

import argparse

from molenv.cli import CommandError
from molenv.commands._options import non_negative_float, non_negative_int, number, positive_float, positive_int, thread_count


def _devices(text: str):
    """--devices: 'auto', or a number of devices >= 1."""
    return text if text == "auto" else positive_int(text)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Hyperparameters and hardware options (defaults: the published model and training)."""
    group = parser.add_argument_group("GNN training")
    group.add_argument("--convs", type=positive_int, default=1, help="graph convolutions (published: 1)")
    group.add_argument("--dropout", type=number(float, minimum=0, below=1), default=0.5, help="dropout of the residual blocks, 0 <= p < 1 (paper 0.25, published code 0.5)")
    group.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate")
    group.add_argument("--lr-decay", type=number(float, above=0, maximum=1), default=1.0,
                       help="multiply the learning rate by this (0 < f <= 1) when the validation loss has not improved for --lr-patience epochs (default 1: constant)")
    group.add_argument("--lr-patience", type=non_negative_int, default=2, help="epochs without a better validation loss before --lr-decay (default 2)")
    group.add_argument("--position-noise", type=non_negative_float, default=0.0, metavar="A",
                       help="Gaussian displacement (Angstrom, per coordinate) of every atom of the training batches, drawn anew "
                            "each step, e.g. 0.1 when the model must classify crystals hotter than its training crystals (default 0)")
    group.add_argument("--batch-size", type=positive_int, default=4, help="frames per mini-batch")
    group.add_argument("--batching", choices=["stratified", "shuffle"], default="stratified",
                       help="stratified (default): every batch mixes frames of different classes/systems, spread evenly over the epoch; shuffle: random order")
    group.add_argument("--max-epochs", type=positive_int, default=200, help="at most this many epochs (>= 1; default 200)")
    group.add_argument("--patience", type=non_negative_int, default=20, help="epochs without a better validation loss before stopping")
    group.add_argument("--min-delta", type=non_negative_float, default=0.0, help="smaller validation-loss improvements do not count (default 0)")
    group.add_argument("--max-time", type=positive_float, metavar="MIN", help="stop after this many minutes of training; the best checkpoint so far is kept")
    group.add_argument("--resume", metavar="CKPT", help="continue the fit saved in this checkpoint (checkpoints/last.ckpt of a fit that was killed or "
                       "stopped by --max-time, or its best.ckpt): weights, optimiser, learning rate, epoch count, early stopping, best "
                       "checkpoint, random state and time spent, which --max-time counts; give the earlier fit's options and a new --out")
    group.add_argument("--init-from", metavar="CKPT", help="start a new fit from the weights of this checkpoint (fine-tuning, e.g. with "
                       "--position-noise or more data of the same classes): fresh optimiser at --lr, epochs, early stopping and "
                       "--max-time; the best checkpoint is chosen among the new epochs")
    group.add_argument("--seed", type=int, default=0)
    group.add_argument("--threads", type=thread_count("--threads"), help="torch CPU threads (default: torch's default; on a shared CPU 1 is fastest)")
    group.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (GPU when present)")
    group.add_argument("--devices", type=_devices, default="auto", help="number of devices (>= 1), or auto; with --accelerator cpu: processes")
    group.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp for several devices (one process each; "
                       "--batch-size is per process; docs/training.md)")
    group.add_argument("--nondeterministic", action="store_true", help="allow faster non-reproducible kernels")
    group.add_argument("--progress", action="store_true", help="show a progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", nargs="?", help="dataset directory of `molenv featurize` (instead of --train/--val)")
    parser.add_argument("--train", nargs="+", metavar="GRAPHS", help="training graph files")
    parser.add_argument("--val", nargs="+", metavar="GRAPHS", help="validation graph files")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--no-export", action="store_true", help="skip the TorchScript export")
    frames = parser.add_argument_group("frames (with a dataset)")
    frames.add_argument("--frame-step", type=positive_int, default=1, metavar="N", help="train on every N-th training frame of each source (default 1: all)")
    frames.add_argument("--val-frame-step", type=positive_int, default=1, metavar="N", help="validate on every N-th validation frame of each source (default 1: all)")
    add_training_arguments(parser)


def config_from_args(args: argparse.Namespace, form_names: list[str]):
    """A `GNNTrainConfig` from the options of `add_training_arguments`."""
    from molenv.gnn.lightning import GNNTrainConfig

    return GNNTrainConfig(
        form_names=form_names,
        num_convs=args.convs,
        dropout=args.dropout,
        lr=args.lr,
        lr_decay=args.lr_decay,
        lr_patience=args.lr_patience,
        position_noise=args.position_noise,
        batch_size=args.batch_size,
        batching=args.batching,
        max_epochs=args.max_epochs,
        patience=args.patience,
        min_delta=args.min_delta,
        max_time_min=args.max_time,
        resume_from=args.resume,
        init_from=args.init_from,
        seed=args.seed,
        accelerator=args.accelerator,
        devices=args.devices,
        strategy=args.strategy,
        deterministic=not args.nondeterministic,
        progress_bar=args.progress,
    )


def _read(paths: list[str]):
    from molenv.gnn.graph import load_graphs

    graphs, names = [], None
    for path in paths:
        part, part_names = load_graphs(path)
        if names is not None and part_names != names:
            raise CommandError(f"{path}: polymorph classes {part_names} differ from {names} of the other graph files")
        graphs += part
        names = part_names
    return graphs, names


def run(args: argparse.Namespace) -> int:
    import shlex
    from pathlib import Path

    from lightning.pytorch.utilities import rank_zero_only

    from molenv.gnn.export import export_torchscript
    from molenv.gnn.graph import graphs_from_dataset
    from molenv.gnn.lightning import load_classifier, train_gnn

    if bool(args.dataset) == bool(args.train or args.val):
        raise CommandError("give a dataset directory, or --train and --val graph files")
    if args.resume and args.init_from:
        raise CommandError("give --resume (continue a fit) or --init-from (a new fit from its weights), not both")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    info = {"command": shlex.join(getattr(args, "command_line", None) or []) or None}
    if args.dataset:
        from molenv.dataset import open_dataset

        dataset = open_dataset(args.dataset)
        train = graphs_from_dataset(dataset, "train", step=args.frame_step)
        val = graphs_from_dataset(dataset, "val", step=args.val_frame_step)
        names = val_names = dataset.classes
        info.update(dataset=str(dataset.path), dataset_manifest_sha256=dataset.manifest_sha256(), frame_step=args.frame_step, val_frame_step=args.val_frame_step)
        if not train or not val:
            raise CommandError(f"{args.dataset}: needs train and val frames, has {len(train)} and {len(val)}")
    elif not (args.train and args.val):
        raise CommandError("give both --train and --val graph files")
    elif args.frame_step != 1 or args.val_frame_step != 1:
        raise CommandError("--frame-step and --val-frame-step select dataset frames; graph files are used whole")
    else:
        train, names = _read(args.train)
        val, val_names = _read(args.val)
    if val_names != names:
        raise CommandError(f"validation classes {val_names} differ from training classes {names}")
    out = Path(args.out)
    checkpoint = train_gnn(train, val, config_from_args(args, names), out, info=info)
    if rank_zero_only.rank > 0:  # a further process of a multi-process (DDP) fit: the first one reports and exports
        return 0
    print(f"best checkpoint: {checkpoint}")
    if not args.no_export:
        classifier = load_classifier(checkpoint)
        print(f"TorchScript model: {export_torchscript(classifier.model, out / 'model.pt', classifier.form_names)}")
    return 0
