"""A tiny real training run on toy urea solids: it learns, keeps the best checkpoint, and
the same data and seed give the same model."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import lightning as L
import torch
from torch_geometric.data import Batch

from _torch_support import one_torch_thread  # noqa: F401  (autouse)
from molenv.gnn import synthetic
from molenv.gnn.graph import FrameGraphs, frame_to_graph
from molenv.gnn.model import csr_pointer
from molenv.gnn.lightning import GNNClassifier, GNNTrainConfig, StratifiedBatchSampler, frame_groups, load_classifier, predict_graphs, train_gnn

FORMS = ["parallel", "antiparallel", "melt"]


def toy_graphs(seed: int):
    """One periodic frame of each toy form (bulk) and a cluster with surface molecules.
    Cells are at least twice the cutoff thick (unique atom pairs: the CSR kernels train; the
    CLI test trains on thinner cells, through the gather path)."""
    rng = np.random.default_rng(seed)
    cluster, _ = synthetic.cluster(synthetic.crystal("antiparallel", (3, 3, 6), rng), 7.0)
    graphs = [
        frame_to_graph(synthetic.crystal("parallel", (2, 3, 4), rng), polymorph=0, topology=0),
        frame_to_graph(synthetic.crystal("antiparallel", (2, 2, 4), rng), polymorph=1, topology=0),
        frame_to_graph(synthetic.melt(3, 5.5, rng), polymorph=2, topology=0),
        frame_to_graph(cluster, polymorph=1, topology=synthetic.surface_labels(cluster)),
    ]
    assert all(csr_pointer(g.edge_index, g.num_nodes) is not None for g in graphs)
    return graphs


def config(seed: int = 7, epochs: int = 4) -> GNNTrainConfig:
    # lr above the published 1e-4 so that a few epochs show learning
    return GNNTrainConfig(form_names=FORMS, lr=1e-3, dropout=0.1, batch_size=2, max_epochs=epochs, patience=10, seed=seed, accelerator="cpu", devices=1)


def metrics(out_dir):
    with open(out_dir / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def data():
    return toy_graphs(10), toy_graphs(11)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, train_gnn(*data, config(), out)


def test_training_reduces_loss_and_keeps_best_checkpoint(trained, data):
    out, checkpoint = trained
    assert checkpoint == out / "checkpoints" / "best.ckpt" and checkpoint.is_file()
    rows = metrics(out)
    train_loss = [float(r["train_loss"]) for r in rows if r["train_loss"]]
    val_loss = [float(r["val_loss"]) for r in rows if r["val_loss"]]
    assert len(val_loss) == 4
    assert np.mean(train_loss[-2:]) < np.mean(train_loss[:2])
    assert min(val_loss) < val_loss[0]
    best = torch.load(checkpoint, map_location="cpu", weights_only=False)
    scores = [s["best_model_score"] for k, s in best["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert float(scores[0]) == pytest.approx(min(val_loss), rel=1e-6)

    record = json.loads((out / "train_config.json").read_text())
    assert record["epochs"] == 4 and record["stopped_by"] == "max_epochs (4)" and record["batching"] == "stratified"
    assert record["n_train_graphs"] == 4 and record["best_val_loss"] == pytest.approx(min(val_loss), rel=1e-6)
    assert val_loss[record["best_epoch"]] == pytest.approx(min(val_loss), rel=1e-6)
    assert record["hardware"].startswith("CPU (") and "torch thread" in record["hardware"]  # the config's accelerator is cpu

    classifier = load_classifier(checkpoint)
    assert classifier.form_names == FORMS
    predictions = predict_graphs(classifier, data[1], batch_size=3)
    n = sum(g.num_molecules for g in data[1])
    assert predictions.polymorph_probabilities.shape == (n, 3)
    assert predictions.topology_probabilities.shape == (n, 2)
    assert predictions.embedding.shape == predictions.hidden.shape == (n, 256)
    np.testing.assert_allclose(predictions.polymorph_probabilities.sum(1), 1, rtol=1e-5)
    assert predictions.frame.tolist() == np.repeat(np.arange(4), [g.num_molecules for g in data[1]]).tolist()
    assert predictions.y_polymorph.tolist() == torch.cat([g.y_polymorph for g in data[1]]).tolist()


def test_predict_frames_with_graph_workers(trained):
    classifier = load_classifier(trained[1])
    rng = np.random.default_rng(12)
    frames = [synthetic.melt(2, 5.5, rng).replace(time=10.0 * k) for k in range(3)]
    direct = predict_graphs(classifier, [frame_to_graph(f) for f in frames], batch_size=1)
    # graphs built in a worker process, two frames per batch
    lazy = predict_graphs(classifier, FrameGraphs(frames), batch_size=2, num_workers=1, embeddings=False)
    np.testing.assert_allclose(lazy.polymorph_probabilities, direct.polymorph_probabilities, rtol=1e-5, atol=1e-6)
    assert lazy.frame.tolist() == direct.frame.tolist() == np.repeat([0, 1, 2], 8).tolist()
    assert lazy.times.tolist() == [0.0, 10.0, 20.0]
    assert lazy.embedding is None and direct.embedding.shape == (24, 256)


def test_same_seed_same_model(trained, data, tmp_path):
    _, first = trained
    again = train_gnn(*data, config(), tmp_path / "again")
    other = train_gnn(*data, config(seed=8, epochs=1), tmp_path / "other")
    weights = [torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in (first, again, other)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_stratified_batches_mix_groups(data):
    # (form, has surface) of the toy frames: (0, 0) (1, 0) (2, 0) (1, 1), numbered in sorted order
    assert frame_groups(data[0]).tolist() == [0, 1, 3, 2]
    groups = [0] * 8 + [1] * 8 + [2] * 4
    sampler = StratifiedBatchSampler(groups, 4, seed=3)
    first, second = list(sampler), list(sampler)  # two epochs
    for epoch in (first, second):
        assert len(epoch) == len(sampler) == 5
        assert sorted(i for batch in epoch for i in batch) == list(range(20))  # each frame once
        assert all(len({groups[i] for i in batch}) >= 2 for batch in epoch)
    assert first != second
    assert list(StratifiedBatchSampler(groups, 4, seed=3)) == first
    assert [len(b) for b in StratifiedBatchSampler([0] * 5, 2)] == [2, 2, 1]


def test_resume_continues_the_fit(trained, data, tmp_path):
    _, first = trained
    before = torch.load(first, map_location="cpu", weights_only=False)
    resumed_cfg = config(epochs=before["epoch"] + 3)
    resumed_cfg.resume_from = str(first)
    out = tmp_path / "resumed"
    adam_steps = AdamSteps()
    train_gnn(*data, resumed_cfg, out, callbacks=[adam_steps])
    rows = metrics(out)
    epochs = sorted({int(r["epoch"]) for r in rows})
    # the epoch counter continues after the checkpoint's epoch, up to max_epochs
    assert epochs == list(range(before["epoch"] + 1, before["epoch"] + 3))
    report = json.loads((out / "train_config.json").read_text())
    assert report["epochs"] == before["epoch"] + 3 and report["resume_from"] == str(first)
    earlier = json.loads((first.parent.parent / "train_config.json").read_text())
    assert report["resumed_fit"]["checkpoint_epoch"] == before["epoch"] == earlier["best_epoch"]
    assert report["resumed_fit"]["epochs"] == earlier["epochs"] and report["resumed_fit"]["wall_time_s"] == earlier["wall_time_s"]
    # the optimiser state was restored: Adam's step count goes on from the checkpoint's
    assert adam_steps.at_start == int(next(iter(before["optimizer_states"][0]["state"].values()))["step"]) > 0
    with pytest.raises(ValueError, match="new output directory"):
        train_gnn(*data, resumed_cfg, first.parent.parent)


class AdamSteps(L.Callback):
    """Adam's step count when training starts (after a checkpoint is restored)."""

    at_start = None

    def on_train_start(self, trainer, pl_module):
        state = trainer.optimizers[0].state
        self.at_start = int(next(iter(state.values()))["step"]) if state else 0


