"""Which features the GNN's out-of-distribution score takes: the experiment of issue 16's
"none of these" for the graph classifier (docs/training.md, "The out-of-distribution score").

A small urea GNN is trained on form I (100 K) and the melt only; then, for every layer whose
features the ood block can take (`GNNModel.ood_layer_inputs`: 1 the radial basis summed over
each atom's neighbours, the molecule's atoms concatenated; 2 the pooled molecule embedding;
3 the outputs of head block 1; 4, with two head blocks, the last hidden features), the score is fitted on the training molecules
and calibrated on the validation molecules (`molenv.ood.fit_ood`, as `calibrate_gnn` does),
and the fraction of molecules it flags (other > 0.5) is printed for the validation and test
molecules of the known classes and for form IV, which the model never saw:

    molenv featurize --manifest data/manifest.json --only urea-I-100K urea-melt-350K urea-I-200K \\
        --molecule urea --out /tmp/gnnood/ds
    python scripts/gnn_ood_layers.py /tmp/gnnood/ds --out /tmp/gnnood/run

The features are those of the model file's network in float64 (`molenv.gnn.numpy_model`),
the numbers MOLENV_CLASSIFY computes. Writes OUT/gnn.molenv (no ood block; add one with
`molenv ood-calibrate`) and OUT/ood_layers.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SMALL = dict(hidden=64, conv_channels=32, num_radial=16)  # a small network: a 2-core CPU trains it in minutes


def ood_features(model, frames):
    """(list over the layers of (n, width) features, labels, polymorph probabilities) of the
    labelled molecules of `frames` ((frame, labels) pairs)."""
    from molenv.gnn.numpy_model import classify_frame

    features, labels, probabilities = [], [], []
    for frame, label in frames:
        keep = label >= 0
        if keep.any():
            out = classify_frame(model, frame)
            features.append([h[keep] for h in out.ood_features])
            labels.append(label[keep])
            probabilities.append(out.polymorph[keep])
    return [np.concatenate([f[k] for f in features]) for k in range(len(features[0]))], np.concatenate(labels), np.concatenate(probabilities)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="dataset of urea form I (100 K, 200 K) and melt (molenv featurize)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--frame-step", type=int, default=2, help="train on every N-th training frame")
    parser.add_argument("--iv-step", type=int, default=4, help="every N-th frame of the form IV trajectories")
    args = parser.parse_args()

    import torch

    from molenv.dataset import open_dataset
    from molenv.gnn.export import gnn_model_file, molecule_elements
    from molenv.gnn.graph import graphs_from_dataset
    from molenv.gnn.lightning import GNNTrainConfig, load_classifier, train_gnn
    from molenv.gnn.modelfile import read_gnn_model, write_gnn_model
    from molenv.ood import fit_ood, layer_name
    from molenv.trajectory import Trajectory

    torch.set_num_threads(1)
    out = Path(args.out)
    dataset = open_dataset(args.dataset)
    model_path = out / "gnn.molenv"
    if not model_path.is_file():
        train = graphs_from_dataset(dataset, "train", step=args.frame_step)
        val = graphs_from_dataset(dataset, "val")
        config = GNNTrainConfig(form_names=list(dataset.classes), model_kwargs=SMALL, dropout=0.1, lr=args.lr, batch_size=1, max_epochs=args.max_epochs, patience=3,
                                accelerator="cpu", devices=1)
        info = {"dataset": str(dataset.path), "dataset_manifest_sha256": dataset.manifest_sha256(), "frame_step": args.frame_step}
        checkpoint = train_gnn(train, val, config, out, info=info)
        classifier = load_classifier(checkpoint)
        write_gnn_model(gnn_model_file(classifier.model, classifier.form_names, molecule_elements("urea"), name="urea GNN (I, melt)"), model_path)
    model = read_gnn_model(model_path)

    def dataset_frames(split, source=None):
        return [(item.frame, item.polymorph) for item in dataset.frames(split) if source is None or item.source == source]

    train_h, train_y, _ = ood_features(model, dataset_frames("train"))
    val_h, _, _ = ood_features(model, dataset_frames("val"))
    sets = {
        "validation, form I 100 K": dataset_frames("val", "urea-I-100K"),
        "validation, melt 350 K": dataset_frames("val", "urea-melt-350K"),
        "test, form I 200 K": dataset_frames("test", "urea-I-200K"),
        "test, melt 350 K": dataset_frames("test", "urea-melt-350K"),
    }
    for temperature in (100, 200):
        data = REPO / "data" / "urea"
        trajectory = Trajectory(data / f"urea-IV-{temperature}K.xtc", "urea", topology=data / f"urea-IV-{temperature}K.pdb.gz", step=args.iv_step)
        sets[f"form IV {temperature} K, never seen"] = [(frame, np.zeros(frame.n_molecules, dtype=int)) for frame in trajectory]
    features = {name: ood_features(model, frames) for name, frames in sets.items()}
    report = {"model": str(model_path), "network": SMALL, "called": {}, "layers": {}}
    for name, (_, _, p) in features.items():
        report["called"][name] = {c: float(np.mean(p.argmax(1) == k)) for k, c in enumerate(model.classes)}
        print(f"{name}: called " + ", ".join(f"{c} {v:.3f}" for c, v in report["called"][name].items()))
    for layer in range(1, len(model.ood_layer_inputs) + 1):
        score = fit_ood(train_h[layer - 1], train_y, list(model.classes), val_h[layer - 1], layer=layer)
        row = {"threshold": score.threshold, "width": score.width, "flagged": {}}
        print(f"layer {layer} ({layer_name(layer, 'gnn')}): threshold {score.threshold:.4g}, width {score.width:.4g}")
        for name, (h, _, _) in features.items():
            other = score.other(h[layer - 1])
            row["flagged"][name] = {"n": len(other), "flagged": float(np.mean(other > 0.5)), "mean_other": float(other.mean())}
            print(f"  {name:32s} {len(other):6d} molecules: flagged {np.mean(other > 0.5):.3f}, mean other {other.mean():.3f}")
        report["layers"][layer] = row
    (out / "ood_layers.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
