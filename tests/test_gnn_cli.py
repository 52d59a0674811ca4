"""``molenv train gnn`` arguments and run, on toy graph files."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from _torch_support import one_torch_thread  # noqa: F401  (autouse)
from molenv.cli import CommandError
from molenv.gnn import cli, synthetic
from molenv.gnn.export import load_exported
from molenv.gnn.graph import frame_to_graph, load_graphs, save_graphs

FORMS = ["parallel", "antiparallel"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p


@pytest.fixture(scope="module")
def graph_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("graphs")
    rng = np.random.default_rng(0)
    graphs = [
        frame_to_graph(synthetic.crystal("parallel", (2, 2, 3), rng), polymorph=0, topology=0),
        frame_to_graph(synthetic.crystal("antiparallel", (2, 1, 3), rng), polymorph=1, topology=0),
    ]
    save_graphs(folder / "train.pt", graphs, FORMS)
    save_graphs(folder / "val.pt", graphs[::-1], FORMS)
    save_graphs(folder / "other.pt", graphs, ["x", "y"])
    return folder


def test_graph_file_round_trip(graph_files):
    graphs, names = load_graphs(graph_files / "train.pt")
    assert names == FORMS and len(graphs) == 2
    assert graphs[1].num_molecules == 12 and graphs[1].y_polymorph.tolist() == [1] * 12
    torch.save({"something": 1}, graph_files / "bad.pt")
    with pytest.raises(ValueError, match="not a molenv graph file"):
        load_graphs(graph_files / "bad.pt")


def test_train_gnn_command(graph_files, tmp_path):
    args = parser().parse_args(["--train", str(graph_files / "train.pt"), "--val", str(graph_files / "val.pt"), "--out", str(tmp_path), "--accelerator", "cpu", "--devices", "1", "--lr", "1e-3", "--lr-decay", "0.5", "--max-epochs", "2"])
    config = cli.config_from_args(args, FORMS)
    assert (config.num_convs, config.dropout, config.lr, config.devices, config.deterministic) == (1, 0.5, 1e-3, 1, True)
    assert (config.batching, config.max_time_min, config.min_delta, config.lr_decay, config.lr_patience) == ("stratified", None, 0.0, 0.5, 2)
    assert cli.run(args) == 0
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert "lr-Adam" in (tmp_path / "logs" / "metrics.csv").read_text().splitlines()[0]  # the learning rate is logged
    _, metadata = load_exported(tmp_path / "model.pt")
    assert metadata["form_names"] == FORMS


def test_frame_steps_need_a_dataset(graph_files, tmp_path):
    args = parser().parse_args(["--train", str(graph_files / "train.pt"), "--val", str(graph_files / "val.pt"), "--out", str(tmp_path), "--frame-step", "2"])
    with pytest.raises(CommandError, match="select dataset frames"):
        cli.run(args)
    with pytest.raises(SystemExit):  # refused by argparse (tests/test_bad_input.py has the message)
        parser().parse_args(["--train", str(graph_files / "train.pt"), "--val", str(graph_files / "val.pt"), "--out", str(tmp_path), "--val-frame-step", "0"])


def test_train_gnn_refuses_mixed_classes(graph_files, tmp_path):
    args = parser().parse_args(["--train", str(graph_files / "train.pt"), str(graph_files / "other.pt"), "--val", str(graph_files / "val.pt"), "--out", str(tmp_path)])
    with pytest.raises(CommandError, match="differ"):
        cli.run(args)
