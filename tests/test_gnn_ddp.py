"""`molenv train gnn` on several processes (Lightning's DDP; on CPU the processes talk
through gloo): every process trains on its own shard of each epoch's batches, the same
number of steps each; the validation metrics, reduced over the processes, are those of
every validation frame once, so that early stopping and the best checkpoint agree on all of
them; logs, checkpoints, train_config.json and the export are written once, by the first.

The sharding is checked here directly (fast); one fit of two CPU processes runs the command
as a user types it (`--accelerator cpu --devices 2 --strategy ddp`, docs/training.md), in a
subprocess with a time limit: a process left waiting for the other fails the test instead
of blocking it."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from _gnn_support import TOY_FORMS, toy_graph_files
from _torch_support import one_torch_thread  # noqa: F401  (autouse)
from conftest import REPO
from molenv.cli import main
from molenv.gnn import synthetic
from molenv.gnn.export import load_exported
from molenv.gnn.graph import NO_LABEL, load_graphs, save_graphs
from molenv.gnn.lightning import GNNTrainConfig, GraphDataModule, StratifiedBatchSampler, load_classifier, predict_graphs, train_gnn
from molenv.models import open_model
from molenv.runlock import holder

# 3 groups of frames (11, an odd number), 2 per batch: 6 batches in an epoch
GROUPS = [0] * 5 + [1] * 4 + [2] * 2

# early stopping after the second epoch, whatever the losses: no improvement counts unless
# by 100, so the epoch it stops at is known and the same for one and two processes
OPTIONS = ["--accelerator", "cpu", "--threads", "1", "--batch-size", "2", "--lr", "1e-3", "--max-epochs", "5",
           "--patience", "1", "--min-delta", "100", "--seed", "3"]
TIMEOUT_S = 300  # the test took 70-100 s on 2 cores shared with two MD jobs (most of it importing torch twice)


@pytest.fixture(scope="module")
def graph_files(tmp_path_factory):
    """8 training frames, 3 validation frames: 2 for the first process, 1 for the second."""
    return toy_graph_files(tmp_path_factory.mktemp("graphs"), 8, 3)


def epochs_of(sampler, n: int = 2) -> list[list[list[int]]]:
    return [list(sampler) for _ in range(n)]


@pytest.mark.parametrize("processes", [2, 3, 4])
def test_stratified_shards_are_disjoint_and_even(processes):
    single = epochs_of(StratifiedBatchSampler(GROUPS, 2, seed=5))
    wide = epochs_of(StratifiedBatchSampler(GROUPS, 2 * processes, seed=5))
    shards = [epochs_of(StratifiedBatchSampler(GROUPS, 2, seed=5, num_replicas=processes, rank=r)) for r in range(processes)]
    steps = -(-6 // processes)
    assert [len(StratifiedBatchSampler(GROUPS, 2, num_replicas=processes, rank=r)) for r in range(processes)] == [steps] * processes
    for epoch in range(2):
        assert all(len(shard[epoch]) == steps for shard in shards)  # the same number of steps: none waits
        # process r takes batches r, r + N, ... of the one-process order, the first ones
        # again to fill the last step
        interleaved = [shard[epoch][step] for step in range(steps) for shard in shards]
        assert interleaved == [single[epoch][i % 6] for i in range(steps * processes)]
        assert sorted(i for batch in interleaved[:6] for i in batch) == list(range(11))  # disjoint, every frame
        # the batches of a step are one batch of N x batch_size frames of the one-process order
        assert [sum(single[epoch][s * processes : (s + 1) * processes], []) for s in range(steps)] == wide[epoch]
    assert single[0] != single[1] and shards[0][0] != shards[0][1]  # epoch e draws with seed + e


def test_data_module_shards_every_loader(graph_files):
    """Train (both batchings), validation and test loaders of two processes: the same number
    of training batches each, disjoint; validation and test frames once each."""
    graphs, _ = load_graphs(graph_files[0])
    for k, g in enumerate(graphs):
        g.frame = torch.tensor([k])

    def frames(loader):
        return [b.frame.tolist() for b in loader]

    for batching in ("stratified", "shuffle"):
        shards = []
        for rank in range(2):
            data = GraphDataModule(graphs, graphs[:5], graphs[:3], batch_size=2, batching=batching, seed=1)
            data.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": rank})
            shards.append(data)
        train = [frames(d.train_dataloader()) for d in shards]
        assert len(train[0]) == len(train[1]) == 2  # 8 frames, 2 per batch and process
        assert sorted(k for shard in train for batch in shard for k in batch) == list(range(8))  # no padding needed here
        for stage, n in (("val", 5), ("test", 3)):
            seen = [k for d in shards for batch in frames(getattr(d, f"{stage}_dataloader")()) for k in batch]
            assert sorted(seen) == list(range(n))
    alone = GraphDataModule(graphs, graphs[:5], batch_size=2, batching="stratified")  # no trainer: one process
    assert len(alone.train_dataloader()) == 4 and len(alone.val_dataloader()) == 3


def test_every_process_needs_a_validation_frame(graph_files, tmp_path):
    graphs, _ = load_graphs(graph_files[0])
    config = GNNTrainConfig(form_names=TOY_FORMS, accelerator="cpu", devices=2, strategy="ddp")
    with pytest.raises(ValueError, match="at least one validation graph per process, got 1 for 2"):  # before any process starts
        train_gnn(graphs, graphs[:1], config, tmp_path)
    assert not any(tmp_path.iterdir())


def metric_rows(out):
    with open(out / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def molenv_subprocess(args: list[str], timeout: float) -> tuple[str, str]:
    """``python -m molenv ARGS`` in a new process group; (stdout, stderr) once every process
    of it has closed them (the DDP process Lightning starts inherits them). Past `timeout`
    the whole group is killed and the test fails."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "py"), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "molenv", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"molenv {' '.join(args)} did not finish within {timeout} s (a process waiting for the other?)\n{err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    return out, err


@pytest.mark.slow
def test_two_cpu_processes_train_like_one(graph_files, tmp_path, capsys):
    train, labelled_val = graph_files
    # the second process's validation frame has no topology labels: the processes log
    # different metrics unless every one logs every metric (without that, a hang)
    graphs, _ = load_graphs(labelled_val)
    graphs[1].y_topology[:] = NO_LABEL
    val = tmp_path / "val.pt"
    save_graphs(val, graphs, TOY_FORMS)
    one, two = tmp_path / "one", tmp_path / "two"
    with pytest.raises(SystemExit) as done:  # one process, this one
        main(["train", "gnn", "--train", str(train), "--val", str(val), "--out", str(one), "--devices", "1", "--no-export", *OPTIONS])
    assert done.value.code == 0, capsys.readouterr().err
    out, err = molenv_subprocess(["train", "gnn", "--train", str(train), "--val", str(val), "--out", str(two), "--devices", "2", "--strategy", "ddp",
                                  *OPTIONS], TIMEOUT_S)
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in err and "Traceback" not in err, err[-3000:]
    assert out.count("best checkpoint:") == 1 and out.count("TorchScript model:") == 1  # reported and exported once
    assert holder(two) is None  # the lock went with the first process

    records = [json.loads((d / "train_config.json").read_text()) for d in (one, two)]
    split = ("n_train_graphs", "n_val_graphs", "n_train_molecules")
    assert [records[0][k] for k in split] == [records[1][k] for k in split] == [8, 3, 96]
    # both processes stopped after the same epoch (else one would wait for the other's gradients)
    assert records[0]["epochs"] == records[1]["epochs"] == 2
    assert records[1]["stopped_by"].startswith("early stopping") and records[1]["hardware"].startswith("2 processes x CPU")

    rows = {d.name: metric_rows(d) for d in (one, two)}
    for name, steps_per_epoch in (("one", 4), ("two", 2)):  # 8 frames, 2 per batch (and process)
        train_rows = [(int(r["epoch"]), int(r["step"])) for r in rows[name] if r["train_loss"]]
        assert len(set(train_rows)) == len(train_rows)  # one row per step, not one per process
        assert Counter(e for e, _ in train_rows) == {0: steps_per_epoch, 1: steps_per_epoch}
        assert [int(r["epoch"]) for r in rows[name] if r["val_loss"]] == [0, 1]  # one per epoch

    # the logged validation metrics are those of the 3 frames, each once, in the batches of
    # the two processes (frames 0 and 2; frame 1): recomputed here from the best checkpoint
    best = two / "checkpoints" / "best.ckpt"
    logged = next(r for r in rows["two"] if r["val_loss"] and int(r["epoch"]) == records[1]["best_epoch"])
    assert records[1]["best_val_loss"] == pytest.approx(float(logged["val_loss"]), rel=1e-6)
    p = predict_graphs(load_classifier(best), graphs, embeddings=False)
    n = np.arange(len(p.frame))
    labelled = p.y_topology != NO_LABEL
    form_ce = -np.log(p.polymorph_probabilities[n, p.y_polymorph])
    topology_ce = -np.log(p.topology_probabilities[n, np.where(labelled, p.y_topology, 0)])
    batches = [np.isin(p.frame, frames) for frames in ([0, 2], [1])]
    losses = [form_ce[b].mean() + (topology_ce[b & labelled].mean() if (b & labelled).any() else 0.0) for b in batches]
    assert float(logged["val_loss"]) == pytest.approx(np.average(losses, weights=[b.sum() for b in batches]), rel=1e-4)
    assert float(logged["val_polymorph_f1"]) == pytest.approx((p.polymorph == p.y_polymorph).mean(), rel=1e-5)
    assert float(logged["val_topology_f1"]) == pytest.approx((p.topology == p.y_topology)[labelled].mean(), rel=1e-5)

    classifier = open_model(best)
    polymorph, topology = classifier.predict(synthetic.crystal("parallel", (2, 2, 3), np.random.default_rng(9)))
    assert polymorph.shape == (12, 2) and topology.shape == (12, 2) and np.allclose(polymorph.sum(1), 1)
    _, metadata = load_exported(two / "model.pt")
    assert metadata["form_names"] == TOY_FORMS
    assert torch.load(best, map_location="cpu", weights_only=False)["epoch"] == records[1]["best_epoch"]
