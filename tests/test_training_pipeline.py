"""End to end on the committed urea MD data, through the command line: featurize (every
10th frame of forms I and IV at 100 K and 200 K and of the melt) -> train sf (a few
epochs) -> evaluate -> export -> MOLENV_CLASSIFY in `plumed driver` gives the probabilities
of the Python model to 1e-8 on test frames."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from molenv.cli import main
from molenv.dataset import open_dataset
from molenv.modelfile import read_model
from molenv.sf.train import load_sf

from conftest import REPO

sys.path.insert(0, str(REPO / "regtest"))
from harness import run_driver, xyz_text  # noqa: E402

NAMES = ["urea-I-100K", "urea-IV-100K", "urea-melt-350K", "urea-I-200K", "urea-IV-200K"]


def molenv(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    out = capsys.readouterr()
    assert exit_.value.code == 0, out.err[-3000:]
    return out.out


def test_featurize_train_evaluate_export_plumed(tmp_path, capsys, plumed_module):
    if not all((REPO / "data" / "urea" / f"{n}.xtc").is_file() for n in NAMES):
        pytest.skip("the urea MD data (data/urea) are not there")
    ds_dir, run, evaluation = tmp_path / "ds", tmp_path / "run", tmp_path / "eval"
    molenv(capsys, "featurize", "--manifest", REPO / "data" / "manifest.json", "--molecule", "urea", "--only", *NAMES, "--step", "10", "--out", ds_dir, "--no-progress")
    printed = molenv(capsys, "train", "sf", ds_dir, "--out", run, "--max-epochs", "5", "--no-progress", "--name", "urea test model")
    assert "validation micro F1" in printed and (run / "model.molenv").is_file()
    printed = molenv(capsys, "evaluate", run, ds_dir, "--out", evaluation, "--tsne-samples", "150")
    metrics = json.loads((evaluation / "metrics.json").read_text())
    polymorph = metrics["heads"]["polymorph"]
    # 200 K crystals + held-out melt frames
    sources = json.loads((ds_dir / "manifest.json").read_text())["sources"]
    assert polymorph["n"] == sum(s["frames"]["test"] * s["n_molecules"] for s in sources) > 0
    # five epochs on a few frames already classify the warmer crystals and the melt
    assert 0.9 < polymorph["micro_f1"] <= 1.0, printed
    assert all(0 <= c["recall"] <= 1 for c in polymorph["per_class"].values())
    assert sum(map(sum, polymorph["confusion_matrix"]["counts"])) == polymorph["n"]
    for name in ("confusion_polymorph.png", "tsne_descriptors.png", "tsne_last_hidden_layer.png"):
        assert (evaluation / name).read_bytes()[:4] == b"\x89PNG"

    molenv(capsys, "export", run, "--out", tmp_path / "urea.molenv")
    model = read_model(tmp_path / "urea.molenv")
    assert model.name == "urea SF-MLP (I, IV, melt)" and model.classes == ["I", "IV", "melt"]
    assert read_model(run / "model.molenv").name == "urea test model"
    assert model.meta["dataset_manifest_sha256"] == open_dataset(ds_dir).manifest_sha256()

    # two test frames of 160 molecules each (form I at 200 K, a held-out melt frame)
    dataset = open_dataset(ds_dir)
    items = [next(dataset.frames("test", sources=[name])) for name in ("urea-I-200K", "urea-melt-350K")]
    frames = [item.frame.positions[item.frame.molecules.reshape(-1)] for item in items]  # molecule by molecule, spec order
    n_atoms, n_mol = len(frames[0]), items[0].frame.n_molecules
    result = run_driver(
        tmp_path / "plumed",
        "UNITS LENGTH=A\nLOAD FILE=@MOLENV_LIB@\n"
        f"c: MOLENV_CLASSIFY MODEL={tmp_path / 'urea.molenv'} MOLECULES=1-{n_atoms} PROB_FILE=prob\n"
        "PRINT ARG=c.* FILE=colvar FMT=%.17g\n",
        ["--ixyz", "traj.xyz", "--length-units", "A"],
        {"traj.xyz": xyz_text(frames, [item.frame.box_matrix() for item in items])},
    )
    assert result.returncode == 0, result.output[-3000:]
    _, prob = result.read_table("prob")
    assert prob.shape == (2 * n_mol, 2 + 3)
    checkpoint_model = load_sf(run / "checkpoints" / "best.ckpt").to_model()
    for t, item in enumerate(items):
        plumed_p = prob[t * n_mol:(t + 1) * n_mol, 2:]
        assert np.abs(plumed_p - model.predict_proba(item.features)).max() <= 1e-8
        assert np.abs(plumed_p - checkpoint_model.predict_proba(item.features)).max() <= 1e-8
        # and PLUMED's classes are the right ones
        assert (plumed_p.argmax(1) == item.polymorph).mean() > 0.9


def test_committed_urea_model_classifies_the_warmer_crystals():
    """models/urea_sf.molenv (trained on data/urea at 100 K + melt) on 200 K frames."""
    from molenv.descriptors import compute_descriptors
    from molenv.trajectory import Trajectory

    if not (REPO / "data" / "urea" / "urea-IV-200K.xtc").is_file():
        pytest.skip("the urea MD data (data/urea) are not there")
    model = read_model(REPO / "models" / "urea_sf.molenv")
    for name, label in (("urea-I-200K", "I"), ("urea-IV-200K", "IV")):
        frame = Trajectory(REPO / "data" / "urea" / f"{name}.xtc", "urea", topology=REPO / "data" / "urea" / f"{name}.pdb.gz")[-1]
        p = model.predict_proba(compute_descriptors(frame, model.descriptors))
        assert (p.argmax(1) == model.classes.index(label)).mean() > 0.99
