"""Train the SF classifier on a dataset (`molenv.dataset`) with Lightning.

`train_sf` takes the training and validation molecules of a dataset, sets the input
scaling from the training molecules, trains with Adam on mini-batches, stops early when
the validation loss has not improved for ``patience`` epochs and keeps the best
checkpoint. By default only periodic bulk molecules train (clusters and surface molecules
are left out: the SFs of a molecule near a vacuum describe a different environment and
the SF classifier of the paper is a bulk classifier). Same dataset, config and seed give
the same model, bit for bit (deterministic kernels, one thread by default).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from molenv.dataset import Dataset, DatasetError, MoleculeTable, descriptor_set_to_dict

__all__ = ["SFTrainConfig", "training_molecules", "train_sf", "load_sf"]


@dataclass
class SFTrainConfig:
    """Everything `train_sf` needs besides the data. Defaults: the published network."""

    hidden: list[int] = field(default_factory=lambda: [25, 25])
    activation: str = "sigmoid"
    lr: float = 1e-2
    weight_decay: float = 0.0
    input_noise: float = 0.0  # Gaussian noise on the scaled training inputs (see SFClassifier)
    batch_size: int = 256  # molecules per step; 0 = the whole training set (full batch)
    max_epochs: int = 500
    patience: int = 30  # epochs without a better val_loss before stopping
    min_delta: float = 1e-4  # smaller val_loss improvements do not count as better
    seed: int = 0
    include_clusters: bool = False  # also train on non-periodic sources and surface molecules
    threads: int = 1  # torch threads (the network is tiny: more threads only wait)
    progress_bar: bool = False


def training_molecules(dataset: Dataset, split: str, include_clusters: bool = False) -> MoleculeTable:
    """The molecules of `split` an SF classifier trains or validates on: periodic bulk ones
    unless ``include_clusters``."""
    table = dataset.molecules(split, periodic_only=not include_clusters)
    if not include_clusters:
        keep = table.topology == 0
        table = MoleculeTable(**{k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in vars(table).items()})
    return table


def _check(dataset: Dataset, train: MoleculeTable, val: MoleculeTable) -> None:
    where = dataset.path
    if len(train) == 0:
        raise DatasetError(f"{where}: no training molecules (periodic bulk; --include-clusters also takes clusters)")
    present = np.unique(train.labels)
    if len(present) < 2:
        raise DatasetError(f"{where}: the training molecules hold a single class ({dataset.classes[present[0]]}); a classifier needs two or more")
    if len(val) == 0:
        raise DatasetError(f"{where}: no validation molecules (featurize with --val-fraction > 0)")


def train_sf(dataset: Dataset, config: SFTrainConfig, out_dir: str | os.PathLike, callbacks=()) -> Path:
    """Train an `SFClassifier` on ``dataset``; return the path of the best checkpoint.

    ``out_dir`` receives ``checkpoints/best.ckpt`` (lowest val_loss), per-epoch metrics
    (``logs/metrics.csv``) and ``train_config.json``. The classifier's outputs are all of
    the dataset's classes (a class with no training molecules only gets pushed down).
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    from molenv.sf.model import SFClassifier

    out_dir = Path(out_dir)
    train = training_molecules(dataset, "train", config.include_clusters)
    val = training_molecules(dataset, "val", config.include_clusters)
    _check(dataset, train, val)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, config.threads))
    L.seed_everything(config.seed, workers=True, verbose=False)
    provenance = {
        "dataset": str(dataset.path.resolve()),
        "dataset_manifest_sha256": dataset.manifest_sha256(),
        "molecule": dataset.molecule,
        "train_molecules": int(len(train)),
        "val_molecules": int(len(val)),
        "train_sources": sorted({train.source_names[k] for k in np.unique(train.source)}),
        "config": asdict(config),
    }
    module = SFClassifier(
        dataset.classes,
        descriptor_set_to_dict(dataset.descriptor_set),
        hidden=tuple(config.hidden),
        activation=config.activation,
        lr=config.lr,
        weight_decay=config.weight_decay,
        provenance=provenance,
        input_noise=config.input_noise,
    )
    module.set_scaling(train.features)

    def loader(table: MoleculeTable, shuffle: bool) -> DataLoader:
        data = TensorDataset(torch.as_tensor(table.features), torch.as_tensor(table.labels))
        size = config.batch_size if config.batch_size > 0 else len(table)
        return DataLoader(data, batch_size=size, shuffle=shuffle)

    checkpoint = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor="val_loss", mode="min", save_top_k=1, enable_version_counter=False)
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        accelerator="cpu",  # a 24-25-25-k network: a GPU would only add transfers
        devices=1,
        precision="64-true",
        deterministic=True,
        callbacks=[EarlyStopping(monitor="val_loss", mode="min", patience=config.patience, min_delta=config.min_delta), checkpoint, *callbacks],
        logger=CSVLogger(out_dir, name="logs", version=""),
        log_every_n_steps=1,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
    )
    try:
        trainer.fit(module, train_dataloaders=loader(train, True), val_dataloaders=loader(val, False))
    finally:
        torch.set_num_threads(threads)
    (out_dir / "train_config.json").write_text(json.dumps({"config": asdict(config), "provenance": provenance, "epochs": trainer.current_epoch, "best_val_loss": float(checkpoint.best_model_score)}, indent=1) + "\n")
    return Path(checkpoint.best_model_path)


def load_sf(checkpoint: str | os.PathLike):
    """A trained `SFClassifier` from a checkpoint of `train_sf`, in eval mode."""
    from molenv.sf.model import SFClassifier

    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return SFClassifier.load_from_checkpoint(path, map_location="cpu").eval()
