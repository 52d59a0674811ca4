"""Training and prediction of the graph classifier with Lightning.

`GNNClassifier` wraps `MolecularGNN` with the published training objective (sum of the
polymorph and topology cross-entropies, Adam). `train_gnn` trains it on in-memory lists of
`MolecularGraph`s with early stopping on the validation loss and keeps the best
checkpoint; `predict_graphs` runs a trained model over graphs and returns per-molecule
classes, probabilities and the two embeddings (for t-SNE), in the same layout for every
dataset reader and for `molenv classify`.

Runs on CPU, on one GPU, or on several devices through Lightning's DDP
(``GNNTrainConfig.devices`` / ``strategy``: one process per device, each on its shard of the
training batches, validation metrics reduced over all of them).
"""
from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DistributedSampler
from torch_geometric.loader import DataLoader

from molenv.gnn.graph import NO_LABEL, MolecularGraph, molecule_graph_index
from molenv.gnn.model import GNNOutput, MolecularGNN, edge_lengths
from molenv.hardware import cpu_description
from molenv.topology import TOPOLOGY_NAMES


def total_molecules(batch) -> int:
    """Number of molecules in a graph or a batch of graphs."""
    return int(torch.as_tensor(batch.num_molecules).sum())


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled molecules; 0 (keeping the graph) where none is."""
    if bool((labels != NO_LABEL).any()):
        return F.cross_entropy(logits, labels, ignore_index=NO_LABEL)
    return logits.sum() * 0.0


class GNNClassifier(L.LightningModule):
    """`MolecularGNN` + loss = CE(polymorph) + CE(topology), Adam.

    Args:
        form_names: polymorph class names in logit order (melt included).
        lr: Adam learning rate (published 1e-4).
        lr_decay: factor the learning rate is multiplied by when the validation loss has
            not improved for ``lr_patience`` epochs (ReduceLROnPlateau); 1: constant.
        position_noise: standard deviation (Angstrom) of Gaussian displacements added to
            every atom of the training batches (not validation), drawn anew at each step: a
            cheap stand-in for the larger thermal motion of crystals hotter than the
            training ones (0: none, the published training).
        **model_kwargs: passed to `MolecularGNN` (num_convs, dropout, cutoff, ...).
    """

    def __init__(self, form_names: Sequence[str], lr: float = 1e-4, lr_decay: float = 1.0, lr_patience: int = 2, position_noise: float = 0.0, **model_kwargs):
        super().__init__()
        if not position_noise >= 0.0:
            raise ValueError(f"position_noise must be >= 0, got {position_noise}")
        self.save_hyperparameters()
        self.position_noise = position_noise
        self.form_names = list(form_names)
        self.lr = lr
        self.lr_decay = lr_decay
        self.lr_patience = lr_patience
        self.model = MolecularGNN(n_forms=len(self.form_names), **model_kwargs)

    def forward(self, batch, pos: torch.Tensor | None = None) -> GNNOutput:
        """Outputs for the graphs of ``batch``, at positions ``pos`` (default: the batch's)."""
        length = edge_lengths(batch.pos if pos is None else pos, batch.edge_index, batch.edge_shift)
        return self.model(batch.z, batch.edge_index, length, batch.molecule, total_molecules(batch))

    def _step(self, batch, stage: str) -> torch.Tensor:
        pos = None
        if stage == "train" and self.position_noise > 0:
            # the edges stay those of the frame: a pair displaced beyond the cutoff stays
            # an edge, whose basis (DimeNet's envelope) is exactly zero there
            pos = batch.pos + self.position_noise * torch.randn_like(batch.pos)
        out = self(batch, pos)
        loss_form = _cross_entropy(out.polymorph_logits, batch.y_polymorph)
        loss_topology = _cross_entropy(out.topology_logits, batch.y_topology)
        loss = loss_form + loss_topology
        n = total_molecules(batch)
        sync = stage != "train"  # epoch metrics of val/test averaged over all devices
        # reduced over the processes, every process must log the same metrics: a batch
        # without labels logs an accuracy of weight 0 there (one process alone skips it)
        log_unlabelled = sync and self._trainer is not None and self.trainer.world_size > 1
        self.log(f"{stage}_loss", loss, batch_size=n, prog_bar=True, sync_dist=sync)
        for name, logits, labels in (("polymorph", out.polymorph_logits, batch.y_polymorph), ("topology", out.topology_logits, batch.y_topology)):
            labelled = labels != NO_LABEL
            if bool(labelled.any()):
                # micro F1 of single-label classification = accuracy
                accuracy = (logits[labelled].argmax(-1) == labels[labelled]).float().mean()
                self.log(f"{stage}_{name}_f1", accuracy, batch_size=int(labelled.sum()), sync_dist=sync)
            elif log_unlabelled:
                self.log(f"{stage}_{name}_f1", logits.new_zeros(()), batch_size=0, sync_dist=sync)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        if self.lr_decay >= 1.0:
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=self.lr_decay, patience=self.lr_patience)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "val_loss", "interval": "epoch"}}


