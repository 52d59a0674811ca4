"""molenv.results (the command line of scripts/results.py) writes docs/results.md and
results.json from the files of the runs (here: made-up evaluations of a real dataset
manifest; no training), and runs the steps that make them (here: --dry-run)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from molenv.evaluate import Head, evaluate_outputs
from molenv.protocols import crystal_test_temperature, extra_training, has_test_clusters, method_only
from molenv.results.cli import main
from molenv.results.collect import train_record
from molenv.results.render import convolutions

REPO = Path(__file__).resolve().parent.parent


def results_script(argv: list[str]) -> int:
    """scripts/results.py ARGV, on this repository."""
    return main(argv, repo=REPO)


def fake_head(name, classes, y_true, errors, rng):
    """A head whose predictions are the true labels except for `errors` molecules."""
    y_pred = y_true.copy()
    wrong = rng.choice(len(y_true), errors, replace=False)
    y_pred[wrong] = (y_pred[wrong] + 1) % len(classes)
    return Head(name, classes, classes, y_true, np.eye(len(classes))[y_pred])


def test_report_from_runs(urea_md_dataset, tmp_path):
    rng = np.random.default_rng(0)
    work, docs = tmp_path / "work", tmp_path / "docs"
    shutil.copytree(urea_md_dataset.path, work / "urea" / "dataset")
    classes = urea_md_dataset.classes
    y = rng.integers(0, len(classes), 200)
    evaluate_outputs(work / "urea" / "sf" / "eval-test", [fake_head("polymorph", classes, y, 0, rng)], {"descriptors": rng.normal(size=(200, 4))}, tsne_samples=50)
    (work / "urea" / "sf" / "train_config.json").write_text(json.dumps({"config": {"max_epochs": 500, "patience": 30}, "provenance": {"train_molecules": 123}, "epochs": 40, "best_val_loss": 0.01}))
    topology = rng.integers(0, 2, 200)
    gnn_heads = [fake_head("polymorph", classes, y, 10, rng), fake_head("topology", ["bulk", "surface"], topology, 3, rng)]
    # molecules 0-149 from a crystal, 150-199 from a cluster
    names = urea_md_dataset.source_names
    groups = np.where(np.arange(200) < 150, names.index("urea-I-200K"), names.index("urea-I-cluster-100K"))
    right = gnn_heads[0].probabilities.argmax(1) == y
    for split in ("test", "val"):
        evaluate_outputs(work / "urea" / "gnn" / f"eval-{split}", gnn_heads, groups=groups, group_names=names, tsne_samples=0, plots=split == "test")
    config = {"form_names": classes, "num_convs": 1, "dropout": 0.1, "lr": 1e-3, "batch_size": 4, "batching": "stratified", "frame_step": 2, "val_frame_step": 1,
              "n_train_graphs": 80, "n_val_graphs": 40, "n_train_molecules": 9999, "epochs": 12, "best_epoch": 9, "best_val_loss": 0.2,
              "stopped_by": "max_time (40.0 min)", "wall_time_s": 1234.0, "command": "molenv train gnn DATASET --out GNN", "max_time_min": 40.0,
              "hardware": "1 x NVIDIA H100 80GB HBM3"}
    (work / "urea" / "gnn" / "train_config.json").write_text(json.dumps(config))
    # the authors' model on the SF-MLP's test molecules: 4 errors
    evaluate_outputs(work / "urea" / "reference" / "eval-test", [fake_head("polymorph", classes, y, 4, rng)], {}, tsne_samples=0, plots=False)

    assert results_script(["--report-only", "--molecule", "urea", "--work", str(work), "--docs", str(docs)]) == 0
    results = json.loads((docs / "results.json").read_text())
    assert set(results) == {"urea"} and set(results["urea"]) == {"sf", "gnn"}
    assert results["urea"]["sf"]["f1_polymorph"] == 1.0 and results["urea"]["sf"]["meets_goal"]
    assert results["urea"]["gnn"]["f1_polymorph"] == pytest.approx(0.95)
    assert results["urea"]["gnn"]["f1_topology"] == pytest.approx(1 - 3 / 200)
    assert results["urea"]["gnn"]["f1_polymorph_periodic"] == pytest.approx(right[:150].mean())
    assert results["urea"]["gnn"]["f1_polymorph_clusters"] == pytest.approx(right[150:].mean())
    assert not results["urea"]["gnn"]["meets_goal"]
    assert results["urea"]["gnn"]["published"]["f1_polymorph"] == 0.969
    assert results["urea"]["gnn"]["training"]["command"] == "molenv train gnn DATASET --out GNN"
    text = (docs / "results.md").read_text()
    row = f"| urea | GNN | **0.950** | {right[:150].mean():.3f} | {right[150:].mean():.3f} | 0.969 (crystals 200 K + melt 350 K) | - | **0.985** |"
    assert row in text
    assert results["urea"]["sf"]["authors_model"]["f1_polymorph"] == pytest.approx(0.98)
    assert "| urea | SF-MLP | **1.000** | 1.000 | (bulk only) | >= 0.98 (bulk only) | 0.980 | (bulk only) |" in text
    assert "The original authors' published SF-MLP" in text and "micro F1 **0.9800**" in text
    assert "| nicotinamide | GNN | not run |" in text
    assert "every 2nd frame" in text and "stopped by max_time (40.0 min)" in text
    assert "deterministic kernels, on 1 x NVIDIA H100 80GB HBM3." in text  # the hardware of the fit
    assert "Largest polymorph confusions" in text  # below the goal: the confusions are listed
    figures = sorted(p.name for p in (docs / "results").iterdir())
    assert figures == ["urea_gnn_confusion_polymorph.png", "urea_gnn_confusion_topology.png", "urea_sf_confusion_polymorph.png", "urea_sf_tsne_descriptors.png"]
    for name in figures:
        assert f"](results/{name})" in text


def _entry(name, system, split, t, molecule="nicotinamide"):
    return {"name": name, "molecule": molecule, "system": system, "split": split, "temperature_K": t}


NICOTINAMIDE_ENTRIES = [
    _entry("nicotinamide-I-100K", "crystal", "train", 100.0), _entry("nicotinamide-II-100K", "crystal", "train", 100.0),
    _entry("nicotinamide-melt-350K", "melt", "train", 350.0),
    _entry("nicotinamide-I-350K", "crystal", "test", 350.0), _entry("nicotinamide-II-350K", "crystal", "test", 350.0),
    _entry("nicotinamide-I-cluster-100K", "cluster", "train", 100.0),
    _entry("urea-I-100K", "crystal", "train", 100.0, "urea"),
]


def test_protocol_selection():
    """The paper protocol leaves out training crystals above the lowest training temperature."""
    assert extra_training(NICOTINAMIDE_ENTRIES, "nicotinamide") == []
    assert method_only(NICOTINAMIDE_ENTRIES, "nicotinamide") is None  # nothing to leave out: featurize takes all
    warm = [_entry("nicotinamide-I-250K", "crystal", "train", 250.0), _entry("nicotinamide-II-250K", "crystal", "train", 250.0)]
    entries = NICOTINAMIDE_ENTRIES + warm
    assert [e["name"] for e in extra_training(entries, "nicotinamide")] == ["nicotinamide-I-250K", "nicotinamide-II-250K"]
    assert extra_training(entries, "urea") == []
    assert method_only(entries, "nicotinamide") == ["nicotinamide-*-100K", "nicotinamide-*-350K"]
    # an extra training crystal at the test temperature: that temperature is listed by name
    entries = NICOTINAMIDE_ENTRIES + [_entry("nicotinamide-III-350K", "crystal", "train", 350.0)]
    assert method_only(entries, "nicotinamide") == ["nicotinamide-*-100K", "nicotinamide-melt-350K", "nicotinamide-I-350K", "nicotinamide-II-350K"]
    # clusters count on their own: a warmer training cluster is extra, the cold ones are not
    entries = NICOTINAMIDE_ENTRIES + [_entry("nicotinamide-I-cluster-150K", "cluster", "train", 150.0), _entry("nicotinamide-I-150K", "crystal", "train", 150.0)]
    assert [e["name"] for e in extra_training(entries, "nicotinamide")] == ["nicotinamide-I-cluster-150K", "nicotinamide-I-150K"]
    assert method_only(entries, "nicotinamide") == ["nicotinamide-*-100K", "nicotinamide-*-350K"]


def test_protocol_commands(tmp_path, capsys):
    """--dry-run: the paper protocol's featurize selects without the 250 K crystals, the
    multi-temperature one takes every trajectory and runs in WORK/multi-temperature."""
    manifest = tmp_path / "manifest.json"
    entries = NICOTINAMIDE_ENTRIES + [_entry("nicotinamide-I-250K", "crystal", "train", 250.0)]
    manifest.write_text(json.dumps({"trajectories": entries}))
    work = tmp_path / "work"
    argv = ["--dry-run", "--protocol", "method", "multi-temperature", "--molecule", "nicotinamide", "urea", "--model", "sf", "--manifest", str(manifest), "--work", str(work)]
    assert results_script(argv) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if "featurize:" in l or "skipped" in l]
    assert f"--out {work}/nicotinamide/dataset --no-progress --overwrite --only 'nicotinamide-*-100K' 'nicotinamide-*-350K'" in lines[0]
    assert "molenv featurize --manifest" in lines[1] and "urea" in lines[1] and "--only" not in lines[1]
    assert f"--out {work}/multi-temperature/nicotinamide/dataset --no-progress --overwrite  (log" in lines[2]
    assert "urea: no training crystals beyond the lowest temperature" in lines[3]


def test_thermal_augmentation_protocol_commands(tmp_path, capsys):
    """--protocol thermal-augmentation: the paper protocol's trajectories, featurized with the
    test crystals' temperature as --augment-temperature, in WORK/thermal-augmentation."""
    manifest = tmp_path / "manifest.json"
    entries = NICOTINAMIDE_ENTRIES + [_entry("nicotinamide-I-250K", "crystal", "train", 250.0)]
    manifest.write_text(json.dumps({"trajectories": entries}))
    work = tmp_path / "work"
    argv = ["--dry-run", "--protocol", "thermal-augmentation", "--molecule", "nicotinamide", "--model", "sf", "--manifest", str(manifest), "--work", str(work)]
    assert results_script(argv) == 0
    featurize = [l for l in capsys.readouterr().out.splitlines() if "featurize:" in l]
    assert len(featurize) == 1
    assert (f"--out {work}/thermal-augmentation/nicotinamide/dataset --no-progress --overwrite --only 'nicotinamide-*-100K' "
            "'nicotinamide-*-350K' --augment-temperature 350  (log") in featurize[0]
    assert crystal_test_temperature(entries, "nicotinamide") == 350.0
    # clusters among the test trajectories (urea's): the training clusters are warmed too
    assert not has_test_clusters(entries, "nicotinamide")
    with_clusters = entries + [_entry("nicotinamide-I-cluster-350K", "cluster", "test", 350.0)]
    assert has_test_clusters(with_clusters, "nicotinamide")
    manifest.write_text(json.dumps({"trajectories": with_clusters}))
    assert results_script(argv) == 0
    featurize = [l for l in capsys.readouterr().out.splitlines() if "featurize:" in l]
    assert "--augment-temperature 350 --augment-clusters  (log" in featurize[0]
    with pytest.raises(ValueError, match="urea: the manifest's test crystals are at no temperature"):
        crystal_test_temperature(entries, "urea")
    with pytest.raises(ValueError, match="at 300 K, 350 K; thermal augmentation needs them at one temperature"):
        crystal_test_temperature(entries + [_entry("nicotinamide-II-300K", "crystal", "test", 300.0)], "nicotinamide")


