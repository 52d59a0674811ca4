"""Train the SF classifier on a dataset (`molenv.dataset`) with Lightning.

`train_sf` takes the training and validation molecules of a dataset, sets the input
scaling from the training molecules, trains with Adam on mini-batches, stops early when
the validation loss has not improved for ``patience`` epochs and keeps the best
checkpoint. By default only periodic bulk molecules train (clusters and surface molecules
are left out: the SFs of a molecule near a vacuum describe a different environment and
the SF classifier of the paper is a bulk classifier). Same dataset, config and seed give
the same model, bit for bit (deterministic kernels, one thread by default).

A stopped fit continues from a checkpoint (``train_sf(..., resume_from=CKPT)``, e.g. the
``checkpoints/last.ckpt`` that every epoch rewrites) into a new directory: weights, Adam's
state, the epoch count, the early-stopping record and the best checkpoint so far, and the
random state, so that the continued fit ends where the uninterrupted one would have.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from molenv.dataset import Dataset, DatasetError, MoleculeTable
from molenv.descriptors import descriptor_set_from_dict, descriptor_set_to_dict

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


# options a continued fit must share with the fit it continues (max_epochs, patience,
# threads and the progress bar may change)
RESUME_SAME = ("hidden", "activation", "lr", "weight_decay", "input_noise", "batch_size", "min_delta", "seed", "include_clusters")


def _best_record(state: dict) -> dict:
    """The saved state of the ModelCheckpoint that keeps the best (lowest val_loss) checkpoint."""
    return next((v for k, v in state.get("callbacks", {}).items() if k.startswith("ModelCheckpoint{") and v.get("monitor") == "val_loss"), {})


def _read_resume(path: str | os.PathLike, dataset: Dataset, config: SFTrainConfig, out_dir: Path) -> tuple[dict, Path]:
    """The checkpoint a fit continues from, checked against this fit (classes, descriptors,
    the options of `RESUME_SAME`), and the fit's best checkpoint so far (beside it)."""
    import torch

    from molenv.paths import file_problem

    path = Path(path)
    if problem := file_problem(path, "checkpoint"):
        raise FileNotFoundError(problem)
    if path.resolve().parent == (out_dir / "checkpoints").resolve():
        raise ValueError(f"{path}: write the continued fit to a new output directory, not the checkpoint's own")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ValueError(f"{path}: cannot read the checkpoint ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})") from None
    needed = ("state_dict", "hyper_parameters", "optimizer_states", "loops", "epoch")
    if not isinstance(state, dict) or state.get("molenv_kind") != "sf" or any(k not in state for k in needed):
        raise ValueError(f"{path}: not a training checkpoint of `molenv train sf` (with its optimiser state)")
    hp = state["hyper_parameters"]
    if list(hp.get("class_names", [])) != list(dataset.classes):
        raise ValueError(f"{path}: trained on the classes {list(hp.get('class_names', []))}, the dataset {dataset.path} has {list(dataset.classes)}")
    if asdict(descriptor_set_from_dict(hp["descriptors"])) != asdict(dataset.descriptor_set):
        raise ValueError(f"{path}: its descriptor set differs from the one the dataset {dataset.path} was featurized with")
    old = (hp.get("provenance") or {}).get("config") or {}
    diff = [f"{k}: {old[k]!r} in the checkpoint, {getattr(config, k)!r} now" for k in RESUME_SAME if k in old and old[k] != getattr(config, k)]
    if diff:
        raise ValueError(f"{path}: the fit it continues had other options ({'; '.join(diff)}); give that fit's options")
    record = _best_record(state)
    best = record.get("best_model_path")
    if not best or record.get("best_model_score") is None:
        raise ValueError(f"{path}: the checkpoint does not record its fit's best checkpoint")
    beside = path.parent / Path(best).name
    best_path = beside if beside.is_file() else Path(best)
    if not best_path.is_file():
        raise FileNotFoundError(f"{path}: the fit's best checkpoint {Path(best).name} is not beside it (nor at {best}); copy it there")
    best_state = state if best_path.resolve() == path.resolve() else torch.load(best_path, map_location="cpu", weights_only=False)
    if int(best_state.get("epoch", -1)) > int(state["epoch"]):
        raise ValueError(f"{best_path} is newer (epoch {best_state.get('epoch')}) than {path} (epoch {state['epoch']}): the fit was stopped "
                         f"between writing the two; continue from {best_path}")
    best_score = _best_record(best_state).get("best_model_score")
    if best_score is None or float(best_score) != float(record["best_model_score"]):
        raise ValueError(f"{best_path}: not the best checkpoint of the fit {path} continues (validation loss "
                         f"{None if best_score is None else float(best_score)}, the fit's best {float(record['best_model_score'])})")
    return state, best_path


