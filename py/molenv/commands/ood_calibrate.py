"""Add the out-of-distribution score (the ood block) to an existing SF model file.

  molenv ood-calibrate urea.molenv DATASET --out urea-ood.molenv

Fits the class-conditional Gaussians of the score (`molenv.ood`) to the scaled descriptors
of the model (the inputs of its layer 1; --layer K: the inputs of dense layer K) on the training molecules of DATASET (a `molenv featurize` directory made with
the model's descriptors) and calibrates its threshold on the validation molecules: other >
0.5 for the 0.99 quantile of them (--quantile). Dataset classes are matched to the model's
by name (ignoring case); molecules of other classes are left out. The network, classes and
meta records are copied unchanged (an ood block already there is replaced), so
MOLENV_CLASSIFY gives the same probabilities with the new file, and OOD adds the class
other (docs/plumed_action.md). `molenv export` writes the block itself for new models.
"""
from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("model", help="SF model file (.molenv)")
    parser.add_argument("dataset", help="dataset directory of `molenv featurize`, featurized with the model's descriptors")
    parser.add_argument("--out", required=True, help="model file to write (.molenv)")
    parser.add_argument("--quantile", type=float, default=0.99, help="fraction of the known-class validation molecules below the threshold (default 0.99)")
    parser.add_argument("--layer", type=int, default=1, help="the features: the inputs of this dense layer (1: the scaled descriptors, the default; "
                        "the number of layers: the last hidden layer's outputs)")
    parser.add_argument("--include-clusters", action="store_true", help="also clusters and surface molecules (default: periodic bulk, as `molenv train sf`)")


def run(args):
    from pathlib import Path

    from molenv.cli import CommandError
    from molenv.dataset import open_dataset
    from molenv.modelfile import model_file_kind, read_model, write_model
    from molenv.ood import LOW_QUANTILE, OODError, calibrate_sf, describe

    if model_file_kind(args.model) != "sf":
        raise CommandError(f"{args.model}: a GNN model file; the ood score is for SF model files so far")
    if Path(args.out).resolve() == Path(args.model).resolve():
        raise CommandError(f"--out {args.out}: write the calibrated model to a new file, not over {args.model}")
    if not 0 < args.quantile < 1:
        raise CommandError(f"--quantile must lie between 0 and 1, got {args.quantile}")
    model = read_model(args.model)
    dataset = open_dataset(args.dataset)
    try:
        model.ood = calibrate_sf(model, dataset, args.include_clusters, layer=args.layer, quantile=args.quantile, low_quantile=min(LOW_QUANTILE, args.quantile * 0.9))
    except OODError as err:
        raise CommandError(str(err)) from None
    write_model(model, args.out)
    print(describe(model.ood))
    print(f"wrote {args.out}")
    return 0
