"""`molenv.models.open_model`: each kind of model told apart by its content, not its name,
and one message for a path that holds none of them. (The GNN kinds: tests/test_classify.py;
an SF checkpoint and its run directory: tests/test_sf.py.)"""
from __future__ import annotations

import zipfile

import pytest
import torch

from molenv.modelfile import write_model
from molenv.models import ClassifierError, open_model
from molenv.reference import shipped_reference_model


def test_kinds_by_content(tmp_path, reference_dir):
    write_model(shipped_reference_model("urea", reference_dir), tmp_path / "m.pt")  # a model file, whatever its name
    model = open_model(tmp_path / "m.pt")
    assert (type(model).__name__, model.kind, model.form, model.path) == ("SFFrameClassifier", "sf", "model-file", tmp_path / "m.pt")
    assert model.classes == ["I", "IV", "Melt", "A", "B", "C", "III"]
    # an SF checkpoint is recognised without reading its network (which this one lacks)
    torch.save({"state_dict": {}, "molenv_kind": "sf"}, tmp_path / "sf.molenv")
    sf = open_model(tmp_path / "sf.molenv")
    assert (type(sf).__name__, sf.kind, sf.form) == ("SFFrameClassifier", "sf", "checkpoint")
    # a training output directory is its best checkpoint
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}, "molenv_kind": "sf"}, tmp_path / "run" / "checkpoints" / "best.ckpt")
    assert open_model(tmp_path / "run").path == tmp_path / "run" / "checkpoints" / "best.ckpt"


@pytest.mark.parametrize("name, content, message", [
    ("nothing.ckpt", None, "nothing.ckpt: model file not found"),
    ("x.ckpt", b"hello", "x.ckpt: not a molenv model file (first record 'molenv_model'), a checkpoint of `molenv train sf` or "
                         "`molenv train gnn` (.ckpt) or a TorchScript export of a GNN"),
    ("y.ckpt", {"state_dict": {}, "hyper_parameters": {}}, "y.ckpt: a checkpoint, but neither of an SF classifier nor of a graph classifier"),
    ("z.ckpt", [1, 2], "z.ckpt: a torch file, but not a Lightning checkpoint (no state_dict)"),
    ("damaged.ckpt", "damaged", "damaged.ckpt: cannot read the checkpoint"),
])
def test_refused(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "damaged":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", b"not a pickle")
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ClassifierError) as err:
        open_model(path)
    assert message in str(err.value)


def test_a_directory_is_a_training_output_or_refused(tmp_path):
    with pytest.raises(ClassifierError, match=r": is a directory, not a model file, nor a training output \(no checkpoints/best.ckpt\)"):
        open_model(tmp_path)


def test_evaluate_takes_a_gnn_from_its_checkpoint(tmp_path):
    """`molenv evaluate` opens the model with `open_model` too; a GNN's embeddings (t-SNE)
    come from its torch network, so a TorchScript export is refused, naming the checkpoint."""
    from molenv.evaluate import evaluate_path
    from molenv.gnn.export import export_torchscript
    from molenv.gnn.lightning import GNNClassifier

    net = GNNClassifier(["I", "IV"], hidden=16, conv_channels=8, num_radial=4, dropout=0.0).eval()
    script = export_torchscript(net.model, tmp_path / "net.pt", net.form_names)
    assert (open_model(script).kind, open_model(script).form) == ("gnn", "torchscript")
    with pytest.raises(ClassifierError, match=r"net.pt: a GNN TorchScript export; a GNN is evaluated from its checkpoint"):
        evaluate_path(script, None, tmp_path / "out")
    assert not (tmp_path / "out").exists()