def test_gnn_accelerator(tmp_path, capsys):
    """--gnn-accelerator reaches the GNN training command (default: one CPU thread)."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"trajectories": NICOTINAMIDE_ENTRIES}))
    for extra, expected in (([], "--threads 1 --accelerator cpu --devices 1"), (["--gnn-accelerator", "gpu"], "--threads 1 --accelerator gpu --devices 1")):
        argv = ["--dry-run", "--molecule", "urea", "--model", "gnn", "--manifest", str(manifest), "--work", str(tmp_path / "work"), *extra]
        assert results_script(argv) == 0
        train = [l for l in capsys.readouterr().out.splitlines() if "train_gnn:" in l]
        assert len(train) == 1 and expected in train[0]


def test_report_multi_temperature(urea_md_dataset, tmp_path):
    """Runs of the multi-temperature protocol are reported next to the paper protocol's,
    which stay as they are."""
    rng = np.random.default_rng(1)
    work, docs = tmp_path / "work", tmp_path / "docs"
    classes = urea_md_dataset.classes
    y = rng.integers(0, len(classes), 200)
    for base, errors in ((work, 20), (work / "multi-temperature", 2), (work / "thermal-augmentation", 10)):
        shutil.copytree(urea_md_dataset.path, base / "urea" / "dataset")
        evaluate_outputs(base / "urea" / "sf" / "eval-test", [fake_head("polymorph", classes, y, errors, rng)], {"descriptors": rng.normal(size=(200, 4))}, tsne_samples=50)
        (base / "urea" / "sf" / "train_config.json").write_text(json.dumps({"config": {"max_epochs": 500, "patience": 30}, "provenance": {"train_molecules": 123}, "epochs": 40, "best_val_loss": 0.01}))
    assert results_script(["--report-only", "--molecule", "urea", "--work", str(work), "--docs", str(docs)]) == 0
    results = json.loads((docs / "results.json").read_text())
    assert set(results["urea"]) == {"sf", "sf_multi_temperature", "sf_thermal_augmentation"}
    assert results["urea"]["sf_thermal_augmentation"]["protocol"] == "thermal-augmentation"
    assert results["urea"]["sf"]["f1_polymorph"] == pytest.approx(0.9) and results["urea"]["sf"]["protocol"] == "method"
    multi = results["urea"]["sf_multi_temperature"]
    assert multi["f1_polymorph"] == pytest.approx(0.99) and multi["protocol"] == "multi-temperature" and multi["meets_goal"]
    assert multi["train_crystal_temperatures_K"] == [100.0]
    text = (docs / "results.md").read_text()
    assert "| urea | SF-MLP | **0.900** |" in text  # the paper-protocol summary
    assert "## Beyond the paper: multi-temperature training" in text
    assert "| urea | SF-MLP | 100 | **0.990** | 0.900 | +0.090 |" in text
    assert "## urea: multi-temperature training (crystals at 100 K; not the paper's protocol)" in text
    assert "## Beyond the paper: thermal augmentation" in text and "| urea | SF-MLP | 100 | **0.950** | 0.900 | +0.050 |" in text
    assert "## urea: thermal-augmentation training (crystals at 100 K; not the paper's protocol)" in text
    figures = sorted(p.name for p in (docs / "results").iterdir())
    assert figures == ["urea_sf_confusion_polymorph.png", "urea_sf_multi_temperature_confusion_polymorph.png", "urea_sf_thermal_augmentation_confusion_polymorph.png",
                       "urea_sf_tsne_descriptors.png"]
    assert "](results/urea_sf_multi_temperature_confusion_polymorph.png)" in text


def test_train_record_of_a_resumed_gnn_fit(tmp_path):
    # `molenv train gnn --resume`: both commands, the fitting time of both parts
    config = {"epochs": 40, "best_epoch": 38, "best_val_loss": 0.03, "stopped_by": "max_time (175.0 min)", "wall_time_s": 3000.0,
              "command": "molenv train gnn D --out B --resume A/checkpoints/best.ckpt --max-time 175", "max_time_min": 175.0,
              "resumed_fit": {"checkpoint_epoch": 27, "epochs": 29, "best_epoch": 27, "stopped_by": "max_time (80.0 min)", "wall_time_s": 4800.0,
                              "command": "molenv train gnn D --out A --max-time 80"}}
    t = train_record("gnn", {"config": config, "dir": tmp_path}, {"train_gnn": {"command": "molenv train gnn D --out A --max-time 80", "wall_s": 4900.0}})
    assert t["command"].splitlines() == ["molenv train gnn D --out A --max-time 80", config["command"]]
    assert t["fit_s"] == 7800.0 and t["wall_s"] is None and t["first_fit"]["checkpoint_epoch"] == 27
    assert t["two_parts"] == "resumed"
    assert t["continued_s"] == 3000.0


def test_train_record_of_a_fine_tuned_gnn_fit(tmp_path):
    # `molenv train gnn --init-from`: the first fit's record comes from initial_weights
    config = {"epochs": 20, "best_epoch": 19, "best_val_loss": 0.05, "stopped_by": "max_time (3.2 min)", "wall_time_s": 190.0, "num_convs": 2,
              "position_noise": 0.05, "frame_step": 1, "command": "molenv train gnn D --out B --convs 2 --init-from A/best.ckpt",
              "initial_weights": {"checkpoint_epoch": 45, "epochs": 56, "stopped_by": "early stopping", "wall_time_s": 340.0,
                                  "command": "molenv train gnn D --out A --convs 2"}}
    t = train_record("gnn", {"config": config, "dir": tmp_path}, {})
    assert t["two_parts"] == "fine-tuned" and t["first_fit"]["checkpoint_epoch"] == 45
    assert t["command"].splitlines() == ["molenv train gnn D --out A --convs 2", config["command"]]
    assert t["fit_s"] == 530.0 and t["options"]["num_convs"] == 2 and t["options"]["position_noise"] == 0.05
    assert convolutions(1) == "1 convolution (published architecture)"
    assert convolutions(2) == "2 convolutions (the published model has 1)"


def test_gnn_convs_option(tmp_path, capsys):
    """--gnn-convs reaches `molenv train gnn --convs`; the default is urea's two convolutions,
    nicotinamide's single one (published), which adds no option."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"trajectories": NICOTINAMIDE_ENTRIES}))
    cases = ((["--molecule", "urea"], True), (["--molecule", "urea", "--gnn-convs", "1"], False),
             (["--molecule", "nicotinamide"], False), (["--molecule", "nicotinamide", "--gnn-convs", "2"], True))
    for extra, expected in cases:
        argv = ["--dry-run", "--model", "gnn", "--manifest", str(manifest), "--work", str(tmp_path / "work"), *extra]
        assert results_script(argv) == 0
        train = [l for l in capsys.readouterr().out.splitlines() if "train_gnn:" in l]
        assert len(train) == 1 and ("--convs 2" in train[0]) == expected


