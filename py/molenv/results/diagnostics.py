"""Diagnostics of the trained models that their metrics.json lacks, computed from the
models and the dataset: does the SF-MLP's accuracy drift along a test trajectory, and how
does the GNN do on the core and the surface of the clusters?

Both report how much the molecules of a trajectory reorient (`order_change`): per molecule
and axis (the descriptor set's vectors, e.g. urea's C -> O and N1 -> N2) the P2 of the
angle between the axis in the first and in the last frame of the trajectory
(`molenv.order.orientational_order`; for a cluster after removing its overall rotation,
which a gas-phase cluster has without losing its crystal structure). ``order`` is its mean
over molecules and axes (1: every molecule keeps its orientation, up to a flip; 0 on
average: orientations uncorrelated with the first frame's, as in a liquid), ``reoriented``
the share of molecules with an axis below `molenv.order.REORIENTED_P2`. For the clusters the
GNN is also scored on the molecules that have *not* reoriented since the first frame
(`kept_orientation`, frame by frame): there the trajectory's label ("form I" for every
molecule of a form I cluster) is still true of the molecule, so this accuracy is the model's,
not the label's.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from molenv.constants import file_sha256
from molenv.order import reoriented
from molenv.results.layout import read_json

if TYPE_CHECKING:
    import numpy as np

    from molenv.dataset import Dataset

# the version of the measures in gnn/cluster_diagnostics.json: a cache of another version is
# recomputed (1: mean cos of one vector; 2: P2 of every axis, cluster rotation removed;
# 3: + the accuracy on the molecules that kept their orientation)
CLUSTER_DIAGNOSTICS_VERSION = 3


def order_change(ds: Dataset, source: str, index: int = -1) -> np.ndarray:
    """(n_molecules, n_axes) P2 of each molecule's axes (``ds.descriptor_set.vectors``) in
    frame `index` (default the last) of dataset source `source` against its first frame;
    without a box (a cluster) the overall rotation is removed first
    (`molenv.order.orientational_order`)."""
    from molenv.order import orientational_order

    d = ds.descriptor_set
    return orientational_order(ds.frame(source, index), ds.frame(source, 0), d.vectors, centre=d.centre_atom)


def kept_orientation(ds: Dataset, source: str, indices: Sequence[int]) -> np.ndarray:
    """(len(indices) * n_molecules,) bool, frame after frame: the molecules of each frame of
    `source` that have not turned since its first frame (`molenv.order.turned`), in the order
    of the molecules of `Dataset.frames`."""
    import numpy as np

    from molenv.order import turned

    d = ds.descriptor_set
    first = ds.frame(source, 0)
    return np.concatenate([~turned(ds.frame(source, int(i)), first, d.vectors, d.centre_atom) for i in indices])


def order_summary(p2: np.ndarray) -> tuple[float | None, float | None]:
    """``order`` (mean P2 over molecules and axes) and ``reoriented`` (share of reoriented
    molecules) of the molecules of `p2`; None, None for no molecules."""
    if not len(p2):
        return None, None
    return float(p2.mean()), float(reoriented(p2).mean())


def sf_diagnostics(work: Path, molecule: str) -> list[dict] | None:
    """Per periodic trajectory, from the SF model file and the dataset: how the molecules
    reoriented from the first to the last frame (``order``, ``reoriented``: module docstring)
    and, for the test frames, the accuracy, the per-frame accuracy
    (lowest, first and second half of the frames: does it drift?) and the most common wrong
    class. None without a model file."""
    import numpy as np

    from molenv.dataset import open_dataset
    from molenv.modelfile import read_model

    model_path = work / molecule / "sf" / "model.molenv"
    if not model_path.is_file():
        return None
    ds = open_dataset(work / molecule / "dataset")
    model = read_model(model_path)
    names = [n.lower() for n in model.classes]
    to_model = np.array([names.index(c.lower()) if c.lower() in names else -1 for c in ds.classes])
    rows = []
    for source in ds.sources:
        if not source["periodic"]:
            continue
        a = ds.arrays(source["name"])
        order, share = order_summary(order_change(ds, source["name"]))
        row = {"source": source["name"], "label": source["label"], "temperature": source["temperature_K"], "split": source["split"],
               "order": order, "reoriented": share}
        test = np.flatnonzero(a["split"] == 2)
        if len(test):
            truth = to_model[a["labels"][test]]
            pred = model.predict_proba(a["features"][test].reshape(-1, a["features"].shape[2])).argmax(1).reshape(truth.shape)
            per_frame = (pred == truth).mean(axis=1)
            half = len(per_frame) // 2
            wrong = pred[pred != truth]
            row.update(accuracy=float((pred == truth).mean()), lowest=float(per_frame.min()), first_half=float(per_frame[:half].mean()) if half else None,
                       second_half=float(per_frame[half:].mean()), frames=len(test))
            if len(wrong):
                k = np.bincount(wrong).argmax()
                row.update(main_error=model.classes[k], main_error_fraction=float((wrong == k).sum() / truth.size))
        rows.append(row)
    return rows


def gnn_cluster_diagnostics(work: Path, molecule: str) -> list[dict] | None:
    """Per cluster trajectory and split (val, test): the GNN's polymorph accuracy on the
    core (bulk-labelled) and on the surface molecules, and how each group reoriented from the
    first to the last frame of the trajectory (``order_*``, ``reoriented_*``: module
    docstring; core/surface as labelled in the first frame).
    None without a checkpoint. A forward pass over the cluster frames, so cached in
    gnn/cluster_diagnostics.json for the checkpoint and dataset."""
    import numpy as np

    d = work / molecule
    checkpoint = d / "gnn" / "checkpoints" / "best.ckpt"
    if not checkpoint.is_file():
        return None
    key = {"version": CLUSTER_DIAGNOSTICS_VERSION, "checkpoint_mtime": checkpoint.stat().st_mtime, "dataset": file_sha256(d / "dataset" / "manifest.json")}
    cache = d / "gnn" / "cluster_diagnostics.json"
    cached = read_json(cache)
    if cached and cached.get("key") == key:
        return cached["rows"]
    import torch

    from molenv.dataset import open_dataset
    from molenv.gnn.graph import frame_to_graph
    from molenv.gnn.lightning import load_classifier, predict_graphs

    torch.set_num_threads(1)
    ds = open_dataset(d / "dataset")
    classifier = load_classifier(checkpoint)
    names = [n.lower() for n in classifier.form_names]
    to_model = np.array([names.index(c.lower()) if c.lower() in names else -1 for c in ds.classes])
    rows = []
    for source in ds.sources:
        if source["periodic"]:
            continue
        a = ds.arrays(source["name"])
        p2 = order_change(ds, source["name"])
        surface0 = a["topology"][0] == 1
        order_core, reoriented_core = order_summary(p2[~surface0])
        order_surface, reoriented_surface = order_summary(p2[surface0])
        for split in ("val", "test"):
            items = list(ds.frames(split, sources=[source["name"]]))
            if not items:
                continue
            pred = predict_graphs(classifier, [frame_to_graph(it.frame, it.polymorph, it.topology) for it in items], embeddings=False)
            right = pred.polymorph == to_model[pred.y_polymorph]
            surface = pred.y_topology == 1
            kept = kept_orientation(ds, source["name"], [it.index for it in items])
            rows.append({"source": source["name"], "split": split, "frames": len(items), "temperature": source["temperature_K"],
                         "accuracy": float(right.mean()), "accuracy_core": float(right[~surface].mean()) if (~surface).any() else None,
                         "accuracy_surface": float(right[surface].mean()) if surface.any() else None, "surface_fraction": float(surface.mean()),
                         "order_core": order_core, "order_surface": order_surface, "reoriented_core": reoriented_core,
                         "reoriented_surface": reoriented_surface, "kept_fraction": float(kept.mean()),
                         "accuracy_kept": float(right[kept].mean()) if kept.any() else None})
    cache.write_text(json.dumps({"key": key, "rows": rows}, indent=1) + "\n")
    return rows
