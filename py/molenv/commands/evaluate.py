"""Evaluate a trained classifier on a dataset split: F1, recall, confusion matrix, t-SNE.

  molenv evaluate runs/urea-sf DATASET --out runs/urea-sf/eval-test

MODEL is an SF model file (e.g. from `molenv export` or `molenv import-reference`), an
SF or GNN checkpoint, or a training output directory (its checkpoints/best.ckpt). SF
classifiers are evaluated on the periodic bulk molecules of the split (as trained), graph
classifiers on every frame, with polymorph and topology heads. Writes to --out:
metrics.json (micro/macro F1, per-class recall/precision/F1, confusion matrices,
accuracy per source), confusion_<head>.png and tsne_<embedding>.png (SF: descriptors and
last hidden layer; GNN: pooled embedding and last hidden layer). A GNN is evaluated from its
checkpoint (torch) or its model file (float64 numpy, the numbers of MOLENV_CLASSIFY). A model
file (SF or GNN) with an ood block (the out-of-distribution score) also reports, per true class, the fraction of
molecules it flags as none of its classes ("ood" in metrics.json); with it, molecules of
classes the model does not know are accepted: they are scored by the ood score alone.
"""
from __future__ import annotations

from molenv.commands._options import non_negative_int, positive_int


def add_arguments(parser):
    parser.add_argument("model", help="model file, checkpoint or training output directory")
    parser.add_argument("dataset", help="dataset directory of `molenv featurize`")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--split", default="test", help="split(s) to evaluate, comma separated: train, val, test (default test)")
    parser.add_argument("--include-clusters", action="store_true", help="SF: also clusters and surface molecules")
    parser.add_argument("--tsne-samples", type=non_negative_int, default=1000, help="molecules in the t-SNE maps (seeded subsample; 0: no t-SNE; default 1000)")
    parser.add_argument("--no-plots", action="store_true", help="metrics.json only")
    parser.add_argument("--seed", type=int, default=0, help="seed of the t-SNE subsample and map")
    parser.add_argument("--batch-size", type=positive_int, default=4, help="GNN: frames per batch")


def run(args):
    from molenv.dataset import open_dataset
    from molenv.evaluate import evaluate_path

    from molenv.cli import CommandError
    from molenv.paths import output_directory_problem

    if problem := output_directory_problem(args.out):  # before the model is evaluated
        raise CommandError(problem)
    splits = [s for s in args.split.replace(" ", "").split(",") if s]
    dataset = open_dataset(args.dataset)
    metrics = evaluate_path(
        args.model,
        dataset,
        args.out,
        splits,
        include_clusters=args.include_clusters,
        batch_size=args.batch_size,
        tsne_samples=args.tsne_samples,
        seed=args.seed,
        plots=not args.no_plots,
    )
    for name, head in metrics["heads"].items():
        if not head["n"]:
            print(f"{name}: no labelled molecules")
            continue
        recall = ", ".join(f"{c} {v['recall']:.4f}" for c, v in head["per_class"].items())
        print(f"{name}: micro F1 {head['micro_f1']:.4f}, macro F1 {head['macro_f1']:.4f} ({head['n']} molecules); recall: {recall}")
        cm = head["confusion_matrix"]
        print("  confusion (rows true, columns predicted " + " ".join(cm["columns_predicted"]) + "):")
        for row, counts in zip(cm["rows_true"], cm["counts"]):
            print(f"    {row:>8s} " + " ".join(f"{c:6d}" for c in counts))
    if "ood" in metrics:
        print("ood score (other > 0.5 flags a molecule as none of the model's classes; the calibration flags "
              f"{1 - metrics['ood']['calibration']['quantile']:.3g} of known-class validation molecules):")
        for name, c in metrics["ood"]["per_class"].items():
            print(f"  {name:>8s} {c['n']:6d} molecules{'' if c['known_to_the_model'] else ' (a class the model does not know)'}: "
                  f"flagged {c['flagged_fraction']:.4f}, mean other {c['mean_other']:.4f}")
    print(f"wrote {args.out}/metrics.json" + "".join(f", {f}" for f in metrics["files"].values()))
    return 0