def _random_state() -> dict:
    """torch's, numpy's and Python's random states, in types a weights-only checkpoint
    load accepts (tensors, lists, numbers)."""
    import random

    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [kind, torch.as_tensor(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
            "python": random.getstate()}


def _set_random_state(state: dict) -> None:
    import random

    import torch

    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def _continuation_callbacks(stopping, checkpoint, resumed: dict | None, best_path: Path | None, patience: int) -> list:
    """Callbacks of an SF fit: every checkpoint carries the random state (``molenv_rng``),
    and a continued fit takes back that random state when the fit starts, and when training
    starts (after Lightning has restored the checkpoint) the earlier fit's best validation
    loss and best checkpoint (copied to ``best_path``; Lightning does not carry them into a
    new directory) and this fit's patience."""
    import lightning as L

    class RandomState(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, ckpt):
            ckpt["molenv_rng"] = _random_state()

    class Continue(L.Callback):
        def on_fit_start(self, trainer, pl_module):
            # before Lightning makes the first training iterator (which draws from torch's
            # generator), as the uninterrupted fit made the next epoch's after the checkpoint
            if resumed.get("molenv_rng"):
                _set_random_state(resumed["molenv_rng"])

        def on_train_start(self, trainer, pl_module):
            score = _best_record(resumed)["best_model_score"]
            checkpoint.best_model_score = checkpoint.kth_value = score
            checkpoint.best_model_path = checkpoint.kth_best_model_path = str(best_path)
            checkpoint.best_k_models = {str(best_path): score}
            stopping.patience = patience

    return [RandomState()] + ([Continue()] if resumed is not None else [])


def train_sf(dataset: Dataset, config: SFTrainConfig, out_dir: str | os.PathLike, callbacks=(), resume_from: str | os.PathLike | None = None) -> Path:
    """Train an `SFClassifier` on ``dataset``; return the path of the best checkpoint.

    ``out_dir`` receives ``checkpoints/best.ckpt`` (lowest val_loss), ``checkpoints/last.ckpt``
    (the last epoch, to continue from), per-epoch metrics (``logs/metrics.csv``) and
    ``train_config.json``. The classifier's outputs are all of the dataset's classes (a
    class with no training molecules only gets pushed down).

    ``resume_from`` continues the fit saved in that checkpoint (``last.ckpt``, or
    ``best.ckpt`` to go on from the best epoch) in the new directory ``out_dir``: weights,
    Adam's state, the epoch count, the early-stopping record (this fit's ``patience``
    applies), the best checkpoint so far (the checkpoint's fit's, which must lie beside it)
    and the random state. The options of `RESUME_SAME` must be the earlier fit's, and the
    training molecules the same (their input scaling is compared). A fit continued from
    ``last.ckpt`` gives the model the uninterrupted fit would have given, bit for bit
    (``logs/metrics.csv`` starts at the continued epoch).
    """
    import warnings

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
    resumed = best_path = None
    if resume_from is not None:
        resumed, best_path = _read_resume(resume_from, dataset, config, out_dir)
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
    if resumed is not None:
        earlier = (resumed["hyper_parameters"].get("provenance") or {}).get("resumed_fit")
        provenance["resumed_fit"] = {"checkpoint": str(Path(resume_from).resolve()), "epoch": int(resumed["epoch"]),
                                     "best_checkpoint": str(best_path.resolve()), **({"earlier": earlier} if earlier else {})}
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
    if resumed is not None:
        saved = resumed["state_dict"]
        if not (torch.equal(saved["mean"], module.mean) and torch.equal(saved["stretch"], module.stretch)):
            torch.set_num_threads(threads)
            raise ValueError(f"{resume_from}: its fit trained on other molecules (the input scaling differs): "
                             f"continue it on the same dataset ({(resumed['hyper_parameters'].get('provenance') or {}).get('dataset')})")

    def loader(table: MoleculeTable, shuffle: bool) -> DataLoader:
        data = TensorDataset(torch.as_tensor(table.features), torch.as_tensor(table.labels))
        size = config.batch_size if config.batch_size > 0 else len(table)
        return DataLoader(data, batch_size=size, shuffle=shuffle)

    checkpoint = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor="val_loss", mode="min", save_top_k=1, enable_version_counter=False)
    # every epoch's end, to continue from (Lightning's save_last saves only with a new best)
    last = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False)
    stopping = EarlyStopping(monitor="val_loss", mode="min", patience=config.patience, min_delta=config.min_delta)
    if resumed is not None:
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best_path, out_dir / "checkpoints" / "best.ckpt")
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        accelerator="cpu",  # a 24-25-25-k network: a GPU would only add transfers
        devices=1,
        precision="64-true",
        deterministic=True,
        callbacks=[stopping, checkpoint, last, *_continuation_callbacks(stopping, checkpoint, resumed, out_dir / "checkpoints" / "best.ckpt", config.patience), *callbacks],
        logger=CSVLogger(out_dir, name="logs", version=""),
        log_every_n_steps=1,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
    )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed")  # a continued fit: see _continuation_callbacks
            if resumed is not None:  # the earlier fit's best checkpoint, copied there
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(module, train_dataloaders=loader(train, True), val_dataloaders=loader(val, False),
                        ckpt_path=None if resume_from is None else str(resume_from))
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