@dataclass
class GNNTrainConfig:
    """Everything `train_gnn` needs besides the data. Defaults follow the paper."""

    form_names: list[str]
    num_convs: int = 1
    dropout: float = 0.5  # paper 0.25, final published code 0.5
    lr: float = 1e-4
    lr_decay: float = 1.0  # < 1: multiply lr by this when val_loss stalls for lr_patience epochs
    lr_patience: int = 2
    batch_size: int = 4  # frames (graphs) per mini-batch
    batching: str = "stratified"  # or "shuffle"; see StratifiedBatchSampler
    max_epochs: int = 200
    patience: int = 20  # epochs without improvement of val_loss before stopping
    min_delta: float = 0.0  # smaller val_loss improvements do not reset the patience
    position_noise: float = 0.0  # Angstrom: Gaussian displacements of the training atoms (see GNNClassifier)
    max_time_min: float | None = None  # wall-clock limit of the fit (minutes, counting a resumed fit's earlier part); the best checkpoint so far is kept
    resume_from: str | None = None  # a checkpoint of an earlier fit of the same classes: continue it (see train_gnn)
    init_from: str | None = None  # a checkpoint whose weights start a new fit (fine-tuning; see train_gnn)
    seed: int = 0
    accelerator: str = "auto"  # cpu, gpu, auto
    devices: int | str = "auto"
    strategy: str = "auto"  # e.g. "ddp" for several GPUs
    num_workers: int = 0
    # deterministic kernels: bit-identical reruns (CPU backward passes of gathers are not
    # otherwise; costs ~30 % on CPU). Where an op has no deterministic kernel (e.g. scatter
    # max on CUDA) torch warns instead of failing.
    deterministic: bool = True
    progress_bar: bool = False
    model_kwargs: dict = field(default_factory=dict)  # further MolecularGNN arguments


def frame_groups(graphs: Sequence[MolecularGraph]) -> np.ndarray:
    """Group of each graph for `StratifiedBatchSampler`: its molecules' most common
    polymorph label, and whether any of them is labelled surface (so a crystal, its
    cluster and the melt are different groups). Unlabelled graphs form group (-1, 0)."""
    keys = []
    for g in graphs:
        y = g.y_polymorph[g.y_polymorph != NO_LABEL]
        form = int(torch.mode(y).values) if y.numel() else -1
        keys.append((form, int(bool((g.y_topology == 1).any()))))
    _, groups = np.unique(np.array(keys).reshape(len(keys), 2), axis=0, return_inverse=True)
    return groups.reshape(-1)


