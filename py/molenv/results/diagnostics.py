"""Diagnostics of the trained models that their metrics.json lacks, computed from the
models and the dataset: does the SF-MLP's accuracy drift along a test trajectory, and how
does the GNN do on the core and the surface of the clusters? Both look at the
orientational order of the molecules: the mean cosine between each molecule's first
intramolecular vector in the first and in the last frame (~1 for an intact crystal, lower
for a melt).
"""
from __future__ import annotations

import json
from pathlib import Path

from molenv.constants import file_sha256
from molenv.results.layout import read_json


def orientation_change(a: dict, vector: tuple[int, int], frames: tuple[int, int]):
    """cos between each molecule's first intramolecular vector in two frames of a
    dataset source's arrays (`Dataset.arrays`); clusters have no box."""
    import numpy as np

    from molenv.frames import minimum_image

    i, j = vector
    out = []
    for f in frames:
        box = a["boxes"][f]
        v = a["positions"][f][a["molecules"][:, j]].astype(float) - a["positions"][f][a["molecules"][:, i]]
        v = minimum_image(v, None if np.isnan(box).any() else box)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.sum(out[0] * out[1], axis=1)


def sf_diagnostics(work: Path, molecule: str) -> list[dict] | None:
    """Per periodic trajectory, from the SF model file and the dataset: the orientational
    order at the last frame and, for the test frames, the accuracy, the per-frame accuracy
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
        cos = orientation_change(a, ds.descriptor_set.vectors[0], (0, len(a["positions"]) - 1))
        row = {"source": source["name"], "label": source["label"], "temperature": source["temperature_K"], "split": source["split"],
               "order": float(np.mean(cos))}
        test = np.flatnonzero(a["split"] == 2)
        if len(test):
            truth = to_model[a["labels"][test]]
            pred = model.predict_proba(a["features"][test].reshape(-1, a["features"].shape[2])).argmax(1).reshape(truth.shape)
            per_frame = (pred == truth).mean(axis=1)
            half = len(per_frame) // 2
            wrong = pred[pred != truth]
            row.update(accuracy=float((pred == truth).mean()), lowest=float(per_frame.min()), first_half=float(per_frame[:half].mean()) if half else None,
                       second_half=float(per_frame[half:].mean()), frames=int(len(test)))
            if len(wrong):
                k = np.bincount(wrong).argmax()
                row.update(main_error=model.classes[k], main_error_fraction=float((wrong == k).sum() / truth.size))
        rows.append(row)
    return rows


def gnn_cluster_diagnostics(work: Path, molecule: str) -> list[dict] | None:
    """Per cluster trajectory and split (val, test): the GNN's polymorph accuracy on the
    core (bulk-labelled) and on the surface molecules, and their orientational order
    (first vs last frame of the trajectory; core/surface as labelled in the first frame).
    None without a checkpoint. A forward pass over the cluster frames, so cached in
    gnn/cluster_diagnostics.json for the checkpoint and dataset."""
    import numpy as np

    d = work / molecule
    checkpoint = d / "gnn" / "checkpoints" / "best.ckpt"
    if not checkpoint.is_file():
        return None
    key = {"checkpoint_mtime": checkpoint.stat().st_mtime, "dataset": file_sha256(d / "dataset" / "manifest.json")}
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
        cos = orientation_change(a, ds.descriptor_set.vectors[0], (0, len(a["positions"]) - 1))
        surface0 = a["topology"][0] == 1
        for split in ("val", "test"):
            items = list(ds.frames(split, sources=[source["name"]]))
            if not items:
                continue
            pred = predict_graphs(classifier, [frame_to_graph(it.frame, it.polymorph, it.topology) for it in items], embeddings=False)
            right = pred.polymorph == to_model[pred.y_polymorph]
            surface = pred.y_topology == 1
            rows.append({"source": source["name"], "split": split, "frames": len(items), "temperature": source["temperature_K"],
                         "accuracy": float(right.mean()), "accuracy_core": float(right[~surface].mean()) if (~surface).any() else None,
                         "accuracy_surface": float(right[surface].mean()) if surface.any() else None, "surface_fraction": float(surface.mean()),
                         "order_core": float(cos[~surface0].mean()), "order_surface": float(cos[surface0].mean()) if surface0.any() else None})
    cache.write_text(json.dumps({"key": key, "rows": rows}, indent=1) + "\n")
    return rows
