"""Evaluate a classifier on a dataset split: metrics, confusion matrices, t-SNE maps.

One code path for both classifiers. A classifier's per-molecule output is a set of
`Head`s (the SF classifier: polymorph; the graph classifier: polymorph and topology) plus
named embeddings (SF: the scaled descriptors and the last hidden layer; GNN: the pooled
molecule embedding and the last hidden layer). `evaluate_outputs` turns them into

- ``metrics.json``: per head micro/macro F1 (scikit-learn), per-class recall, precision,
  F1 and support, the confusion matrix, per-source accuracy; the model and data evaluated;
- ``confusion_<head>.png``: confusion matrix (rows: true class, columns: predicted class,
  row-normalised colours, counts written in the cells);
- ``tsne_<embedding>.png``: t-SNE map of a seeded random subsample, coloured by true
  polymorph class, misclassified molecules marked.

True and predicted classes are matched by name (ignoring case, so a dataset's ``melt``
meets a model's ``Melt``), never by position: a model with the dataset's classes in another
order is evaluated correctly. A model may know classes the data lack (e.g. the 7-class
reference urea model on I / IV / melt data): the confusion matrix then has rows for the true
classes present and columns for every predicted class. Data of a class the model does not
know are refused by `evaluate_sf` and `evaluate_gnn` (`check_classes`): every such molecule
would count as misclassified, and the F1 would measure the mismatch of names, not the model
(`Head` itself still scores them, with a column of their own).

`evaluate_sf`, `evaluate_gnn` (a checkpoint) and `evaluate_gnn_file` (a model file) compute
the heads of each classifier, and with an ood block the out-of-distribution score
(`ood_metrics`); `evaluate_path` accepts whatever `molenv evaluate` is given (an SF model
file or checkpoint, a GNN checkpoint or model file, or a training output directory:
`molenv.models.open_model`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molenv.dataset import Dataset, MoleculeTable
from molenv.topology import TOPOLOGY_NAMES

__all__ = ["Head", "check_classes", "head_metrics", "ood_metrics", "plot_confusion", "plot_tsne", "evaluate_outputs", "evaluate_sf", "evaluate_gnn", "evaluate_gnn_file",
           "evaluate_path"]


@dataclass
class Head:
    """Per-molecule predictions of one classification head and the true labels.

    ``y_true`` indexes ``true_names`` (negative: no label, left out); ``probabilities``
    has one column per name of ``pred_names``.
    """

    name: str
    true_names: list[str]
    pred_names: list[str]
    y_true: np.ndarray
    probabilities: np.ndarray

    def matched(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(class names, true index, predicted index) in one shared name list: the
        predicted classes first, then true classes the model does not know."""
        key = lambda name: name.lower()  # noqa: E731
        names = list(self.pred_names)
        known = {key(n): k for k, n in enumerate(names)}
        true_map = []
        for n in self.true_names:
            if key(n) not in known:
                known[key(n)] = len(names)
                names.append(n)
            true_map.append(known[key(n)])
        labelled = self.y_true >= 0
        y_true = np.asarray(true_map)[self.y_true[labelled]]
        y_pred = np.argmax(self.probabilities[labelled], axis=1)
        return names, y_true, y_pred


def head_metrics(head: Head, groups: np.ndarray | None = None, group_names: Sequence[str] | None = None) -> dict:
    """Metrics of one head (see the module docstring); ``groups`` (per molecule, indexing
    ``group_names``) adds the accuracy of each group (source)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    names, y_true, y_pred = head.matched()
    if len(y_true) == 0:
        return {"n": 0}
    present = np.unique(y_true)
    columns = np.union1d(np.arange(len(head.pred_names)), present)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=present, zero_division=0)
    matrix = confusion_matrix(y_true, y_pred, labels=columns)
    rows = np.searchsorted(columns, present)
    out = {
        "n": int(len(y_true)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro")),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "per_class": {
            names[c]: {"recall": float(r), "precision": float(p), "f1": float(f), "support": int(s)}
            for c, p, r, f, s in zip(present, precision, recall, f1, support)
        },
        "confusion_matrix": {"rows_true": [names[c] for c in present], "columns_predicted": [names[c] for c in columns], "counts": matrix[rows].tolist()},
    }
    if groups is not None:
        labelled = head.y_true >= 0
        g = np.asarray(groups)[labelled]
        out["accuracy_by_source"] = {
            group_names[k]: {"n": int((g == k).sum()), "accuracy": float((y_true[g == k] == y_pred[g == k]).mean())} for k in np.unique(g)
        }
    return out


def plot_confusion(confusion: dict, path: str | Path, title: str) -> Path:
    """PNG of a confusion matrix as `head_metrics` gives it (``confusion_matrix``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(confusion["counts"], dtype=float)
    fraction = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    rows, cols = confusion["rows_true"], confusion["columns_predicted"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(cols), 1.2 + 0.7 * len(rows)))
    ax.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", color="white" if fraction[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def tsne(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-d t-SNE map (scikit-learn) of `points` (n, d); perplexity shrinks for small n.

    Runs on one thread: on a shared CPU, OpenMP threads waiting for each other make
    scikit-learn's t-SNE several times slower (1000 points: 8 s on one thread, 30 s on two
    busy cores).
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(points)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, n_jobs=1).fit_transform(np.asarray(points, dtype=np.float64))