class StratifiedBatchSampler(torch.utils.data.Sampler):
    """Mini-batches in which every group of frames (`frame_groups`) is spread evenly over
    the epoch: each group's frames are shuffled and given evenly spaced, jittered positions
    in [0, 1), the frames are sorted by position and cut into batches. Every frame is used
    once per epoch and each batch holds frames of about batch_size different groups in
    proportion to their sizes.

    Why: every molecule of a frame has the same polymorph label, so a randomly shuffled
    batch of a few frames often holds one or two classes only. The untrained network gives
    nearly the same embedding to every molecule (attention averages over ~100 neighbours),
    so such batches mostly push the output towards the batch's classes and the training
    oscillates between them instead of learning the small differences between
    environments (urea: no progress in 600 steps of 2 shuffled frames, val accuracy 0.94
    after 80 steps of 3 stratified frames). Seeded: epoch e uses seed + e.

    Several processes (DDP, ``num_replicas`` > 1) draw the same epoch order (same seed) and
    process ``rank`` takes its batches rank, rank + num_replicas, ...: the shards are
    disjoint, and the batches of one step, together, are the frames of one batch of
    num_replicas x batch_size of the single-process order. Where the epoch's batches do
    not divide by num_replicas, its first batches are drawn again to fill the last step:
    every process runs the same number of steps (one with fewer would leave the others
    waiting for its gradients).
    """

    def __init__(self, groups: Sequence[int], batch_size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.groups = np.asarray(groups)
        self.batch_size = batch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def _epoch_batches(self) -> int:
        return -(-len(self.groups) // self.batch_size)

    def __len__(self) -> int:
        return -(-self._epoch_batches() // self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next iteration (a continued fit starts at its checkpoint's)."""
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        position = np.empty(len(self.groups))
        for group in np.unique(self.groups):
            members = np.flatnonzero(self.groups == group)
            n = len(members)
            order = torch.randperm(n, generator=generator).numpy()
            jitter = torch.rand(n, generator=generator, dtype=torch.float64).numpy()
            position[members[order]] = (np.arange(n) + jitter) / n
        ranked = np.argsort(position, kind="stable")
        batches = [ranked[start : start + self.batch_size].tolist() for start in range(0, len(ranked), self.batch_size)]
        for index in range(self.rank, len(self) * self.num_replicas, self.num_replicas):
            yield batches[index % len(batches)]


BATCHING = ("stratified", "shuffle")


class GraphDataModule(L.LightningDataModule):
    """Lists of in-memory graphs as train/val/test loaders (torch_geometric batching).

    ``batching`` of the training frames: ``"stratified"`` (`StratifiedBatchSampler`,
    seeded with ``seed``) or ``"shuffle"`` (random order each epoch).

    Under a trainer of several processes (DDP) every process loads its own shard
    (``batch_size`` frames per batch and process): the training batches as the sampler
    above (shuffle: torch's `DistributedSampler`, seeded with ``seed``, which pads the
    shards to equal sizes), the validation and test frames split without repeats
    (Lightning's `UnrepeatedDistributedSampler`), so that the metrics reduced over the
    processes are those of every frame once. The trainer must leave the sampling to this
    module (``use_distributed_sampler=False``)."""

    def __init__(
        self,
        train: Sequence[MolecularGraph],
        val: Sequence[MolecularGraph],
        test: Sequence[MolecularGraph] | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        batching: str = "shuffle",
        seed: int = 0,
    ):
        super().__init__()
        if batching not in BATCHING:
            raise ValueError(f"batching must be one of {', '.join(BATCHING)}, got {batching!r}")
        self.graphs = {"train": list(train), "val": list(val), "test": list(test or [])}
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.batching = batching
        self.seed = seed

    def _shard(self) -> dict | None:
        """{num_replicas, rank} of this process in a multi-process fit, else None."""
        kwargs = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        return kwargs if kwargs and kwargs["num_replicas"] > 1 else None

    def _loader(self, stage: str, shuffle: bool) -> DataLoader:
        graphs = self.graphs[stage]
        if (shard := self._shard()) is None:
            return DataLoader(graphs, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)
        if shuffle:  # Lightning sets the epoch of a loader's sampler
            sampler = DistributedSampler(graphs, shuffle=True, seed=self.seed, **shard)
        else:
            sampler = UnrepeatedDistributedSampler(graphs, shuffle=False, **shard)
        return DataLoader(graphs, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers)

    def train_dataloader(self):
        if self.batching == "stratified":
            sampler = StratifiedBatchSampler(frame_groups(self.graphs["train"]), self.batch_size, self.seed, **(self._shard() or {}))
            return DataLoader(self.graphs["train"], batch_sampler=sampler, num_workers=self.num_workers)
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        return self._loader("val", shuffle=False)

    def test_dataloader(self):
        return self._loader("test", shuffle=False)


def train_gnn(
    train_graphs: Sequence[MolecularGraph],
    val_graphs: Sequence[MolecularGraph],
    config: GNNTrainConfig,
    out_dir: str | os.PathLike,
    callbacks: Sequence[L.Callback] = (),
    info: dict | None = None,
) -> Path:
    """Train a `GNNClassifier`; return the path of the best checkpoint (lowest val_loss).

    ``out_dir`` receives ``checkpoints/best.ckpt``, the per-epoch metrics
    (``logs/metrics.csv``) and ``train_config.json`` (the config's fields, then the
    number of graphs, epochs run, best epoch and validation loss, why training stopped,
    the wall time, and ``info``, e.g. where the graphs came from); ``callbacks`` are added
    to the trainer's own (e.g. for timing). The same graphs, config and seed give the same
    model on the same hardware (``config.deterministic``), unless ``config.max_time_min``
    cuts the fit short.

    ``out_dir/checkpoints/last.ckpt`` is rewritten at the end of every epoch, to continue
    from. ``config.resume_from`` continues an earlier fit (killed, or stopped by its time
    limit) from a checkpoint: weights, optimiser and learning-rate state, epoch counter, the
    early-stopping record, the best checkpoint so far (for ``last.ckpt``: the fit's
    ``best.ckpt`` beside it, copied to ``out_dir``), the random state (of torch, numpy and
    Python, saved in every checkpoint) and the training time already spent, which
    ``max_time_min`` counts too (so give the total). The other hyperparameters of ``config``
    should be those of the earlier fit; the restored optimiser keeps its own learning rate.
    Write to a new ``out_dir``: its metrics start at the resumed epoch. Continued from
    ``last.ckpt`` with the earlier options, the fit ends with the model, checkpoints and
    metrics of the uninterrupted fit, bit for bit (deterministic on the same hardware).

    ``config.init_from`` instead starts a new fit from a checkpoint's weights only
    (fine-tuning, e.g. with ``position_noise`` or on more data of the same classes): a fresh
    optimiser at ``config.lr``, epoch count, early stopping and time limit, and the best
    checkpoint is chosen among the new epochs only. The architecture options must be the
    checkpoint's.

    With several processes (``config.strategy`` "ddp", docs/training.md) each trains on its
    shard of the batches (`GraphDataModule`; ``config.batch_size`` per process) and needs at
    least one validation graph; the first process writes ``out_dir``, and every process
    returns the best checkpoint's path.
    """
    out_dir = Path(out_dir)
    if not train_graphs or not val_graphs:
        raise ValueError(f"need training and validation graphs, got {len(train_graphs)} and {len(val_graphs)}")
    if config.resume_from is not None and config.init_from is not None:
        raise ValueError("give resume_from (continue a fit) or init_from (a new fit from its weights), not both")
    resumed = initial = None  # (path, checkpoint state)
    if config.resume_from is not None:
        if Path(config.resume_from).resolve().parent == (out_dir / "checkpoints").resolve():
            raise ValueError(f"{config.resume_from}: write the continued fit to a new output directory, not the checkpoint's own")
        resumed = Path(config.resume_from), _read_checkpoint(config.resume_from, config.form_names, training_state=True)
        resumed_best = _resumed_best(*resumed)
    if config.init_from is not None:
        initial = Path(config.init_from), _read_checkpoint(config.init_from, config.form_names, training_state=False)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = GNNClassifier(
        config.form_names, lr=config.lr, lr_decay=config.lr_decay, lr_patience=config.lr_patience, position_noise=config.position_noise, num_convs=config.num_convs, dropout=config.dropout, **config.model_kwargs
    )
    if initial is not None:
        try:
            module.load_state_dict(initial[1]["state_dict"])
        except RuntimeError as err:
            raise ValueError(f"{config.init_from}: its network differs from the one configured (--convs and the model options must be its own): {err}") from None
    record = FitRecord({k: v for k, v in (info or {}).items() if k in ("command", "dataset", "dataset_manifest_sha256")})
    checkpoint = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="best", monitor="val_loss", mode="min", save_top_k=1, enable_version_counter=False)
    # every epoch's end, to continue from (Lightning's save_last saves only with a new best)
    last = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="last", save_top_k=1, enable_version_counter=False)
    stopping = EarlyStopping(monitor="val_loss", mode="min", patience=config.patience, min_delta=config.min_delta)
    best_copy = out_dir / "checkpoints" / "best.ckpt"
    trainer = L.Trainer(
        max_epochs=config.max_epochs,
        max_time=None if config.max_time_min is None else timedelta(minutes=config.max_time_min),
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        deterministic="warn" if config.deterministic else None,
        callbacks=[stopping, checkpoint, last, record, _SamplerEpoch(), *_continuation(checkpoint, resumed, resumed_best[1] if resumed else None, best_copy),
                   *([LearningRateMonitor("epoch")] if config.lr_decay < 1.0 else []), *callbacks],
        logger=CSVLogger(out_dir, name="logs", version=""),
        log_every_n_steps=1,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # GraphDataModule shards the frames itself
    )
    if len(val_graphs) < trainer.world_size:  # a process without validation frames would stall the others
        raise ValueError(f"need at least one validation graph per process, got {len(val_graphs)} for {trainer.world_size} processes")
    # with several processes (DDP) Lightning starts the further ones inside fit, running this
    # same code: the first one alone writes out_dir (Lightning's checkpoints and logs too)
    if resumed is not None and trainer.is_global_zero:  # the best checkpoint so far: the new directory's until an epoch beats it
        best_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(resumed_best[0], best_copy)
    data = GraphDataModule(train_graphs, val_graphs, batch_size=config.batch_size, num_workers=config.num_workers, batching=config.batching, seed=config.seed)
    # Lightning switches deterministic algorithms on process-wide: restore for later inference
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The dirpath has changed")  # a continued fit: see _continuation
            if resumed is not None:  # the earlier fit's best checkpoint, copied there
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=data, ckpt_path=config.resume_from)
    finally:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
    wall = time.perf_counter() - start
    if resumed is not None:
        _keep_resumed_if_better(best_copy, resumed_best[1], checkpoint)
    if not trainer.is_global_zero:
        return Path(checkpoint.best_model_path)
    epochs = trainer.current_epoch  # epochs completed
    if stopping.stopped_epoch:
        stopped = f"early stopping: val_loss not better for {config.patience} epochs"
    elif epochs >= config.max_epochs:
        stopped = f"max_epochs ({config.max_epochs})"
    else:
        stopped = f"max_time ({config.max_time_min} min)"
    best_epoch = None
    if checkpoint.best_model_path:
        best_epoch = int(torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)["epoch"])
    result = {
        "n_train_graphs": len(train_graphs),
        "n_val_graphs": len(val_graphs),
        "n_train_molecules": sum(int(g.num_molecules) for g in train_graphs),
        "epochs": epochs,
        "best_epoch": best_epoch,  # 0-based, as in logs/metrics.csv
        "best_val_loss": None if checkpoint.best_model_score is None else float(checkpoint.best_model_score),
        "stopped_by": stopped,
        "wall_time_s": round(wall, 1),
        "hardware": _hardware(trainer),
    }
    if resumed is not None:
        result["resumed_fit"] = earlier_fit(*resumed)
    if initial is not None:
        result["initial_weights"] = earlier_fit(*initial)
    (out_dir / "train_config.json").write_text(json.dumps({**asdict(config), **result, **(info or {})}, indent=2))
    return Path(checkpoint.best_model_path)