def test_resume_keeps_the_resumed_checkpoint_when_not_beaten(trained, data, tmp_path):
    # a fit that runs no further epoch (max_epochs reached) cannot beat the resumed
    # checkpoint: that checkpoint is the new directory's best
    _, first = trained
    before = torch.load(first, map_location="cpu", weights_only=False)
    cfg = config(epochs=before["epoch"] + 1)
    cfg.resume_from = str(first)
    checkpoint = train_gnn(*data, cfg, tmp_path / "none")
    assert checkpoint == tmp_path / "none" / "checkpoints" / "best.ckpt"
    assert checkpoint.read_bytes() == first.read_bytes()
    assert json.loads((tmp_path / "none" / "train_config.json").read_text())["best_epoch"] == before["epoch"]


def test_resume_refuses_other_classes_or_missing_file(trained, data, tmp_path):
    _, first = trained
    other = config()
    other.form_names = FORMS[::-1]
    other.resume_from = str(first)
    with pytest.raises(ValueError, match="trained on the classes"):
        train_gnn(*data, other, tmp_path / "a")
    other = config()
    other.resume_from = str(tmp_path / "none.ckpt")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        train_gnn(*data, other, tmp_path / "b")
    both = config()
    both.resume_from = both.init_from = str(first)
    with pytest.raises(ValueError, match="not both"):
        train_gnn(*data, both, tmp_path / "c")