def plot_tsne(xy: np.ndarray, labels: np.ndarray, names: Sequence[str], wrong: np.ndarray, path: str | Path, title: str) -> Path:
    """PNG of a 2-d map coloured by class, misclassified points marked with a black x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for k in np.unique(labels):
        sel = labels == k
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, alpha=0.7, label=f"{names[k]} ({sel.sum()})")
    if wrong.any():
        ax.scatter(xy[wrong, 0], xy[wrong, 1], s=14, marker="x", c="black", linewidths=0.7, label=f"misclassified ({wrong.sum()})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=2)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def evaluate_outputs(
    out_dir: str | os.PathLike,
    heads: Sequence[Head],
    embeddings: Mapping[str, np.ndarray] | None = None,
    *,
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    info: Mapping | None = None,
    tsne_samples: int = 1000,
    seed: int = 0,
    plots: bool = True,
) -> dict:
    """Write metrics.json, confusion and t-SNE PNGs for `heads`; return the metrics.

    t-SNE maps are coloured by the true labels of the first head and mark its
    misclassified molecules; ``tsne_samples`` molecules (seeded random subsample, the same
    for every embedding) are mapped; 0 leaves t-SNE out.
    """
    from molenv.paths import output_directory_problem

    out = Path(out_dir)
    if problem := output_directory_problem(out):
        raise ValueError(problem)
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"info": dict(info or {}), "heads": {}, "files": {}}
    for head in heads:
        metrics["heads"][head.name] = head_metrics(head, groups, group_names)
        if plots and metrics["heads"][head.name]["n"]:
            m = metrics["heads"][head.name]
            file = f"confusion_{head.name}.png"
            plot_confusion(m["confusion_matrix"], out / file, f"{head.name}: micro F1 {m['micro_f1']:.4f} (n = {m['n']})")
            metrics["files"][f"confusion_{head.name}"] = file
    first = heads[0]
    labelled = np.flatnonzero(first.y_true >= 0)
    if plots and embeddings and tsne_samples > 0 and len(labelled) >= 5:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(labelled, size=min(tsne_samples, len(labelled)), replace=False))
        wrong = np.argmax(first.probabilities[pick], axis=1) != _pred_index(first)[first.y_true[pick]]
        for name, points in embeddings.items():
            xy = tsne(np.asarray(points)[pick], seed)
            file = f"tsne_{name}.png"
            plot_tsne(xy, first.y_true[pick], first.true_names, wrong, out / file, f"t-SNE of {name.replace('_', ' ')} ({len(pick)} molecules)")
            metrics["files"][f"tsne_{name}"] = file
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


def _pred_index(head: Head) -> np.ndarray:
    """For each true class, its column among the predictions (-1 when the model lacks it)."""
    lower = [n.lower() for n in head.pred_names]
    return np.array([lower.index(n.lower()) if n.lower() in lower else -1 for n in head.true_names])


# ----------------------------------------------------------------------------- classifiers


def evaluate_sf(model, dataset: Dataset, out_dir, splits="test", *, include_clusters: bool = False, info: Mapping | None = None, **options) -> dict:
    """Evaluate an SF classifier given as a molenv `Model` (a model file read back, or
    `molenv.sf.model.SFClassifier.to_model()`: the same numbers PLUMED computes) on the periodic bulk
    molecules of `splits` (all molecules with ``include_clusters``)."""
    from molenv.sf.train import training_molecules

    names = [splits] if isinstance(splits, str) else list(splits)
    tables = [training_molecules(dataset, s, include_clusters) for s in names]
    table = MoleculeTable(**{k: (np.concatenate([getattr(t, k) for t in tables]) if k != "source_names" else tables[0].source_names) for k in vars(tables[0])})
    if len(table) == 0:
        raise ValueError(f"{dataset.path}: no molecules in split {', '.join(names)} to evaluate" + ("" if include_clusters else " (periodic bulk molecules only)"))
    _check_descriptors(model, dataset)
    labels = _known_labels(table.labels, dataset, model.classes) if model.ood is not None else table.labels
    check_classes(model.classes, dataset, labels, (info or {}).get("model_path", model.name))
    layers = model.network.layer_outputs(table.features)
    head = Head("polymorph", dataset.classes, list(model.classes), labels, layers[-1])
    embeddings = {"descriptors": layers[0]}
    if len(layers) > 2:
        embeddings["last_hidden_layer"] = layers[-2]
    details = {"kind": "sf", "model": model.name, "dataset": str(dataset.path), "splits": names, "clusters_included": include_clusters, **(info or {})}
    metrics = evaluate_outputs(out_dir, [head], embeddings, groups=table.source, group_names=table.source_names, info=details, **options)
    if model.ood is not None:
        metrics["ood"] = ood_metrics(model.ood.other(layers[model.ood.layer - 1]), table.labels, dataset.classes, model.classes, model.ood)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


def _known_labels(labels: np.ndarray, dataset: Dataset, model_classes: Sequence[str]) -> np.ndarray:
    """`labels` with the molecules of classes the model does not know unlabelled (-1): with
    an ood score they are what the score is for, scored by it alone and left out of the
    polymorph head."""
    known = np.array([c.lower() in {k.lower() for k in model_classes} for c in dataset.classes])
    return np.where((labels >= 0) & known[np.maximum(labels, 0)], labels, -1)


def ood_metrics(other: np.ndarray, labels: np.ndarray, true_names: Sequence[str], model_classes: Sequence[str], score) -> dict:
    """The out-of-distribution score of the molecules (`molenv.ood`): per true class the
    number of molecules, the fraction flagged (other > 0.5) and the mean score (n_other / N),
    for the classes the model knows and for those it does not, and the calibration."""
    from molenv.ood import calibration_record

    known = {c.lower() for c in model_classes}
    out = {"calibration": calibration_record(score), "per_class": {}}
    groups = {"known_classes": np.zeros(len(other), dtype=bool), "unknown_classes": np.zeros(len(other), dtype=bool)}
    for k in np.unique(labels[labels >= 0]):
        sel = labels == k
        name = true_names[k]
        out["per_class"][name] = {"n": int(sel.sum()), "known_to_the_model": name.lower() in known,
                                  "flagged_fraction": float(np.mean(other[sel] > 0.5)), "mean_other": float(np.mean(other[sel]))}
        groups["known_classes" if name.lower() in known else "unknown_classes"] |= sel
    for name, sel in groups.items():
        if sel.any():
            out[name] = {"n": int(sel.sum()), "flagged_fraction": float(np.mean(other[sel] > 0.5)), "mean_other": float(np.mean(other[sel]))}
    return out


def check_classes(model_classes: Sequence[str], dataset: Dataset, labels: np.ndarray, model: str) -> None:
    """ValueError, naming both class lists, where labelled molecules (`labels`: indices into
    ``dataset.classes``, negative = unlabelled) are of a class the model (`model`: its name
    or file) does not know, by name ignoring case."""
    known = {c.lower() for c in model_classes}
    present = np.unique(np.asarray(labels)[np.asarray(labels) >= 0])
    unknown = [dataset.classes[k] for k in present if dataset.classes[k].lower() not in known]
    if unknown:
        raise ValueError(f"{model}: the model's classes ({', '.join(model_classes)}) do not include {', '.join(unknown)} of the dataset "
                         f"{dataset.path} (classes {', '.join(dataset.classes)}); classes are matched by name (ignoring case), and "
                         "molecules of a class the model does not know cannot be scored")


def _check_descriptors(model, dataset: Dataset) -> None:
    from dataclasses import asdict

    if asdict(model.descriptors) != asdict(dataset.descriptor_set):
        raise ValueError(f"the model's descriptor definition differs from the one the dataset {dataset.path} was featurized with (molecule {dataset.molecule})")


def evaluate_gnn(classifier, dataset: Dataset, out_dir, splits="test", *, batch_size: int = 4, info: Mapping | None = None, **options) -> dict:
    """Evaluate a graph classifier (`molenv.gnn.lightning.GNNClassifier`) on every frame of
    `splits` (clusters included: the GNN also classifies topology)."""
    from molenv.gnn.graph import graphs_from_dataset
    from molenv.gnn.lightning import predict_graphs

    names = [splits] if isinstance(splits, str) else list(splits)
    graphs = graphs_from_dataset(dataset, names, classifier.model.cutoff)
    if not graphs:
        raise ValueError(f"{dataset.path}: no frames in split {', '.join(names)} to evaluate")
    check_classes(classifier.form_names, dataset, np.concatenate([g.y_polymorph.numpy() for g in graphs]), (info or {}).get("model_path", "the model"))
    pred = predict_graphs(classifier, graphs, batch_size=batch_size)
    # source of each molecule: the dataset yields frames source by source
    sources = [item.source for item in dataset.frames(names)]
    groups = np.array([dataset.source_names.index(sources[f]) for f in pred.frame])
    heads = [
        Head("polymorph", dataset.classes, list(pred.form_names), pred.y_polymorph, pred.polymorph_probabilities),
        Head("topology", list(TOPOLOGY_NAMES), list(pred.topology_names), pred.y_topology, pred.topology_probabilities),
    ]
    embeddings = {"pooled_embedding": pred.embedding, "last_hidden_layer": pred.hidden}
    details = {"kind": "gnn", "dataset": str(dataset.path), "splits": names, **(info or {})}
    return evaluate_outputs(out_dir, heads, embeddings, groups=groups, group_names=dataset.source_names, info=details, **options)


def evaluate_gnn_file(model, dataset: Dataset, out_dir, splits="test", *, info: Mapping | None = None, **options) -> dict:
    """Evaluate a GNN model file (`molenv.gnn.modelfile.GNNModel`, evaluated in float64 by
    `molenv.gnn.numpy_model`: the numbers MOLENV_CLASSIFY computes) on every frame of
    `splits`, as `evaluate_gnn` a checkpoint; with an ood block, also the ood score (and then
    molecules of classes the model does not know are accepted, scored by it alone)."""
    from molenv.gnn.numpy_model import GNNInputError, classify_frame

    names = [splits] if isinstance(splits, str) else list(splits)
    parts: dict[str, list] = {k: [] for k in ("polymorph", "topology", "y_polymorph", "y_topology", "embedding", "hidden", "other", "group")}
    for item in dataset.frames(names):
        try:
            out = classify_frame(model, item.frame)
        except GNNInputError as err:
            raise ValueError(f"{(info or {}).get('model_path', model.name)}: {item.source} frame {item.index}: {err}") from None
        for key, value in (("polymorph", out.polymorph), ("topology", out.topology), ("y_polymorph", item.polymorph), ("y_topology", item.topology),
                           ("embedding", out.ood_features[1]), ("hidden", out.ood_features[-1]), ("other", out.other),
                           ("group", np.full(len(item.polymorph), dataset.source_names.index(item.source)))):
            parts[key].append(value)
    if not parts["polymorph"]:
        raise ValueError(f"{dataset.path}: no frames in split {', '.join(names)} to evaluate")
    cat = {k: np.concatenate(v) for k, v in parts.items() if k != "other" or model.ood is not None}
    labels = _known_labels(cat["y_polymorph"], dataset, model.classes) if model.ood is not None else cat["y_polymorph"]
    check_classes(model.classes, dataset, labels, (info or {}).get("model_path", model.name))
    heads = [
        Head("polymorph", dataset.classes, list(model.classes), labels, cat["polymorph"]),
        Head("topology", list(TOPOLOGY_NAMES), list(model.topology_classes), cat["y_topology"], cat["topology"]),
    ]
    embeddings = {"pooled_embedding": cat["embedding"], "last_hidden_layer": cat["hidden"]}
    details = {"kind": "gnn", "model": model.name, "dataset": str(dataset.path), "splits": names, **(info or {})}
    metrics = evaluate_outputs(out_dir, heads, embeddings, groups=cat["group"], group_names=dataset.source_names, info=details, **options)
    if model.ood is not None:
        metrics["ood"] = ood_metrics(cat["other"], cat["y_polymorph"], dataset.classes, model.classes, model.ood)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    return metrics


def evaluate_path(model_path, dataset: Dataset, out_dir, splits="test", *, include_clusters: bool = False, batch_size: int = 4, **options) -> dict:
    """`evaluate_sf` / `evaluate_gnn` for the model `molenv.models.open_model` opens at
    `model_path`: an SF model file or checkpoint, a GNN checkpoint, or a training output
    directory; ``options`` go to `evaluate_outputs` (tsne_samples, seed, plots)."""
    from molenv.models import ClassifierError, open_model

    model = open_model(model_path)
    info = {"model_path": str(model.path)}
    if model.kind == "sf":
        return evaluate_sf(model.model, dataset, out_dir, splits, include_clusters=include_clusters, info=info, **options)
    if model.form == "checkpoint":
        return evaluate_gnn(model.network(), dataset, out_dir, splits, batch_size=batch_size, info=info, **options)
    if model.form == "model-file":
        return evaluate_gnn_file(model.model, dataset, out_dir, splits, info=info, **options)
    raise ClassifierError(f"{model.path}: a GNN TorchScript export; a GNN is evaluated from its checkpoint (or training output directory) "
                          "or its model file (.molenv), whose network gives the embeddings of the t-SNE maps")