def test_authors_model_commands(tmp_path, capsys):
    """With the authors' files in --reference the SF-MLP steps import their model and evaluate
    it on the same test split; without them the step is left out with a message."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"trajectories": NICOTINAMIDE_ENTRIES}))
    reference = tmp_path / "reference"
    (reference / "nicotinamide").mkdir(parents=True)
    for name in ("sf_mlp_weights_molstruc.txt", "sf_input_molstruc.dat"):
        (reference / "nicotinamide" / name).write_text("")
    work = tmp_path / "work"
    argv = ["--dry-run", "--molecule", "nicotinamide", "urea", "--model", "sf", "--manifest", str(manifest), "--work", str(work), "--reference", str(reference)]
    assert results_script(argv) == 0
    out = capsys.readouterr().out.splitlines()
    [imported] = [l for l in out if "import_reference:" in l]
    assert (f"molenv import-reference --weights {reference}/nicotinamide/sf_mlp_weights_molstruc.txt --sf-input {reference}/nicotinamide/sf_input_molstruc.dat "
            f"--spec nicotinamide --classes I,II,III,IV,V,VI,VII,VIII,IX,Melt --out {work}/nicotinamide/reference/model.molenv") in imported
    [evaluated] = [l for l in out if "evaluate_reference:" in l]
    assert f"molenv evaluate {work}/nicotinamide/reference/model.molenv {work}/nicotinamide/dataset --out {work}/nicotinamide/reference/eval-test --split test" in evaluated
    assert any(l.startswith("urea: the authors' model is not evaluated") for l in out)  # no urea folder there


def test_script_runs_the_module(tmp_path):
    """scripts/results.py is the command line of molenv.results.cli, on this repository."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"trajectories": NICOTINAMIDE_ENTRIES}))
    argv = ["--dry-run", "--molecule", "urea", "--model", "sf", "--manifest", str(manifest), "--work", str(tmp_path / "work")]
    run = subprocess.run([sys.executable, str(REPO / "scripts" / "results.py"), *argv], capture_output=True, text=True, check=True)
    assert f"featurize: molenv featurize --manifest {manifest} --molecule urea --out {tmp_path}/work/urea/dataset" in run.stdout
    assert "train_sf: molenv train sf" in run.stdout