def test_init_from_starts_a_new_fit_from_the_weights(trained, data, tmp_path):
    _, first = trained
    before = torch.load(first, map_location="cpu", weights_only=False)
    cfg = config(epochs=2)
    cfg.init_from = str(first)
    out = tmp_path / "tuned"
    checkpoint = train_gnn(*data, cfg, out)
    # a new fit: epochs from 0, its best checkpoint one of them, provenance recorded
    assert sorted({int(r["epoch"]) for r in metrics(out)}) == [0, 1]
    after = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert after["epoch"] in (0, 1)
    report = json.loads((out / "train_config.json").read_text())
    assert report["init_from"] == str(first) and report["initial_weights"]["checkpoint_epoch"] == before["epoch"]
    # it started from the checkpoint's weights: its first epoch's validation loss is near
    # the checkpoint's, far below a fresh network's
    fresh = metrics(first.parent.parent)
    first_val = [float(r["val_loss"]) for r in metrics(out) if r.get("val_loss")][0]
    assert first_val < float([r for r in fresh if r.get("val_loss")][0]["val_loss"])
    wrong = config()
    wrong.init_from, wrong.num_convs = str(first), 2
    with pytest.raises(ValueError, match="network differs"):
        train_gnn(*data, wrong, tmp_path / "wrong")


def test_position_noise_changes_training_only(trained, data, tmp_path):
    _, plain = trained
    noisy_cfg = config()
    noisy_cfg.position_noise = 0.1
    noisy = [train_gnn(*data, noisy_cfg, tmp_path / d) for d in ("a", "b")]
    a, b, c = (torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in (*noisy, plain))
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # validation and inference see the frames as they are
    classifier = load_classifier(noisy[0])
    assert classifier.position_noise == 0.1
    batch = Batch.from_data_list(data[1][:2])
    with torch.no_grad():  # eval mode: no dropout, so only the noise is random
        val = [classifier._step(batch, "val") for _ in range(2)]
        train = [classifier._step(batch, "train") for _ in range(2)]
    assert torch.equal(val[0], val[1]) and not torch.equal(train[0], train[1])
    with pytest.raises(ValueError, match="position_noise must be >= 0"):
        GNNClassifier(FORMS, position_noise=-0.1)


def test_a_checkpoint_moved_alone_keeps_its_fits_command(trained, data, tmp_path):
    # every checkpoint carries its fit's command and hardware, so a fine-tuning (or resumed)
    # fit from a copy with no train_config.json beside it still records where it came from
    _, first = trained
    cfg = config(epochs=1)
    cfg.init_from = str(first)
    tuned = train_gnn(*data, cfg, tmp_path / "tuned", info={"command": "molenv train gnn D --out tuned"})
    alone = tmp_path / "copied" / "tuned.ckpt"
    alone.parent.mkdir()
    alone.write_bytes(tuned.read_bytes())
    again = config(epochs=1)
    again.init_from = str(alone)
    train_gnn(*data, again, tmp_path / "again")
    initial = json.loads((tmp_path / "again" / "train_config.json").read_text())["initial_weights"]
    assert initial["command"] == "molenv train gnn D --out tuned" and initial["hardware"].startswith("CPU")
    assert "epochs" not in initial  # only the train_config.json beside a checkpoint has those
