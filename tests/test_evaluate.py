"""Evaluation shared by the SF and graph classifiers: metrics against hand-computed numbers,
class matching by name, output files, model recognition, and the GNN path on a dataset
(`molenv train gnn DATASET`, `molenv evaluate`)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from molenv.cli import main
from molenv.evaluate import Head, evaluate_outputs, evaluate_sf, head_metrics
from molenv.featurize import featurize, sources_from_manifest
from molenv.reference import shipped_reference_model

from conftest import REPO


def one_hot(columns, n):
    p = np.full((len(columns), n), 0.01)
    p[np.arange(len(columns)), columns] = 1.0
    return p / p.sum(1, keepdims=True)


def test_metrics_against_hand_counts():
    # true: I I I IV IV melt (and one unlabelled); predicted: I IV I IV IV I
    head = Head("polymorph", ["I", "IV", "melt"], ["I", "IV", "Melt", "III"], np.array([0, 0, 0, 1, 1, 2, -1]), one_hot([0, 1, 0, 1, 1, 0, 3], 4))
    names, y_true, y_pred = head.matched()
    assert names == ["I", "IV", "Melt", "III"]  # melt matched to Melt ignoring case
    m = head_metrics(head, groups=np.array([0, 0, 0, 1, 1, 1, 1]), group_names=["a", "b"])
    assert m["n"] == 6 and m["micro_f1"] == pytest.approx(4 / 6)
    assert m["per_class"]["I"] == {"recall": pytest.approx(2 / 3), "precision": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3), "support": 3}
    assert m["per_class"]["IV"]["recall"] == 1.0 and m["per_class"]["IV"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["Melt"]["recall"] == 0.0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    cm = m["confusion_matrix"]
    assert cm["rows_true"] == ["I", "IV", "Melt"] and cm["columns_predicted"] == ["I", "IV", "Melt", "III"]
    assert cm["counts"] == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0]]
    assert m["accuracy_by_source"] == {"a": {"n": 3, "accuracy": pytest.approx(2 / 3)}, "b": {"n": 3, "accuracy": pytest.approx(2 / 3)}}
    # a true class the model does not know gets its own column
    m = head_metrics(Head("polymorph", ["I", "V"], ["I", "IV"], np.array([0, 1]), one_hot([0, 0], 2)))
    assert m["confusion_matrix"]["columns_predicted"] == ["I", "IV", "V"] and m["confusion_matrix"]["counts"] == [[1, 0, 0], [1, 0, 0]]


def test_outputs_written(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 40)
    features = rng.normal(size=(80, 6)) + 3 * y[:, None]
    head = Head("polymorph", ["a", "b"], ["a", "b"], y, one_hot((features[:, 0] > 1.5).astype(int), 2))
    metrics = evaluate_outputs(tmp_path, [head], {"descriptors": features}, tsne_samples=50, info={"what": "toy"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion_polymorph.png", "metrics.json", "tsne_descriptors.png"]
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics)) and on_disk["info"] == {"what": "toy"}
    assert 0.8 < on_disk["heads"]["polymorph"]["micro_f1"] <= 1.0
    assert (tmp_path / "tsne_descriptors.png").read_bytes()[:4] == b"\x89PNG"


def test_reference_model_on_md_data(urea_md_dataset, reference_dir, tmp_path):
    """The 7-class reference urea model (trained on the authors' LAMMPS data) on our MD
    frames: class names are matched (melt = Melt), extra model classes become columns."""
    model = shipped_reference_model("urea", reference_dir)
    m = evaluate_sf(model, urea_md_dataset, tmp_path, "test", tsne_samples=0)
    head = m["heads"]["polymorph"]
    assert head["confusion_matrix"]["columns_predicted"] == ["I", "IV", "Melt", "A", "B", "C", "III"]
    assert head["confusion_matrix"]["rows_true"] == ["I", "IV", "Melt"]
    # our data follow the authors' labelling and force field (issue 13): their model reads
    # our crystals (the first data, with form IV's N1/N2 labelled otherwise, gave IV 0.0)
    assert head["per_class"]["I"]["recall"] > 0.95 and head["per_class"]["IV"]["recall"] > 0.95
    assert 0 <= head["micro_f1"] <= 1 and head["n"] == 4 * 160 + 4 * 180 + 160


@pytest.fixture
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gnn_trains_on_a_dataset_and_evaluates(tmp_path, capsys, one_torch_thread):
    """`molenv train gnn DATASET` (one epoch) and `molenv evaluate` of its checkpoint:
    polymorph and topology heads, both embeddings."""
    sources = sources_from_manifest(REPO / "data/manifest.json", "urea", ["urea-I-100K", "urea-melt-350K", "urea-I-cluster-100K"])
    for s in sources:
        s.reader["stop"] = 3
    ds = featurize(sources, "urea", tmp_path / "ds", split_mode="random", val_fraction=0.34, test_fraction=0.34, progress=False)
    assert ds.count_frames("train") == ds.count_frames("val") == ds.count_frames("test") == 3

    def molenv(*args):
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
        out = capsys.readouterr()
        assert exit_.value.code == 0, out.err[-3000:]
        return out.out

    with pytest.raises(SystemExit):
        main(["train", "gnn", str(tmp_path / "ds"), "--train", "x.pt", "--out", str(tmp_path / "gnn")])
    assert "give a dataset directory, or --train and --val" in capsys.readouterr().err
    molenv("train", "gnn", tmp_path / "ds", "--out", tmp_path / "gnn", "--max-epochs", "1", "--accelerator", "cpu", "--devices", "1", "--no-export")
    printed = molenv("evaluate", tmp_path / "gnn", tmp_path / "ds", "--out", tmp_path / "eval", "--tsne-samples", "60", "--batch-size", "1")
    assert "polymorph: micro F1" in printed and "topology: micro F1" in printed
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["info"]["kind"] == "gnn"
    assert metrics["heads"]["polymorph"]["n"] == 160 + 160 + 188 == metrics["heads"]["topology"]["n"]
    surface = int(ds.arrays("urea-I-cluster-100K")["topology"][ds.arrays("urea-I-cluster-100K")["split"] == 2].sum())
    assert metrics["heads"]["topology"]["confusion_matrix"]["rows_true"] == ["bulk", "surface"]
    assert sum(metrics["heads"]["topology"]["confusion_matrix"]["counts"][1]) == surface > 0
    assert set(metrics["heads"]["polymorph"]["accuracy_by_source"]) == {s.name for s in sources}
    for head in metrics["heads"].values():
        assert 0 <= head["micro_f1"] <= 1
    for name in ("confusion_polymorph.png", "confusion_topology.png", "tsne_pooled_embedding.png", "tsne_last_hidden_layer.png"):
        assert (tmp_path / "eval" / name).is_file()