class FitRecord(L.Callback):
    """Writes the record of the fit (its command, dataset, hardware) into every checkpoint
    it saves, under ``molenv_fit``: a checkpoint copied away from its run directory (to or
    from a GPU machine, say) still tells a resumed or fine-tuning fit where it came from."""

    def __init__(self, record: dict):
        self.record = dict(record)

    def on_fit_start(self, trainer, pl_module):
        self.record["hardware"] = _hardware(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["molenv_fit"] = self.record


def _read_checkpoint(path: str | os.PathLike, form_names: Sequence[str], training_state: bool) -> dict:
    """A checkpoint of `molenv train gnn` to continue (``training_state``: with its optimiser
    state) or to start from; fails early, with the reason, where it cannot be used."""
    from molenv.paths import file_problem

    path = Path(path)
    if problem := file_problem(path, "checkpoint"):
        raise FileNotFoundError(problem)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ValueError(f"{path}: cannot read the checkpoint ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})") from None
    needed = ("state_dict", "hyper_parameters") + (("optimizer_states",) if training_state else ())
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise ValueError(f"{path}: not a {'full ' if training_state else ''}Lightning training checkpoint of `molenv train gnn`"
                         + (" (no optimiser state)" if training_state else ""))
    saved = list(state["hyper_parameters"].get("form_names", []))
    if saved != list(form_names):
        raise ValueError(f"{path}: trained on the classes {saved}, the data have {list(form_names)}")
    return state


def _callback_state(state: dict, name: str) -> dict:
    """The saved state of the trainer callback `name` (e.g. Timer, ModelCheckpoint) in a
    checkpoint, {} where it had none (Lightning keys callbacks by name and options)."""
    return next((v for k, v in state.get("callbacks", {}).items() if k.startswith(name)), {})


def earlier_fit(checkpoint: Path, state: dict) -> dict:
    """What a resumed or fine-tuning fit starts from: the checkpoint's epoch and training
    time so far (where that fit had a --max-time, whose timer keeps it), the command and
    hardware of the fit that wrote it (saved in the checkpoint), and that fit's epochs and
    wall time (from the train_config.json beside its checkpoints/ folder, where that is
    still there)."""
    out = {"checkpoint": str(checkpoint.resolve()), "checkpoint_epoch": int(state["epoch"]),
           "training_s_at_checkpoint": _callback_state(state, "Timer").get("time_elapsed", {}).get("train"),
           **state.get("molenv_fit", {})}
    config = checkpoint.resolve().parent.parent / "train_config.json"
    if config.is_file():
        earlier = json.loads(config.read_text())
        out.update({k: earlier.get(k) for k in ("command", "epochs", "best_epoch", "stopped_by", "wall_time_s", "hardware")})
        if earlier.get("resumed_fit"):
            out["resumed_fit"] = earlier["resumed_fit"]  # a chain of resumed fits
    return out


def _best_record(state: dict) -> dict:
    """The saved state of the ModelCheckpoint that keeps the best (lowest val_loss)
    checkpoint (a checkpoint holds that of ``last`` too)."""
    return next((v for k, v in state.get("callbacks", {}).items() if k.startswith("ModelCheckpoint{") and v.get("monitor") == "val_loss"), {})


def _resumed_best(path: Path, state: dict) -> tuple[Path, torch.Tensor | None]:
    """The best checkpoint so far of the fit that ``path`` continues, and its validation
    loss: for ``last.ckpt``, the fit's best checkpoint beside it (checked to be that fit's);
    for a best checkpoint (or one of a fit from before ``last.ckpt``), ``path`` itself."""
    record = _best_record(state)
    score = record.get("best_model_score")
    best = record.get("best_model_path")
    if score is None or not best or Path(best).name == path.name:
        return path, score
    beside = path.parent / Path(best).name
    if not beside.is_file():
        raise FileNotFoundError(f"{path}: the fit's best checkpoint {Path(best).name} is not beside it; copy it there")
    try:
        best_state = torch.load(beside, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise ValueError(f"{beside}: cannot read the checkpoint ({str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__})") from None
    if int(best_state.get("epoch", -1)) > int(state["epoch"]):
        raise ValueError(f"{beside} is newer (epoch {best_state.get('epoch')}) than {path} (epoch {state['epoch']}): the fit was stopped "
                         f"between writing the two; continue from {beside}")
    best_score = _best_record(best_state).get("best_model_score")
    if best_score is None or float(best_score) != float(score):
        raise ValueError(f"{beside}: not the best checkpoint of the fit {path} continues (validation loss "
                         f"{None if best_score is None else float(best_score)}, the fit's best {float(score)})")
    return beside, score


class _SamplerEpoch(L.Callback):
    """Tells the stratified batch sampler the epoch (Lightning sets the epoch of a sampler,
    not of a batch sampler), so that a continued fit draws the batches of its epochs as the
    uninterrupted fit did."""

    def on_train_epoch_start(self, trainer, pl_module):
        sampler = getattr(trainer.train_dataloader, "batch_sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(trainer.current_epoch)


def _continuation(checkpoint: ModelCheckpoint, resumed: tuple[Path, dict] | None, best_score: torch.Tensor | None, best_copy: Path) -> list:
    """Callbacks for a fit that can be continued: every checkpoint carries the random state
    (``molenv_rng``); a continued fit takes back that random state when the fit starts
    (before the first training batches are drawn), and when training starts (after
    Lightning has restored the checkpoint) the earlier fit's best validation loss and best
    checkpoint (copied to ``best_copy``), which Lightning does not carry into a new
    directory."""
    from molenv.sf.train import _random_state, _set_random_state

    class RandomState(L.Callback):
        def on_save_checkpoint(self, trainer, pl_module, ckpt):
            ckpt["molenv_rng"] = _random_state()

    class Continue(L.Callback):
        def on_fit_start(self, trainer, pl_module):
            if resumed[1].get("molenv_rng"):
                _set_random_state(resumed[1]["molenv_rng"])

        def on_train_start(self, trainer, pl_module):
            if best_score is not None:  # the tensor the uninterrupted fit compares with
                checkpoint.best_model_score = checkpoint.kth_value = best_score
                checkpoint.best_model_path = checkpoint.kth_best_model_path = str(best_copy)
                checkpoint.best_k_models = {str(best_copy): best_score}

    return [RandomState()] + ([Continue()] if resumed is not None else [])


def _keep_resumed_if_better(best_copy: Path, old: torch.Tensor | None, checkpoint: ModelCheckpoint) -> None:
    """Where no epoch of the continued fit beat the best checkpoint so far (or none ran),
    that checkpoint (copied to ``best_copy``) stays the best."""
    new = checkpoint.best_model_score
    if old is None or (new is not None and float(new) < float(old)):
        return
    checkpoint.best_model_path, checkpoint.best_model_score = str(best_copy), torch.as_tensor(float(old))


def _hardware(trainer: L.Trainer) -> str:
    """What the fit ran on, for the record: the GPU's name, or the CPU and torch's threads."""
    root = trainer.strategy.root_device
    if root.type == "cuda":
        return f"{trainer.num_devices} x {torch.cuda.get_device_name(root)}"
    cpu = f"CPU ({cpu_description()}), {torch.get_num_threads()} torch thread(s)"
    return cpu if trainer.world_size == 1 else f"{trainer.world_size} processes x {cpu}"


def load_classifier(checkpoint: str | os.PathLike, map_location: str | torch.device = "cpu") -> GNNClassifier:
    """A trained `GNNClassifier` from a Lightning checkpoint, in eval mode."""
    return GNNClassifier.load_from_checkpoint(checkpoint, map_location=map_location).eval()


@dataclass
class GNNPredictions:
    """Per-molecule results over a sequence of graphs (molecules of graph 0 first).

    ``frame`` is the index of each molecule's graph in the input; ``times`` the time of each
    graph (frame); the label arrays hold `NO_LABEL` where a graph had no label; the
    embeddings are None when not requested.
    """

    form_names: list[str]
    frame: np.ndarray  # (n,) int
    times: np.ndarray  # (n_frames,) ps
    polymorph_probabilities: np.ndarray  # (n, n_forms)
    topology_probabilities: np.ndarray  # (n, 2)
    y_polymorph: np.ndarray  # (n,)
    y_topology: np.ndarray  # (n,)
    embedding: np.ndarray | None = None  # (n, hidden) max-pooled molecule embedding
    hidden: np.ndarray | None = None  # (n, hidden) last hidden layer
    topology_names: tuple[str, ...] = TOPOLOGY_NAMES

    @property
    def polymorph(self) -> np.ndarray:
        return self.polymorph_probabilities.argmax(1)

    @property
    def topology(self) -> np.ndarray:
        return self.topology_probabilities.argmax(1)


@torch.inference_mode()
def predict_graphs(
    classifier: GNNClassifier,
    graphs: Sequence[MolecularGraph] | torch.utils.data.Dataset,
    batch_size: int = 8,
    num_workers: int = 0,
    embeddings: bool = True,
) -> GNNPredictions:
    """Classify every molecule of ``graphs`` with a trained classifier (eval mode).

    ``graphs`` may be a `molenv.gnn.graph.FrameGraphs` dataset, which builds each graph
    when it is needed: with ``num_workers`` > 0, worker processes build the graphs
    (neighbour search) while this process runs the network. ``embeddings=False`` leaves out
    the two 256-wide embeddings (t-SNE only; large for long trajectories).
    """
    classifier.eval()
    device = classifier.device
    keys = ("frame", "pp", "tp", "yp", "yt") + (("emb", "hid") if embeddings else ())
    parts: dict[str, list] = {k: [] for k in keys}
    times = []
    dataset = graphs if isinstance(graphs, torch.utils.data.Dataset) else list(graphs)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    first = 0
    for batch in loader:
        batch = batch.to(device)
        out = classifier(batch)
        parts["frame"].append(molecule_graph_index(batch) + first)
        first += batch.num_graphs
        times.append(torch.as_tensor(batch.time, dtype=torch.float64).reshape(-1))
        parts["pp"].append(out.polymorph_logits.softmax(-1))
        parts["tp"].append(out.topology_logits.softmax(-1))
        parts["yp"].append(batch.y_polymorph)
        parts["yt"].append(batch.y_topology)
        if embeddings:
            parts["emb"].append(out.embedding)
            parts["hid"].append(out.hidden)
    cat = {k: torch.cat(v).cpu().numpy() for k, v in parts.items()}
    return GNNPredictions(
        classifier.form_names, cat["frame"], torch.cat(times).numpy(), cat["pp"], cat["tp"], cat["yp"], cat["yt"], cat.get("emb"), cat.get("hid")
    )
